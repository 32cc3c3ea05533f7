"""The scratch perf world the benchmarks share: a new database with the project's schema and
the bulk perf world, settled and dropped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from pysync.localdb import LocalDatabase
from pysync.migrate import push
from pysync.seed import PerfPlan, PerfReport, seed_perf

__all__ = ["scratch", "scratch_perf_world"]


@contextmanager
def scratch(local: LocalDatabase, name: str) -> Iterator[str]:
    """A database of the embedded cluster that lives as long as the block."""
    try:
        yield local.create_database(name)
    finally:
        local.drop_database(name)


@contextmanager
def scratch_perf_world(
    local: LocalDatabase,
    name: str,
    *,
    migrations_dir: Path | None,
    policies_dir: Path | None,
    users: int,
    say: Callable[[str], None],
) -> Iterator[tuple[str, PerfReport]]:
    """``name``, migrated and loaded with the perf world at ``users``: its URL and the load
    report."""
    if migrations_dir is None or policies_dir is None:
        raise ValueError("a scratch world needs the migrations and policies")
    with scratch(local, name) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            push(conn, migrations_dir, policies_dir)
            say(f"loading the perf world at --users {users} into {name}")
            report = seed_perf(conn, PerfPlan(users=users), baseline=False)
            # Settle the fresh rows (hint bits, visibility map) now, so neither the first
            # readers nor an autovacuum during the measurements pay for it.
            for load in report.tables:
                schema, table = load.table.split(".")
                conn.execute(sql.SQL("vacuum (analyze) {}").format(sql.Identifier(schema, table)))
        say(f"{report.rows:,} rows in {report.seconds:.1f}s")
        yield url, report
