"""Network faults between the sync client and the database (issue 10, Faults): a proxy on
loopback (tests/fault_proxy.py) in front of the test cluster, and the client's
``PostgresGateway`` (logged in as ``authenticator``, as PostgREST would be) pointed at it.

Proved: the engine retries through dropped requests and lost responses, applies each op
exactly once (the server's ledger: one stored result per op, one row per message, replays
marked), the queue drains once the fault clears, a delayed link only costs time, and a sync
under a permanent fault fails with a clear :class:`SyncError` and ``status.last_error`` in a
bounded time instead of hanging."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pysync.client import Client, _as_authenticator
from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway import PostgresGateway
from pysync.sync import SyncCache, SyncError
from pysync.sync.connector import Connector
from tests.fault_proxy import FaultProxy
from tests.sync_world import RefPuller, SyncWorld


@pytest.fixture(scope="module")
def world(app_url: str) -> Iterator[SyncWorld]:
    made = SyncWorld(app_url)
    yield made
    made.close()


@pytest.fixture
def proxy(app_url: str) -> Iterator[FaultProxy]:
    params = conninfo_to_dict(app_url)
    made = FaultProxy(str(params["host"]), int(str(params["port"])))
    yield made
    made.close()


class Recording(Connector):
    """A connector that keeps every raw RPC answer (to see replays)."""

    def __init__(self, client: Any, **options: Any) -> None:
        super().__init__(client, **options)
        self.answers: list[tuple[str, Any]] = []

    def _call(
        self, function: str, args: Mapping[str, Any] | None, *, read_only: bool, **where: Any
    ) -> Any:
        answer = super()._call(function, args, read_only=read_only, **where)
        self.answers.append((function, answer))
        return answer


@pytest.fixture
def setup(
    world: SyncWorld, proxy: FaultProxy, app_url: str, tmp_path: Path
) -> Iterator[tuple[Any, str, SyncCache, Recording]]:
    tutor, student = world.user("tutor"), world.user("student")
    conversation = str(world.client(student).conversations.start_direct(tutor.id).id)
    params = {k: v for k, v in conninfo_to_dict(app_url).items() if v is not None}
    params.update(host="127.0.0.1", port=str(proxy.port), connect_timeout="2")
    gateway = PostgresGateway.connect(
        _as_authenticator(make_conninfo("", **params)),
        jwt_secret=LOCAL_JWT_SECRET,
        max_size=2,
        timeout=1.0,  # how long a call waits for a connection: bounds a sync under a partition
    )
    client = Client.for_token(gateway, world.auth.session_for(student).access_token)
    connector = Recording(client, attempts=4, wait_initial=0.01, wait_max=0.05)
    cache = SyncCache.open(client, tmp_path / "net.db", connector=connector)
    try:
        cache.sync()
        yield student, conversation, cache, connector
    finally:
        cache.close()
        gateway.close()


def queue(cache: SyncCache, student: Any, conversation: str, n: int, tag: str) -> list[str]:
    return [
        cache.insert(
            "messages",
            {"conversation_id": conversation, "sender_id": student.id, "body": f"{tag} {i}"},
        )
        for i in range(n)
    ]


def assert_applied_once(world: SyncWorld, cache: SyncCache, student: Any, ids: list[str]) -> None:
    """The ledger: each message once on the server, one stored result per op id of the
    cache's client, all applied, and nothing pending or dead."""
    rows = world.sql(
        "select id::text, count(*) from public.messages where id = any(%s::uuid[]) group by 1",
        ids,
    )
    assert sorted(rows) == sorted((i, 1) for i in ids)
    results = world.sql(
        "select op_id, count(*), min(result ->> 'status'), max(result ->> 'status')"
        " from private.sync_push_results where user_id = %s and client_id = %s group by 1",
        student.id,
        cache.client_id,
    )
    assert {(n, low, high) for _, n, low, high in results} == {(1, "applied", "applied")}
    assert len(results) >= len(ids)
    status = cache.status()
    assert status.pending_ops == 0 and status.dead_letters == 0


def pushes(connector: Recording) -> list[Any]:
    return [answer for function, answer in connector.answers if function == "sync_push"]


def test_lost_response_after_commit_is_retried_and_replayed_not_reapplied(
    world: SyncWorld, proxy: FaultProxy, setup: tuple[Any, str, SyncCache, Recording]
) -> None:
    student, conversation, cache, connector = setup
    ids = queue(cache, student, conversation, 5, "cut")
    proxy.arm("cut_after_commit")
    cache.sync()  # the connector's retry gets the stored results
    assert proxy.fired["cut_after_commit"] == 1
    (answer,) = pushes(connector)  # the cut attempt never produced an answer
    assert [r.get("replayed") for r in answer["results"]] == [True] * 5
    assert_applied_once(world, cache, student, ids)


