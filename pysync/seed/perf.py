"""The performance world: a few million rows through COPY in seconds.

Rows are generated in Python from cheap arithmetic (no faker: at a million rows the names
need not be pretty) as finished lines of COPY's text format (:mod:`pysync.seed._rows`), and
streamed with ``COPY … FROM STDIN`` in blocks of a few thousand lines. Triggers are skipped
for the load (``session_replication_role = replica``, as data-only restores do), so the rows
the triggers would have written (profiles, bookkeeping columns, course conversations'
members, ``conversations.last_message_at``) are written here directly.

Ids are deterministic (``5eed`` + table number + index), so every row can find its
parents by arithmetic and a second load into the same database fails loudly instead of
duplicating anything.

After the load, :func:`seed_perf` measures the row-by-row way (``executemany`` of single-row
``INSERT``s) on a sample of enrollments against COPY of the same sample, so the report states
COPY's speed-up as a ratio measured on this machine in this run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors, sql

from pysync.errors import PysyncError
from pysync.progress import ProgressCallback, Reporter
from pysync.seed._plan import PerfPlan, perf_id
from pysync.seed._rows import Rows, steps

__all__ = [
    "BaselineReport",
    "PerfPlan",
    "PerfReport",
    "TableLoad",
    "measure_baseline",
    "perf_id",
    "seed_perf",
]

#: Lines per ``copy.write``: large enough to amortise the call, small enough to stream.
_BLOCK = 5_000
#: Rows in the row-by-row baseline sample.
BASELINE_ROWS = 20_000


@dataclass(frozen=True)
class TableLoad:
    table: str
    rows: int
    seconds: float


@dataclass(frozen=True)
class BaselineReport:
    """The same sample of enrollment rows inserted two ways into a copy of the table."""

    rows: int
    executemany_seconds: float
    copy_seconds: float

    @property
    def executemany_rows_per_second(self) -> float:
        return self.rows / self.executemany_seconds if self.executemany_seconds else 0.0

    @property
    def copy_rows_per_second(self) -> float:
        return self.rows / self.copy_seconds if self.copy_seconds else 0.0

    @property
    def speedup(self) -> float:
        """How many times faster COPY loaded the sample than ``executemany``."""
        return self.executemany_seconds / self.copy_seconds if self.copy_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": "public.enrollments",
            "rows": self.rows,
            "executemany_seconds": round(self.executemany_seconds, 3),
            "executemany_rows_per_second": round(self.executemany_rows_per_second),
            "copy_seconds": round(self.copy_seconds, 3),
            "copy_rows_per_second": round(self.copy_rows_per_second),
            "speedup": round(self.speedup, 1),
        }


@dataclass
class PerfReport:
    plan: PerfPlan
    tables: list[TableLoad] = field(default_factory=list)
    seconds: float = 0.0
    baseline: BaselineReport | None = None

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.plan.users,
            "scale": self.plan.scale,
            "rows": self.rows,
            "seconds": round(self.seconds, 2),
            "rows_per_second": round(self.rows_per_second),
            "tables": [
                {
                    "table": t.table,
                    "rows": t.rows,
                    "seconds": round(t.seconds, 2),
                    "rows_per_second": round(t.rows / t.seconds) if t.seconds else 0,
                }
                for t in self.tables
            ],
            "baseline": self.baseline.as_dict() if self.baseline else None,
        }


def _copy_statement(table: str, columns: Sequence[str]) -> sql.Composed:
    schema, name = table.split(".")
    return sql.SQL("copy {} ({}) from stdin").format(
        sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def _copy(
    conn: psycopg.Connection[Any],
    table: str,
    columns: Sequence[str],
    planned: int,
    lines: Rows,
    progress: ProgressCallback | None,
) -> int:
    rows = Reporter(progress, table, total=planned, unit="rows")
    rows.update()
    written = 0
    block: list[str] = []
    with conn.cursor() as cursor, cursor.copy(_copy_statement(table, columns)) as copy:
        for line in lines:
            block.append(line)
            if len(block) == _BLOCK:
                copy.write("".join(block))
                written += _BLOCK
                block.clear()
                if written % (_BLOCK * 4) == 0:
                    rows.update(written)
        if block:
            copy.write("".join(block))
            written += len(block)
    rows.update(written)
    return written


def seed_perf(
    conn: psycopg.Connection[Any],
    plan: PerfPlan,
    progress: ProgressCallback | None = None,
    *,
    baseline: bool = True,
) -> PerfReport:
    """Load the perf world in one transaction (all or nothing), then ANALYZE it.

    With ``baseline``, then time :func:`measure_baseline` on a sample (at most
    :data:`BASELINE_ROWS`) of the world's enrollments. ``progress`` hears one task per table
    (``public.enrollments``, …), in rows of the planned count.
    """
    if plan.users < 20:
        raise PysyncError("the perf world needs at least 20 users")
    report = PerfReport(plan=plan)
    started = time.perf_counter()
    try:
        with conn.transaction():
            conn.execute("set local session_replication_role = replica")
            conn.execute("set local synchronous_commit = off")
            row = conn.execute(
                "select extensions.crypt('password123', extensions.gen_salt('bf', 4))"
            ).fetchone()
            assert row is not None
            for table, columns, planned, lines in steps(plan, str(row[0])):
                table_started = time.perf_counter()
                written = _copy(conn, table, columns, planned, lines, progress)
                report.tables.append(TableLoad(table, written, time.perf_counter() - table_started))
    except errors.UniqueViolation as exc:
        raise PysyncError(
            "a perf world is already loaded here: run `pysync db reset --yes` first"
        ) from exc
    except errors.InsufficientPrivilege as exc:
        raise PysyncError(f"bulk loading needs session_replication_role: {exc}") from exc
    report.seconds = time.perf_counter() - started
    for load in report.tables:
        schema, name = load.table.split(".")
        conn.execute(sql.SQL("analyze {}").format(sql.Identifier(schema, name)))
    if baseline:
        report.baseline = measure_baseline(conn, min(BASELINE_ROWS, plan.enrollments))
    return report


def _copy_text(value: object) -> str:
    """One value in COPY's text format (``\\N`` for null; ids, statuses and timestamps
    need no escaping)."""
    return "\\N" if value is None else str(value)


def measure_baseline(conn: psycopg.Connection[Any], rows: int) -> BaselineReport:
    """Insert the first ``rows`` enrollments of the loaded world into an empty copy of
    ``public.enrollments`` (same columns, defaults, checks and indexes), once with
    ``executemany`` and once with COPY, and roll both back.

    The copy is a temporary table, so neither way pays for WAL and both pay for the same
    index maintenance; the ratio is COPY's advantage alone.
    """
    if rows < 1:
        raise ValueError("the baseline needs at least one row")
    # Every column a check constraint ties together must travel: completed_at follows status
    # (enrollments_completed_at_check), so a completed enrollment copied without it fails.
    columns = ("id", "student_id", "course_id", "status", "completed_at")
    sample = conn.execute(
        sql.SQL("select {} from public.enrollments order by id limit %s").format(
            sql.SQL(", ").join(map(sql.Identifier, columns))
        ),
        (rows,),
    ).fetchall()
    lines = ["\t".join(_copy_text(value) for value in r) + "\n" for r in sample]
    timings: list[float] = []
    for way in ("executemany", "copy"):
        with conn.transaction(force_rollback=True):
            conn.execute(
                "create temporary table perf_baseline"
                " (like public.enrollments including defaults including constraints"
                " including indexes) on commit drop"
            )
            started = time.perf_counter()
            with conn.cursor() as cursor:
                if way == "executemany":
                    cursor.executemany(
                        sql.SQL("insert into perf_baseline ({}) values ({})").format(
                            sql.SQL(", ").join(map(sql.Identifier, columns)),
                            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                        ),
                        sample,
                    )
                else:
                    statement = _copy_statement("pg_temp.perf_baseline", columns)
                    with cursor.copy(statement) as copy:
                        for start in range(0, len(lines), _BLOCK):
                            copy.write("".join(lines[start : start + _BLOCK]))
            timings.append(time.perf_counter() - started)
    return BaselineReport(len(sample), timings[0], timings[1])
