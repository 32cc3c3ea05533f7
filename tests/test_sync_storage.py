"""Local storage of the sync client, without a server: pages applied by the contract's rules,
rebase under pending edits, crash safety, and the local schema's forward migrations."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from pysync.sync.errors import SchemaMismatch, SyncError
from pysync.sync.outbox import Outbox
from pysync.sync.schema import LOCAL_SCHEMA_VERSION
from pysync.sync.storage import KEEP_UNCHANGED_SECONDS, Storage, bucket_checksum
from pysync.sync.wire import BucketState, parse_pull, parse_schema
from tests.sync_fixtures import (
    CONV,
    CONV2,
    COURSE,
    SCHEMA,
    bucket,
    by_column,
    columnar,
    msg,
    new_storage,
    page,
)

A = "a0000000-0000-4000-8000-00000000000a"
B = "a0000000-0000-4000-8000-00000000000b"
C = "a0000000-0000-4000-8000-00000000000c"
BUCKET = f"messages:{CONV}"
#: The messages columns of a server ahead of this client: one it has not migrated to yet
#: (``mood``), in another order.
AHEAD_ORDER = [
    "body", "id", "conversation_id", "sender_id", "tags", "likes", "pinned", "version",
    "created_at", "updated_at", "mood",
]  # fmt: skip


def apply(
    storage: Storage, response: dict[str, Any], sent: dict[str, BucketState] | None = None
) -> None:
    storage.apply_page(sent or {}, parse_pull(response))


def test_page_rows_and_cursor_are_stored() -> None:
    s = new_storage()
    apply(s, page(bucket("messages", CONV, [msg(A, "hi"), msg(B, "yo")])))
    assert s.get_row("messages", A)["body"] == "hi"  # type: ignore[index]
    assert s.get_row("messages", A)["tags"] == []  # type: ignore[index]
    assert s.get_row("messages", A)["pinned"] is False  # type: ignore[index]
    record = s.buckets()[BUCKET]
    assert record.state == BucketState(cursor="1240:1244:1241")
    assert record.streams == ("my_messages",)


def test_version_2_rows_as_arrays_are_stored_as_version_1_objects_are() -> None:
    served = page(bucket("messages", CONV, [msg(A, "hi", tags=["x"]), msg(B, "yo", likes=3)]))
    one, two = new_storage(), new_storage()
    apply(one, served)
    apply(two, columnar(served))
    query = "select * from messages order by id"
    assert two.query(query) == one.query(query)
    assert two.get_row("messages", A)["tags"] == ["x"]  # type: ignore[index]
    assert two.buckets()[BUCKET].state == BucketState(cursor="1240:1244:1241")


def test_version_2_columns_in_another_order_or_unknown_are_matched_by_name() -> None:
    served = page(bucket("messages", CONV, [msg(A, "hi", mood="glad")]))
    s = new_storage()
    apply(s, columnar(served, {"messages": AHEAD_ORDER}))
    row = s.get_row("messages", A)
    assert row is not None
    assert (row["body"], row["conversation_id"], row["version"]) == ("hi", CONV, 1)
    assert "mood" not in row


def test_version_2_row_under_a_pending_edit_is_rebased() -> None:
    s = new_storage()
    apply(s, columnar(page(bucket("messages", CONV, [msg(A, "hi", likes=1)]))))
    Outbox(s).update("messages", A, {"body": "mine"})
    apply(s, columnar(page(bucket("messages", CONV, [msg(A, "theirs", version=2, likes=5)]))))
    row = s.get_row("messages", A)
    assert row is not None
    assert (row["body"], row["likes"], row["version"]) == ("mine", 5, 2)


def test_version_2_page_without_columns_or_with_short_rows_is_refused() -> None:
    served = columnar(page(bucket("messages", CONV, [msg(A, "hi")])))
    with pytest.raises(SyncError, match="without its columns"):
        parse_pull({**served, "columns": {}})
    short = {**served, "buckets": [{**served["buckets"][0], "rows": [[A, CONV]]}]}
    with pytest.raises(SyncError, match="not 10 values"):
        parse_pull(short)
    with pytest.raises(SyncError, match="wire version 6"):
        parse_pull({**served, "version": 6})


def test_version_4_entry_without_streams_keeps_the_held_ones() -> None:
    """A version 4 entry whose ``streams`` is null is held through the streams it was held
    through; an entry for a bucket not held must name them."""
    s = new_storage()
    apply(s, page(bucket("messages", CONV, [msg(A, "hi")], streams=["my_messages", "pinned"])))
    later = {**columnar(page(bucket("messages", CONV, [msg(B, "yo")]))), "version": 4}
    later["buckets"][0]["streams"] = None
    s.apply_page({BUCKET: BucketState("1240:1244:1241")}, parse_pull(later))
    assert s.buckets()[BUCKET].streams == ("my_messages", "pinned")
    assert s.get_row("messages", B) is not None
    stray = {
        **later,
        "buckets": [{**later["buckets"][0], "bucket": f"messages:{CONV2}", "key": CONV2}],
    }
    with pytest.raises(SyncError, match="no streams for a bucket not held"):
        s.apply_page({}, parse_pull(stray))
    # Version 3 and older never leave them out: a null there is no streams at all.
    assert parse_pull({**later, "version": 3}).buckets[0].streams == ()


def test_version_3_rows_by_column_are_stored_as_version_1_objects_are() -> None:
    served = page(
        bucket("messages", CONV, [msg(A, "hi", tags=["x"]), msg(B, "yo", likes=3)]),
        bucket("messages", CONV2, [msg(C, "hey", conv=CONV2)]),
    )
    one, three = new_storage(), new_storage()
    apply(one, served)
    arrived = by_column(served)
    assert all("by_column" in b and not b["rows"] for b in arrived["buckets"])
    apply(three, arrived)
    query = "select * from messages order by id"
    assert three.query(query) == one.query(query)
    assert three.get_row("messages", A)["tags"] == ["x"]  # type: ignore[index]
    # Another column order (a server ahead of this client) is matched by name, as in version 2.
    reordered = new_storage()
    glad = page(bucket("messages", CONV, [msg(A, "hi", mood="glad")]))
    apply(reordered, by_column(glad, {"messages": AHEAD_ORDER}))
    assert reordered.get_row("messages", A)["body"] == "hi"  # type: ignore[index]


def test_version_3_page_with_ragged_or_missing_columns_is_refused() -> None:
    served = by_column(page(bucket("messages", CONV, [msg(A, "hi"), msg(B, "yo")])))
    entry = served["buckets"][0]
    cases: list[tuple[str, Any]] = [
        ("not 10 arrays", [*entry["by_column"][:-1]]),
        ("differ in length", [entry["by_column"][0][:1], *entry["by_column"][1:]]),
        ("not 10 arrays", "not a list"),
    ]
    for message, arrays in cases:
        with pytest.raises(SyncError, match=message):
            parse_pull({**served, "buckets": [{**entry, "by_column": arrays}]})
    with pytest.raises(SyncError, match="rows and by_column"):
        parse_pull({**served, "buckets": [{**entry, "rows": [[None] * 10]}]})


def test_incomplete_bucket_keeps_round_and_after_until_complete() -> None:
    s = new_storage()
    apply(
        s,
        page(
            bucket("messages", CONV, [msg(A, "hi")], complete=False, round="1190:1190:", after=A),
            has_more=True,
        ),
    )
    assert s.buckets()[BUCKET].state == BucketState(None, "1190:1190:", A)
    apply(
        s,
        page(bucket("messages", CONV, [msg(B, "yo")], cursor="1190:1190:")),
        {BUCKET: BucketState(None, "1190:1190:", A)},
    )
    assert s.buckets()[BUCKET].state == BucketState("1190:1190:")
    assert {r["id"] for r in s.query("select id from messages")} == {A, B}


def test_older_version_is_ignored() -> None:
    s = new_storage()
    apply(s, page(bucket("messages", CONV, [msg(A, "new", version=3)])))
    apply(s, page(bucket("messages", CONV, [msg(A, "old", version=2)])))
    assert s.get_row("messages", A)["body"] == "new"  # type: ignore[index]


def test_pulled_row_is_rebased_under_pending_edit() -> None:
    s = new_storage()
    apply(s, page(bucket("messages", CONV, [msg(A, "hi", likes=1)])))
    Outbox(s).update("messages", A, {"body": "mine"})
    apply(s, page(bucket("messages", CONV, [msg(A, "theirs", version=2, likes=5)])))
    row = s.get_row("messages", A)
    assert row is not None
    assert (row["body"], row["likes"], row["version"]) == ("mine", 5, 2)


def test_local_edit_does_not_bump_version() -> None:
    s = new_storage()
    apply(s, page(bucket("messages", CONV, [msg(A, "hi", version=4)])))
    Outbox(s).update("messages", A, {"body": "mine"})
    assert s.get_row("messages", A)["version"] == 4  # type: ignore[index]


def test_removed_id_is_deleted_only_while_still_in_the_bucket() -> None:
    s = new_storage()
    apply(s, page(bucket("messages", CONV, [msg(A, "hi"), msg(B, "yo")])))
    # B moved to CONV2 (served in the same page), then CONV's removal names it: untouched.
    apply(
        s,
        page(
            bucket("messages", CONV2, [msg(B, "yo", version=2, conv=CONV2)]),
            bucket("messages", CONV, removed=[A, B]),
        ),
    )
    assert s.get_row("messages", A) is None
    assert s.get_row("messages", B)["conversation_id"] == CONV2  # type: ignore[index]


def test_removed_bucket_drops_its_rows_but_keeps_rows_with_pending_ops() -> None:
    s = new_storage()
    apply(s, page(bucket("messages", CONV, [msg(A, "hi"), msg(B, "yo")])))
    Outbox(s).update("messages", B, {"body": "edited"})
    apply(s, page(removed_buckets=[BUCKET]))
    assert s.get_row("messages", A) is None
    assert s.get_row("messages", B)["body"] == "edited"  # type: ignore[index]
    assert BUCKET not in s.buckets()


def test_reset_clears_the_bucket_first_only_on_its_first_page() -> None:
    s = new_storage()
    apply(s, page(bucket("messages", CONV, [msg(A, "hi"), msg(B, "yo")])))
    apply(
        s,
        page(bucket("messages", CONV, [msg(B, "yo", version=2)], state="reset")),
        {BUCKET: BucketState("1:2:")},
    )
    assert s.get_row("messages", A) is None and s.get_row("messages", B) is not None
    # A later page of the same reset round (after set) adds, never clears.
    apply(
        s,
        page(bucket("messages", CONV, [msg(A, "back")], state="reset")),
        {BUCKET: BucketState(None, "9:9:", B)},
    )
    assert s.get_row("messages", A) is not None and s.get_row("messages", B) is not None


def test_unchanged_buckets_get_the_snapshot_as_cursor() -> None:
    s = new_storage()
    apply(s, page(bucket("messages", CONV, [msg(A, "hi")], cursor="1:1:")))
    apply(s, page(unchanged=[BUCKET], snapshot="7:7:"))
    assert s.buckets()[BUCKET].state == BucketState("7:7:")


def test_bucket_records_kept_in_memory_equal_the_file_after_every_page(tmp_path: Path) -> None:
    """Storage keeps the bucket records between pulls; whatever a page does (new buckets,
    unchanged ones, removed ones, a page that fails half-way), they read as the file does."""
    path = tmp_path / "cache.db"
    s = Storage.open(path)
    s.migrate(parse_schema(SCHEMA), SCHEMA)

    def from_the_file() -> dict[str, Any]:
        other = Storage.open(path)
        try:
            return dict(other.buckets())
        finally:
            other.close()

    apply(s, page(bucket("messages", CONV, [msg(A, "hi")], cursor="1:1:")))
    assert s.buckets() == from_the_file()
    apply(s, page(unchanged=[BUCKET], snapshot="7:7:"))
    assert s.buckets() == from_the_file()
    assert s.buckets()[BUCKET].state == BucketState("7:7:")
    apply(s, page(bucket("messages", CONV2, [msg(B, "yo")], cursor="8:8:"), unchanged=[BUCKET]))
    assert s.buckets() == from_the_file()
    # A held bucket served part-way (a round to resume after an id), then to its end: the
    # copy takes each new state as the file does, and keeps the bucket's last use.
    used = s.buckets()[BUCKET].last_used
    part = bucket(
        "messages", CONV, [msg(A, "again", version=2)], complete=False, round="8:8:", after=A
    )
    apply(
        s,
        page(part, unchanged=[f"messages:{CONV2}"], snapshot="8:8:"),
        {BUCKET: BucketState("7:7:")},
    )
    assert s.buckets() == from_the_file()
    assert s.buckets()[BUCKET].state == BucketState("7:7:", "8:8:", A)
    assert s.buckets()[BUCKET].last_used == used
    rest = bucket("messages", CONV, [], cursor="8:8:")
    apply(
        s,
        page(rest, unchanged=[f"messages:{CONV2}"], snapshot="8:8:"),
        {BUCKET: BucketState("7:7:", "8:8:", A)},
    )
    assert s.buckets() == from_the_file()
    assert s.buckets()[BUCKET].state == BucketState("8:8:")
    broken = page(bucket("no_such_table", "x", [{"id": "1"}]), unchanged=[BUCKET], snapshot="9:9:")
    with pytest.raises(SyncError):
        apply(s, broken)
    assert s.buckets() == from_the_file()
    assert s.buckets()[BUCKET].state == BucketState("8:8:")
    apply(s, page(removed_buckets=[f"messages:{CONV2}"], unchanged=[BUCKET], snapshot="10:10:"))
    assert s.buckets() == from_the_file()
    assert set(s.buckets()) == {BUCKET}
    s.close()


def test_meta_kept_in_memory_reads_as_the_file_does(tmp_path: Path) -> None:
    """Storage keeps the meta rows between reads and skips writing a value a row already
    holds; after writes, a rewrite of the same value and a transaction that fails half-way,
    every key reads as the file has it."""
    path = tmp_path / "cache.db"
    s = Storage.open(path)

    def from_the_file() -> dict[str, Any]:
        with closing(sqlite3.connect(path)) as other:
            return dict(other.execute("SELECT key, value FROM _sync_meta").fetchall())

    s.set_meta("last_error", "offline")
    s.set_meta("last_error", "offline")  # the same value: nothing to write
    s.set_meta("schema_hash", "h1")
    assert {k: s.meta(k) for k in from_the_file()} == from_the_file()
    with pytest.raises(RuntimeError), s.transaction():
        s.set_meta("last_error", None)
        s.set_meta("schema_hash", "h2")
        s.set_meta("clock_offset", "0.5")
        assert (s.meta("last_error"), s.meta("schema_hash")) == (None, "h2")
        raise RuntimeError("the page failed")
    assert from_the_file()["last_error"] == "offline"
    assert {k: s.meta(k) for k in ("last_error", "schema_hash", "clock_offset")} == {
        "last_error": "offline",
        "schema_hash": "h1",
        "clock_offset": None,
    }
    s.set_meta("last_error", None)
    assert from_the_file()["last_error"] is None and s.meta("last_error") is None
    s.close()


def _file_state(path: Path) -> tuple[str | None, str | None]:
    """``BUCKET``'s cursor and the resolution token as the file has them."""
    with closing(sqlite3.connect(path)) as other:
        cursor = other.execute("SELECT cursor FROM _sync_buckets WHERE bucket = ?", (BUCKET,))
        token = other.execute("SELECT value FROM _sync_meta WHERE key = 'resolution'")
        row = token.fetchone()
        return cursor.fetchone()[0], None if row is None else row[0]


