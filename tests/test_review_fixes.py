"""Bugs a review found by using the project as a new user would (issue 13), one test each."""

from __future__ import annotations

import pickle
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

import pysync.errors
from pysync.cli import errors as cli_errors
from pysync.cli.legacy import _render
from pysync.cli.main import main
from pysync.dsn import mask_url, split_password
from pysync.errors import MigrationError, PysyncError, first_line
from pysync.ops._tools import run_tool
from pysync.ops.legacy import ImportReport, Problem, Reconciliation
from tests.test_cli import project, run_cli  # noqa: F401  (the fixture is used by name)

SECRET = "s3cr3t-pw"


# -- secrets in database URLs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:****@h:5432/db"),
        ("postgresql://u@h/db?password=pw", "postgresql://u@h/db?password=****"),
        (
            "postgresql://u@h/db?sslmode=require&password=pw&application_name=x",
            "postgresql://u@h/db?sslmode=require&password=****&application_name=x",
        ),
        ("postgresql://u:a%40b@h/db", "postgresql://u:****@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_mask_url_hides_passwords_wherever_libpq_takes_them(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_split_password_moves_either_password_to_pgpassword() -> None:
    bare, env = split_password(f"postgresql://u@h/db?sslmode=require&password={SECRET}")
    assert SECRET not in bare and bare == "postgresql://u@h/db?sslmode=require"
    assert env["PGPASSWORD"] == SECRET
    bare, env = split_password("postgresql://u:a%40b@h/db")
    assert bare == "postgresql://u@h/db" and env["PGPASSWORD"] == "a@b"


def test_db_status_masks_a_query_password(
    project: Path,  # noqa: F811
    fresh_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``?password=`` was printed as it is by ``pysync db status``."""
    parts = psycopg.conninfo.conninfo_to_dict(fresh_url)
    url = (
        f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"
        f"?password={parts['password']}"
    )
    for args in (["--json"], []):
        code, out, _ = run_cli(capsys, "db", "status", "--db-url", url, *args)
        assert code == 0
        assert f"password={parts['password']}" not in out
        assert "password=****" in out


def test_pg_tools_never_get_the_password_on_their_command_line(
    fresh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_dump & co. got a ``?password=`` URL as ``--dbname``, readable in ``ps``."""
    parts = psycopg.conninfo.conninfo_to_dict(fresh_url)
    url = (
        f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"
        f"?password={parts['password']}"
    )
    seen: list[list[str]] = []
    import subprocess

    real_run = subprocess.run

    def recording_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(list(cmd))
        return real_run(cmd, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(subprocess, "run", recording_run)
    result = run_tool("psql", "-Atc", "select 1", url=url)
    assert result.stdout.strip() == "1"  # the password still reached the server
    # (the version probes that pick the client programs run first and have no --dbname)
    dbname = next(arg for cmd in seen for arg in cmd if arg.startswith("--dbname="))
    shown = urlsplit(dbname.removeprefix("--dbname="))
    assert shown.password is None and "password" not in shown.query


# -- data printed by the CLI is never rich markup -----------------------------------------


def test_import_summary_prints_markup_in_legacy_values_as_it_is(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = ImportReport(dry_run=False)
    report.problems.append(Problem("users", "[/b]", "bio [/b] is [bold]odd[/bold]"))
    report.reconciliation.append(Reconciliation("users", "profiles", 1, 1, 0, False))
    report.written = {"profiles": 0}
    _render(report)
    out = capsys.readouterr().out
    assert "[/b]" in out and "[bold]odd[/bold]" in out
    assert "NOT reconciled" in out and "MISMATCH" in out


def test_an_error_message_with_markup_is_one_readable_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli_errors.report(PysyncError("no table named [/b] here"))
    assert code == cli_errors.EXIT_ERROR
    assert capsys.readouterr().err.strip() == "error: no table named [/b] here"


# -- one "first line of an error" ---------------------------------------------------------


def test_first_line_skips_blank_lines_and_survives_an_empty_message() -> None:
    assert first_line(ValueError("\n  boom  \nDETAIL: x")) == "boom"
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(ValueError("   \n  ")) == "ValueError"


def test_an_empty_database_error_message_is_still_one_line() -> None:
    """``describe`` raised IndexError on a psycopg error with an empty message."""
    assert (
        cli_errors.describe(psycopg.errors.UndefinedTable(""))
        == "database error: UndefinedTable [42P01]"
    )
    assert cli_errors.describe(psycopg.OperationalError("")) == (
        "cannot reach the database: OperationalError"
    )


# -- errors survive pickling --------------------------------------------------------------


def _every_subclass(cls: type[BaseException]) -> list[type[BaseException]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_every_subclass(sub))
    return found


def test_migration_error_survives_pickling_with_its_fields() -> None:
    error = MigrationError("boom", path="x.sql", statement=2, line=7, sqlstate="42P01")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is MigrationError and str(copy) == "boom"
    assert (copy.path, copy.statement, copy.line, copy.sqlstate) == ("x.sql", 2, 7, "42P01")


def test_every_library_error_survives_pickling() -> None:
    # Import the modules that define errors so every subclass is registered.
    import pysync.auth.errors
    import pysync.gateway.errors
    import pysync.rls.audit
    import pysync.rls.matrix
    import pysync.sync.errors  # noqa: F401

    classes = _every_subclass(PysyncError)
    assert len(classes) > 10
    for cls in classes:
        error = cls.__new__(cls, "message")  # no __init__: some take keyword-only fields
        error.args = ("message",)
        error.__dict__.update({"code": "42501", "status": 403})
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is cls and copy.args == ("message",), cls
        assert copy.__dict__ == error.__dict__, cls


def test_dead_error_classes_are_gone() -> None:
    assert not hasattr(pysync.errors, "ReconciliationError")
    assert "ReconciliationError" not in pysync.errors.__all__


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pysync {version('pysync')}"


# -- a library logger, not prints ---------------------------------------------------------


def test_the_library_logs_under_pysync_and_is_silent_by_default(
    fresh_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from pysync.migrate import push
    from tests.helpers import connect, write_project

    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("pysync").handlers)
    root = write_project(tmp_path, {"20260101000000_t.sql": "create table public.t (id int);\n"})
    with caplog.at_level(logging.INFO, logger="pysync"), connect(fresh_url) as conn:
        push(conn, root / "supabase" / "migrations", root / "policies")
    applied = [r for r in caplog.records if r.name == "pysync.migrate.runner"]
    assert [r.getMessage().rsplit("/", 1)[-1] for r in applied] == ["20260101000000_t.sql"]
    assert applied[0].levelno == logging.INFO
