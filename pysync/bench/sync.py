"""What sync costs, each figure against a baseline measured in the same run (issue 10).

In a scratch database on the embedded cluster (migrations, policies, the perf world at
``users``) the benchmark adds its own users and data as ``postgres`` (``generate_series``,
triggers on), then runs, as real users through :class:`~pysync.gateway.PostgresGateway` with
RLS on:

1. ``first_sync``: an empty cache pulls ``rows`` course_content rows (one course, about 300
   bytes of JSON each); baseline, the floor: the same rows read by the table owner in key
   order in pages and ``executemany``'d into SQLite in one transaction. Both run in a
   subprocess each (:mod:`pysync.bench._first_sync`), whose ``VmHWM`` is the peak RSS.
2. ``apply_one_change``: one row updated on the server, then pull + apply into that cache
   (holding ``rows`` rows); baseline: a pull with nothing changed on the same cache.
3. ``no_change_pull``: a user holding about 50 buckets pulls with nothing changed (SQLite
   included); baseline: a trivial RPC (``select 1``) through the same gateway.
4. ``push``: 10,000 queued ops (message inserts and updates, support query inserts) pushed;
   baseline: the same writes by ``service_role`` in one transaction.
5. ``capacity``: no-change ``sync_pull`` calls per second from a pool of distinct users on
   several threads; baseline: ``select 1`` RPCs per second on the same threads and pool.
6. ``propagation``: device A pushes a message, device B (another participant, in a process of
   its own, syncing through :class:`~pysync.sync.triggers.Triggers` on
   :class:`~pysync.sync.triggers.PgNudges`, as an app does) has it in its cache; baseline: A's
   push alone.
7. ``files``: upload and download MB/s of the local file path (:mod:`pysync.bench._files`);
   baseline: a plain copy of the same files.

Sizes are options so that tests run it tiny; timing is never asserted by tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from pysync.auth import LocalAuth, mint_access_token
from pysync.bench._files import measure_files
from pysync.bench._world import scratch_perf_world
from pysync.bench.gateway import Timing
from pysync.bench.rls import _no_gc, _timed
from pysync.client import Client
from pysync.errors import PysyncError
from pysync.gateway import PostgresGateway
from pysync.localdb import LocalDatabase
from pysync.sync import SyncCache

__all__ = ["BENCHMARKS", "TARGETS", "SyncBenchResult", "run_sync_bench"]

#: The benchmarks, in the order they run.
BENCHMARKS = (
    "no_change_pull",
    "first_sync",
    "apply_one_change",
    "push",
    "capacity",
    "propagation",
    "files",
)

#: The issue's targets.
TARGETS: dict[str, dict[str, float]] = {
    "first_sync": {"min_ratio": 0.9},
    "apply_one_change": {"max_p50_ms": 3.0},
    "no_change_pull": {"max_p95_ms": 10.0, "max_ratio": 4.0},
    "push": {"min_ops_per_second": 3000.0, "max_ratio": 3.0},
    "capacity": {"min_pulls_per_second": 500.0},
    "propagation": {"max_p95_ms": 20.0},
    "files": {"min_ratio": 0.1},
}

#: Buckets the no-change puller should hold.
HELD_BUCKETS = 50
#: ``Triggers(min_interval=…)`` of the propagation benchmark's device B, in seconds.
PROPAGATION_INTERVAL = 0.05
PING = "bench_select_one"
EMAIL_PREFIX = "bench-sync-"


@dataclass
class Figure:
    """One benchmark's measurement, its baseline, their ratio and whether the target holds."""

    name: str
    description: str
    measured: dict[str, Any]
    baseline: dict[str, Any]
    ratio: float | None
    within_target: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "measured": self.measured,
            "baseline": self.baseline,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": TARGETS[self.name],
            "within_target": self.within_target,
            **self.extra,
        }


