"""What a deployed project needs beyond its migrations, checked from the database.

``docs/deploy.md`` lists the steps that put this project on a hosted Supabase project. Some of
them leave no trace in ``supabase_migrations`` but do in the catalog: PostgREST's
``db-pre-request`` hook (a role setting of ``authenticator``), the pg_cron jobs, and the tables
of the ``supabase_realtime`` publication. ``pysync health`` runs these checks so that a
half-deployed project says which step is missing. They only read.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import psycopg

__all__ = [
    "PRE_REQUEST_HOOK",
    "PUSH_FUNCTION",
    "REALTIME_TABLES",
    "SCHEDULED_JOBS",
    "Finding",
    "missing_realtime_tables",
    "pre_request_check",
    "push_webhook_check",
    "schedules_check",
]

Conn = psycopg.Connection[Any]


class Finding(NamedTuple):
    """One check's answer; ``pysync.health`` names it and reports it."""

    status: str  # ok | warn | fail
    detail: str
    data: dict[str, Any] | None = None


#: The db-pre-request function the schema defines (rate limits; rate_limiting migration).
PRE_REQUEST_HOOK = "private.check_request"
#: The pg_cron jobs ``private.schedule_jobs()`` (the schedules migration) creates.
SCHEDULED_JOBS = ("pysync-maintain-partitions", "pysync-sync-prune")
#: The edge function a database webhook calls for each new notification.
PUSH_FUNCTION = "push-dispatch"
#: Tables clients watch with postgres_changes (``policies/realtime.sql`` adds them).
REALTIME_TABLES = (
    "public.conversation_participants",
    "public.conversations",
    "public.messages",
    "public.notifications",
)

_SET_HOOK = (
    f"alter role authenticator set pgrst.db_pre_request = '{PRE_REQUEST_HOOK}';"
    " notify pgrst, 'reload config';"
)


def _configured_hook(conn: Conn) -> str | None:
    """authenticator's ``pgrst.db_pre_request`` as PostgREST reads it: the setting for this
    database wins over the role's setting for every database."""
    row = conn.execute(
        "select split_part(c.setting, '=', 2) from pg_catalog.pg_db_role_setting as s"
        " join pg_catalog.pg_roles as r on r.oid = s.setrole"
        " cross join lateral unnest(s.setconfig) as c (setting)"
        " where r.rolname = 'authenticator' and c.setting like 'pgrst.db\\_pre\\_request=%'"
        "  and s.setdatabase in (0, (select oid from pg_catalog.pg_database"
        "   where datname = current_database()))"
        " order by s.setdatabase desc limit 1"
    ).fetchone()
    return str(row[0]) if row else None


def _function_exists(conn: Conn, name: str) -> bool:
    """Whether ``name`` (``schema.function``, unqualified meaning ``public``) is a function
    PostgREST could call without arguments."""
    qualified = name if "." in name else f"public.{name}"
    row = conn.execute("select to_regprocedure(%s) is not null", (qualified + "()",)).fetchone()
    return bool(row and row[0])


def pre_request_check(conn: Conn) -> Finding:
    """Is PostgREST told to run the schema's db-pre-request function before each request?"""
    hook = _configured_hook(conn)
    expected = _function_exists(conn, PRE_REQUEST_HOOK)
    if hook is None:
        if not expected:
            return Finding("ok", "not set, and the schema defines none")
        return Finding(
            "warn",
            f"not set: {PRE_REQUEST_HOOK}() never runs, so API writes are not rate limited;"
            f" as postgres run: {_SET_HOOK}",
        )
    if not _function_exists(conn, hook):
        return Finding(
            "fail",
            f"set to {hook}, which does not exist: PostgREST fails every request;"
            f" push the migrations or run: {_SET_HOOK}",
            {"hook": hook},
        )
    if expected and hook.removeprefix("public.") != PRE_REQUEST_HOOK.removeprefix("public."):
        return Finding(
            "warn",
            f"set to {hook}, not the schema's {PRE_REQUEST_HOOK}: rate limits do not apply;"
            f" run: {_SET_HOOK}",
            {"hook": hook},
        )
    return Finding("ok", f"PostgREST runs {hook}() first", {"hook": hook})


def _enable_hint(conn: Conn) -> str:
    row = conn.execute("select to_regprocedure('private.schedule_jobs()') is not null").fetchone()
    if row and row[0]:
        return "then, as postgres, run: select private.schedule_jobs();"
    return "then push the migrations (pysync db push)"


