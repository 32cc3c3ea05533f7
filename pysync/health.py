"""Is the target database fit to serve? A handful of checks an operator runs first.

Each check answers ``ok``, ``warn`` (works today, needs attention) or ``fail`` (something is
broken now or a write will fail), with a one-line detail that says what to do. The checks
never change anything: the RLS audit and the partition bounds are read in transactions that
are rolled back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pysync import deployment
from pysync.errors import LocalDatabaseError, PysyncError, first_line
from pysync.migrate import inspect
from pysync.rls.audit import MANAGED_SCHEMAS, audit_project

__all__ = ["STATUSES", "Check", "HealthReport", "check_health", "partition_checks"]

STATUSES = ("ok", "warn", "fail")
Conn = psycopg.Connection[Any]
#: A partition bound value; None is MINVALUE / MAXVALUE.
Bound = date | datetime | None

_TIME_TYPES = ("date", "timestamp without time zone", "timestamp with time zone")
_RANGE = re.compile(r"^FOR VALUES FROM \((?P<lo>.*)\) TO \((?P<hi>.*)\)$")


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HealthReport:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        """Nothing failed (warnings are allowed)."""
        return all(c.status != "fail" for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.as_dict() for c in self.checks]}


# -- the checks ------------------------------------------------------------------------------


def _server_version(conn: Conn) -> Check:
    row = conn.execute(
        "select current_setting('server_version'), current_setting('server_version_num')::int"
    ).fetchone()
    assert row is not None
    version, number = row
    if number < 150000:
        return Check(
            "server_version",
            "warn",
            f"PostgreSQL {version}: Supabase runs 15 or newer, and so does this project",
            {"version": version},
        )
    return Check("server_version", "ok", f"PostgreSQL {version}", {"version": version})


def _migrations(conn: Conn, migrations_dir: Path) -> list[Check]:
    status = inspect(conn, migrations_dir)
    if status.drift:
        drift = Check(
            "migration_drift",
            "fail",
            "; ".join(d.describe() for d in status.drift)
            + ": restore the file (or reset a local database) and put changes in a new"
            " migration",
            {"drift": [d.version for d in status.drift]},
        )
    else:
        drift = Check(
            "migration_drift", "ok", f"{len(status.applied)} applied migration(s) match their files"
        )
    pending = [f.version for f in status.pending]
    if pending:
        late = f" ({len(status.out_of_order)} older than the newest applied)" * bool(
            status.out_of_order
        )
        waiting = Check(
            "pending_migrations",
            "warn",
            f"{len(pending)} pending{late}: {', '.join(str(v) for v in pending)};"
            " run `pysync db push`",
            {"pending": pending},
        )
    else:
        waiting = Check("pending_migrations", "ok", "none pending", {"pending": []})
    return [drift, waiting]


def _rls_audit(conn: Conn, policies_dir: Path) -> Check:
    report = audit_project(conn, policies_dir)
    errors, warnings = report.count("error"), report.count("warn")
    counts = {"errors": errors, "warnings": warnings, "info": report.count("info")}
    detail = f"{errors} error(s), {warnings} warning(s), {counts['info']} info"
    if errors or warnings:
        status = "fail" if errors else "warn"
        return Check("rls_audit", status, f"{detail}: run `pysync rls audit`", counts)
    return Check("rls_audit", "ok", detail, counts)


def _bound(text: str) -> str | None:
    """One side of a range bound, as the literal text, or None for MINVALUE/MAXVALUE."""
    text = text.strip()
    if text.upper() in ("MINVALUE", "MAXVALUE"):
        return None
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("''", "'")
    return text


def _covering(
    ranges: list[tuple[str, Bound, Bound]], value: Any
) -> tuple[str, Bound, Bound] | None:
    for part in ranges:
        _, lo, hi = part
        if (lo is None or lo <= value) and (hi is None or value < hi):
            return part
    return None


def _coverage(conn: Conn, table: str, key_type: str, ahead: int) -> Check:
    name = f"partitions {table}"
    children = conn.execute(
        "select c.oid::regclass::text, pg_get_expr(c.relpartbound, c.oid) from pg_inherits i"
        " join pg_class c on c.oid = i.inhrelid where i.inhparent = %s::regclass order by 1",
        (table,),
    ).fetchall()
    default = next((child for child, bound in children if bound == "DEFAULT"), None)
    texts: list[tuple[str, str | None, str | None]] = []
    for child, bound in children:
        match = _RANGE.match(bound or "")
        if match:
            texts.append((child, _bound(match["lo"]), _bound(match["hi"])))
    # The server turns the bound literals into values of the key's own type.
    typed = sql.SQL("select now()::{t}, array(select x::{t} from unnest(%s::text[]) as x)").format(
        t=sql.SQL(key_type)
    )
    literals = [v for _, lo, hi in texts for v in (lo, hi) if v is not None]
    row = conn.execute(typed, (literals,)).fetchone()
    assert row is not None
    now, values = row[0], iter(row[1])
    ranges = [
        (child, None if lo is None else next(values), None if hi is None else next(values))
        for child, lo, hi in texts
    ]
    current = _covering(ranges, now)
    if current is None:
        if default:
            return Check(
                name,
                "warn",
                f"no partition covers now ({now}); rows go to the default partition {default}:"
                " create the partition for the current period",
            )
        return Check(
            name,
            "fail",
            f"no partition covers now ({now}): inserts fail until one is created",
            {"now": str(now)},
        )
    covered = [current[0]]
    for _ in range(ahead):
        upper = current[2]
        if upper is None:
            break
        following = _covering(ranges, upper)
        if following is None:
            return Check(
                name,
                "warn",
                f"{current[0]} ends at {upper} and no partition follows it"
                f" (needed: the next {ahead} period(s)); create it before then",
                {"covered_until": str(upper)},
            )
        current = following
        covered.append(current[0])
    until = "unbounded" if current[2] is None else str(current[2])
    return Check(
        name,
        "ok",
        f"now and the next {ahead} period(s) are covered, until {until}",
        {"covered_until": until, "partitions": covered},
    )


def partition_checks(conn: Conn, ahead: int = 1) -> list[Check]:
    """For every time-range partitioned table of the application schemas, and for
    ``realtime.messages``: does a partition cover now, and do the next ``ahead`` periods
    follow it? A period is a partition's own width, read from its bounds."""
    with conn.transaction(force_rollback=True):
        # Names come out schema-qualified (public.events, not events) and stay valid casts.
        conn.execute("set local search_path = ''")
        tables = conn.execute(
            "select c.oid::regclass::text, p.partstrat::text, p.partnatts,"
            " format_type(a.atttypid, a.atttypmod)"
            " from pg_partitioned_table p join pg_class c on c.oid = p.partrelid"
            " join pg_namespace n on n.oid = c.relnamespace"
            " left join pg_attribute a on a.attrelid = c.oid and a.attnum = p.partattrs[0]"
            " where not c.relispartition and (c.oid = to_regclass('realtime.messages')"
            "  or (n.nspname <> all(%s) and n.nspname !~ '^pg_'))"
            " order by 1",
            (sorted(MANAGED_SCHEMAS),),
        ).fetchall()
        checks = []
        for table, strategy, columns, key_type in tables:
            if strategy != "r" or columns != 1 or key_type not in _TIME_TYPES:
                checks.append(
                    Check(
                        f"partitions {table}",
                        "ok",
                        "not partitioned by a time range: not checked",
                    )
                )
                continue
            checks.append(_coverage(conn, table, key_type, ahead))
    return checks


