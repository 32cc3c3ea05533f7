"""What row level security costs on the perf world: the hot client queries as a signed-in
user through :class:`~pysync.gateway.PostgresGateway`, against the same queries as
``service_role`` (which bypasses RLS) with the policy replaced by an explicit filter.

Both sides go through identical gateways, so the ratio is the policies' cost alone (their
helpers, init plans and the plans they allow), not the gateway's. Each side has its own
one-connection pool, as PostgREST's pool mostly serves one role: on a shared connection every
switch between ``authenticated`` and ``service_role`` would make PostgreSQL re-plan the
prepared statement the two sides share (a plan that depends on RLS is tied to its role), a
cost production rarely pays. The calls interleave query by query, alternating which side goes
first, so drift in the machine affects both alike. Each iteration acts as the next of a few
picked users (who have enrollments, conversations, unread notifications, sessions this week).

With ``naive``, a scratch copy of the world gets the naive policy forms of
:mod:`pysync.bench._naive` and loses the policies' indexes, and the same queries run there
too, to show what the tuned forms buy.

Without ``db_url`` the perf world is loaded into a scratch database on the embedded cluster
and dropped afterwards; with it, the world must already be loaded there.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pysync.auth import mint_access_token
from pysync.bench._hot import QUERIES, HotQuery, Subject, week_bounds
from pysync.bench._naive import DROPPED_INDEXES, NAIVE_POLICIES
from pysync.bench._world import scratch_perf_world
from pysync.bench.gateway import Timing
from pysync.errors import PysyncError
from pysync.gateway import Gateway, Identity, PostgresGateway
from pysync.localdb import LocalDatabase

__all__ = [
    "MAX_P95_MS",
    "MAX_RATIO",
    "QueryFigures",
    "RlsBenchResult",
    "run_rls_bench",
]

#: Targets: a query as the user costs at most this many times the bypass (p95 against p95)…
MAX_RATIO = 1.5
#: … and its p95 stays under this many milliseconds.
MAX_P95_MS = 10.0
#: Users of each kind the iterations rotate through.
SUBJECTS = 8
#: At most this many measured calls of each naive query.
NAIVE_SAMPLES = 30


@dataclass(frozen=True)
class QueryFigures:
    name: str
    description: str
    rows: int
    rls: Timing
    bypass: Timing
    naive: Timing | None = None

    @property
    def ratio(self) -> float:
        """p95 as the user over p95 with RLS bypassed."""
        return self.rls.p95_ms / self.bypass.p95_ms

    @property
    def ratio_p50(self) -> float:
        return self.rls.p50_ms / self.bypass.p50_ms

    @property
    def within_target(self) -> bool:
        return self.ratio <= MAX_RATIO and self.rls.p95_ms <= MAX_P95_MS

    def as_dict(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "rows": self.rows,
            "p50_ms": round(self.rls.p50_ms, 3),
            "p95_ms": round(self.rls.p95_ms, 3),
            "bypass_p50_ms": round(self.bypass.p50_ms, 3),
            "bypass_p95_ms": round(self.bypass.p95_ms, 3),
            "ratio": round(self.ratio, 2),
            "ratio_p50": round(self.ratio_p50, 2),
            "within_target": self.within_target,
        }
        if self.naive is not None:
            figures["naive_p50_ms"] = round(self.naive.p50_ms, 3)
            figures["naive_p95_ms"] = round(self.naive.p95_ms, 3)
            figures["naive_ratio"] = round(self.naive.p95_ms / self.bypass.p95_ms, 2)
        return figures


@dataclass(frozen=True)
class RlsBenchResult:
    users: int
    iterations: int
    queries: list[QueryFigures]
    #: The world's load report when this run loaded it (``None`` with ``db_url``).
    seed: dict[str, Any] | None = None

    @property
    def within_target(self) -> bool:
        return all(q.within_target for q in self.queries)

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "iterations": self.iterations,
            "targets": {"ratio": MAX_RATIO, "p95_ms": MAX_P95_MS},
            "within_target": self.within_target,
            "queries": [q.as_dict() for q in self.queries],
            "seed": self.seed,
        }


# -- picking users with data ------------------------------------------------------------------

_STUDENTS = """
select p.id::text, u.email,
    (select e.course_id::text from public.enrollments as e
     join public.courses as c on c.id = e.course_id
     where e.student_id = p.id and e.status = 'active' and c.status = 'published'
       and c.visibility = 'public'
     order by e.course_id limit 1),
    (select cp.conversation_id::text from public.conversation_participants as cp
     join public.conversations as v on v.id = cp.conversation_id
     where cp.user_id = p.id
     order by v.kind = 'course' desc, v.last_message_at desc nulls last limit 1)
