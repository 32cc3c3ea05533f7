"""Sync with pulls on a real streaming hot standby (``pg_basebackup -R``) and pushes on the
primary: the guarantees of docs/sync-protocol.md hold across replication lag.

A standby shares the primary's transaction ids and builds MVCC snapshots from the WAL it has
replayed (an xid it has not seen commit is in progress for it), so a cursor is comparable on
both sides. Lag is made deterministic with ``pg_wal_replay_pause()``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from pysync.client import _as_authenticator
from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway import Gateway, PostgresGateway
from pysync.localdb.replica import ReadReplica
from pysync.sync import SyncCache
from tests.sync_world import RefPuller, SyncWorld


class Replicated(SyncWorld):
    """A world whose users may also read from the standby (``replica_gateway``)."""

    def __init__(self, url: str, replica: ReadReplica) -> None:
        super().__init__(url)
        self.replica = replica
        dbname = str(conninfo_to_dict(url)["dbname"])
        replica.wait_for_replay()
        self.read_api = PostgresGateway.connect(
            _as_authenticator(replica.url(dbname)), jwt_secret=LOCAL_JWT_SECRET
        )

    def replica_gateway(self, user: Any) -> Gateway:
        return self.read_api.as_identity(self.client(user).gateway.identity)

    @contextlib.contextmanager
    def lagging(self) -> Iterator[None]:
        """The standby stops replaying (it still receives WAL) until the block ends, then
        catches up."""
        with self.replica.connect() as conn:
            conn.execute("select pg_wal_replay_pause()")
            try:
                yield
            finally:
                conn.execute("select pg_wal_replay_resume()")
        self.replica.wait_for_replay()

    def close(self) -> None:
        self.read_api.close()
        super().close()


class CountingPuller(RefPuller):
    """The reference puller, counting how often each row version is served."""

    served: Counter[tuple[str, int]]

    def __post_init__(self) -> None:
        super().__post_init__()
        self.served = Counter()

    def pull_page(self, limit: int = 1000) -> dict[str, Any]:
        page = super().pull_page(limit)
        for entry in page["buckets"]:
            self.served.update((row["id"], row["version"]) for row in entry["rows"])
        return page


@pytest.fixture(scope="module")
def world(app_url: str, replica: ReadReplica) -> Iterator[Replicated]:
    made = Replicated(app_url, replica)
    yield made
    made.close()


def enrolled(world: Replicated, lessons: int = 2) -> tuple[Any, str, CountingPuller]:
    tutor, student = world.user("tutor"), world.user("student")
    course = world.course(tutor, lessons=lessons)
    world.enroll(student, course)
    world.replica.wait_for_replay()
    return student, course, CountingPuller(world.replica_gateway(student))


def lessons(world: Replicated, course: str) -> set[str]:
    rows = world.sql("select id::text from public.course_content where course_id = %s", course)
    return {str(row[0]) for row in rows}


def test_the_standby_is_read_only_and_pulls_work_there(world: Replicated) -> None:
    student, course, puller = enrolled(world)
    page = puller.pull()
    assert puller.ids("course_content") == lessons(world, course)
    assert page["snapshot"]
    with world.replica.connect() as conn:
        assert conn.execute("select pg_is_in_recovery()").fetchone() == (True,)
    # Pushes cannot go there: the standby refuses any write.
    ops = [
        {
            "op_id": 1,
            "tx_id": None,
            "table": "devices",
            "kind": "insert",
            "id": str(uuid.uuid4()),
            "data": {"user_id": student.id, "device_id": "p", "platform": "ios"},
            "base_version": None,
            "priority": "normal",
        }
    ]
    with pytest.raises(Exception, match="read-only transaction"):
        world.replica_gateway(student).rpc(
            "sync_push", {"client_id": str(uuid.uuid4()), "ops": ops}
        )


def test_late_commit_across_replication_lag_is_not_skipped(world: Replicated) -> None:
    _, course, puller = enrolled(world)
    puller.pull()
    late = str(uuid.uuid4())
    with psycopg.connect(world.url) as t1:  # not autocommit: T1 stays open on the primary
        t1.execute(
            "insert into public.course_content (id, course_id, kind, position, title)"
            " values (%s, %s, 'lesson', 10, 'late')",
            (late, course),
        )
        early = world.lesson(course, 11)  # T2 commits while T1 is open
        world.replica.wait_for_replay()
        puller.pull()  # on the standby: T1 is in progress in its snapshot too
        assert early in puller.ids("course_content")
        assert late not in puller.ids("course_content")
        t1.commit()
    world.replica.wait_for_replay()
    puller.pull()
    assert late in puller.ids("course_content"), "the late commit was skipped on the standby"
    assert puller.ids("course_content") == lessons(world, course)
    # A standby's cursor stops at the xmin of its snapshot (private.sync_snapshot): what
    # committed while T1 was open is served again, once; nothing else is.
    assert {key for key, count in puller.served.items() if count > 1} <= {(early, 1)}


def test_a_standby_cursor_never_claims_an_open_transaction(world: Replicated) -> None:
    """pg_current_snapshot() on a standby lists no running xids; sync's cursors must."""
    dbname = str(conninfo_to_dict(world.url)["dbname"])
    with psycopg.connect(world.url) as t1:
        t1.execute("create temporary table t1_holds_an_xid (i int)")
        row = t1.execute("select pg_current_xact_id()::text").fetchone()
        assert row is not None
        open_xid = row[0]
        world.lesson(enrolled(world)[1], 9)  # a later transaction commits
        world.replica.wait_for_replay()
        with world.replica.connect(dbname) as standby:
            raw, cursor, raw_sees, cursor_sees = standby.execute(
                "select s::text, c::text, pg_visible_in_snapshot(%s::xid8, s),"
                " pg_visible_in_snapshot(%s::xid8, c)"
                " from pg_current_snapshot() as s, private.sync_snapshot() as c",
                (open_xid, open_xid),
            ).fetchone() or (None, None, None, None)
        t1.rollback()
    assert raw_sees is True, f"PostgreSQL now exports a standby's running xids: {raw}"
    assert cursor_sees is False, cursor
    assert cursor == f"{open_xid}:{open_xid}:"


