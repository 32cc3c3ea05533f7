"""The sync state machine, the connector's retry rules, watches, the size budget and
encryption at rest: client behaviour that needs no server."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pysync.gateway import InvalidInput, PermissionDenied, Unauthorized, Unavailable
from pysync.sync import SyncCache, WrongKey
from pysync.sync.connector import Connector, retryable
from pysync.sync.protocol import (
    Checksums,
    ChecksumsCompared,
    Connectivity,
    Done,
    Failed,
    Fatal,
    Nudged,
    Pull,
    Pulled,
    Push,
    Pushed,
    RetryAfter,
    SyncMachine,
    SyncRequested,
    TimerFired,
)
from pysync.sync.wire import parse_pull, parse_schema
from tests.sync_fixtures import CONV, COURSE, SCHEMA, bucket, msg, page

A = "a0000000-0000-4000-8000-00000000000a"


def machine() -> SyncMachine:
    return SyncMachine(base_delay=1.0, max_delay=60.0, random=lambda: 0.5)


def test_sync_pushes_everything_then_pulls_until_no_more() -> None:
    m = machine()
    assert m.handle(SyncRequested()) == [Push()]
    assert m.handle(Pushed(more=True)) == [Push()]
    assert m.handle(Pushed(more=False)) == [Pull()]
    assert m.handle(Pulled(has_more=True)) == [Pull()]
    assert m.handle(Pulled(has_more=False)) == [Done("sync")]
    assert not m.busy


def test_pull_only_skips_the_push_and_push_only_skips_the_pull() -> None:
    m = machine()
    assert m.handle(SyncRequested(mode="pull")) == [Pull()]
    assert m.handle(Pulled(has_more=False)) == [Done("pull")]
    assert m.handle(SyncRequested(mode="push")) == [Push()]
    assert m.handle(Pushed(more=False)) == [Done("push")]


def test_reconcile_compares_checksums_and_repairs_mismatches_once() -> None:
    m = machine()
    m.handle(SyncRequested(mode="reconcile"))
    m.handle(Pushed(more=False))
    assert m.handle(Pulled(has_more=False)) == [Checksums()]
    bad = frozenset({f"messages:{CONV}"})
    assert m.handle(ChecksumsCompared(bad)) == [Pull(repair=bad)]
    assert m.handle(Pulled(has_more=False)) == [Done("reconcile")]


def test_requests_during_a_sync_are_merged_into_one_follow_up() -> None:
    m = machine()
    m.handle(SyncRequested())
    assert m.handle(Nudged(f"messages:{CONV}")) == []
    assert m.handle(SyncRequested(mode="push")) == []
    m.handle(Pushed(more=False))
    assert m.handle(Pulled(has_more=False)) == [Done("sync"), Push()]


def test_retryable_failure_backs_off_exponentially_with_jitter_then_retries() -> None:
    m = machine()
    m.handle(SyncRequested())
    assert m.handle(Failed("57P01", "down", retryable=True)) == [RetryAfter(0.75, 1)]
    assert m.handle(TimerFired()) == [Push()]
    assert m.handle(Failed(None, "timeout", retryable=True)) == [RetryAfter(1.5, 2)]
    m.handle(TimerFired())
    m.handle(Pushed(more=False))
    assert m.handle(Pulled(has_more=False)) == [Done("sync")]
    assert m.attempt == 0


def test_fatal_sqlstate_stops_without_retry() -> None:
    m = machine()
    m.handle(SyncRequested())
    assert m.handle(Failed("22023", "bad request", retryable=True)) == [
        Fatal("22023", "bad request")
    ]
    assert not m.busy


def test_offline_waits_and_connectivity_resumes_the_sync() -> None:
    m = machine()
    m.handle(SyncRequested())
    assert m.handle(Connectivity(online=False)) == []
    assert m.handle(SyncRequested()) == []
    assert m.handle(Connectivity(online=True)) == [Push()]


def test_fatal_versus_retryable_by_sqlstate() -> None:
    assert not retryable(InvalidInput("x", code="22P02"))
    assert not retryable(InvalidInput("x", code="23505"))
    assert not retryable(PermissionDenied("x", code="42501"))
    assert retryable(Unavailable("x", code="40001"))
    assert retryable(Unauthorized("expired", code="PGRST301"))  # a fresh token may pass
    assert retryable(ConnectionResetError())


class FlakyClient:
    """A client whose gateway fails twice; counts how many gateways (tokens) were made."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.gateways = 0

    @property
    def gateway(self) -> Any:
        self.gateways += 1
        outer = self

        class Gateway:
            def rpc(self, function: str, args: Any = None, *, read_only: bool = False) -> Any:
                if outer.failures:
                    raise outer.failures.pop(0)
                return SCHEMA

        return Gateway()


def test_connector_retries_with_a_fresh_gateway_each_attempt() -> None:
    client = FlakyClient([Unavailable("down", code="57P01"), Unauthorized("exp", code="PGRST301")])
    waits: list[float] = []
    schema, _ = Connector(client, sleep=waits.append).schema()
    assert schema.hash == "h1"
    assert client.gateways == 3 and len(waits) == 2


