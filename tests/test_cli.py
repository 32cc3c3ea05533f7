"""The CLI: thin commands, JSON output, and one readable line for every expected error."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pysync.cli.main import main
from pysync.localdb import LocalDatabase
from tests.helpers import connect, write_project

MIGRATION = "20260101000000_create_courses.sql"
COURSES = "create table public.courses (id bigint primary key, title text not null);\n"
POLICY = (
    "alter table public.courses enable row level security;\n"
    'drop policy if exists "Anyone can read courses" on public.courses;\n'
    'create policy "Anyone can read courses" on public.courses for select to anon using (true);\n'
)
SEED = "insert into public.courses values (1, 'Algebra') on conflict do nothing;\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session_dir: Path) -> Path:
    """A small project as the current directory, its embedded database the test cluster."""
    root = write_project(tmp_path, {MIGRATION: COURSES}, {"courses.sql": POLICY})
    (root / "supabase" / "seed.sql").write_text(SEED)
    monkeypatch.chdir(root)
    monkeypatch.setenv("PYSYNC_DATA_DIR", str(session_dir))
    monkeypatch.delenv("SUPABASE_DB_URL", raising=False)
    monkeypatch.delenv("PYSYNC_DEBUG", raising=False)
    return root


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, expected: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert "Traceback" not in err
    assert lines[0] == f"error: {expected}"


def test_push_and_status_against_db_url_with_json(
    project: Path, fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "db", "push", "--db-url", fresh_url, "--json")
    assert code == 0
    assert json.loads(out) == {
        "dry_run": False,
        "applied": [{"version": "20260101000000", "name": "create_courses"}],
        "policies": ["courses.sql"],
    }
    code, out, _ = run_cli(capsys, "db", "status", "--db-url", fresh_url, "--json")
    status = json.loads(out)
    assert code == 0
    assert status["target"] == "remote"
    assert status["url"] == fresh_url.replace(":postgres@", ":****@")
    assert status["migrations"]["pending"] == []
    assert [m["version"] for m in status["migrations"]["applied"]] == ["20260101000000"]
    code, out, _ = run_cli(
        capsys, "db", "status", "--db-url", fresh_url, "--json", "--show-secrets"
    )
    assert json.loads(out)["url"] == fresh_url


def test_db_url_from_environment(
    project: Path,
    fresh_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUPABASE_DB_URL", fresh_url)
    code, out, _ = run_cli(capsys, "db", "push", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["dry_run"] is True
    with connect(fresh_url) as conn:
        assert conn.execute("select to_regclass('public.courses')").fetchone() == (None,)


def test_failing_migration_is_one_line_and_exit_1(
    project: Path, fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "supabase/migrations/20260102000000_bad.sql").write_text(
        "select 1;\nalter table public.nope add column x int;\n"
    )
    code, _, err = run_cli(capsys, "db", "push", "--db-url", fresh_url)
    assert code == 1
    assert_one_line_error(
        err,
        "supabase/migrations/20260102000000_bad.sql: statement 2 (line 2): "
        'relation "public.nope" does not exist [42P01]',
    )


def test_unreachable_database_is_one_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, "db", "status", "--db-url", "postgresql://postgres:x@127.0.0.1:1/postgres"
    )
    assert code == 1
    assert err.startswith("error: cannot reach the database:")
    assert len(err.strip().splitlines()) == 1


def test_bad_db_url_and_local_only_commands(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "db", "push", "--db-url", "mysql://nope")
    assert code == 1
    assert_one_line_error(err, "--db-url must be a postgresql:// URL")
    code, _, err = run_cli(capsys, "db", "start", "--db-url", "postgresql://x@localhost/db")
    assert code == 1
    assert "`db start` manages the embedded database" in err
    code, _, err = run_cli(capsys, "db", "reset")
    assert code == 1
    assert_one_line_error(err, "reset deletes all local data: run again with --yes")


def test_debug_shows_the_traceback(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYSYNC_DEBUG", "1")
    with pytest.raises(Exception, match="must be a postgresql:// URL"):
        main(["db", "push", "--db-url", "mysql://nope"])


def test_status_exits_non_zero_on_drift(
    project: Path, fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "db", "push", "--db-url", fresh_url)[0] == 0
    (project / "supabase/migrations" / MIGRATION).write_text(COURSES + "-- edited\n")
    code, out, _ = run_cli(capsys, "db", "status", "--db-url", fresh_url, "--json")
    assert code == 1
    assert json.loads(out)["migrations"]["drift"] == [
        {"version": "20260101000000", "name": "create_courses", "reason": "edited"}
    ]
    code, _, err = run_cli(capsys, "db", "push", "--db-url", fresh_url)
    assert code == 1 and "was edited after it was applied" in err


def test_db_new_creates_a_named_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "db", "new", "add lessons", "--json")
    assert code == 0
    created = project / json.loads(out)["path"]
    assert created.parent == project / "supabase" / "migrations"
    assert created.name.endswith("_add_lessons.sql") and len(created.name.split("_")[0]) == 14


def test_up_and_reset_on_the_embedded_database(
    project: Path, local_db: LocalDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "up", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["status"]["target"] == "local"
    with connect(local_db.url()) as conn:
        conn.execute("insert into public.courses values (2, 'Scratch work')")
    started = time.perf_counter()
    code, out, _ = run_cli(capsys, "db", "reset", "--yes", "--json")
    elapsed = time.perf_counter() - started
    assert code == 0
    assert [m["version"] for m in json.loads(out)["applied"]] == ["20260101000000"]
    with connect(local_db.url()) as conn:
        rows = conn.execute("select id, title from public.courses order by id").fetchall()
    assert rows == [(1, "Algebra")]  # seeded again; the scratch row is gone
    print(f"db reset --yes: {elapsed:.2f}s")


def test_up_twice_is_idempotent(
    project: Path, capsys: pytest.CaptureFixture[str], local_db: LocalDatabase
) -> None:
    assert run_cli(capsys, "up")[0] == 0
    code, out, _ = run_cli(capsys, "up")
    assert code == 0
    assert "no pending migrations" in out
    with connect(local_db.url()) as conn:
        assert conn.execute("select count(*) from public.courses").fetchone() == (1,)


def test_help_lists_the_db_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "db", "--help")
    assert code == 0
    for command in ("start", "stop", "status", "push", "reset", "new", "lint"):
        assert command in out


def _leaf_commands() -> list[tuple[str, set[str]]]:
    import typer.main

    from pysync.cli.main import app

    found: list[tuple[str, set[str]]] = []

    def walk(command: Any, path: list[str]) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                walk(child, [*path, name])
        else:
            options = {o for p in command.params for o in getattr(p, "opts", [])}
            found.append((" ".join(path), options))

    walk(typer.main.get_command(app), [])
    return found


def test_every_command_speaks_json() -> None:
    commands = _leaf_commands()
    assert len(commands) > 20
    assert [name for name, options in commands if "--json" not in options] == []
    # Everything that talks to a database can target any database; the exceptions work on
    # files (new, lint) or on scratch databases of the embedded cluster (bench gateway).
    no_target = sorted(name for name, options in commands if "--db-url" not in options)
    assert no_target == ["bench gateway", "db lint", "db new"]
