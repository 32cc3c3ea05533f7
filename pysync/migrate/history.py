"""The migration history in the target database.

``supabase_migrations.schema_migrations`` is the Supabase CLI's own table, written exactly as
the CLI writes it, so ``supabase db push`` and ``pysync db push`` agree on what is applied.
Two tables of ours sit beside it: a checksum per applied migration (drift detection, which the
CLI lacks) and the policy files last applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from pysync.migrate.files import SqlFile

__all__ = [
    "AppliedMigration",
    "ensure_history",
    "read_history",
    "record_migration",
    "record_policies",
]

_HISTORY_DDL = b"""
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
    version text not null primary key,
    statements text[],
    name text
);
create table if not exists supabase_migrations.pysync_checksums (
    version text primary key
        references supabase_migrations.schema_migrations (version) on delete cascade,
    sha256 text not null,
    applied_at timestamptz not null default now(),
    applied_by text not null default current_user
);
create table if not exists supabase_migrations.pysync_policies (
    file text primary key,
    sha256 text not null,
    applied_at timestamptz not null default now()
);
"""

#: Serialises concurrent pushes to one database (any constant works; this spells "pysync").
PUSH_LOCK_KEY = 0x7079_7379_6E63


@dataclass(frozen=True)
class AppliedMigration:
    """A history row; ``checksum`` is None when another tool (the Supabase CLI) applied it."""

    version: str
    name: str | None
    statements: list[str]
    checksum: str | None


def ensure_history(conn: psycopg.Connection[Any]) -> None:
    """Create the history tables when missing (what the Supabase CLI does on first push)."""
    with conn.transaction():
        conn.execute(_HISTORY_DDL)


def read_history(conn: psycopg.Connection[Any]) -> dict[str, AppliedMigration]:
    """Applied migrations by version; empty when the history tables do not exist yet."""
    exists = conn.execute(
        "select to_regclass('supabase_migrations.schema_migrations') is not null,"
        " to_regclass('supabase_migrations.pysync_checksums') is not null"
    ).fetchone()
    if not exists or not exists[0]:
        return {}
    if exists[1]:
        rows = conn.execute(
            "select m.version, m.name, coalesce(m.statements, '{}'), c.sha256"
            " from supabase_migrations.schema_migrations m"
            " left join supabase_migrations.pysync_checksums c using (version)"
            " order by m.version"
        ).fetchall()
    else:
        rows = conn.execute(
            "select version, name, coalesce(statements, '{}'), null"
            " from supabase_migrations.schema_migrations order by version"
        ).fetchall()
    return {
        str(v): AppliedMigration(version=str(v), name=n, statements=list(s), checksum=c)
        for v, n, s, c in rows
    }


def record_migration(conn: psycopg.Connection[Any], migration: SqlFile) -> None:
    """Write the history row (as the Supabase CLI does) and our checksum."""
    conn.execute(
        "insert into supabase_migrations.schema_migrations (version, name, statements)"
        " values (%s, %s, %s)",
        (migration.version, migration.name, [s.text for s in migration.statements]),
    )
    conn.execute(
        "insert into supabase_migrations.pysync_checksums (version, sha256) values (%s, %s)",
        (migration.version, migration.checksum),
    )


def record_policies(conn: psycopg.Connection[Any], files: list[SqlFile]) -> None:
    """Remember which policy files (and which contents) were applied last."""
    conn.execute("delete from supabase_migrations.pysync_policies")
    for policy in files:
        conn.execute(
            "insert into supabase_migrations.pysync_policies (file, sha256) values (%s, %s)",
            (policy.path.name, policy.checksum),
        )
