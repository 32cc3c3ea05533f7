"""Pushing migrations and policies: order, history, drift, dry runs, and failures that roll
back whole."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pysync.errors import MigrationDriftError, MigrationError, MigrationFileError
from pysync.migrate import discover_migrations, inspect, new_migration, push
from tests.helpers import connect, write_project

#: Run on PostgreSQL 15 and again on 17 by `make test`.
pytestmark = pytest.mark.sql_suite

Conn = psycopg.Connection[Any]

FIRST = "20260101000000_create_courses.sql"
SECOND = "20260102000000_create_lessons.sql"
THIRD = "20260103000000_add_index.sql"

BASE = {
    # Written out of order on purpose: the second needs the first.
    SECOND: (
        "create table public.lessons (\n"
        "    id bigint primary key,\n"
        "    course_id bigint not null references public.courses (id)\n"
        ");\n"
    ),
    FIRST: "create table public.courses (id bigint primary key, title text not null);\n",
}
POLICY = (
    "alter table public.courses enable row level security;\n"
    'drop policy if exists "Anyone can read courses" on public.courses;\n'
    'create policy "Anyone can read courses" on public.courses for select to anon using (true);\n'
)


def _push(conn: Conn, root: Path, **kwargs: Any) -> Any:
    return push(conn, root / "supabase" / "migrations", root / "policies", root=root, **kwargs)


def _tables(conn: Conn) -> set[str]:
    rows = conn.execute("select tablename from pg_tables where schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def _history(conn: Conn) -> list[tuple[str, str, list[str]]]:
    rows = conn.execute(
        "select version, name, statements from supabase_migrations.schema_migrations"
        " order by version"
    ).fetchall()
    return [(v, n, list(s)) for v, n, s in rows]


def test_applies_in_version_order_and_records_history(tmp_path: Path, conn: Conn) -> None:
    root = write_project(tmp_path, BASE, {"courses.sql": POLICY})
    result = _push(conn, root)
    assert [f.version for f in result.applied] == ["20260101000000", "20260102000000"]
    assert _tables(conn) == {"courses", "lessons"}
    history = _history(conn)
    assert [(v, n) for v, n, _ in history] == [
        ("20260101000000", "create_courses"),
        ("20260102000000", "create_lessons"),
    ]
    assert history[0][2] == [
        "create table public.courses (id bigint primary key, title text not null)"
    ]
    checksums = conn.execute("select count(*) from supabase_migrations.pysync_checksums").fetchone()
    assert checksums == (2,)
    assert conn.execute(
        "select count(*) from pg_policies where policyname = 'Anyone can read courses'"
    ).fetchone() == (1,)


def test_second_push_applies_nothing_and_policies_stay_idempotent(
    tmp_path: Path, conn: Conn
) -> None:
    root = write_project(tmp_path, BASE, {"courses.sql": POLICY})
    _push(conn, root)
    again = _push(conn, root)
    assert again.applied == []
    assert [p.path.name for p in again.policies] == ["courses.sql"]
    status = inspect(conn, root / "supabase" / "migrations")
    assert status.pending == [] and status.drift == []


def test_edited_migration_is_drift_and_blocks_push(tmp_path: Path, conn: Conn) -> None:
    root = write_project(tmp_path, BASE)
    _push(conn, root)
    (root / "supabase/migrations" / FIRST).write_text(BASE[FIRST] + "-- edited later\n")
    (root / "supabase/migrations" / THIRD).write_text(
        "create index on public.lessons (course_id);\n"
    )
    status = inspect(conn, root / "supabase" / "migrations")
    assert [(d.version, d.reason) for d in status.drift] == [("20260101000000", "edited")]
    with pytest.raises(MigrationDriftError, match="20260101000000_create_courses was edited"):
        _push(conn, root)
    assert len(_history(conn)) == 2  # the third was not applied


def test_missing_file_is_drift(tmp_path: Path, conn: Conn) -> None:
    root = write_project(tmp_path, BASE)
    _push(conn, root)
    (root / "supabase/migrations" / SECOND).unlink()
    status = inspect(conn, root / "supabase" / "migrations")
    assert [(d.version, d.reason) for d in status.drift] == [("20260102000000", "missing")]


def test_migration_applied_by_supabase_cli_is_unverified_not_drift(
    tmp_path: Path, conn: Conn
) -> None:
    root = write_project(tmp_path, {FIRST: BASE[FIRST]})
    _push(conn, root)
    conn.execute("delete from supabase_migrations.pysync_checksums")  # as if the CLI applied it
    status = inspect(conn, root / "supabase" / "migrations")
    assert status.drift == [] and status.unverified == ["20260101000000"]


def test_dry_run_runs_everything_and_leaves_nothing(tmp_path: Path, conn: Conn) -> None:
    root = write_project(tmp_path, BASE, {"courses.sql": POLICY})
    result = _push(conn, root, dry_run=True)
    assert result.dry_run is True
    assert [f.version for f in result.applied] == ["20260101000000", "20260102000000"]
    assert _tables(conn) == set()
    assert conn.execute("select to_regnamespace('supabase_migrations')").fetchone() == (None,)


def test_dry_run_reports_a_failure_like_a_real_push(tmp_path: Path, conn: Conn) -> None:
    root = write_project(tmp_path, {**BASE, THIRD: "create index on public.nope (x);\n"})
    with pytest.raises(MigrationError, match=THIRD):
        _push(conn, root, dry_run=True)
    assert _tables(conn) == set()


def test_failing_migration_rolls_back_whole_and_names_statement_and_line(
    tmp_path: Path, conn: Conn
) -> None:
    bad = (
        "-- adds reviews\n"
        "create table public.reviews (id bigint primary key);\n"
        "insert into public.reviews values (1);\n"
        "\n"
        "create view public.review_titles as\n"
        "    select id, missing_column from public.reviews;\n"
    )
    root = write_project(tmp_path, {**BASE, THIRD: bad})
    with pytest.raises(MigrationError) as caught:
        _push(conn, root)
    err = caught.value
    assert err.path == f"supabase/migrations/{THIRD}"
    assert (err.statement, err.line, err.sqlstate) == (3, 6, "42703")
    assert str(err) == (
        f"supabase/migrations/{THIRD}: statement 3 (line 6): "
        'column "missing_column" does not exist [42703]'
    )
    # Earlier files stay applied; nothing of the failing file is left behind.
    assert _tables(conn) == {"courses", "lessons"}
    assert [v for v, _, _ in _history(conn)] == ["20260101000000", "20260102000000"]


def test_error_inside_plpgsql_names_the_function_context(tmp_path: Path, conn: Conn) -> None:
    bad = "do $$ begin\n  perform 1 / 0;\nend $$;\n"
    root = write_project(tmp_path, {FIRST: bad})
    with pytest.raises(
        MigrationError,
        match=re.escape(
            "statement 1 (line 1): division by zero"
            " (in PL/pgSQL function inline_code_block line 2 at PERFORM)"
        ),
    ):
        _push(conn, root)


def test_syntax_error_anywhere_stops_before_anything_runs(tmp_path: Path, conn: Conn) -> None:
    root = write_project(tmp_path, {**BASE, THIRD: "create tabel oops ();\n"})
    with pytest.raises(MigrationFileError, match=rf"{THIRD} \(line 1\): syntax error"):
        _push(conn, root)
    assert _tables(conn) == set()


def test_failing_policy_file_rolls_back_all_policies(tmp_path: Path, conn: Conn) -> None:
    broken = 'create policy "Broken" on public.nope for select using (true);\n'
    root = write_project(tmp_path, BASE, {"a_courses.sql": POLICY, "b_broken.sql": broken})
    with pytest.raises(MigrationError, match=re.escape("policies/b_broken.sql: statement 1")):
        _push(conn, root)
    assert _tables(conn) == {"courses", "lessons"}  # migrations stay
    assert conn.execute(
        "select count(*) from pg_policies where tablename = 'courses'"
    ).fetchone() == (0,)


def test_out_of_order_pending_needs_include_all(tmp_path: Path, conn: Conn) -> None:
    root = write_project(tmp_path, {SECOND: BASE[FIRST]})
    _push(conn, root)
    (root / "supabase/migrations" / FIRST).write_text("create table public.early (id int);\n")
    with pytest.raises(MigrationDriftError, match="--include-all"):
        _push(conn, root)
    result = _push(conn, root, include_all=True)
    assert [f.version for f in result.applied] == ["20260101000000"]


def test_push_targets_only_the_given_database(
    tmp_path: Path, new_database: Callable[[], str]
) -> None:
    root = write_project(tmp_path, BASE)
    first, second = new_database(), new_database()
    with connect(second) as conn:
        _push(conn, root)
    with connect(first) as a, connect(second) as b:
        assert _tables(a) == set()
        assert _tables(b) == {"courses", "lessons"}


def test_misnamed_migration_file_is_an_error(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"create_things.sql": "select 1;"})
    with pytest.raises(
        MigrationFileError, match=re.escape("must be named <14-digit timestamp>_<name>.sql")
    ):
        discover_migrations(root / "supabase" / "migrations")


def test_new_migration_names_files_and_avoids_collisions(tmp_path: Path) -> None:
    folder = tmp_path / "supabase" / "migrations"
    moment = datetime(2026, 11, 23, 7, 0, 0, tzinfo=UTC)
    first = new_migration(folder, "Add Courses!", now=moment)
    second = new_migration(folder, "add lessons", now=moment)
    assert first.name == "20261123070000_add_courses.sql"
    assert second.name == "20261123070001_add_lessons.sql"
    assert [f.name for f in discover_migrations(folder)] == ["add_courses", "add_lessons"]
    with pytest.raises(MigrationFileError):
        new_migration(folder, "!!!")