def schedules_check(conn: Conn) -> Finding:
    """Are the housekeeping jobs scheduled with pg_cron, active, and was their last run fine?"""
    row = conn.execute(
        "select exists (select from pg_catalog.pg_extension where extname = 'pg_cron'),"
        " exists (select from pg_catalog.pg_available_extensions where name = 'pg_cron')"
    ).fetchone()
    assert row is not None
    enabled, available = row
    wanted = ", ".join(SCHEDULED_JOBS)
    if not enabled:
        if not available:
            return Finding(
                "warn",
                f"pg_cron not installed on this server: nothing runs {wanted};"
                " schedule public.maintain_partitions() and public.sync_prune() daily elsewhere",
            )
        return Finding(
            "warn",
            f"pg_cron is not enabled in this database, so {wanted} are not scheduled: enable it"
            " (create extension pg_cron with schema pg_catalog, in pg_cron's database),"
            f" {_enable_hint(conn)}",
        )
    jobs = {
        name: (active, status, message)
        for name, active, status, message in conn.execute(
            "select j.jobname, j.active, last.status, last.return_message from cron.job as j"
            " left join lateral (select d.status, d.return_message from cron.job_run_details as d"
            "  where d.jobid = j.jobid order by d.runid desc limit 1) as last on true"
            " where j.jobname = any(%s) and j.database = current_database()",
            (list(SCHEDULED_JOBS),),
        )
    }
    missing = [name for name in SCHEDULED_JOBS if name not in jobs]
    if missing:
        return Finding(
            "warn",
            f"not scheduled: {', '.join(missing)}; {_enable_hint(conn).removeprefix('then, ')}",
            {"missing": missing},
        )
    inactive = [name for name, (active, _, _) in jobs.items() if not active]
    if inactive:
        return Finding(
            "warn",
            f"inactive: {', '.join(inactive)}; as postgres, run: select private.schedule_jobs();",
            {"inactive": inactive},
        )
    failed = {
        name: str(message) for name, (_, status, message) in jobs.items() if status == "failed"
    }
    if failed:
        return Finding(
            "warn",
            "last run failed: "
            + "; ".join(f"{name}: {message}" for name, message in sorted(failed.items())),
            {"failed": sorted(failed)},
        )
    return Finding("ok", f"pg_cron runs {wanted}", {"jobs": sorted(jobs)})


def missing_realtime_tables(conn: Conn, published: list[str]) -> list[str]:
    """Tables clients watch that exist here but are not in the publication (tables not yet
    created are the pending migrations' business, not this check's)."""
    return [
        table
        for table in REALTIME_TABLES
        if table not in published
        and (found := conn.execute("select to_regclass(%s) is not null", (table,)).fetchone())
        and found[0]
    ]


#: pg_trigger.tgtype bit for INSERT.
_ON_INSERT = 4


def push_webhook_check(conn: Conn) -> Finding:
    """Does a database webhook (Supabase's ``supabase_functions.http_request`` trigger) call
    push dispatch for every new notification, with a bearer token? Its arguments hold the
    service role key, so they are read here but never reported."""
    row = conn.execute("select to_regclass('public.notifications') is not null").fetchone()
    if not row or not row[0]:
        return Finding("ok", "no public.notifications table yet (migrations pending)")
    webhooks = conn.execute(
        "select t.tgname, t.tgargs from pg_catalog.pg_trigger as t"
        " join pg_catalog.pg_proc as p on p.oid = t.tgfoid"
        " join pg_catalog.pg_namespace as n on n.oid = p.pronamespace"
        " where t.tgrelid = 'public.notifications'::regclass and not t.tgisinternal"
        "  and t.tgenabled <> 'D' and t.tgtype & %s <> 0"
        "  and n.nspname = 'supabase_functions' and p.proname = 'http_request'",
        (_ON_INSERT,),
    ).fetchall()
    calling = {
        str(name): [arg.decode(errors="replace") for arg in bytes(args).split(b"\0")]
        for name, args in webhooks
        if f"/functions/v1/{PUSH_FUNCTION}".encode() in bytes(args)
    }
    if not calling:
        return Finding(
            "warn",
            f"no database webhook calls {PUSH_FUNCTION} on insert into public.notifications:"
            " devices get no push notifications; create it (docs/deploy.md, Database webhook)",
        )
    authorized = sorted(
        name
        for name, args in calling.items()
        if len(args) > 2 and "bearer " in args[2].lower() and "authorization" in args[2].lower()
    )
    if not authorized:
        return Finding(
            "warn",
            f"webhook {', '.join(sorted(calling))} calls {PUSH_FUNCTION} without an"
            " Authorization: Bearer header; the function answers 401: recreate it with the"
            " service role key",
            {"webhooks": sorted(calling)},
        )
    return Finding(
        "ok",
        f"webhook {', '.join(authorized)} calls {PUSH_FUNCTION} for each new notification",
        {"webhooks": authorized},
    )