def test_a_quiet_page_naming_every_bucket_moves_them_all_at_once() -> None:
    """A page in which nothing changed that names every bucket held gives them one shared
    state, laid into the records only when a record is read: what a request sends is the same,
    and a later page naming some of them starts from it."""
    s = new_storage()
    other = f"messages:{CONV2}"
    s.apply_page(
        {},
        parse_pull(
            page(
                bucket("messages", CONV, [msg(A, "hi")], cursor="1:1:"),
                bucket("messages", CONV2, [msg(B, "yo")], cursor="2:2:"),
            )
        ),
        now=100,
    )
    # A page naming one bucket twice names only one: the other keeps its cursor.
    twice = parse_pull(page(unchanged=[BUCKET, BUCKET], snapshot="5:5:", resolution="t5"))
    assert s.keep_unchanged(twice, now=101)
    assert s.bucket_states() == {BUCKET: BucketState("5:5:"), other: BucketState("2:2:")}
    quiet = parse_pull(page(unchanged=[BUCKET, other], snapshot="7:7:", resolution="t7"))
    assert s.keep_unchanged(quiet, now=101)
    assert s.bucket_states() == {BUCKET: BucketState("7:7:"), other: BucketState("7:7:")}
    s.apply_page({}, parse_pull(page(unchanged=[BUCKET], snapshot="8:8:")), now=102)
    assert {name: r.state for name, r in s.buckets().items()} == {
        BUCKET: BucketState("8:8:"),
        other: BucketState("7:7:"),
    }
    assert s.bucket_states()[other] == BucketState("7:7:")
    s.close()


