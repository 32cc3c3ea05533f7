"""The Supabase database emulation: what a hosted project's database has before any migration.

Roles are cluster-wide and re-asserted on every start (``00_roles.sql``), which also upgrades
a cluster an older emulation set up. Everything else is per database (``10_`` … ``40_*.sql``),
applied once to a fresh database in one transaction and recorded in ``pysync_local.emulation``
as :data:`EMULATION_VERSION`: ``<release>.<digest>``, the release bumped when what the
emulation reproduces changes (see docs/architecture.md) and the digest of the SQL files, so a
database built from any other SQL is recognised too and rebuilt (the template at once, the
main database on ``pysync db reset``). None of this is ever pushed: it stands in for what
Supabase itself installs.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from pysync.errors import LocalDatabaseError

__all__ = [
    "EMULATION_RELEASE",
    "EMULATION_VERSION",
    "LOGIN_ROLES",
    "apply_database_emulation",
    "apply_roles",
    "configure_database",
    "install_optional_extensions",
    "installed_version",
    "release_of",
]

#: The emulation's release. 1: the first emulation (versions were a bare digest). 2: Supabase
#: as of 2026: postgres no owner-member of storage/realtime (supautils' policy grants
#: emulated), storage's triggers and API helpers, GoTrue's full schema with RLS on, realtime
#: binary broadcasts, the remaining roles and predefined-role memberships.
EMULATION_RELEASE = 2

#: Roles that log in directly and so need the local password.
LOGIN_ROLES = (
    "postgres",
    "authenticator",
    "supabase_auth_admin",
    "supabase_storage_admin",
    "supabase_replication_admin",
    "supabase_read_only_user",
    "supabase_functions_admin",
    "pgbouncer",
)


def _sql_files() -> list[tuple[str, str]]:
    folder = resources.files("pysync.localdb") / "sql"
    return sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )


def _database_files() -> list[tuple[str, str]]:
    return [(name, text) for name, text in _sql_files() if not name.startswith("00_")]


def _version() -> str:
    digest = hashlib.sha256()
    for name, text in _database_files():
        digest.update(name.encode())
        digest.update(text.encode())
    return f"{EMULATION_RELEASE}.{digest.hexdigest()[:16]}"


EMULATION_VERSION = _version()


def release_of(version: str) -> int:
    """The release a recorded version belongs to (a bare digest is release 1)."""
    head, dot, _ = version.partition(".")
    return int(head) if dot and head.isdigit() else 1


def apply_roles(conn: psycopg.Connection[Any], password: str) -> None:
    """Create or re-assert Supabase's cluster roles and give login roles ``password``."""
    roles_sql = dict(_sql_files())["00_roles.sql"]
    with conn.transaction():
        conn.execute(roles_sql.encode())
        for role in LOGIN_ROLES:
            conn.execute(
                sql.SQL("alter role {} password {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )


def installed_version(conn: psycopg.Connection[Any]) -> str | None:
    """The emulation version a database carries, or ``None`` for a bare database."""
    row = conn.execute("select to_regclass('pysync_local.emulation') is not null").fetchone()
    if not row or not row[0]:
        return None
    found = conn.execute(
        "select version from pysync_local.emulation order by applied_at desc limit 1"
    ).fetchone()
    return str(found[0]) if found else None


def apply_database_emulation(conn: psycopg.Connection[Any]) -> str:
    """Install the emulation into the connected (fresh) database, in one transaction.

    Must be connected as the bootstrap superuser. Installs pgTAP into ``extensions`` as
    well when the server has it, so SQL tests can run in any database made from this one.
    """
    have = installed_version(conn)
    if have == EMULATION_VERSION:
        return have
    if have is not None:
        raise LocalDatabaseError(
            f"this database carries Supabase emulation {have} (release {release_of(have)}), "
            f"not {EMULATION_VERSION}: run `pysync db reset --yes` to rebuild it"
        )
    with conn.transaction():
        for name, text in _database_files():
            try:
                conn.execute(text.encode())
            except psycopg.Error as exc:
                raise LocalDatabaseError(f"emulation file {name} failed: {exc}") from exc
        install_optional_extensions(conn)
        conn.execute(
            "insert into pysync_local.emulation (version) values (%s)", (EMULATION_VERSION,)
        )
    return EMULATION_VERSION


def install_optional_extensions(conn: psycopg.Connection[Any]) -> None:
    """pgTAP into ``extensions`` when the server has it (it may be installed later than the
    database was built, so this runs on every start too)."""
    available = conn.execute(
        "select 1 from pg_available_extensions where name = 'pgtap'"
    ).fetchone()
    if available:
        conn.execute("create extension if not exists pgtap with schema extensions")


def configure_database(conn: psycopg.Connection[Any], dbname: str, jwt_secret: str) -> None:
    """Per-database settings a hosted project has (not copied from a template database)."""
    db = sql.Identifier(dbname)
    conn.execute(sql.SQL("alter database {} owner to postgres").format(db))
    for name, value in (("app.settings.jwt_secret", jwt_secret), ("app.settings.jwt_exp", "3600")):
        conn.execute(
            sql.SQL("alter database {} set {} = {}").format(
                db, sql.Identifier(name), sql.Literal(value)
            )
        )
