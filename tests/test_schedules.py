"""Scheduled housekeeping with pg_cron, as on a Supabase project: the schedules migration
creates the jobs in pg_cron's database, pg_cron runs them (and they do their work), a server
or database without pg_cron applies the migration and schedules nothing, and ``pysync
health`` tells a complete deployment from a half-done one.

The module runs its own cluster, because pg_cron lives in one database per server (the main
``postgres``, as on Supabase) and the session cluster's main database belongs to the CLI's
tests. The cluster first runs without pg_cron preloaded, then with it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pysync.config import LOCAL_JWT_SECRET
from pysync.deployment import PRE_REQUEST_HOOK, SCHEDULED_JOBS
from pysync.health import HealthReport, check_health
from pysync.localdb import LocalDatabase
from pysync.localdb.binaries import server_install
from pysync.localdb.cron import cron_scheduler_running
from pysync.migrate import push
from pysync.ops.backup import create_backup, restore_backup
from tests.helpers import PROJECT_ROOT, connect, make_tempdir, remove_tree

Conn = psycopg.Connection[Any]
MIGRATIONS = PROJECT_ROOT / "supabase" / "migrations"
POLICIES = PROJECT_ROOT / "policies"
#: How long to wait for pg_cron's next minute (its finest schedule in 1.4) and the run.
RUN_TIMEOUT = 180.0

pytestmark = pytest.mark.skipif(
    not server_install(15).has_library("pg_cron"),
    reason="pg_cron is not installed: run ./scripts/bootstrap.sh --cron as root",
)


@dataclass(frozen=True)
class CronCluster:
    db: LocalDatabase
    #: A database migrated while the server ran without pg_cron preloaded.
    without_preload: str
    #: What private.schedule_jobs() answered there then: as postgres, as a superuser, and as
    #: a superuser who names the database pg_cron's (so the library itself refuses).
    unloaded_answers: tuple[str, str, str]

    @property
    def url(self) -> str:
        """pg_cron's database (the main one), migrated, with the jobs scheduled."""
        return self.db.url()


def _answer(conn: Conn) -> str:
    row = conn.execute("select private.schedule_jobs()").fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture(scope="module")
def cron() -> Iterator[CronCluster]:
    base = make_tempdir("pysync-cron-")
    plain = LocalDatabase(
        base / "pg", jwt_secret=LOCAL_JWT_SECRET, fast=True, preferred_port=None, cron=False
    )
    db = LocalDatabase(base / "pg", jwt_secret=LOCAL_JWT_SECRET, fast=True, preferred_port=None)
    try:
        plain.start()
        without = plain.create_database("without_preload")
        with connect(without) as conn:
            push(conn, MIGRATIONS, POLICIES)
            as_postgres = _answer(conn)
        with plain.admin_connect("without_preload") as admin:
            as_superuser = _answer(admin)
            admin.execute("set cron.database_name = 'without_preload'")
            named = _answer(admin)
        plain.stop()
        db.start()
        with connect(db.url()) as conn:
            push(conn, MIGRATIONS, POLICIES)
        yield CronCluster(db, without, (as_postgres, as_superuser, named))
    finally:
        db.stop()
        remove_tree(base)


