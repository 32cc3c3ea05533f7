"""The SQLite sync client against the real sync server (the embedded database, through the
gateway as each user): round trips, convergence of two caches, exactly-once pushes after a
lost response, rejections to dead letters, conflicts and reconcile."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pysync.gateway import Unavailable
from pysync.sync import DeadLetter, SyncCache, SyncError, UnknownTable
from pysync.sync import storage as storage_module
from pysync.sync.connector import Connector
from pysync.sync.wire import PullRequest, PullResponse, PushOp, PushResponse
from tests.sync_world import ROUTES, SyncWorld, make_world


@pytest.fixture(scope="module", params=ROUTES)
def world(request: pytest.FixtureRequest, app_url: str) -> Iterator[SyncWorld]:
    made = make_world(request, app_url)
    yield made
    made.close()


@pytest.fixture
def chat(world: SyncWorld) -> tuple[Any, Any, str]:
    tutor, student = world.user("tutor"), world.user("student")
    conversation = world.client(student).conversations.start_direct(tutor.id).id
    return tutor, student, str(conversation)


def server_body(world: SyncWorld, message_id: str) -> list[tuple[Any, ...]]:
    return world.sql("select body, version from public.messages where id = %s", message_id)


def test_insert_update_delete_round_trip(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    _, student, conversation = chat
    with SyncCache.open(world.client(student), tmp_path / "a.db") as cache:
        cache.sync()
        assert cache.get("conversations", conversation) is not None
        mid = cache.insert(
            "messages", {"conversation_id": conversation, "sender_id": student.id, "body": "hi"}
        )
        assert cache.status().pending_ops == 1
        cache.sync()
        assert server_body(world, mid) == [("hi", 1)]
        assert cache.get("messages", mid)["version"] == 1  # type: ignore[index]
        assert cache.status().pending_ops == 0
        cache.update("messages", mid, {"body": "edited"})
        cache.sync()
        assert server_body(world, mid) == [("edited", 2)]
        # Messages are soft-deleted (deleted_at): sync offers no delete on them, and the
        # cache refuses the write before queueing it.
        with pytest.raises(UnknownTable, match="may not delete 'messages'"):
            cache.delete("messages", mid)
        assert cache.get("messages", mid)["body"] == "edited"  # type: ignore[index]
        assert cache.status().pending_ops == 0
        device = cache.insert(
            "devices", {"user_id": student.id, "device_id": "phone-1", "platform": "ios"}
        )
        cache.sync()
        assert world.sql("select platform from public.devices where id = %s", device) == [("ios",)]
        cache.delete("devices", device)
        cache.sync()
        assert world.sql("select platform from public.devices where id = %s", device) == []
        assert cache.get("devices", device) is None
        status = cache.status()
        assert status.last_synced_at is not None and status.last_error is None
        assert status.dead_letters == 0
        assert status.connected and status.streams


def test_two_caches_of_one_user_converge(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    _, student, conversation = chat
    phone = SyncCache.open(world.client(student), tmp_path / "phone.db")
    laptop = SyncCache.open(world.client(student), tmp_path / "laptop.db")
    try:
        assert phone.client_id != laptop.client_id
        mid = phone.insert(
            "messages", {"conversation_id": conversation, "sender_id": student.id, "body": "one"}
        )
        phone.sync()
        laptop.sync()
        assert laptop.get("messages", mid)["body"] == "one"  # type: ignore[index]
        laptop.update("messages", mid, {"body": "two"})
        laptop.sync()
        phone.sync()
        assert phone.get("messages", mid)["body"] == "two"  # type: ignore[index]
        device = phone.insert(
            "devices", {"user_id": student.id, "device_id": "tablet", "platform": "android"}
        )
        phone.sync()
        laptop.sync()
        assert laptop.get("devices", device)["platform"] == "android"  # type: ignore[index]
        laptop.delete("devices", device)
        laptop.sync()
        phone.sync()
        assert phone.get("devices", device) is None
        query = "select id, body, version from messages order by id"
        assert phone.query(query) == laptop.query(query)
    finally:
        phone.close()
        laptop.close()


class LosesFirstResponse(Connector):
    """Pushes for real, then pretends the response never arrived (once)."""

    lost = 0

    def push(self, client_id: str, ops: Any) -> PushResponse:
        response = super().push(client_id, ops)
        if not self.lost:
            self.lost += 1
            raise Unavailable("connection reset after the request was sent")
        return response


def test_lost_response_push_applies_once(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    _, student, conversation = chat
    client = world.client(student)
    connector = LosesFirstResponse(client, attempts=1)
    with SyncCache.open(client, tmp_path / "c.db", connector=connector) as cache:
        mid = cache.insert(
            "messages", {"conversation_id": conversation, "sender_id": student.id, "body": "once"}
        )
        with pytest.raises(SyncError, match="retrying"):
            cache.sync()
        assert cache.retry_in is not None
        assert cache.status().pending_ops == 1
        cache.sync()  # sends the same op ids again: the server replays its stored result
        assert cache.status().pending_ops == 0
        assert world.sql("select count(*) from public.messages where id = %s", mid) == [(1,)]


def test_rejected_op_goes_to_dead_letters_and_later_ops_apply(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    _, student, conversation = chat
    told: list[DeadLetter] = []
    with SyncCache.open(world.client(student), tmp_path / "d.db", on_rejected=told.append) as cache:
        too_long = cache.insert(
            "messages",
            {"conversation_id": conversation, "sender_id": student.id, "body": "x" * 5000},
        )
        cache.update("messages", too_long, {"body": "y" * 5000})  # depends on the insert
        fine = cache.insert(
            "messages", {"conversation_id": conversation, "sender_id": student.id, "body": "ok"}
        )
        cache.sync()
        letters = cache.dead_letters()
        assert [(d.row_id, d.kind, d.sqlstate) for d in letters] == [
            (too_long, "insert", "23514"),
            (too_long, "update", "23514"),
        ]
        assert letters[1].depends_on == letters[0].op_id
        assert [d.op_id for d in told] == [d.op_id for d in letters]
        assert cache.get("messages", too_long) is None  # never on the server: gone locally
        assert server_body(world, fine) == [("ok", 1)]
        assert cache.status().dead_letters == 2 and cache.status().pending_ops == 0

        cache.discard_dead_letter(letters[1].op_id)
        cache.retry_dead_letter(letters[0].op_id, data={**letters[0].data, "body": "short now"})
        cache.sync()
        assert cache.dead_letters() == []
        assert server_body(world, too_long) == [("short now", 1)]


def test_conflicting_edit_is_resolved_by_the_table_policy(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    _, student, conversation = chat
    a = SyncCache.open(
        world.client(student), tmp_path / "a.db", conflict_policies={"messages": "server_wins"}
    )
    b = SyncCache.open(world.client(student), tmp_path / "b.db")
    try:
        mid = a.insert(
            "messages", {"conversation_id": conversation, "sender_id": student.id, "body": "v1"}
        )
        a.sync()
        b.sync()
        b.update("messages", mid, {"body": "from b"})
        b.sync()
        a.update("messages", mid, {"body": "from a"})  # made on version 1: stale
        a.sync()
        assert server_body(world, mid) == [("from b", 2)]
        assert a.get("messages", mid)["body"] == "from b"  # type: ignore[index]
        assert a.status().pending_ops == 0
    finally:
        a.close()
        b.close()


def test_client_wins_pushes_again_on_the_server_version(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    _, student, conversation = chat
    seen: list[Any] = []
    a = SyncCache.open(
        world.client(student),
        tmp_path / "a.db",
        conflict_policies={"messages": "client_wins"},
        on_conflict=lambda ctx, decision: seen.append((ctx.server_version, decision)),
    )
    b = SyncCache.open(world.client(student), tmp_path / "b.db")
    try:
        mid = a.insert(
            "messages", {"conversation_id": conversation, "sender_id": student.id, "body": "v1"}
        )
        a.sync()
        b.sync()
        b.update("messages", mid, {"body": "from b"})
        b.sync()
        a.update("messages", mid, {"body": "from a"})
        a.sync()
        assert seen == [(2, {"body": "from a"})]
        assert server_body(world, mid) == [("from a", 3)]
        assert a.get("messages", mid)["version"] == 3  # type: ignore[index]
    finally:
        a.close()
        b.close()


def test_reconcile_repairs_a_bucket_whose_checksum_differs(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    _, student, conversation = chat
    with SyncCache.open(world.client(student), tmp_path / "r.db") as cache:
        mid = cache.insert(
            "messages", {"conversation_id": conversation, "sender_id": student.id, "body": "r"}
        )
        cache.sync()
        cache.reconcile()  # nothing differs
        # Damage the cache behind the protocol's back: a stray row and a wrong version.
        with cache.storage.transaction():
            cache.storage.put_row(
                "messages",
                {
                    "id": str(uuid.uuid4()),
                    "conversation_id": conversation,
                    "body": "ghost",
                    "sender_id": student.id,
                    "version": 1,
                },
            )
            cache.storage.set_row_version("messages", mid, 9)
        cache.reconcile()
        rows = cache.query("select body, version from messages order by body")
        assert rows == [{"body": "r", "version": 1}]


def test_push_batch_is_ordered_by_priority(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    _, student, conversation = chat
    sent: list[list[PushOp]] = []

    class Recording(Connector):
        def push(self, client_id: str, ops: Any) -> PushResponse:
            sent.append(list(ops))
            return super().push(client_id, ops)

    client = world.client(student)
    with SyncCache.open(client, tmp_path / "p.db", connector=Recording(client)) as cache:
        for body, priority in [("bg", "background"), ("n", "normal"), ("c", "critical")]:
            cache.insert(
                "messages",
                {"conversation_id": conversation, "sender_id": student.id, "body": body},
                priority=priority,
            )
        cache.push()
        assert [op.priority for op in sent[0]] == ["critical", "normal", "background"]


def test_one_cache_file_cannot_be_opened_twice(world: SyncWorld, tmp_path: Path) -> None:
    from pysync.sync import CacheLocked

    user = world.user("student")
    with SyncCache.open(world.client(user), tmp_path / "x.db"), pytest.raises(CacheLocked):
        SyncCache.open(world.client(user), tmp_path / "x.db")


def test_subscription_brings_a_bucket_and_unsubscribe_drops_it(
    world: SyncWorld, tmp_path: Path
) -> None:
    tutor, student = world.user("tutor"), world.user("student")
    course = world.course(tutor, lessons=0)
    preview = world.lesson(course, 0, preview=True)
    with SyncCache.open(world.client(student), tmp_path / "s.db") as cache:
        cache.subscribe("course_preview", course)
        cache.sync()
        assert cache.get("course_content", preview) is not None
        assert f"course_content:{course}" in cache.held_buckets()
        assert cache.status().streams["course_preview"].rows == 1
        cache.reconcile()  # the on-demand bucket survives checksums (subscriptions are sent)
        assert cache.get("course_content", preview) is not None
        cache.unsubscribe("course_preview", course)
        cache.sync()
        assert cache.get("course_content", preview) is None
        assert f"course_content:{course}" not in cache.held_buckets()


def test_nudges_are_throttled_not_debounced(world: SyncWorld, tmp_path: Path) -> None:
    """The first nudge after a quiet spell syncs at once; a burst within ``min_interval`` of
    that sync's start joins one sync at the end of the window instead of one each."""
    import time

    from pysync.sync import Triggers

    student = world.user("student")
    with SyncCache.open(world.client(student), tmp_path / "t.db") as cache:
        triggers = Triggers(cache, period=3600, min_interval=30.0)
        try:
            # Timed from the nudge to the run's start: reading ``next_run_in`` right after the
            # nudge raced the timer thread, which may already have started the run (then
            # nothing is due and it reads None).
            nudged = time.monotonic()
            triggers.nudge("notifications:x")
            deadline = nudged + 20
            while triggers.runs < 1:
                assert time.monotonic() < deadline, "the first nudge did not sync"
                time.sleep(0.01)
            assert time.monotonic() - nudged < 1.0  # at once, not after a delay
            for _ in range(10):
                triggers.nudge("notifications:x")
            later = triggers.next_run_in
            assert later is not None and later > 10.0  # the window's end, one run for all ten
            assert triggers.runs == 1
        finally:
            triggers.close()