@dataclass
class SyncBenchResult:
    users: int
    rows: int
    figures: list[Figure]
    #: 1, 5 and 15-minute load averages when the run ended, and the CPU count.
    load: dict[str, Any]
    seed: dict[str, Any] | None = None

    def figure(self, name: str) -> Figure | None:
        return next((f for f in self.figures if f.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "rows": self.rows,
            "load": self.load,
            "benchmarks": [f.as_dict() for f in self.figures],
            "seed": self.seed,
        }


def _ms(timing: Timing) -> dict[str, float]:
    return {k: round(v, 3) for k, v in timing.as_dict().items()}


def _load() -> dict[str, Any]:
    one, five, fifteen = os.getloadavg()
    return {
        "1m": round(one, 2),
        "5m": round(five, 2),
        "15m": round(fifteen, 2),
        "cpus": os.cpu_count(),
    }


# -- the world --------------------------------------------------------------------------------


class World:
    """The scratch database, its gateway and the users the benchmarks act as."""

    def __init__(self, url: str, gateway_url: str, secret: str) -> None:
        self.url = url
        self.gateway_url = gateway_url
        self.secret = secret
        self.auth = LocalAuth(url, jwt_secret=secret, bcrypt_cost=4)
        self.api: PostgresGateway | None = None
        self.made_users: list[str] = []

    def connect_api(self, size: int = 1) -> PostgresGateway:
        return PostgresGateway.connect(
            self.gateway_url, jwt_secret=self.secret, min_size=1, max_size=size
        )

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(statement.encode() if not params else statement, params or None)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []

    def user(self, role: str = "student") -> tuple[str, str]:
        """A new user (id, access token)."""
        email = f"{EMAIL_PREFIX}{role}-{uuid.uuid4().hex[:10]}@example.com"
        made = self.auth.create_user(
            email,
            "pw-123456",
            app_metadata={"app_role": role},
            user_metadata={"display_name": role.title()},
        )
        self.made_users.append(str(made.id))
        return str(made.id), self.token(str(made.id), email)

    def token(self, user_id: str, email: str | None = None) -> str:
        return mint_access_token(self.secret, user_id=user_id, email=email, expires_in=6 * 3600)

    def client(self, token: str, api: PostgresGateway | None = None) -> Client:
        gateway = api or self.api
        assert gateway is not None
        return Client.for_token(gateway, token)

    def course(self, tutor_id: str, rows: int) -> str:
        course_id = str(uuid.uuid4())
        self.sql(
            "insert into public.courses (id, tutor_id, title, status, published_at)"
            " values (%s, %s, 'Benchmark course', 'published', now())",
            course_id,
            tutor_id,
        )
        if rows:
            # About 300 bytes of JSON a row, in batches so no transaction is huge.
            for start in range(0, rows, 200_000):
                self.sql(
                    "insert into public.course_content (course_id, kind, position, title, body)"
                    " select %s, 'lesson', n, 'Lesson ' || n, md5(n::text) || md5(n::text)"
                    " from generate_series(%s::int, %s::int) as n",
                    course_id,
                    start + 1,
                    min(rows, start + 200_000),
                )
            self.sql("analyze public.course_content")
        return course_id

    def enroll(self, student_id: str, course_id: str) -> None:
        self.sql(
            "insert into public.enrollments (student_id, course_id, status)"
            " values (%s, %s, 'active') on conflict do nothing",
            student_id,
            course_id,
        )

    def cleanup(self) -> None:
        if self.made_users:
            self.sql("delete from auth.users where id = any(%s::uuid[])", self.made_users)
            self.made_users = []


def _ping_function(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        f"create or replace function public.{PING}() returns integer language sql stable"
        " as 'select 1'"
    )
    conn.execute(f"revoke all on function public.{PING}() from public, anon")
    conn.execute(f"grant execute on function public.{PING}() to authenticated, service_role")


def _cache(
    world: World, token: str, directory: Path, api: PostgresGateway | None = None
) -> SyncCache:
    return SyncCache.open(world.client(token, api), directory / f"{uuid.uuid4().hex}.db")


# -- 3: no-change pull ------------------------------------------------------------------------


def bench_no_change_pull(
    world: World, directory: Path, *, iterations: int, warmup: int, say: Callable[[str], None]
) -> Figure:
    student, token = world.user()
    courses = [
        str(r[0])
        for r in world.sql(
            "select c.id from public.courses as c where c.status = 'published'"
            " and exists (select 1 from public.course_content as cc where cc.course_id = c.id)"
            " order by md5(c.id::text) limit 60"
        )
    ]
    cache = _cache(world, token, directory)
    try:
        for course in courses:
            world.enroll(student, course)
            cache.pull()
            if len(cache.held_buckets()) >= HELD_BUCKETS:
                break
        cache.pull()
        held = len(cache.held_buckets())
        say(f"no_change_pull: the user holds {held} buckets; measuring {iterations} pulls")
        gateway = world.client(token).gateway
        pulls: list[int] = []
        pings: list[int] = []
        with _no_gc():
            for i in range(warmup + iterations):
                sides = [(pulls, cache.pull), (pings, lambda: gateway.rpc(PING, read_only=True))]
                if i % 2:
                    sides.reverse()
                for samples, call in sides:
                    elapsed = _timed(call)
                    if i >= warmup:
                        samples.append(elapsed)
        rows = sum(cache.storage.row_counts().values())
    finally:
        cache.close()
    pull, ping = Timing.of(pulls), Timing.of(pings)
    ratio = pull.p95_ms / ping.p95_ms
    target = TARGETS["no_change_pull"]
    return Figure(
        "no_change_pull",
        "incremental pull with nothing changed (sync_pull + SQLite apply) vs select 1 RPC",
        {**_ms(pull), "buckets": held, "cached_rows": rows},
        _ms(ping),
        ratio,
        pull.p95_ms <= target["max_p95_ms"] and ratio <= target["max_ratio"],
        {"iterations": iterations, "ratio_p50": round(pull.p50_ms / ping.p50_ms, 3)},
    )


# -- 1: first sync ----------------------------------------------------------------------------


def _subprocess(job: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "pysync.bench._first_sync"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PysyncError(f"the first-sync subprocess failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def bench_first_sync(
    world: World, directory: Path, *, rows: int, rounds: int, say: Callable[[str], None]
) -> tuple[Figure, str, str]:
    """The figure, the cache's path and the user's token (for :func:`bench_apply_one_change`).

    The floor and the sync take turns ``rounds`` times (each into a new SQLite file), and the
    figure is the median of each: on this host the floor alone moved by a third between runs
    a minute apart, and one pair measured once said more about the minute than about the
    sync. The ratio is the median of the rounds' ratios (a floor and the sync right after
    it share the host's state)."""
    tutor, _ = world.user("tutor")
    student, token = world.user()
    say(f"first_sync: a course of {rows:,} rows")
    started = time.perf_counter()
    course = world.course(tutor, rows)
    world.enroll(student, course)
    world.sql("vacuum (analyze) public.course_content")
    made = time.perf_counter() - started
    row_bytes = world.sql(
        "select avg(octet_length((to_jsonb(t) - 'sync_xid')::text))::int"
        " from (select * from public.course_content where course_id = %s limit 1000) as t",
        course,
    )[0][0]
    say(f"first_sync: made in {made:.1f}s ({row_bytes} bytes of JSON a row)")
    floors: list[dict[str, Any]] = []
    syncs: list[dict[str, Any]] = []
    rates: list[float] = []
    floor_rates: list[float] = []
    for n in range(rounds):
        floor = _subprocess(
            {
                "mode": "floor",
                "owner_url": world.url,
                "table": "course_content",
                "bucket_column": "course_id",
                "key": course,
                "path": str(directory / f"floor-{n}.db"),
            }
        )
        path = directory / f"first_sync-{n}.db"
        synced = _subprocess(
            {
                "mode": "cache",
                "url": world.gateway_url,
                "secret": world.secret,
                "token": token,
                "path": str(path),
            }
        )
        floors.append(floor)
        syncs.append(synced)
        floor_rates.append(floor["rows"] / floor["seconds"])
        rates.append(synced["local_rows"] / synced["seconds"])
        say(
            f"first_sync: round {n + 1} of {rounds}: floor {floor_rates[-1]:,.0f} rows/s,"
            f" sync {rates[-1]:,.0f} rows/s"
        )
    ratio = statistics.median(r / f for r, f in zip(rates, floor_rates, strict=True))
    # The round whose rate is the median (the upper one of an even count) stands for all in
    # the samples and the plot; peak RSS is the highest of any round.
    middle = sorted(range(rounds), key=lambda i: rates[i])[rounds // 2]
    synced, floor = syncs[middle], floors[middle]
    figure = Figure(
        "first_sync",
        f"first sync of {rows:,} course_content rows into an empty cache vs the floor "
        "(owner keyset SELECT in pages + SQLite executemany in one transaction); medians of "
        f"{rounds} alternated rounds",
        {
            "rows": synced["local_rows"],
            "rows_served": synced["rows"],
            "pages": synced["pages"],
            "seconds": round(synced["seconds"], 3),
            "rows_per_second": round(statistics.median(rates)),
            "start_rss_mb": round(synced["start_rss_kb"] / 1024, 1),
            "peak_rss_mb": round(max(s["peak_rss_kb"] for s in syncs) / 1024, 1),
        },
        {
            "rows": floor["rows"],
            "seconds": round(floor["seconds"], 3),
            "rows_per_second": round(statistics.median(floor_rates)),
            "start_rss_mb": round(floor["start_rss_kb"] / 1024, 1),
            "peak_rss_mb": round(max(f["peak_rss_kb"] for f in floors) / 1024, 1),
        },
        ratio,
        ratio >= TARGETS["first_sync"]["min_ratio"],
        {
            "rounds": rounds,
            "rows_per_second_by_round": [round(r) for r in rates],
            "floor_rows_per_second_by_round": [round(f) for f in floor_rates],
            "row_json_bytes": row_bytes,
            "rss_method": "VmHWM of a subprocess doing only the sync (interpreter included)",
            "samples": synced["samples"],
            "floor_samples": floor["samples"],
        },
    )
    return figure, str(path), token


# -- 2: apply one change ----------------------------------------------------------------------


def bench_apply_one_change(
    world: World, path: str, token: str, *, iterations: int, say: Callable[[str], None]
) -> Figure:
    cache = SyncCache.open(world.client(token), path)
    try:
        held_rows = cache.storage.row_counts().get("course_content", 0)
        ids = [
            r["id"]
            for r in cache.query("SELECT id FROM course_content ORDER BY random() LIMIT 200")
        ]
        say(f"apply_one_change: {iterations} changes to a cache of {held_rows:,} rows")
        cache.pull()
        changed: list[int] = []
        quiet: list[int] = []
        # The other writer keeps one connection: a connection opened and closed for every
        # change would have its backend start and exit on the same two cores while the
        # measured pull runs, which is not the pull's cost.
        with psycopg.connect(world.url, autocommit=True) as writer:
            for i in range(iterations + 2):
                row_id = ids[i % len(ids)]
                writer.execute(
                    "update public.course_content set title = 'Changed ' || %s where id = %s",
                    (str(i), row_id),
                )
                elapsed = _timed(cache.pull)
                got = cache.query("SELECT title FROM course_content WHERE id = ?", [row_id])
                if got != [{"title": f"Changed {i}"}]:
                    raise PysyncError(f"apply_one_change: the change did not arrive ({got})")
                nothing = _timed(cache.pull)
                if i >= 2:
                    changed.append(elapsed)
                    quiet.append(nothing)
    finally:
        cache.close()
    applied, baseline = Timing.of(changed), Timing.of(quiet)
    return Figure(
        "apply_one_change",
        "one row updated on the server, pull + apply, into a cache holding the first sync's "
        "rows vs a pull with nothing changed on the same cache",
        {**_ms(applied), "cached_rows": held_rows},
        _ms(baseline),
        applied.p50_ms / baseline.p50_ms,
        applied.p50_ms <= TARGETS["apply_one_change"]["max_p50_ms"],
        {"iterations": iterations},
    )


# -- 5: push ----------------------------------------------------------------------------------


def _direct_conversation(world: World, a: str, b: str) -> str:
    conversation = str(uuid.uuid4())
    low, high = sorted([a, b])
    world.sql(
        "insert into public.conversations (id, kind, created_by, direct_key)"
        " values (%s, 'direct', %s, %s)",
        conversation,
        a,
        f"{low}:{high}",
    )
    world.sql(
        "insert into public.conversation_participants (conversation_id, user_id)"
        " values (%s, %s), (%s, %s) on conflict do nothing",
        conversation,
        a,
        conversation,
        b,
    )
    return conversation


def bench_push(world: World, directory: Path, *, ops: int, say: Callable[[str], None]) -> Figure:
    student, token = world.user()
    tutor, _ = world.user("tutor")
    conversation = _direct_conversation(world, student, tutor)
    updates = ops * 2 // 5
    support = ops // 5
    inserts = ops - updates - support
    world.sql(
        "insert into public.messages (conversation_id, sender_id, body)"
        " select %s, %s, 'message ' || n from generate_series(1, %s) as n",
        conversation,
        student,
        updates,
    )
    cache = _cache(world, token, directory)
    try:
        cache.pull()
        existing = [r["id"] for r in cache.query("SELECT id FROM messages ORDER BY id")]
        cache.batch_size = 1000
        for n in range(inserts):
            cache.insert(
                "messages",
                {"conversation_id": conversation, "sender_id": student, "body": f"new {n}"},
            )
            if n < support:
                cache.insert(
                    "support_queries",
                    {"owner_id": student, "subject": f"help {n}", "body": "please"},
                )
        for n, row_id in enumerate(existing[:updates]):
            cache.update("messages", row_id, {"body": f"edited {n}"})
        queued = cache.status().pending_ops
        say(f"push: {queued:,} queued ops")
        started = time.perf_counter()
        cache.push()
        seconds = time.perf_counter() - started
        left = cache.status().pending_ops
        dead = len(cache.dead_letters())
    finally:
        cache.close()
    if left or dead:
        raise PysyncError(f"push: {left} ops left and {dead} dead letters after the push")
    # The baseline: the same writes by service_role in one transaction.
    with psycopg.connect(world.url) as conn:
        conn.execute("set role service_role")
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany(
                "insert into public.messages (id, conversation_id, sender_id, body)"
                " values (%s, %s, %s, %s)",
                [(uuid.uuid4(), conversation, student, f"base {n}") for n in range(inserts)],
            )
            cur.executemany(
                "insert into public.support_queries (id, owner_id, subject, body)"
                " values (%s, %s, %s, 'please')",
                [(uuid.uuid4(), student, f"base {n}") for n in range(support)],
            )
            cur.executemany(
                "update public.messages set body = %s where id = %s",
                [(f"base edit {n}", row_id) for n, row_id in enumerate(existing[:updates])],
            )
        conn.commit()
        base_seconds = time.perf_counter() - started
    rate, base_rate = queued / seconds, queued / base_seconds
    ratio = seconds / base_seconds
    target = TARGETS["push"]
    return Figure(
        "push",
        f"push of {queued:,} queued ops (message inserts and updates, support query inserts) "
        "as the user vs the same writes by service_role in one transaction",
        {"ops": queued, "seconds": round(seconds, 3), "ops_per_second": round(rate)},
        {"ops": queued, "seconds": round(base_seconds, 3), "ops_per_second": round(base_rate)},
        ratio,
        rate >= target["min_ops_per_second"] and ratio <= target["max_ratio"],
        {"batch_size": 1000},
    )


# -- 4: capacity ------------------------------------------------------------------------------


def _full_states(gateway: Any) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Pull to the end with a minimal puller (no SQLite): the user's bucket states and the last
    page's resolution token."""
    states: dict[str, dict[str, Any]] = {}
    for _ in range(1000):
        page = gateway.rpc(
            "sync_pull", {"request": {"buckets": states, "limit": 10000}}, read_only=True
        )
        for name in page["removed_buckets"]:
            states.pop(name, None)
        for entry in page["buckets"]:
            states[entry["bucket"]] = {
                "cursor": entry["cursor"]
                if entry["complete"]
                else states.get(entry["bucket"], {}).get("cursor"),
                "round": entry["round"],
                "after": entry["after"],
            }
        for name in page["unchanged"]:
            states[name] = {"cursor": page["snapshot"], "round": None, "after": None}
        if not page["has_more"]:
            return states, page.get("resolution")
    raise PysyncError("capacity: a user's first sync did not end")


def bench_capacity(
    world: World, *, users: int, threads: int, seconds: float, say: Callable[[str], None]
) -> Figure:
    picked = world.sql(
        "select p.id::text, u.email from public.profiles as p join auth.users as u on u.id = p.id"
        " where p.role = 'student' and exists (select 1 from public.enrollments as e"
        " where e.student_id = p.id and e.status = 'active') order by md5(p.id::text) limit %s",
        users,
    )
    if not picked:
        raise PysyncError("capacity: no student with enrollments (no perf world?)")
    api = world.connect_api(threads)
    try:
        gateways = [Client.for_token(api, world.token(uid, email)).gateway for uid, email in picked]
        # Each user's bucket states and resolution token, sent back as a client does.
        synced = [_full_states(g) for g in gateways]
        states = [s for s, _ in synced]
        tokens = [t for _, t in synced]
        buckets = sum(len(s) for s in states) / len(states)
        say(f"capacity: {len(picked)} users holding {buckets:.0f} buckets on average")

        def run(call: Callable[[int], object]) -> tuple[int, float, list[int]]:
            count = [0] * threads
            latencies: list[list[int]] = [[] for _ in range(threads)]
            stop = time.perf_counter() + seconds

            def worker(t: int) -> None:
                rng = random.Random(t)
                while time.perf_counter() < stop:
                    i = rng.randrange(len(gateways))
                    latencies[t].append(_timed(partial(call, i)))
                    count[t] += 1

            started = time.perf_counter()
            pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
            return sum(count), time.perf_counter() - started, [x for xs in latencies for x in xs]

        def pull(i: int) -> object:
            request = {"buckets": states[i], "limit": 1000, "resolution": tokens[i]}
            page = gateways[i].rpc("sync_pull", {"request": request}, read_only=True)
            tokens[i] = page.get("resolution")
            if page["buckets"] or page["has_more"]:
                # Something changed for this user (another benchmark's write): keep up.
                states[i], tokens[i] = _full_states(gateways[i])
            return page

        def ping(i: int) -> object:
            return gateways[i].rpc(PING, read_only=True)

        run(pull)  # warm every connection's plans
        pulls, pull_seconds, pull_lat = run(pull)
        pings, ping_seconds, ping_lat = run(ping)
    finally:
        api.close()
    rate, ping_rate = pulls / pull_seconds, pings / ping_seconds
    return Figure(
        "capacity",
        f"no-change sync_pull calls per second from {len(picked)} distinct users on "
        f"{threads} threads sharing a {threads}-connection pool vs select 1 RPCs the same way",
        {
            "pulls_per_second": round(rate, 1),
            "calls": pulls,
            **_ms(Timing.of(pull_lat)),
            "users": len(picked),
            "avg_buckets": round(buckets, 1),
        },
        {"calls_per_second": round(ping_rate, 1), "calls": pings, **_ms(Timing.of(ping_lat))},
        rate / ping_rate,
        rate >= TARGETS["capacity"]["min_pulls_per_second"],
        {"threads": threads, "seconds": seconds},
    )


# -- 6: propagation ---------------------------------------------------------------------------


class _Device:
    """Device B in its own process (:mod:`pysync.bench._device`): JSON lines both ways."""

    def __init__(self, job: dict[str, Any]) -> None:
        # A file, not a pipe: nobody reads stderr until B fails, and a full pipe would stall it.
        self._errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "pysync.bench._device"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True, name="pysync-device-b")
        self._reader.start()
        self.send(job)

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, message: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(message) + "\n")
        self._proc.stdin.flush()

    def expect(self, key: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next message, which must carry ``key``."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise PysyncError(
                f"propagation: device B sent no {key!r} within {timeout:.0f}s"
            ) from None
        if line is None:
            self._proc.wait(timeout=10)
            self._errors.seek(0)
            error = self._errors.read().strip()[-2000:]
            raise PysyncError(f"propagation: device B stopped: {error}")
        message: dict[str, Any] = json.loads(line)
        if key not in message:
            raise PysyncError(f"propagation: device B said {message}, not {key!r}")
        return message

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.send({"stop": True})
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout=5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._errors.close()


def bench_propagation(
    world: World, directory: Path, *, writes: int, say: Callable[[str], None]
) -> Figure:
    """Two devices, two processes (as two phones: no GIL between them). B syncs the way an
    app does: :class:`Triggers` with :class:`PgNudges` (throttled: the first nudge after a
    quiet spell pulls at once, the rest of a write's nudges join one trailing pull). Each write
    waits for the previous one's trailing pull to end, as writes a human makes would. Both
    processes read ``CLOCK_MONOTONIC``, so B's arrival time and A's start compare."""
    a_id, a_token = world.user()
    b_id, b_token = world.user("tutor")
    conversation = _direct_conversation(world, a_id, b_id)
    a = _cache(world, a_token, directory)
    a.pull()
    device = _Device(
        {
            "url": world.gateway_url,
            "secret": world.secret,
            "token": b_token,
            "path": str(directory / f"{uuid.uuid4().hex}.db"),
            "nudge_url": world.url,
            "interval": PROPAGATION_INTERVAL,
        }
    )
    latencies: list[int] = []
    pushes: list[int] = []
    try:
        device.expect("ready", timeout=60)
        say(f"propagation: {writes} messages from A to B")
        for n in range(writes + 3):
            row_id = str(uuid.uuid4())
            device.send({"want": row_id})
            device.expect("watching")
            started = time.monotonic_ns()
            a.insert(
                "messages",
                {"id": row_id, "conversation_id": conversation, "sender_id": a_id, "body": f"m{n}"},
            )
            a.push()
            pushed = time.monotonic_ns()
            arrived = device.expect("arrived")
            if arrived["arrived"] != row_id:
                raise PysyncError(f"propagation: B reported {arrived['arrived']}, not {row_id}")
            if n >= 3:
                latencies.append(int(arrived["at_ns"]) - started)
                pushes.append(pushed - started)
            device.send({"settle": True})
            device.expect("settled")
    finally:
        device.close()
        a.close()
    got, base = Timing.of(latencies), Timing.of(pushes)
    return Figure(
        "propagation",
        "device A inserts and pushes a message, device B (its own process; Triggers on "
        "PgNudges, throttled nudges) has it in its cache; baseline: A's insert + push alone",
        _ms(got),
        _ms(base),
        got.p50_ms / base.p50_ms,
        got.p95_ms <= TARGETS["propagation"]["max_p95_ms"],
        {"writes": writes, "min_interval_s": PROPAGATION_INTERVAL, "device_b": "own process"},
    )


# -- 7: files ---------------------------------------------------------------------------------


def bench_files(
    world: World,
    directory: Path,
    *,
    count: int = 20,
    size: int = 1024 * 1024,
    rounds: int = 3,
    say: Callable[[str], None],
) -> Figure:
    measured, baseline, ratio = measure_files(
        world, directory, _direct_conversation, count=count, size=size, rounds=rounds, say=say
    )
    return Figure(
        "files",
        "local file path: attach + upload, and download, MB/s vs a plain file copy",
        measured,
        baseline,
        ratio,
        ratio >= TARGETS["files"]["min_ratio"],
    )


# -- the run ----------------------------------------------------------------------------------


@contextmanager
def _world(
    local: LocalDatabase | None,
    db_url: str | None,
    secret: str,
    users: int,
    migrations_dir: Path | None,
    policies_dir: Path | None,
    say: Callable[[str], None],
    seed: dict[str, Any],
) -> Iterator[World]:
    with ExitStack() as stack:
        if db_url is None:
            assert local is not None
            name = f"pysync_bench_sync_{uuid.uuid4().hex[:10]}"
            url, report = stack.enter_context(
                scratch_perf_world(
                    local,
                    name,
                    migrations_dir=migrations_dir,
                    policies_dir=policies_dir,
                    users=users,
                    say=say,
                )
            )
            with psycopg.connect(url, autocommit=True) as conn:
                _ping_function(conn)
            seed.update(report.as_dict())
            gateway_url = local.url(name, user="authenticator")
        else:
            url = gateway_url = db_url
            with psycopg.connect(url, autocommit=True) as conn:
                _ping_function(conn)
        world = World(url, gateway_url, secret)
        world.api = stack.enter_context(world.connect_api())
        try:
            yield world
        finally:
            if db_url is not None:
                world.cleanup()
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"drop function if exists public.{PING}()")