from public.profiles as p
join auth.users as u on u.id = p.id
where p.role = 'student' and p.deleted_at is null
    and exists (select 1 from public.submissions as s where s.student_id = p.id)
    and exists (
        select 1 from public.notifications as n where n.recipient_id = p.id and n.read_at is null
    )
    and exists (
        select 1 from public.conversation_participants as cp
        join public.messages as m on m.conversation_id = cp.conversation_id
        where cp.user_id = p.id
    )
    and exists (
        select 1 from public.enrollments as e join public.courses as c on c.id = e.course_id
        where e.student_id = p.id and e.status = 'active' and c.status = 'published'
            and c.visibility = 'public'
            and exists (select 1 from public.course_content as cc where cc.course_id = c.id)
    )
order by md5(p.id::text)
limit %s
"""

_TUTORS = """
select p.id::text, u.email
from public.profiles as p
join auth.users as u on u.id = p.id
where p.role = 'tutor' and p.deleted_at is null
    and exists (
        select 1 from public.tutoring_sessions as t
        where t.tutor_id = p.id and t.starts_at >= %s and t.starts_at < %s
    )
order by md5(p.id::text)
limit %s
"""


def pick_subjects(conn: psycopg.Connection[Any], count: int = SUBJECTS) -> list[Subject]:
    """Students and tutors who have rows for every hot query (read as the table owner)."""
    students = [
        Subject(user_id, email, "student", course_id=course, conversation_id=conversation)
        for user_id, email, course, conversation in conn.execute(_STUDENTS, (count,)).fetchall()
    ]
    monday, next_monday = week_bounds()
    tutors = [
        Subject(user_id, email, "tutor")
        for user_id, email in conn.execute(_TUTORS, (monday, next_monday, count)).fetchall()
    ]
    if not students or not tutors:
        raise PysyncError(
            "no perf world here (no student with enrollments, conversations and unread "
            "notifications, or no tutor with sessions this week): load one with "
            "`pysync seed perf` first"
        )
    return students + tutors


# -- scratch databases ------------------------------------------------------------------------


def _copy_database(local: LocalDatabase, source: str, target: str) -> str:
    """``target`` as a file copy of ``source`` (nobody may be connected to ``source``)."""
    with local.admin_connect() as conn:
        conn.execute(
            sql.SQL("create database {} template {} strategy file_copy").format(
                sql.Identifier(target), sql.Identifier(source)
            )
        )
    return local.url(target)


def make_naive(conn: psycopg.Connection[Any]) -> None:
    """Rewrite the hot tables' select policies to the naive forms and drop their indexes."""
    with conn.transaction():
        conn.execute(NAIVE_POLICIES.encode())
        for index in DROPPED_INDEXES:
            schema, name = index.split(".")
            conn.execute(sql.SQL("drop index {}").format(sql.Identifier(schema, name)))
    conn.execute("analyze")


# -- measuring --------------------------------------------------------------------------------


@contextmanager
def _no_gc() -> Iterator[None]:
    """No garbage collection while timing, as timeit does: a collection in the middle of a
    sub-millisecond call would land on one side at random and decide its p95."""
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _timed(call: Callable[[], object]) -> int:
    started = time.perf_counter_ns()
    call()
    return time.perf_counter_ns() - started


def _identities(secret: str, subjects: Sequence[Subject]) -> dict[str, Identity]:
    """Access tokens signed with the gateway's secret, as GoTrue would sign them (no rows
    written: the gateway verifies tokens itself, the database never sees a session)."""
    return {
        s.user_id: Identity.from_jwt(
            mint_access_token(secret, user_id=s.user_id, email=s.email, expires_in=6 * 3600)
        )
        for s in subjects
    }


def _gateway(url: str, secret: str) -> PostgresGateway:
    return PostgresGateway.connect(url, jwt_secret=secret, min_size=1, max_size=1)


def _check(query: HotQuery, as_user: list[Any], bypassed: list[Any], who: Subject) -> None:
    """The bypass must be an equivalent query (same rows) on rows that exist."""
    if not as_user:
        raise PysyncError(f"{query.name}: no rows for {who.email}; the picks have no data")
    if as_user != bypassed:
        raise PysyncError(
            f"{query.name}: the bypass filter is not equivalent to the policy for {who.email}"
            f" ({len(as_user)} rows as the user, {len(bypassed)} bypassed)"
        )


