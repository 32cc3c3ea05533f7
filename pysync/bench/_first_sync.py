"""One first sync (or its floor) in a process of its own, so its peak RSS is its own.

Run as ``python -m pysync.bench._first_sync`` with a JSON job on stdin; prints a JSON report:
``seconds``, ``rows``, ``start_rss_kb`` (after imports and connecting), ``peak_rss_kb``
(``VmHWM`` of ``/proc/self/status``: the process's high-water mark, interpreter and imports
included) and ``samples`` (rows so far, seconds, current RSS in KB, after each
page). Modes:

- ``cache``: :meth:`SyncCache.pull` of an empty cache through ``PostgresGateway`` as the user;
- ``floor``: the same course's rows read as the table owner in key order, in pages (keyset
  ``SELECT``), and ``executemany``'d into a SQLite table with the same columns, all in one
  SQLite transaction, serially: what a sync cannot beat without overlapping the two.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import sys
import time
from typing import Any

#: Rows per page of the floor (the cache's page limit is :attr:`SyncCache.page_limit`).
FLOOR_PAGE = 1000


def _rss_kb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _peak_kb() -> int:
    """This process's RSS high-water mark: ``VmHWM``, which ``execve`` resets (unlike
    ``ru_maxrss``, which keeps the forking parent's RSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # pragma: no cover


def run_cache(job: dict[str, Any]) -> dict[str, Any]:
    from pysync.client import Client
    from pysync.gateway import PostgresGateway
    from pysync.sync import SyncCache
    from pysync.sync.connector import Connector
    from pysync.sync.wire import PullRequest, PullResponse

    samples: list[list[float]] = []
    state = {"rows": 0, "started": 0.0}

    class Sampling(Connector):
        def pull(self, request: PullRequest) -> PullResponse:
            response = super().pull(request)
            state["rows"] += sum(b.row_count for b in response.buckets)
            elapsed = time.perf_counter() - state["started"]
            samples.append([state["rows"], round(elapsed, 4), _rss_kb()])
            return response

    gateway = PostgresGateway.connect(job["url"], jwt_secret=job["secret"], min_size=1, max_size=1)
    client = Client.for_token(gateway, job["token"])
    connector = Sampling(client)
    cache = SyncCache.open(client, job["path"], connector=connector)
    if job.get("page_limit"):
        cache.page_limit = int(job["page_limit"])
    start_rss = _rss_kb()
    state["started"] = time.perf_counter()
    cache.pull()
    seconds = time.perf_counter() - state["started"]
    local = cache.storage.row_counts().get(job.get("table", "course_content"), 0)
    cache.close()
    gateway.close()
    return {
        "seconds": seconds,
        "rows": state["rows"],
        "local_rows": local,
        "pages": len(samples),
        "start_rss_kb": start_rss,
        "peak_rss_kb": _peak_kb(),
        "samples": samples,
    }


def run_floor(job: dict[str, Any]) -> dict[str, Any]:
    import psycopg

    page = int(job.get("page", FLOOR_PAGE))
    samples: list[list[float]] = []
    with psycopg.connect(job["owner_url"], autocommit=True) as pg:
        columns = [
            (name, kind)
            for name, kind in pg.execute(
                "select column_name, data_type from information_schema.columns"
                " where table_schema = 'public' and table_name = %s and column_name <> 'sync_xid'"
                " order by ordinal_position",
                (job["table"],),
            ).fetchall()
        ]
        select_list = ", ".join(
            f't."{name}"' if kind in ("integer", "bigint", "boolean") else f't."{name}"::text'
            for name, kind in columns
        )
        query = (
            f"select {select_list} from public.{job['table']} as t"  # noqa: S608
            f" where t.{job['bucket_column']} = %s and t.id > %s::uuid order by t.id limit {page}"
        )
        lite = sqlite3.connect(job["path"], isolation_level=None)
        lite.execute("PRAGMA journal_mode = WAL")
        lite.execute("PRAGMA synchronous = NORMAL")
        names = [name for name, _kind in columns]
        lite.execute(f"CREATE TABLE floor ({', '.join(names)}, PRIMARY KEY (id))")
        insert = f"INSERT INTO floor VALUES ({', '.join('?' for _ in names)})"  # noqa: S608
        start_rss = _rss_kb()
        started = time.perf_counter()
        rows = 0
        after = "00000000-0000-0000-0000-000000000000"
        lite.execute("BEGIN")
        while True:
            batch = pg.execute(query, (job["key"], after)).fetchall()
            if not batch:
                break
            lite.executemany(insert, batch)
            rows += len(batch)
            after = batch[-1][names.index("id")]
            samples.append([rows, round(time.perf_counter() - started, 4), _rss_kb()])
        lite.execute("COMMIT")
        seconds = time.perf_counter() - started
        lite.close()
    return {
        "seconds": seconds,
        "rows": rows,
        "pages": len(samples),
        "start_rss_kb": start_rss,
        "peak_rss_kb": _peak_kb(),
        "samples": samples,
    }


def main() -> None:
    job = json.load(sys.stdin)
    report = run_cache(job) if job["mode"] == "cache" else run_floor(job)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