def run_sync_bench(
    local: LocalDatabase | None,
    *,
    db_url: str | None = None,
    jwt_secret: str | None = None,
    users: int = 10_000,
    rows: int = 100_000,
    only: Sequence[str] = (),
    iterations: int = 200,
    push_ops: int = 10_000,
    capacity_users: int = 200,
    capacity_threads: int = 4,
    capacity_seconds: float = 5.0,
    writes: int = 200,
    first_sync_rounds: int = 3,
    files: int = 20,
    file_bytes: int = 1024 * 1024,
    migrations_dir: Path | None = None,
    policies_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> SyncBenchResult:
    """Build the world (unless ``db_url``: a database with the migrations applied and a perf
    world loaded), run the benchmarks named in ``only`` (all by default), drop what was made."""
    wanted = list(only) or list(BENCHMARKS)
    unknown = [name for name in wanted if name not in BENCHMARKS]
    if unknown:
        raise PysyncError(
            f"unknown benchmark {', '.join(unknown)}: pick from {', '.join(BENCHMARKS)}"
        )
    if "apply_one_change" in wanted and "first_sync" not in wanted:
        wanted.append("first_sync")  # it changes the first sync's cache
    if local is None and db_url is None:
        raise ValueError("pass the embedded database or a db_url")
    secret = jwt_secret or (local.jwt_secret if local is not None else None)
    if not secret:
        raise ValueError("a JWT secret is needed to sign the users' tokens")
    say = progress or (lambda _message: None)
    seed: dict[str, Any] = {}
    figures: list[Figure] = []
    warmup = max(1, iterations // 10)
    with (
        tempfile.TemporaryDirectory(prefix="pysync-bench-sync-") as tmp,
        _world(local, db_url, secret, users, migrations_dir, policies_dir, say, seed) as world,
    ):
        directory = Path(tmp)
        world_users = int(world.sql("select count(*) from auth.users")[0][0])
        first: tuple[str, str] | None = None
        for name in BENCHMARKS:
            if name not in wanted:
                continue
            if name == "no_change_pull":
                figures.append(
                    bench_no_change_pull(
                        world, directory, iterations=iterations, warmup=warmup, say=say
                    )
                )
            elif name == "first_sync":
                figure, path, token = bench_first_sync(
                    world, directory, rows=rows, rounds=first_sync_rounds, say=say
                )
                figures.append(figure)
                first = (path, token)
            elif name == "apply_one_change":
                assert first is not None
                figures.append(
                    bench_apply_one_change(
                        world, first[0], first[1], iterations=max(3, iterations // 4), say=say
                    )
                )
            elif name == "push":
                figures.append(bench_push(world, directory, ops=push_ops, say=say))
            elif name == "capacity":
                figures.append(
                    bench_capacity(
                        world,
                        users=capacity_users,
                        threads=capacity_threads,
                        seconds=capacity_seconds,
                        say=say,
                    )
                )
            elif name == "propagation":
                figures.append(bench_propagation(world, directory, writes=writes, say=say))
            elif name == "files":
                figures.append(bench_files(world, directory, count=files, size=file_bytes, say=say))
    return SyncBenchResult(
        users=world_users,
        rows=rows,
        figures=[f for f in figures if f.name in (list(only) or BENCHMARKS)],
        load=_load(),
        seed=seed or None,
    )


def plot(result: dict[str, Any], path: Path) -> None:
    """First-sync rows/s and RSS against rows synced (needs matplotlib: the dev extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(b for b in result["benchmarks"] if b["name"] == "first_sync")
    fig, (rate_ax, rss_ax) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for key, label in (("samples", "SyncCache.pull"), ("floor_samples", "floor")):
        samples = first[key]
        done = [s[0] for s in samples]
        rate = [s[0] / s[1] if s[1] else 0 for s in samples]
        rate_ax.plot(done, rate, label=label)
        rss_ax.plot(done, [s[2] / 1024 for s in samples], label=label)
    rate_ax.set_ylabel("rows/s (cumulative)")
    rate_ax.legend()
    rate_ax.grid(alpha=0.3)
    rss_ax.set_ylabel("RSS (MB)")
    rss_ax.set_xlabel("rows synced")
    rss_ax.grid(alpha=0.3)
    load = result.get("load", {})
    fig.suptitle(
        f"First sync of {first['measured']['rows']:,} rows (load {load.get('1m', '?')} "
        f"on {load.get('cpus', '?')} CPUs)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
