"""What the gateway costs: a primary-key read through ``PostgresGateway`` versus the same read
with bare psycopg, measured in the same run on the same embedded cluster.

The gateway call verifies a JWT, replays PostgREST's context (one ``set_config`` statement),
evaluates the row level security policy as ``authenticated`` and returns PostgreSQL's JSON;
the bare call is one ``select`` on an autocommit connection as the table's owner. Both use a
one-connection psycopg pool, and the calls alternate so drift affects both alike. Everything
happens in a scratch database that is dropped afterwards.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from pysync.auth import LocalAuth
from pysync.gateway import PostgresGateway, eq
from pysync.localdb import LocalDatabase

__all__ = ["TARGET_RATIO", "GatewayBenchResult", "Timing", "run_gateway_bench"]

#: The gateway should cost at most this many times a bare query.
TARGET_RATIO = 2.0
TABLE = "bench_items"

_SETUP = """
create table public.bench_items (
    id bigint primary key,
    owner uuid not null,
    title text not null,
    body text,
    created_at timestamptz not null default now()
);
alter table public.bench_items enable row level security;
create policy "Owners can read their items" on public.bench_items
    for select to authenticated using (owner = (select auth.uid()));
create index bench_items_owner_idx on public.bench_items (owner);
"""
_FILL = """
insert into public.bench_items (id, owner, title, body)
select n, %s, 'item ' || n, repeat('x', 100) from generate_series(1, %s) n
"""
_BARE = "select * from public.bench_items where id = %s"


@dataclass(frozen=True)
class Timing:
    """Per-call latency in milliseconds."""

    p50_ms: float
    p95_ms: float
    mean_ms: float

    @classmethod
    def of(cls, samples_ns: list[int]) -> Timing:
        ms = [sample / 1e6 for sample in samples_ns]
        p95 = statistics.quantiles(ms, n=20, method="inclusive")[18] if len(ms) > 1 else ms[0]
        return cls(statistics.median(ms), p95, statistics.fmean(ms))

    def as_dict(self) -> dict[str, float]:
        return {"p50_ms": self.p50_ms, "p95_ms": self.p95_ms, "mean_ms": self.mean_ms}


@dataclass(frozen=True)
class GatewayBenchResult:
    iterations: int
    rows: int
    gateway: Timing
    bare: Timing

    @property
    def ratio_p50(self) -> float:
        return self.gateway.p50_ms / self.bare.p50_ms

    @property
    def ratio_p95(self) -> float:
        return self.gateway.p95_ms / self.bare.p95_ms

    @property
    def within_target(self) -> bool:
        return self.ratio_p50 <= TARGET_RATIO

    def as_dict(self) -> dict[str, Any]:
        return {
            "iterations": self.iterations,
            "rows": self.rows,
            "gateway": self.gateway.as_dict(),
            "bare": self.bare.as_dict(),
            "ratio_p50": self.ratio_p50,
            "ratio_p95": self.ratio_p95,
            "target_ratio": TARGET_RATIO,
            "within_target": self.within_target,
        }


def _timed(call: Callable[[int], None], key: int) -> int:
    started = time.perf_counter_ns()
    call(key)
    return time.perf_counter_ns() - started


def run_gateway_bench(
    local: LocalDatabase,
    *,
    iterations: int = 1000,
    rows: int = 10_000,
    warmup: int = 50,
    progress: Callable[[str], None] | None = None,
) -> GatewayBenchResult:
    """Measure ``iterations`` primary-key reads each way on a ``rows``-row table.

    ``local`` must be running; the scratch database is created from its template and dropped
    whatever happens.
    """
    if iterations < 1 or rows < 1:
        raise ValueError("iterations and rows must be positive")
    say = progress or (lambda _message: None)
    name = f"pysync_bench_{uuid.uuid4().hex[:10]}"
    url = local.create_database(name)
    try:
        auth = LocalAuth(url, jwt_secret=local.jwt_secret, bcrypt_cost=4)
        user = auth.create_user(f"bench-{uuid.uuid4().hex[:8]}@example.com")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(_SETUP.encode())
            conn.execute(_FILL, (user.id, rows))
            conn.execute("analyze public.bench_items")
        say(f"created {rows} rows in scratch database {name}")
        gateway = PostgresGateway.connect(
            local.url(name, user="authenticator"),
            jwt_secret=local.jwt_secret,
            min_size=1,
            max_size=1,
        ).as_identity(auth.identity(user))
        bare_pool: ConnectionPool[Any] = ConnectionPool(
            url, min_size=1, max_size=1, kwargs={"autocommit": True}, open=True
        )
        try:

            def through_gateway(key: int) -> None:
                gateway.select(TABLE, filters=[eq("id", key)], single=True)

            def bare(key: int) -> None:
                with bare_pool.connection() as conn:
                    conn.cursor(row_factory=dict_row).execute(_BARE, (key,)).fetchone()

            keys = [random.randint(1, rows) for _ in range(warmup + iterations)]
            for key in keys[:warmup]:
                through_gateway(key)
                bare(key)
            say(f"warmed up with {warmup} calls each; measuring {iterations}")
            gateway_ns: list[int] = []
            bare_ns: list[int] = []
            for key in keys[warmup:]:
                gateway_ns.append(_timed(through_gateway, key))
                bare_ns.append(_timed(bare, key))
        finally:
            gateway.close()
            bare_pool.close()
    finally:
        local.drop_database(name)
    return GatewayBenchResult(iterations, rows, Timing.of(gateway_ns), Timing.of(bare_ns))