def test_a_lagging_standby_serves_a_change_later_never_skips_it(world: Replicated) -> None:
    _, course, puller = enrolled(world)
    puller.pull()
    with world.lagging():
        added = world.lesson(course, 5)
        puller.pull()  # the standby has not replayed it: not served, and not skipped
        assert added not in puller.ids("course_content")
    puller.pull()
    assert added in puller.ids("course_content")
    assert puller.ids("course_content") == lessons(world, course)
    assert max(puller.served.values()) == 1


def test_cursor_from_the_replica_is_valid_on_the_primary_and_back(world: Replicated) -> None:
    """Caught up: every change is served exactly once, whichever side serves the pull."""
    student, course, puller = enrolled(world)
    primary = world.gateway(student)
    replica = world.replica_gateway(student)
    puller.pull()  # replica
    first = world.lesson(course, 3)
    puller.gateway = primary
    puller.pull()  # the replica's cursor, on the primary
    assert first in puller.ids("course_content")
    second = world.lesson(course, 4)
    world.sql("update public.course_content set title = 'renamed' where id = %s", first)
    world.replica.wait_for_replay()
    puller.gateway = replica
    puller.pull()  # the primary's cursor, on the replica
    assert second in puller.ids("course_content")
    assert puller.rows["course_content"][first]["title"] == "renamed"
    world.sql("delete from public.course_content where id = %s", second)
    puller.gateway = primary
    puller.pull()
    assert second not in puller.ids("course_content")
    assert puller.ids("course_content") == lessons(world, course)
    assert max(puller.served.values()) == 1, f"served twice: {puller.served.most_common(3)}"


def test_cursor_from_the_primary_on_a_lagging_replica_misses_nothing(world: Replicated) -> None:
    """The primary's cursor is ahead of a lagging standby: the standby answers with its own,
    older, snapshot, so the changes between the two are served once more after replay (the
    same versions: harmless), and nothing is missed."""
    student, course, puller = enrolled(world)
    primary = world.gateway(student)
    replica = world.replica_gateway(student)
    puller.pull()
    with world.lagging():
        ahead = world.lesson(course, 6)
        puller.gateway = primary
        puller.pull()  # served by the primary, its cursor now past the standby
        assert ahead in puller.ids("course_content")
        puller.gateway = replica
        puller.pull()  # the standby does not have it yet: keeps it, serves nothing new
        assert ahead in puller.ids("course_content")
        behind = world.lesson(course, 7)
    puller.pull()
    assert behind in puller.ids("course_content")
    assert puller.ids("course_content") == lessons(world, course)
    again = {key for key, count in puller.served.items() if count > 1}
    assert {row_id for row_id, _ in again} <= {ahead}


def test_cache_pushes_to_the_primary_and_pulls_from_the_replica(
    world: Replicated, tmp_path: Path
) -> None:
    tutor, student = world.user("tutor"), world.user("student")
    conversation = str(world.client(student).conversations.start_direct(tutor.id).id)
    world.replica.wait_for_replay()
    client = world.client(student)
    reader = client.reading_from(world.read_api)
    with SyncCache.open(client, tmp_path / "replica.db", read_client=reader) as cache:
        cache.sync()
        assert cache.get("conversations", conversation) is not None
        mid = cache.insert(
            "messages", {"conversation_id": conversation, "sender_id": student.id, "body": "hi"}
        )
        cache.sync()  # the push goes to the primary (the standby would refuse it)
        assert world.sql("select body, version from public.messages where id = %s", mid) == [
            ("hi", 1)
        ]
        with world.lagging():
            cache.update("messages", mid, {"body": "edited"})
            reply = world.client(tutor).gateway.insert(
                "messages",
                {"conversation_id": conversation, "sender_id": tutor.id, "body": "reply"},
            )[0]["id"]
            cache.sync()  # pulled from the paused standby: the reply is not there yet
            assert cache.get("messages", str(reply)) is None
            assert cache.get("messages", mid)["body"] == "edited"  # type: ignore[index]
        cache.sync()
        assert cache.get("messages", str(reply)) is not None
        assert cache.get("messages", mid)["version"] == 2  # type: ignore[index]
        assert cache.status().pending_ops == 0 and cache.status().last_error is None
        cache.reconcile()  # checksums from the caught-up replica agree: nothing to repair
        assert cache.get("messages", str(reply)) is not None
        assert cache.get("messages", mid)["body"] == "edited"  # type: ignore[index]
        assert cache.status().last_error is None
