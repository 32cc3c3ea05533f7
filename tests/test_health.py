"""``pysync health``: healthy on the shipped schema; drift, pending migrations, missing
partitions, a missing publication and an unreachable server each show up."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from pysync.cli.main import main
from pysync.health import Check, HealthReport, check_health, partition_checks
from pysync.localdb import LocalDatabase
from pysync.migrate import push
from tests.helpers import PROJECT_ROOT, connect, write_project

Conn = psycopg.Connection[Any]
MIGRATIONS = PROJECT_ROOT / "supabase" / "migrations"
POLICIES = PROJECT_ROOT / "policies"


def health(url: str, migrations: Path = MIGRATIONS, policies: Path = POLICIES) -> HealthReport:
    return check_health(lambda: connect(url), migrations, policies)


def by_name(report: HealthReport) -> dict[str, Check]:
    return {c.name: c for c in report.checks}


def events_table(conn: Conn, *months: int) -> None:
    """``public.events`` partitioned by month, with a partition for each month offset from
    the current one (-1 last month, 0 this month, 1 next month)."""
    conn.execute(
        "create table public.events (id bigint, at timestamptz not null) partition by range (at)"
    )
    for offset in months:
        add_month(conn, offset)


def add_month(conn: Conn, offset: int) -> str:
    """Create the partition for the month ``offset`` months from now; returns its name."""
    row = conn.execute(
        "select date_trunc('month', now()) + make_interval(months => %s),"
        " date_trunc('month', now()) + make_interval(months => %s)",
        (offset, offset + 1),
    ).fetchone()
    assert row is not None
    start, end = row
    name = f"events_{start:%Y_%m}"
    conn.execute(
        sql.SQL(
            "create table public.{} partition of public.events for values from ({}) to ({})"
        ).format(sql.Identifier(name), sql.Literal(start), sql.Literal(end))
    )
    return f"public.{name}"


#: Deployment steps outside the migrations (docs/deploy.md); test_schedules.py has a database
#: with all of them done.
DEPLOY_STEPS = {"pre_request_hook", "schedules", "push_webhook"}


def test_the_shipped_schema_is_healthy(app_url: str) -> None:
    report = health(app_url)
    checks = by_name(report)
    assert report.ok
    migrated = [c for c in report.checks if c.name not in DEPLOY_STEPS]
    assert {c.status for c in migrated} == {"ok"}, report.as_dict()
    assert set(checks) >= {
        "connectivity",
        "server_version",
        "migration_drift",
        "pending_migrations",
        "rls_audit",
        "partitions realtime.messages",
        "realtime_publication",
        "database_size",
    }
    assert checks["server_version"].detail.startswith("PostgreSQL 15")
    audit = checks["rls_audit"].data
    assert (audit["errors"], audit["warnings"]) == (0, 0)  # accepted findings show as info
    assert checks["database_size"].data["bytes"] > 1_000_000


def test_migrations_alone_leave_the_hook_schedules_and_webhook_to_do(app_url: str) -> None:
    checks = by_name(health(app_url))
    assert checks["pre_request_hook"].status == "warn"
    assert checks["pre_request_hook"].detail.startswith(
        "not set: private.check_request() never runs, so API writes are not rate limited;"
    )
    with connect(app_url) as conn:
        available = conn.execute(
            "select exists (select from pg_available_extensions where name = 'pg_cron')"
        ).fetchone()
    assert checks["schedules"].status == "warn"
    if available == (True,):  # pg_cron belongs to the cluster's main database, not this one
        assert checks["schedules"].detail.startswith("pg_cron is not enabled in this database")
        assert checks["schedules"].detail.endswith("run: select private.schedule_jobs();")
    else:
        assert checks["schedules"].detail.startswith("pg_cron not installed on this server")
    assert checks["push_webhook"].status == "warn"
    assert checks["push_webhook"].detail.startswith("no database webhook calls push-dispatch")


@pytest.fixture
def hook(local_db: LocalDatabase) -> Iterator[Callable[[str, str], None]]:
    """Sets authenticator's pgrst.db_pre_request for one database, as the deploy guide does
    for the project (locally only a superuser may set a pgrst.* role setting)."""
    touched: list[str] = []

    def set_hook(url: str, function: str) -> None:
        dbname = url.rsplit("/", 1)[1]
        touched.append(dbname)
        with local_db.admin_connect() as admin:
            admin.execute(
                sql.SQL(
                    "alter role authenticator in database {} set pgrst.db_pre_request = {}"
                ).format(sql.Identifier(dbname), sql.Literal(function))
            )

    yield set_hook
    with local_db.admin_connect() as admin:
        for dbname in touched:
            admin.execute(
                sql.SQL(
                    "alter role authenticator in database {} reset pgrst.db_pre_request"
                ).format(sql.Identifier(dbname))
            )


def test_the_pre_request_hook_set_missing_or_wrong(
    app_url: str, fresh_url: str, hook: Callable[[str, str], None]
) -> None:
    hook(app_url, "private.check_request")
    check = by_name(health(app_url))["pre_request_hook"]
    assert (check.status, check.data) == ("ok", {"hook": "private.check_request"})

    hook(app_url, "public.maintain_partitions")
    check = by_name(health(app_url))["pre_request_hook"]
    assert check.status == "warn"
    assert check.detail.startswith(
        "set to public.maintain_partitions, not the schema's private.check_request"
    )

    # A database without the migrations: no hook is fine, a hook PostgREST cannot call is not.
    assert by_name(health(fresh_url))["pre_request_hook"].status == "ok"
    hook(fresh_url, "private.check_request")
    report = health(fresh_url)
    check = by_name(report)["pre_request_hook"]
    assert (check.status, report.ok) == ("fail", False)
    assert check.detail.startswith(
        "set to private.check_request, which does not exist: PostgREST fails every request"
    )


def test_drift_fails_and_pending_migrations_warn(tmp_path: Path, fresh_url: str) -> None:
    root = write_project(
        tmp_path, {"20260101000000_notes.sql": "create table public.n (id int);\n"}
    )
    migrations = root / "supabase" / "migrations"
    with connect(fresh_url) as conn:
        push(conn, migrations, root / "policies")
    assert (
        by_name(health(fresh_url, migrations, root / "policies"))["migration_drift"].status == "ok"
    )

    (migrations / "20260101000000_notes.sql").write_text("create table public.n (id bigint);\n")
    (migrations / "20260102000000_more.sql").write_text("select 1;\n")
    report = health(fresh_url, migrations, root / "policies")
    checks = by_name(report)
    assert not report.ok
    assert checks["migration_drift"].status == "fail"
    assert checks["migration_drift"].detail.startswith(
        "migration 20260101000000_notes was edited after it was applied"
    )
    assert checks["pending_migrations"].status == "warn"
    assert checks["pending_migrations"].data == {"pending": ["20260102000000"]}


def test_a_fresh_database_has_every_migration_pending(fresh_url: str) -> None:
    checks = by_name(health(fresh_url))
    assert checks["pending_migrations"].status == "warn"
    assert len(checks["pending_migrations"].data["pending"]) == len(list(MIGRATIONS.glob("*.sql")))


def test_partition_coverage_fails_then_warns_then_passes(conn: Conn) -> None:
    def events() -> Check:
        return next(c for c in partition_checks(conn) if c.name == "partitions public.events")

    events_table(conn, -1)
    assert events().status == "fail"
    assert "no partition covers now" in events().detail
    this_month = add_month(conn, 0)
    assert events().status == "warn"
    assert "no partition follows it" in events().detail
    next_month = add_month(conn, 1)
    assert events().status == "ok"
    assert events().data["partitions"] == [this_month, next_month]
    further = next(c for c in partition_checks(conn, ahead=2) if c.name.endswith(".events"))
    assert further.status == "warn"


def test_a_default_partition_catches_now_with_a_warning(conn: Conn) -> None:
    events_table(conn, -1)
    conn.execute("create table public.events_rest partition of public.events default")
    check = next(c for c in partition_checks(conn) if c.name == "partitions public.events")
    assert check.status == "warn"
    assert "default partition public.events_rest" in check.detail


def test_missing_realtime_partition_fails_health(fresh_url: str, local_db: LocalDatabase) -> None:
    # Realtime's partitions are its own (postgres may not drop them): drop one as the server.
    with local_db.admin_connect(str(conninfo_to_dict(fresh_url)["dbname"])) as conn:
        today = conn.execute("select to_char(now(), 'YYYY_MM_DD')").fetchone()
        assert today is not None
        conn.execute(f"drop table realtime.messages_{today[0]}")
    report = health(fresh_url)
    check = by_name(report)["partitions realtime.messages"]
    assert (check.status, report.ok) == ("fail", False)


def test_list_partitioned_tables_are_not_judged(conn: Conn) -> None:
    conn.execute("create table public.by_kind (kind text) partition by list (kind)")
    check = next(c for c in partition_checks(conn) if c.name == "partitions public.by_kind")
    assert check.status == "ok" and "not checked" in check.detail


def test_publication_contents_and_absence(fresh_url: str) -> None:
    with connect(fresh_url) as conn:
        conn.execute("create table public.chat (id int primary key)")
        conn.execute("alter publication supabase_realtime add table public.chat")
    assert by_name(health(fresh_url))["realtime_publication"].data == {"tables": ["public.chat"]}
    with connect(fresh_url) as conn:
        conn.execute("drop publication supabase_realtime")
    check = by_name(health(fresh_url))["realtime_publication"]
    assert check.status == "warn" and "missing" in check.detail


def test_an_unreachable_server_fails_connectivity() -> None:
    report = health("postgresql://postgres:x@127.0.0.1:1/postgres")
    assert [(c.name, c.status) for c in report.checks] == [("connectivity", "fail")]
    assert report.checks[0].detail.startswith("cannot connect:")


# -- the command -----------------------------------------------------------------------------


@pytest.fixture
def in_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.delenv("SUPABASE_DB_URL", raising=False)
    monkeypatch.delenv("PYSYNC_DEBUG", raising=False)


def test_health_command_exit_codes(
    in_project: None, app_url: str, fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["health", "--db-url", app_url, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert all(set(c) == {"name", "status", "detail", "data"} for c in data["checks"])

    with connect(fresh_url) as conn:
        events_table(conn, -1)
    assert main(["health", "--db-url", fresh_url]) == 1
    out = capsys.readouterr().out
    assert "partitions public.events" in out
    assert out.strip().splitlines()[-1].startswith("health: ")