def _publication(conn: Conn) -> Check:
    publication = conn.execute(
        "select puballtables from pg_publication where pubname = 'supabase_realtime'"
    ).fetchone()
    if publication is None:
        return Check(
            "realtime_publication",
            "warn",
            "publication supabase_realtime is missing: Realtime postgres_changes hears nothing"
            " (create publication supabase_realtime;)",
        )
    if publication[0]:
        return Check("realtime_publication", "ok", "supabase_realtime publishes every table")
    tables = [
        row[0]
        for row in conn.execute(
            "select schemaname || '.' || tablename from pg_publication_tables"
            " where pubname = 'supabase_realtime' order by 1"
        )
    ]
    missing = deployment.missing_realtime_tables(conn, tables)
    if missing:
        return Check(
            "realtime_publication",
            "warn",
            f"supabase_realtime lacks {', '.join(missing)}: clients watching them hear nothing;"
            " push the policies (pysync db push)",
            {"tables": tables, "missing": missing},
        )
    shown = ", ".join(tables) if tables else "no tables (postgres_changes unused)"
    return Check("realtime_publication", "ok", f"supabase_realtime: {shown}", {"tables": tables})


def _deployment(name: str, finding: deployment.Finding) -> Check:
    return Check(name, finding.status, finding.detail, finding.data or {})


def _size(conn: Conn) -> Check:
    row = conn.execute(
        "select pg_database_size(current_database()),"
        " pg_size_pretty(pg_database_size(current_database()))"
    ).fetchone()
    assert row is not None
    return Check("database_size", "ok", str(row[1]), {"bytes": int(row[0])})


def _guarded(name: str, run: Callable[[], list[Check]]) -> list[Check]:
    """A check that raises reports a failure instead of hiding the other checks."""
    try:
        return run()
    except (psycopg.Error, PysyncError) as exc:
        first = first_line(exc)
        return [Check(name, "fail", f"could not check: {first}")]


def check_health(
    connect: Callable[[], Conn],
    migrations_dir: Path,
    policies_dir: Path,
    *,
    ahead: int = 1,
) -> HealthReport:
    """Run every check against the database ``connect`` opens (an autocommit connection)."""
    started = time.perf_counter()
    try:
        conn = connect()
    except (psycopg.OperationalError, LocalDatabaseError) as exc:
        first = first_line(exc)
        return HealthReport([Check("connectivity", "fail", f"cannot connect: {first}")])
    with conn:
        row = conn.execute("select current_database(), current_user").fetchone()
        assert row is not None
        elapsed = (time.perf_counter() - started) * 1000
        checks = [
            Check(
                "connectivity",
                "ok",
                f"connected to {row[0]} as {row[1]} in {elapsed:.0f} ms",
                {"database": row[0], "user": row[1]},
            )
        ]
        checks += _guarded("server_version", lambda: [_server_version(conn)])
        checks += _guarded("migrations", lambda: _migrations(conn, migrations_dir))
        checks += _guarded("rls_audit", lambda: [_rls_audit(conn, policies_dir)])
        checks += _guarded("partitions", lambda: partition_checks(conn, ahead))
        checks += _guarded("realtime_publication", lambda: [_publication(conn)])
        checks += _guarded(
            "pre_request_hook",
            lambda: [_deployment("pre_request_hook", deployment.pre_request_check(conn))],
        )
        checks += _guarded(
            "schedules", lambda: [_deployment("schedules", deployment.schedules_check(conn))]
        )
        checks += _guarded(
            "push_webhook",
            lambda: [_deployment("push_webhook", deployment.push_webhook_check(conn))],
        )
        checks += _guarded("database_size", lambda: [_size(conn)])
    return HealthReport(checks)