def test_nudge_on_a_held_bucket_triggers_a_pull(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    import time

    from pysync.sync import PgNudges, Triggers

    tutor, student, conversation = chat
    with SyncCache.open(world.client(student), tmp_path / "n.db") as cache:
        triggers = Triggers(
            cache,
            period=3600,
            min_interval=0.05,
            nudges=lambda cb: PgNudges(world.url, cb, poll=0.05),
        )
        try:
            triggers.start()
            deadline = time.monotonic() + 10
            while triggers.runs < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # the listener subscribes after the first run
            sent = world.client(tutor).messages.send(conversation, "ping")
            while cache.storage.get_row("messages", str(sent.id)) is None:
                assert time.monotonic() < deadline, "the nudge did not bring the message"
                time.sleep(0.05)
            assert triggers.runs >= 2
        finally:
            triggers.close()


class ShiftedClock(Connector):
    """The real server's pages, their ``server_time`` moved to ``shift`` seconds from now."""

    shift = 0.0

    def pull(self, request: PullRequest) -> PullResponse:
        response = super().pull(request)
        return replace(response, server_time=datetime.now(UTC) + timedelta(seconds=self.shift))


def test_the_clock_offset_is_rewritten_only_when_it_moves(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    """Every pull measures the server clock's offset; the file's copy (which dates ops for
    last-write-wins after a restart) is rewritten only when it moved by more than ten
    milliseconds, while the cache itself uses the latest."""
    _, student, _ = chat
    path = tmp_path / "a.db"

    def stored() -> float:
        with closing(sqlite3.connect(path)) as other:
            row = other.execute("SELECT value FROM _sync_meta WHERE key = 'clock_offset'")
            return float(row.fetchone()[0])

    client = world.client(student)
    connector = ShiftedClock(client)
    with SyncCache.open(client, path, connector=connector) as cache:
        connector.shift = 100.0
        cache.pull()
        first = stored()
        assert first == pytest.approx(100.0, abs=0.5)
        connector.shift = 100.004
        cache.pull()
        assert stored() == first  # moved by about 4 ms: not rewritten
        assert cache.status().clock_offset == pytest.approx(100.004, abs=0.003)
        assert cache.status().clock_offset != first
        connector.shift = 101.0
        cache.pull()
        assert stored() == pytest.approx(101.0, abs=0.5)
    with SyncCache.open(client, path, connector=connector) as reopened:
        assert reopened.status().clock_offset == stored()


def _cursors_and_token(path: Path) -> tuple[dict[str, str | None], str | None]:
    """Every bucket's cursor and the resolution token, as the file has them."""
    with closing(sqlite3.connect(path)) as other:
        cursors = dict(other.execute("SELECT bucket, cursor FROM _sync_buckets").fetchall())
        token = other.execute("SELECT value FROM _sync_meta WHERE key = 'resolution'").fetchone()
    return cursors, None if token is None else token[0]


def test_a_pull_that_finds_nothing_writes_nothing_and_a_crash_loses_nothing(
    world: SyncWorld,
    chat: tuple[Any, Any, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pull in which nothing changed writes neither its cursors nor its token to the file
    (they stay in memory, ``Storage.keep_unchanged``; the interval after which they are
    written anyway is the storage tests' concern, so it is out of the way here). A copy of the
    file taken then, as a crash would leave it, holds the older cursors: a cache opened on it
    pulls the next change all the same, and the cache that closes writes what it kept."""
    monkeypatch.setattr(storage_module, "KEEP_UNCHANGED_SECONDS", 3600.0)
    tutor, student, conversation = chat
    path = tmp_path / "a.db"
    with SyncCache.open(world.client(student), path) as cache:
        cache.sync()
        cache.pull()  # the first pull after a change writes; from here nothing changes
        on_file = _cursors_and_token(path)
        for _ in range(3):
            world.sql("select pg_current_xact_id()")  # another transaction: a new snapshot
            before = datetime.now(UTC)
            cache.pull()
        assert _cursors_and_token(path) == on_file
        sent = {name: r.state.cursor for name, r in cache.storage.buckets().items()}
        assert sent != on_file[0], "the next request sends the newer cursors"
        crashed = tmp_path / "crashed.db"
        for suffix in ("", "-wal"):
            source = Path(f"{path}{suffix}")
            if source.exists():
                Path(f"{crashed}{suffix}").write_bytes(source.read_bytes())
        synced_at = cache.status().last_synced_at
        assert synced_at is not None and before <= synced_at <= datetime.now(UTC)
    assert _cursors_and_token(path)[0] == sent, "close wrote the kept cursors"
    message = world.client(tutor).messages.send(conversation, "after the crash")
    with SyncCache.open(world.client(student), crashed) as survivor:
        assert survivor.get("messages", str(message.id)) is None
        survivor.pull()
        assert survivor.get("messages", str(message.id))["body"] == "after the crash"  # type: ignore[index]