def test_request_dropped_before_the_server_is_retried_and_applied_once(
    world: SyncWorld, proxy: FaultProxy, setup: tuple[Any, str, SyncCache, Recording]
) -> None:
    student, conversation, cache, connector = setup
    ids = queue(cache, student, conversation, 3, "drop")
    proxy.arm("drop", times=2)
    cache.sync()
    assert proxy.fired["drop"] == 2
    (answer,) = pushes(connector)
    assert [r.get("replayed") for r in answer["results"]] == [None] * 3  # first delivery
    assert_applied_once(world, cache, student, ids)


def test_pull_cut_mid_response_is_retried(
    world: SyncWorld, proxy: FaultProxy, setup: tuple[Any, str, SyncCache, Recording]
) -> None:
    student, conversation, cache, _ = setup
    other = world.client(student).messages.send(conversation, "from elsewhere")
    proxy.arm("cut_after_commit", match=b"sync_pull", times=2)
    proxy.arm("drop", match=b"sync_pull", times=1)
    cache.sync()
    assert proxy.fired == {"drop": 1, "cut_after_commit": 2}
    assert cache.get("messages", str(other.id)) is not None


def test_delayed_link_only_costs_time(
    world: SyncWorld, proxy: FaultProxy, setup: tuple[Any, str, SyncCache, Recording]
) -> None:
    student, conversation, cache, _ = setup
    ids = queue(cache, student, conversation, 3, "slow")
    proxy.delay = 0.05
    started = time.monotonic()
    cache.sync()
    assert time.monotonic() - started >= 0.1  # at least a push and a pull answer, delayed
    assert_applied_once(world, cache, student, ids)


def test_permanent_partition_fails_clearly_then_the_queue_drains(
    world: SyncWorld, proxy: FaultProxy, setup: tuple[Any, str, SyncCache, Recording]
) -> None:
    student, conversation, cache, _ = setup
    ids = queue(cache, student, conversation, 4, "partition")
    proxy.refuse = True
    proxy.sever_all()
    started = time.monotonic()
    with pytest.raises(SyncError, match="sync failed"):
        cache.sync()
    took = time.monotonic() - started
    assert took < 20, f"a sync under a partition took {took:.1f}s"
    status = cache.status()
    assert status.last_error and (
        "unreachable" in status.last_error or "connection" in status.last_error
    )
    assert not status.connected and status.pending_ops == 4
    assert cache.retry_in is not None
    assert world.sql("select count(*) from public.messages where id = any(%s::uuid[])", ids) == [
        (0,)
    ]
    proxy.heal()
    cache.sync()
    assert cache.status().last_error is None and cache.status().connected
    assert_applied_once(world, cache, student, ids)


def test_random_faults_never_lose_or_duplicate_an_op_and_the_cache_converges(
    world: SyncWorld, proxy: FaultProxy, setup: tuple[Any, str, SyncCache, Recording]
) -> None:
    """30 rounds: queue writes, arm a random mix of faults, sync (it may fail: the queue
    waits). Then heal: one sync drains everything, each op applied once, and the cache equals
    what the reference puller gets for the user."""
    student, conversation, cache, _ = setup
    rng = random.Random(10)
    ids: list[str] = []
    failures = 0
    for round_ in range(30):
        ids += queue(cache, student, conversation, rng.randint(1, 4), f"chaos {round_}")
        mine = cache.query("select id from messages where sender_id = ?", (student.id,))
        cache.update("messages", rng.choice(mine)["id"], {"body": f"edited {round_}"})
        for _ in range(rng.randint(0, 3)):
            fault = rng.choice(["drop", "cut_after_commit"])
            proxy.arm(
                fault, match=rng.choice([b"sync_push", b"sync_pull"]), times=rng.randint(1, 5)
            )
        proxy.delay = rng.choice([0.0, 0.0, 0.01])
        try:
            cache.sync()
        except SyncError:
            failures += 1
        proxy.heal()
    cache.sync()
    assert sum(proxy.fired.values()) > 10
    assert_applied_once(world, cache, student, ids)
    reference = RefPuller(world.gateway(student))
    reference.pull()
    for table, rows in reference.rows.items():
        local = {r["id"]: r["version"] for r in cache.query(f"select id, version from {table}")}  # noqa: S608
        assert local == {i: r["version"] for i, r in rows.items()}, table
    print(f"\nnetwork chaos: {proxy.fired}, {failures} of 30 syncs failed and were retried later")