def test_connector_does_not_retry_a_fatal_error() -> None:
    client = FlakyClient([PermissionDenied("no", code="42501")])
    with pytest.raises(PermissionDenied):
        Connector(client, sleep=lambda _: None).schema()
    assert client.gateways == 1


# -- the cache without a server ---------------------------------------------------------------


def opened(tmp_path: Path, **kw: Any) -> SyncCache:
    return SyncCache.open(FlakyClient([]), tmp_path / "cache.db", **kw)


def test_watch_fires_on_local_writes_and_applied_pulls_of_the_tables_it_reads(
    tmp_path: Path,
) -> None:
    cache = opened(tmp_path)
    seen: list[list[dict[str, Any]]] = []
    handle = cache.watch("select body from messages order by body", (), seen.append)
    assert seen == [[]]
    cache.storage.apply_page({}, parse_pull(page(bucket("messages", CONV, [msg(A, "pulled")]))))
    cache.insert("messages", {"conversation_id": CONV, "sender_id": A, "body": "local"})
    # A write to another table does not re-run it.
    cache.storage.apply_page(
        {},
        parse_pull(
            page(
                bucket(
                    "course_content",
                    COURSE,
                    [{"id": A, "course_id": COURSE, "title": "t", "version": 1}],
                )
            )
        ),
    )
    assert seen[1:] == [[{"body": "pulled"}], [{"body": "local"}, {"body": "pulled"}]]
    handle.close()
    cache.update("messages", A, {"body": "quiet"})
    assert len(seen) == 3
    cache.close()


def test_size_budget_evicts_expired_then_least_recently_used_on_demand_buckets(
    tmp_path: Path,
) -> None:
    now = [1000.0]
    cache = opened(tmp_path, size_budget_rows=3)
    cache._now = lambda: now[0]
    keys = [f"9a1b0000-0000-4000-8000-00000000000{i}" for i in range(3)]
    cache.subscribe("course_preview", keys[0], ttl=10)  # expires first
    cache.subscribe("course_preview", keys[1], ttl=1000)
    cache.subscribe("course_preview", keys[2], ttl=1000)

    def rows(key: str, n: int) -> list[dict[str, Any]]:
        return [
            {"id": f"{key}-{i}", "course_id": key, "title": "t", "version": 1} for i in range(n)
        ]

    cache.storage.apply_page(
        {},
        parse_pull(
            page(
                *(bucket("course_content", k, rows(k, 2)) for k in keys),
                bucket("messages", CONV, [msg(A, "auto")]),
            )
        ),
        now=now[0],
    )
    cache.storage.touch_bucket(f"course_content:{keys[1]}", 1)  # least recently used
    cache.storage.touch_bucket(f"course_content:{keys[2]}", 900)
    now[0] = 1500.0
    cache._evict()
    held = set(cache.held_buckets())
    assert held == {f"course_content:{keys[2]}", f"messages:{CONV}"}
    assert [s["key"] for s in cache.storage.subscriptions(now[0])] == [keys[2]]
    cache.close()


def test_status_reports_pending_ops_and_stream_progress(tmp_path: Path) -> None:
    cache = opened(tmp_path)
    cache.storage.apply_page({}, parse_pull(page(bucket("messages", CONV, [msg(A, "x")]))))
    cache.update("messages", A, {"body": "y"})
    status = cache.status()
    assert status.pending_ops == 1 and status.oldest_pending_age is not None
    assert status.streams["my_messages"].rows == 1
    assert status.streams["my_messages"].fraction == 1.0
    assert status.tables["messages"] == 1
    cache.close()


def test_encrypted_cache_opens_with_its_key_only(tmp_path: Path) -> None:
    pytest.importorskip("sqlcipher3", reason="sqlcipher3-binary is not installed")
    path = tmp_path / "secret.db"
    cache = SyncCache.open(FlakyClient([]), path, encryption_key="right key")
    cache.storage.apply_page({}, parse_pull(page(bucket("messages", CONV, [msg(A, "secret")]))))
    cache.close()
    assert b"SQLite format 3" not in path.read_bytes()[:16]
    assert b"secret" not in path.read_bytes()
    with pytest.raises(WrongKey):
        SyncCache.open(FlakyClient([]), path, encryption_key="wrong key")
    with pytest.raises(WrongKey):
        SyncCache.open(FlakyClient([]), path)
    with SyncCache.open(FlakyClient([]), path, encryption_key="right key") as again:
        assert again.get("messages", A)["body"] == "secret"  # type: ignore[index]


def test_plain_cache_is_plain_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    opened(tmp_path).close()
    with sqlite3.connect(tmp_path / "cache.db") as conn:
        assert conn.execute(
            "select value from _sync_meta where key = 'schema_hash'"
        ).fetchone() == ("h1",)
    assert not path.exists()
    assert parse_schema(SCHEMA).table("messages") is not None
