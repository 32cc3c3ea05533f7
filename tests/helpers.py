"""Test helpers: act as an API role exactly as PostgREST sets up a request."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from pysync.rls.request import impersonate

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


@contextmanager
def acting_as(
    conn: psycopg.Connection[Any],
    role: str,
    sub: str | None = None,
    *,
    keep: bool = False,
    **claims: Any,
) -> Iterator[psycopg.Connection[Any]]:
    """A transaction (savepoint) in which ``conn`` acts as ``role`` with JWT ``claims``.

    Sets the same transaction-local settings PostgREST sets (role, ``request.jwt.claims``,
    method, path, headers: :func:`pysync.rls.request.impersonate`). The work is rolled back
    unless ``keep``; either way the connection is itself again afterwards.
    """
    with conn.transaction(force_rollback=not keep):
        impersonate(conn, role, sub, claims=claims)
        yield conn
    if keep:  # released savepoints keep their settings: undo them by hand
        conn.execute("reset role")
        conn.execute("select set_config('request.jwt.claims', '', true)")


def make_tempdir(prefix: str) -> Path:
    """A temporary directory the postgres system user can traverse (for clusters run as root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def write_project(
    root: Path, migrations: dict[str, str], policies: dict[str, str] | None = None
) -> Path:
    """A minimal project folder with the given migration and policy files."""
    (root / "supabase" / "migrations").mkdir(parents=True, exist_ok=True)
    (root / "policies").mkdir(exist_ok=True)
    for name, text in migrations.items():
        (root / "supabase" / "migrations" / name).write_text(text)
    for name, text in (policies or {}).items():
        (root / "policies" / name).write_text(text)
    return root


def env_without_targets() -> dict[str, str]:
    """os.environ without settings that would point commands elsewhere."""
    return {k: v for k, v in os.environ.items() if k not in ("SUPABASE_DB_URL", "PYSYNC_DATA_DIR")}


def gotrue_session(
    user_id: str, access_token: str, email: str = "ada@example.com"
) -> dict[str, Any]:
    """The body of GoTrue's answer to a password sign-in (``POST /auth/v1/token``), for
    request-level tests of code that signs in to a Supabase project."""
    return {
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": 3600,
        "expires_at": int(time.time()) + 3600,
        "refresh_token": "refresh-1",
        "user": {
            "id": user_id,
            "aud": "authenticated",
            "role": "authenticated",
            "email": email,
            "app_metadata": {},
            "user_metadata": {},
            "created_at": "2026-01-01T00:00:00Z",
        },
    }


def rows_read(conn: psycopg.Connection[Any], table: str) -> int:
    """Heap rows ``conn``'s transaction has read from ``table``: by its scans (sequential,
    bitmap) and through each of its indexes (an index scan's heap fetches count on the index).
    The statistics trap tests count with it: a probe by key reads a few rows, a scan the
    table."""
    row = conn.execute(
        "select pg_stat_get_xact_tuples_returned(%s::regclass)"
        " + pg_stat_get_xact_tuples_fetched(%s::regclass)"
        " + (select coalesce(sum(pg_stat_get_xact_tuples_fetched(i.indexrelid)), 0)"
        "    from pg_catalog.pg_index as i where i.indrelid = %s::regclass)",
        (table, table, table),
    ).fetchone()
    assert row is not None
    return int(row[0])
