"""The project's own SQL: it pushes cleanly, lints cleanly and passes its pgTAP suite."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from pysync.config import Settings
from pysync.migrate import discover_migrations, inspect
from pysync.migrate.lint import lint_paths
from tests.helpers import PROJECT_ROOT, acting_as

#: Run on PostgreSQL 15 and again on 17 by `make test` (the lint, which asks no server, once).
sql_suite = pytest.mark.sql_suite

SQL_TESTS = PROJECT_ROOT / "supabase" / "tests"


@sql_suite
def test_every_migration_is_applied_without_drift(app_conn: psycopg.Connection[Any]) -> None:
    status = inspect(app_conn, PROJECT_ROOT / "supabase" / "migrations")
    files = discover_migrations(PROJECT_ROOT / "supabase" / "migrations")
    assert files, "the project has no migrations"
    assert status.pending == [] and status.drift == []
    assert [m.version for m in status.applied] == [f.version for f in files]


@sql_suite
def test_seed_created_gotrue_style_users(app_conn: psycopg.Connection[Any]) -> None:
    rows = app_conn.execute(
        "select u.email, u.confirmation_token, i.provider"
        " from auth.users u join auth.identities i on i.user_id = u.id order by u.email"
    ).fetchall()
    assert len(rows) >= 4
    assert all(token == "" and provider == "email" for _, token, provider in rows)


@sql_suite
def test_seeded_password_verifies_with_pgcrypto(app_conn: psycopg.Connection[Any]) -> None:
    row = app_conn.execute(
        "select encrypted_password = extensions.crypt('password123', encrypted_password)"
        " from auth.users where email = 'student.sam@example.com'"
    ).fetchone()
    assert row == (True,)


@sql_suite
def test_every_public_table_has_rls(app_conn: psycopg.Connection[Any]) -> None:
    unprotected = app_conn.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname in ('public', 'graphql_public') and c.relkind in ('r', 'p')"
        " and not c.relrowsecurity"
    ).fetchall()
    assert unprotected == []


@sql_suite
def test_private_schema_is_not_readable_by_clients(app_conn: psycopg.Connection[Any]) -> None:
    with acting_as(app_conn, "anon"):
        row = app_conn.execute(
            "select has_function_privilege('private.stamp_synced_row()', 'execute')"
        ).fetchone()
    assert row == (False,)


def test_migrations_and_policies_lint_clean() -> None:
    findings = lint_paths(Settings.load(PROJECT_ROOT, environ={}))
    assert [f.as_dict() for f in findings] == []


@sql_suite
def test_pgtap_suite_passes(app_url: str) -> None:
    pg_prove = shutil.which("pg_prove")
    assert pg_prove, "pg_prove is missing: run `make test` (it installs pgTAP and pg_prove)"
    files = sorted(str(p) for p in SQL_TESTS.glob("*.sql"))
    assert files, "no pgTAP files in supabase/tests"
    url = urlsplit(app_url)
    result = subprocess.run(
        [pg_prove, "--host", url.hostname or "127.0.0.1", "--port", str(url.port),
         "--username", url.username or "postgres", "--dbname", url.path.lstrip("/"), *files],
        capture_output=True, text=True, check=False,
        env={**os.environ, "PGPASSWORD": url.password or ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All tests successful" in result.stdout