def jobs(conn: Conn) -> dict[str, tuple[Any, ...]]:
    rows = conn.execute(
        "select jobname, jobid, schedule, command, database, username, active from cron.job"
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_the_migration_schedules_the_housekeeping_jobs(cron: CronCluster) -> None:
    with connect(cron.url) as conn:
        found = {name: row[1:] for name, row in jobs(conn).items()}
    assert found == {
        "pysync-maintain-partitions": (
            "15 3 * * *",
            "select public.maintain_partitions()",
            "postgres",
            "postgres",
            True,
        ),
        "pysync-sync-prune": (
            "45 3 * * *",
            "select public.sync_prune()",
            "postgres",
            "postgres",
            True,
        ),
    }
    assert set(found) == set(SCHEDULED_JOBS)


def test_scheduling_again_keeps_one_job_each(cron: CronCluster) -> None:
    with connect(cron.url) as conn:
        before = jobs(conn)
        answer = conn.execute("select private.schedule_jobs()").fetchone()
        assert answer == ("scheduled pysync-maintain-partitions and pysync-sync-prune",)
        assert jobs(conn) == before


def test_each_scheduled_command_runs_as_its_user(cron: CronCluster) -> None:
    with connect(cron.url) as conn, conn.transaction(force_rollback=True):
        for _jobid, _schedule, command, _db, user, _active in jobs(conn).values():
            conn.execute(sql.SQL("set local role {}").format(sql.Identifier(user)))
            conn.execute(command)
            conn.execute("reset role")


def _future_partition(conn: Conn) -> str:
    """The newest premade monthly partition of analytics_events (empty: it is in the future)."""
    row = conn.execute(
        "select c.relname from pg_inherits as i join pg_class as c on c.oid = i.inhrelid"
        " where i.inhparent = 'public.analytics_events'::regclass"
        "  and c.relname ~ '_y[0-9]{4}m[0-9]{2}$' order by c.relname desc limit 1"
    ).fetchone()
    assert row is not None
    return str(row[0])


def _exists(conn: Conn, query: str, *params: Any) -> bool:
    row = conn.execute(f"select exists ({query})", params).fetchone()
    return bool(row and row[0])


def test_pg_cron_runs_the_jobs_and_they_do_their_work(cron: CronCluster) -> None:
    """The real jobs, moved to every minute: pg_cron 1.4 (Debian's) has no seconds syntax."""
    tombstone, client = uuid.uuid4(), uuid.uuid4()
    with connect(cron.url) as conn:
        conn.execute(
            "insert into private.sync_tombstones (table_name, bucket_key, row_id, created_at)"
            " values ('messages', 'x', %s, now() - interval '400 days')",
            (tombstone,),
        )
        conn.execute(
            "insert into private.sync_push_results (user_id, client_id, op_id, result, created_at)"
            " values (%s, %s, 1, '{}', now() - interval '400 days')",
            (uuid.uuid4(), client),
        )
        partition = _future_partition(conn)
        conn.execute(sql.SQL("drop table private.{}").format(sql.Identifier(partition)))
        started = conn.execute(
            "select coalesce(max(runid), 0) from cron.job_run_details"
        ).fetchone()
        assert started is not None
        for name, (_, _, command, *_) in jobs(conn).items():
            conn.execute("select cron.schedule(%s, '* * * * *', %s)", (name, command))
        try:
            deadline = time.monotonic() + RUN_TIMEOUT
            while True:
                runs = conn.execute(
                    "select j.jobname, d.status, d.return_message from cron.job_run_details as d"
                    " join cron.job as j using (jobid)"
                    " where d.runid > %s and d.status in ('succeeded', 'failed')",
                    (started[0],),
                ).fetchall()
                if {name for name, _, _ in runs} >= set(SCHEDULED_JOBS):
                    break
                assert time.monotonic() < deadline, f"pg_cron ran only {runs}"
                time.sleep(1)
        finally:
            conn.execute("select private.schedule_jobs()")
        assert {(name, status) for name, status, _ in runs} == {
            (name, "succeeded") for name in SCHEDULED_JOBS
        }, runs
        assert not _exists(conn, "select from private.sync_tombstones where row_id = %s", tombstone)
        assert not _exists(
            conn, "select from private.sync_push_results where client_id = %s", client
        )
        assert _exists(conn, "select from pg_class where relname = %s", partition)
        assert jobs(conn)["pysync-sync-prune"][1] == "45 3 * * *"  # daily again


def test_without_pg_cron_preloaded_the_migration_schedules_nothing(cron: CronCluster) -> None:
    with connect(cron.without_preload) as conn:
        applied = conn.execute(
            "select 1 from supabase_migrations.schema_migrations where name = 'schedules'"
        ).fetchone()
        assert applied == (1,)
        assert not _exists(conn, "select from pg_extension where extname = 'pg_cron'")
        assert not _exists(conn, "select from pg_namespace where nspname = 'cron'")
    # postgres may not create it (Supabase's supautils is what lets it there); for a
    # superuser pg_cron's install script finds no cron.database_name, and when one is set
    # anyway the library refuses to load after server start.
    assert cron.unloaded_answers == (
        "pg_cron cannot be enabled in this database (permission denied to create extension"
        ' "pg_cron"): nothing scheduled',
        "pg_cron cannot be enabled in this database (unrecognized configuration parameter"
        ' "cron.database_name"): nothing scheduled',
        "pg_cron cannot be enabled in this database (pg_cron can only be loaded via"
        " shared_preload_libraries): nothing scheduled",
    )


def test_a_database_other_than_pg_crons_schedules_nothing(cron: CronCluster) -> None:
    """With pg_cron preloaded, only cron.database_name may have it (its install script says so)."""
    other = cron.db.create_database("other_database")
    dbname = other.rsplit("/", 1)[1]
    with cron.db.admin_connect(dbname) as admin:
        admin.execute("create schema private")
        admin.execute((MIGRATIONS / "20261202140000_schedules.sql").read_text())
        answer = admin.execute("select private.schedule_jobs()").fetchone()
        assert not _exists(admin, "select from pg_extension where extname = 'pg_cron'")
    cron.db.drop_database(dbname)
    assert answer is not None
    assert answer[0] == (
        "pg_cron cannot be enabled in this database (can only create extension in database"
        " postgres): nothing scheduled"
    )


# -- pysync health: complete and half-deployed -----------------------------------------------


def health(url: str) -> HealthReport:
    return check_health(lambda: connect(url), MIGRATIONS, POLICIES)


@pytest.fixture
def hook_set(cron: CronCluster) -> Iterator[None]:
    """The pre-request hook, set as docs/deploy.md says (for this database: the role
    setting is cluster-wide, and locally only a superuser may set a pgrst.* one)."""
    with cron.db.admin_connect() as admin:
        admin.execute(
            sql.SQL(
                "alter role authenticator in database postgres set pgrst.db_pre_request = {}"
            ).format(sql.Literal(PRE_REQUEST_HOOK))
        )
        yield
        admin.execute("alter role authenticator in database postgres reset pgrst.db_pre_request")


#: The webhook as docs/deploy.md creates it in SQL (the dashboard writes the same trigger).
WEBHOOK = """
create trigger push_dispatch after insert on public.notifications
for each row execute function supabase_functions.http_request(
    'https://abcdefghijklmnop.supabase.co/functions/v1/push-dispatch', 'POST',
    '{{"Content-Type": "application/json", "Authorization": "{authorization}"}}', '{{}}', '10000'
)
"""


@pytest.fixture
def webhook(cron: CronCluster) -> Iterator[Callable[[str], None]]:
    """Creates the push-dispatch webhook with a given Authorization header. Supabase's
    ``supabase_functions.http_request`` (pg_net behind it) is not part of the local
    database: a trigger function of that name that does nothing stands in for it, because
    the check reads only the catalog."""
    with connect(cron.url) as conn:
        conn.execute("create schema supabase_functions")
        conn.execute(
            "create function supabase_functions.http_request() returns trigger"
            " language plpgsql as $$ begin return new; end $$"
        )

        def create(authorization: str) -> None:
            conn.execute("drop trigger if exists push_dispatch on public.notifications")
            conn.execute(WEBHOOK.format(authorization=authorization))

        yield create
        conn.execute("drop schema supabase_functions cascade")


def test_a_complete_deployment_is_healthy(
    cron: CronCluster, hook_set: None, webhook: Callable[[str], None]
) -> None:
    webhook("Bearer service-role-key")
    report = health(cron.url)
    statuses = {c.name: c.status for c in report.checks}
    assert set(statuses.values()) == {"ok"}, report.as_dict()
    checks = {c.name: c for c in report.checks}
    assert checks["pre_request_hook"].detail == f"PostgREST runs {PRE_REQUEST_HOOK}() first"
    assert checks["schedules"].data == {"jobs": sorted(SCHEDULED_JOBS)}
    assert checks["push_webhook"].data == {"webhooks": ["push_dispatch"]}
    assert "service-role-key" not in str(report.as_dict())
    assert checks["rls_audit"].data["errors"] == 0  # the cron schema is not exposed


def test_a_half_deployed_project_says_what_is_missing(cron: CronCluster) -> None:
    with connect(cron.url) as conn:
        conn.execute("select cron.unschedule('pysync-sync-prune')")
        conn.execute("alter publication supabase_realtime drop table public.messages")
        try:
            checks = {c.name: c for c in health(cron.url).checks}
        finally:
            conn.execute("alter publication supabase_realtime add table public.messages")
            conn.execute("select private.schedule_jobs()")
    assert (checks["pre_request_hook"].status, checks["pre_request_hook"].detail) == (
        "warn",
        f"not set: {PRE_REQUEST_HOOK}() never runs, so API writes are not rate limited;"
        " as postgres run: alter role authenticator set pgrst.db_pre_request ="
        " 'private.check_request'; notify pgrst, 'reload config';",
    )
    assert (checks["schedules"].status, checks["schedules"].detail) == (
        "warn",
        "not scheduled: pysync-sync-prune; as postgres, run: select private.schedule_jobs();",
    )
    assert checks["realtime_publication"].status == "warn"
    assert checks["realtime_publication"].data["missing"] == ["public.messages"]
    assert (checks["push_webhook"].status, checks["push_webhook"].detail) == (
        "warn",
        "no database webhook calls push-dispatch on insert into public.notifications: devices"
        " get no push notifications; create it (docs/deploy.md, Database webhook)",
    )


def test_a_webhook_without_the_service_key_is_reported(
    cron: CronCluster, webhook: Callable[[str], None]
) -> None:
    webhook("")
    check = next(c for c in health(cron.url).checks if c.name == "push_webhook")
    assert check.status == "warn"
    assert check.detail.startswith(
        "webhook push_dispatch calls push-dispatch without an Authorization: Bearer header"
    )


def test_a_paused_job_is_reported_and_resumed_by_scheduling_again(cron: CronCluster) -> None:
    with connect(cron.url) as conn:
        conn.execute("update cron.job set active = false where jobname = 'pysync-sync-prune'")
        try:
            check = next(c for c in health(cron.url).checks if c.name == "schedules")
        finally:
            conn.execute("select private.schedule_jobs()")
        assert jobs(conn)["pysync-sync-prune"][-1] is True
    assert (check.status, check.detail) == (
        "warn",
        "inactive: pysync-sync-prune; as postgres, run: select private.schedule_jobs();",
    )


def test_a_failed_run_is_reported(cron: CronCluster) -> None:
    with cron.db.admin_connect("postgres") as conn:
        row = conn.execute(
            "select jobid from cron.job where jobname = 'pysync-sync-prune'"
        ).fetchone()
        assert row is not None
        conn.execute(
            "insert into cron.job_run_details (jobid, runid, job_pid, database, username,"
            " command, status, return_message)"
            " values (%s, nextval('cron.runid_seq'), 0, 'postgres', 'postgres', 'x', 'failed',"
            " 'ERROR: boom')",
            (row[0],),
        )
        try:
            check = next(c for c in health(cron.url).checks if c.name == "schedules")
        finally:
            conn.execute("delete from cron.job_run_details where return_message = 'ERROR: boom'")
    assert (check.status, check.detail) == (
        "warn",
        "last run failed: pysync-sync-prune: ERROR: boom",
    )


def test_a_backup_of_pg_crons_database_restores_elsewhere(
    cron: CronCluster, tmp_path: Path
) -> None:
    created = create_backup(cron.url, tmp_path / "main.dump")
    assert "pg_cron" not in {name for name, _ in created.manifest.extensions}
    target = cron.db.create_database("restored")
    try:
        restored = restore_backup(target, created.path)
        assert restored.ok
        with connect(target) as conn:
            assert not _exists(conn, "select from pg_extension where extname = 'pg_cron'")
    finally:
        cron.db.drop_database("restored")


def test_reset_keeps_the_scheduler_running(cron: CronCluster) -> None:
    """Dropping pg_cron's database ends its scheduler; the reset restarts the server. Last in
    the module: the main database comes back empty."""
    cron.db.reset()
    with cron.db.admin_connect("postgres") as admin:
        assert cron_scheduler_running(admin)
        assert _exists(admin, "select from pg_extension where extname = 'pg_cron'")