def test_a_page_in_which_nothing_changed_is_kept_in_memory_then_written(tmp_path: Path) -> None:
    """A page in which nothing changed moves the cursors in memory only (the next request
    sends them); the file keeps the older, equally valid ones until the next page that
    changes something, the interval, or close, each of which writes them."""
    path = tmp_path / "cache.db"
    s = Storage.open(path)
    s.migrate(parse_schema(SCHEMA), SCHEMA)
    s.apply_page(
        {}, parse_pull(page(bucket("messages", CONV, [msg(A, "hi")], cursor="1:1:"))), now=100
    )
    quiet = parse_pull(page(unchanged=[BUCKET], snapshot="7:7:", resolution="t7"))
    assert s.keep_unchanged(quiet, now=101)
    assert s.buckets()[BUCKET].state == BucketState("7:7:") and s.resolution() == "t7"
    assert _file_state(path) == ("1:1:", None)
    # Not kept: a page serving or removing a bucket, one with more to come, one after the
    # interval since the cursors were last written.
    served = page(bucket("messages", CONV, [msg(A, "hey", version=2)], cursor="8:8:"))
    assert not s.keep_unchanged(parse_pull(served), now=101)
    assert not s.keep_unchanged(parse_pull(page(removed_buckets=[BUCKET])), now=101)
    assert not s.keep_unchanged(parse_pull(page(unchanged=[BUCKET], has_more=True)), now=101)
    assert not s.keep_unchanged(quiet, now=100 + KEEP_UNCHANGED_SECONDS)
    assert _file_state(path) == ("1:1:", None)
    # A page that changes something writes the kept cursors with its own.
    s.apply_page(
        {}, parse_pull(page(bucket("messages", CONV2, [msg(B, "yo")], cursor="8:8:"))), now=102
    )
    assert _file_state(path)[0] == "7:7:"
    assert s.keep_unchanged(
        parse_pull(page(unchanged=[BUCKET], snapshot="9:9:", resolution="t9")), now=103
    )
    s.close()
    assert _file_state(path) == ("9:9:", "t9"), "close writes the kept pull"
    reopened = Storage.open(path)
    assert reopened.buckets()[BUCKET].state == BucketState("9:9:")
    assert reopened.resolution() == "t9"
    reopened.close()