def measure(
    gateway: Gateway,
    bypass_gateway: Gateway,
    subjects: Sequence[Subject],
    identities: dict[str, Identity],
    *,
    iterations: int,
    warmup: int,
    naive: Gateway | None = None,
    queries: Sequence[HotQuery] = QUERIES,
    progress: Callable[[str], None] | None = None,
) -> list[QueryFigures]:
    """Time every query ``iterations`` times each way, interleaved, and at most
    :data:`NAIVE_SAMPLES` times on the naive copy."""
    say = progress or (lambda _message: None)
    bypass = bypass_gateway.as_identity(Identity.service_role())
    naive_bypass = naive.as_identity(Identity.service_role()) if naive else None
    cast = {kind: [s for s in subjects if s.role == kind] for kind in ("student", "tutor")}
    samples: dict[str, dict[str, list[int]]] = {
        q.name: {"rls": [], "bypass": [], "naive": []} for q in queries
    }
    rows: dict[str, int] = {}
    for query in queries:
        for who in cast[query.actor]:
            as_user = query.run(gateway.as_identity(identities[who.user_id]), who, False)
            _check(query, as_user, query.run(bypass, who, True), who)
            if naive is not None and naive_bypass is not None:
                naive_rows = query.run(naive.as_identity(identities[who.user_id]), who, False)
                _check(query, naive_rows, query.run(naive_bypass, who, True), who)
            rows[query.name] = len(as_user)
    say(f"checked {len(queries)} queries for {len(subjects)} users; warming up")
    # The naive forms can take a second a call: they are sampled on evenly spaced iterations.
    stride = max(1, iterations // NAIVE_SAMPLES)
    with _no_gc():
        for i in range(warmup + iterations):
            with_naive = i < min(warmup, 2) or (i >= warmup and (i - warmup) % stride == 0)
            for query in queries:
                who = cast[query.actor][i % len(cast[query.actor])]
                identity = identities[who.user_id]
                sides: list[tuple[str, Callable[[], object]]] = [
                    ("rls", partial(query.run, gateway.as_identity(identity), who, False)),
                    ("bypass", partial(query.run, bypass, who, True)),
                ]
                if naive is not None and with_naive:
                    naive_user = naive.as_identity(identity)
                    sides.append(("naive", partial(query.run, naive_user, who, False)))
                if i % 2:
                    sides.reverse()
                for side, call in sides:
                    elapsed = _timed(call)
                    if i >= warmup:
                        samples[query.name][side].append(elapsed)
            if i + 1 == warmup:
                say(f"measuring {iterations} iterations of {len(queries)} queries")
    return [
        QueryFigures(
            q.name,
            q.description,
            rows[q.name],
            Timing.of(samples[q.name]["rls"]),
            Timing.of(samples[q.name]["bypass"]),
            Timing.of(samples[q.name]["naive"]) if naive is not None else None,
        )
        for q in queries
    ]


def run_rls_bench(
    local: LocalDatabase | None,
    *,
    db_url: str | None = None,
    jwt_secret: str | None = None,
    users: int = 100_000,
    iterations: int = 1000,
    warmup: int = 50,
    naive: bool = False,
    migrations_dir: Path | None = None,
    policies_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> RlsBenchResult:
    """Load the perf world (unless ``db_url``), pick users, measure, drop what was made.

    ``local`` must be running unless ``db_url`` is given; a scratch world is built from
    ``migrations_dir`` and ``policies_dir``.
    """
    if iterations < 1 or warmup < 0:
        raise ValueError("iterations must be positive and warmup not negative")
    say = progress or (lambda _message: None)
    if db_url is not None and naive:
        raise PysyncError(
            "--naive rewrites policies in a scratch copy of the world, which only the "
            "embedded database makes: drop --db-url"
        )
    if local is None and db_url is None:
        raise ValueError("pass the embedded database or a db_url")
    secret = jwt_secret or (local.jwt_secret if local is not None else None)
    if not secret:
        raise ValueError("a JWT secret is needed to sign the users' tokens")
    suffix = uuid.uuid4().hex[:10]
    seed_report: dict[str, Any] | None = None
    with ExitStack() as stack:
        if db_url is None:
            assert local is not None
            name = f"pysync_bench_rls_{suffix}"
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
            seed_report = report.as_dict()
            gateway_url = local.url(name, user="authenticator")
            naive_url: str | None = None
            if naive:
                naive_name = f"{name}_naive"
                stack.callback(local.drop_database, naive_name)
                _copy_database(local, name, naive_name)
                with psycopg.connect(local.url(naive_name), autocommit=True) as conn:
                    make_naive(conn)
                naive_url = local.url(naive_name, user="authenticator")
                say(f"naive copy {naive_name}: policies rewritten, policy indexes dropped")
        else:
            url = gateway_url = db_url
            naive_url = None
        with psycopg.connect(url, autocommit=True) as conn:
            subjects = pick_subjects(conn)
            world_users = conn.execute("select count(*) from auth.users").fetchone()
        identities = _identities(secret, subjects)
        gateway = stack.enter_context(_gateway(gateway_url, secret))
        bypass_gateway = stack.enter_context(_gateway(gateway_url, secret))
        naive_gateway = stack.enter_context(_gateway(naive_url, secret)) if naive_url else None
        figures = measure(
            gateway,
            bypass_gateway,
            subjects,
            identities,
            iterations=iterations,
            warmup=warmup,
            naive=naive_gateway,
            progress=say,
        )
    return RlsBenchResult(
        users=int(world_users[0]) if world_users else users,
        iterations=iterations,
        queries=figures,
        seed=seed_report,
    )