def test_a_kept_pull_never_overwrites_a_later_write(tmp_path: Path) -> None:
    """A write to the bucket records after a kept pull drops it (the file's states stay
    valid), so writing it later cannot put back an older state; and a bucket part-way
    through a round is never kept."""
    path = tmp_path / "cache.db"
    s = Storage.open(path)
    s.migrate(parse_schema(SCHEMA), SCHEMA)
    s.apply_page(
        {}, parse_pull(page(bucket("messages", CONV, [msg(A, "hi")], cursor="1:1:"))), now=100
    )
    assert s.keep_unchanged(parse_pull(page(unchanged=[BUCKET], snapshot="7:7:")), now=101)
    with s.transaction():
        s.set_bucket_state(BUCKET, BucketState(None))  # a checksum repair's reset
    s.close()
    assert _file_state(path)[0] is None
    s = Storage.open(path)
    part = bucket("messages", CONV, [msg(A, "hi")], complete=False, round="2:2:", after=A)
    s.apply_page({}, parse_pull(page(part)), now=200)
    assert not s.keep_unchanged(parse_pull(page(unchanged=[BUCKET], snapshot="7:7:")), now=201)
    s.close()


def test_subscriptions_kept_in_memory_read_as_the_file_does(tmp_path: Path) -> None:
    """Storage keeps the subscription rows between pulls; expiry filters them, dropping the
    expired ones deletes them from the file, and a transaction that fails leaves both alike."""
    path = tmp_path / "cache.db"
    s = Storage.open(path)

    def from_the_file() -> list[tuple[str, float | None]]:
        with closing(sqlite3.connect(path)) as other:
            rows = other.execute("SELECT key, expires_at FROM _sync_subscriptions ORDER BY key")
            return [tuple(r) for r in rows.fetchall()]

    s.subscribe("course_preview", "a", 110.0, now=100)
    s.subscribe("course_preview", "b", None, now=100)
    assert [r["key"] for r in s.subscriptions(105)] == ["a", "b"]
    assert [r["key"] for r in s.subscriptions(120)] == ["b"]
    assert s.drop_expired_subscriptions(105) == 0 and len(from_the_file()) == 2
    with pytest.raises(RuntimeError), s.transaction():
        s.unsubscribe("course_preview", "b")
        raise RuntimeError("the page failed")
    assert [r["key"] for r in s.subscriptions(105)] == ["a", "b"]
    assert s.drop_expired_subscriptions(120) == 1
    assert from_the_file() == [("b", None)]
    assert [(r["key"], r["expires_at"]) for r in s.subscriptions(0, include_expired=True)] == (
        from_the_file()
    )
    s.close()


def test_page_and_cursor_commit_together(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    s = Storage.open(path)
    s.migrate(parse_schema(SCHEMA), SCHEMA)
    apply(s, page(bucket("messages", CONV, [msg(A, "hi")], cursor="1:1:")))
    broken = page(
        bucket("messages", CONV, [msg(A, "changed", version=2), msg(B, "new")], cursor="2:2:"),
        bucket("no_such_table", "x", [{"id": "1"}]),  # fails half-way through the page
    )
    with pytest.raises(SyncError):
        apply(s, broken)
    s.close()
    reopened = Storage.open(path)
    assert reopened.get_row("messages", A)["body"] == "hi"  # type: ignore[index]
    assert reopened.get_row("messages", B) is None
    assert reopened.buckets()[BUCKET].state == BucketState("1:1:")


def test_local_checksum_matches_the_contract_formula() -> None:
    s = new_storage()
    apply(s, page(bucket("messages", CONV, [msg(A, "hi", version=2), msg(B, "yo", version=1)])))
    Outbox(s).insert("messages", {"conversation_id": CONV, "sender_id": A, "body": "local"})
    # Only rows that came from the server count; a pending insert has no version yet.
    assert s.local_checksum(BUCKET) == bucket_checksum([(A, 2), (B, 1)])
    import hashlib

    expected = (
        sum(int(hashlib.md5(f"{i}:{v}".encode()).hexdigest()[:8], 16) for i, v in [(A, 2), (B, 1)])
        % 2**32
    )
    assert bucket_checksum([(A, 2), (B, 1)]) == (2, expected)


def test_new_table_and_column_migrate_forward_keeping_pending_ops() -> None:
    s = new_storage()
    apply(s, page(bucket("messages", CONV, [msg(A, "hi")])))
    Outbox(s).update("messages", A, {"body": "mine"})
    newer = json.loads(json.dumps(SCHEMA))
    newer["hash"] = "h2"
    newer["tables"][0]["columns"].append({"name": "reaction", "type": "jsonb", "nullable": True})
    newer["tables"].append(
        {
            "name": "notes",
            "bucket_column": "owner_id",
            "columns": [
                {"name": "id", "type": "uuid"},
                {"name": "owner_id", "type": "uuid"},
                {"name": "version", "type": "bigint"},
            ],
            "writable": [],
            "operations": [],
            "conflict": "server_wins",
            "counters": [],
        }
    )
    plan = s.migrate(parse_schema(newer), newer)
    assert len(plan) == 2
    assert s.meta("schema_hash") == "h2"
    assert [op.data for op in s.pending_ops()] == [{"body": "mine"}]
    apply(s, page(bucket("messages", CONV, [msg(A, "theirs", version=2, reaction={"x": 1})])))
    row = s.get_row("messages", A)
    assert row is not None and row["reaction"] == {"x": 1} and row["body"] == "mine"


def test_local_schema_upgrades_from_version_1_without_losing_outbox_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = Storage(sqlite3.connect(path, isolation_level=None, check_same_thread=False))
    old.create_internal(version=1)
    old._run(
        "INSERT INTO _sync_outbox (op_id, tx_id, tbl, kind, row_id, data, base_version, "
        "priority, created_at) VALUES (1, 't', 'messages', 'update', ?, '{\"body\": \"x\"}', 3, "
        "'normal', 0)",
        (A,),
    )
    cols = {c["name"] for c in old._all("PRAGMA table_info(_sync_outbox)")}
    assert "base_row" not in cols
    old.close()

    s = Storage.open(path)
    assert s.meta("local_schema_version") == str(LOCAL_SCHEMA_VERSION)
    ops = s.pending_ops()
    assert [(o.op_id, o.data, o.base_version, o.base_row) for o in ops] == [
        (1, {"body": "x"}, 3, None)
    ]
    assert "last_used" in {c["name"] for c in s._all("PRAGMA table_info(_sync_subscriptions)")}


def test_cache_from_a_newer_client_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    s = Storage.open(path)
    s.set_meta("local_schema_version", str(LOCAL_SCHEMA_VERSION + 1))
    s.close()
    with pytest.raises(SchemaMismatch):
        Storage.open(path)


def test_on_demand_bucket_is_recorded_with_its_stream() -> None:
    s = new_storage()
    apply(
        s,
        page(
            bucket(
                "course_content",
                COURSE,
                [{"id": A, "course_id": COURSE, "title": "t", "version": 1}],
            )
        ),
    )
    assert s.buckets()[f"course_content:{COURSE}"].streams == ("course_preview",)
    assert s.row_counts_by_bucket_stream() == {"course_preview": 1}


def test_tables_read_by_a_query_are_found() -> None:
    s = new_storage()
    sql = "select m.body from messages m join course_content c on c.id = m.id where m.likes > ?"
    assert s.tables_read_by(sql, (1,)) == {"messages", "course_content"}


def _wal_frames(path: Path) -> tuple[int, int]:
    """The WAL's frames and how many of them are in the database file, read by a connection
    of its own (a ``PASSIVE`` checkpoint that finds nothing to copy reports both)."""
    with closing(sqlite3.connect(path)) as conn:
        _busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return frames, copied


def test_a_bulk_pull_is_checkpointed_off_the_writing_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The WAL a first sync grew is copied into the database file by a thread of its own,
    SQLite's default automatic checkpoints come back once that copy is done, and the WAL file
    is cut back to ``WAL_SIZE_LIMIT`` when SQLite next starts it over."""
    import threading

    from pysync.sync import storage as storage_module

    ran_on: list[str] = []
    started, go = threading.Event(), threading.Event()
    real_checkpoint = storage_module._checkpoint

    def checkpoint(reopen: Any) -> None:
        ran_on.append(threading.current_thread().name)
        started.set()
        go.wait(10)
        real_checkpoint(reopen)

    monkeypatch.setattr(storage_module, "_checkpoint", checkpoint)
    monkeypatch.setattr(storage_module, "WAL_SIZE_LIMIT", 256 * 1024)
    path = tmp_path / "bulk.db"
    wal = tmp_path / "bulk.db-wal"
    s = new_storage(str(path))
    s.hold_checkpoints()
    for n in range(40):
        rows = [msg(f"a0000000-0000-4000-8000-{n:06d}{i:06d}", "x" * 200) for i in range(200)]
        apply(s, page(bucket("messages", CONV, rows)))
    assert wal.stat().st_size > 4 * 1024 * 1024  # held: nothing copied during the pull
    s.release_checkpoints()
    # The pull is over while the copy waits: the rows are readable, the held setting stays.
    assert started.wait(10)
    assert ran_on == ["pysync-checkpoint"]
    assert s.row_counts()["messages"] == 8000
    assert (
        s._all("PRAGMA wal_autocheckpoint")[0]["wal_autocheckpoint"]
        == storage_module.BULK_WAL_PAGES
    )
    go.set()
    s.wait_for_checkpoint()
    frames, copied = _wal_frames(path)
    assert frames > 1000 and copied == frames
    with s.transaction():
        s.set_meta("after", "bulk")
    assert (
        s._all("PRAGMA wal_autocheckpoint")[0]["wal_autocheckpoint"]
        == storage_module.DEFAULT_WAL_PAGES
    )
    assert wal.stat().st_size <= 256 * 1024
    s.close()


def test_a_bulk_pull_in_memory_is_checkpointed_in_place() -> None:
    s = new_storage()
    s.hold_checkpoints()
    apply(s, page(bucket("messages", CONV, [msg(A, "hi")])))
    s.release_checkpoints()
    assert s._checkpointer is None
    assert s._all("PRAGMA wal_autocheckpoint")[0]["wal_autocheckpoint"] == 1000
    s.close()
