"""The CRUD queue and the conflict policies, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pysync.sync.conflicts import ConflictContext, resolve
from pysync.sync.errors import SyncError, UnknownTable
from pysync.sync.outbox import Outbox
from pysync.sync.storage import Storage
from pysync.sync.wire import parse_pull
from tests.sync_fixtures import CONV, COURSE, bucket, msg, new_storage, page

A = "a0000000-0000-4000-8000-00000000000a"
B = "a0000000-0000-4000-8000-00000000000b"


def loaded() -> tuple[Storage, Outbox]:
    s = new_storage()
    s.apply_page(
        {}, parse_pull(page(bucket("messages", CONV, [msg(A, "hi", version=3), msg(B, "yo")])))
    )
    return s, Outbox(s)


def test_insert_writes_the_row_and_queues_the_op_with_a_client_uuid() -> None:
    s, box = loaded()
    new_id = box.insert("messages", {"conversation_id": CONV, "sender_id": A, "body": "new"})
    assert len(new_id) == 36
    assert s.get_row("messages", new_id)["body"] == "new"  # type: ignore[index]
    (op,) = s.pending_ops()
    assert (op.kind, op.row_id, op.base_version) == ("insert", new_id, None)
    assert op.data == {"conversation_id": CONV, "sender_id": A, "body": "new"}


def test_update_queues_only_changed_columns_with_base_version_and_base_row() -> None:
    s, box = loaded()
    assert box.update("messages", A, {"body": "edited", "likes": 0}) is True
    (op,) = s.pending_ops()
    assert op.data == {"body": "edited"}
    assert op.base_version == 3
    assert op.base_row is not None and op.base_row["body"] == "hi"
    assert box.update("messages", A, {"body": "edited"}) is False
    assert len(s.pending_ops()) == 1


def test_second_edit_of_a_row_expects_the_version_the_first_will_make() -> None:
    s, box = loaded()
    box.update("messages", A, {"body": "one"})
    box.update("messages", A, {"body": "two"})
    box.delete("messages", A)
    assert [op.base_version for op in s.pending_ops()] == [3, 4, 5]
    assert s.get_row("messages", A) is None


def test_op_ids_increase_and_a_transaction_shares_one_tx_id() -> None:
    s, box = loaded()
    with box.transaction():
        box.update("messages", A, {"body": "x"})
        box.update("messages", B, {"body": "y"})
    box.delete("messages", B)
    ops = s.pending_ops()
    assert [o.op_id for o in ops] == sorted(o.op_id for o in ops)
    assert ops[0].tx_id == ops[1].tx_id != ops[2].tx_id


def test_failed_transaction_leaves_neither_rows_nor_ops() -> None:
    s, box = loaded()
    with pytest.raises(RuntimeError), box.transaction():
        box.update("messages", A, {"body": "x"})
        raise RuntimeError("app failed")
    assert s.pending_ops() == [] and s.get_row("messages", A)["body"] == "hi"  # type: ignore[index]


def test_batch_sends_critical_first_and_background_last() -> None:
    s, box = loaded()
    box.update("messages", A, {"body": "bg"}, priority="background")
    box.update("messages", B, {"body": "normal"})
    box.insert(
        "messages", {"conversation_id": CONV, "sender_id": A, "body": "c"}, priority="critical"
    )
    assert [o.priority for o in s.push_batch(10)] == ["critical", "normal", "background"]


def test_batch_never_sends_an_op_before_an_earlier_op_on_its_row() -> None:
    s, box = loaded()
    box.update("messages", A, {"body": "first"}, priority="background")
    box.update("messages", A, {"body": "second"}, priority="critical")
    assert [o.data["body"] for o in s.push_batch(10)] == ["first", "second"]


def test_batch_limit_never_splits_a_transaction() -> None:
    s, box = loaded()
    with box.transaction():
        box.update("messages", A, {"body": "x"})
        box.update("messages", B, {"body": "y"})
    box.insert("messages", {"conversation_id": CONV, "sender_id": A, "body": "z"})
    assert len(s.push_batch(1)) == 2
    assert len(s.push_batch(2)) == 2
    assert len(s.push_batch(3)) == 3


def _queue_raw(s: Storage, ops: list[tuple[int, str, str]]) -> None:
    """Ops as (op_id, tx_id, row id) straight into the outbox: transactions whose ops
    interleave, which one writer never makes but a batch must still order."""
    for op_id, tx_id, row_id in ops:
        s._run(
            "INSERT INTO _sync_outbox (op_id, tx_id, tbl, kind, row_id, data, priority)"
            " VALUES (?, ?, 'messages', 'update', ?, '{}', 'normal')",
            (op_id, tx_id, row_id),
        )


def test_a_transaction_waits_for_an_earlier_op_on_its_row_in_another_transaction() -> None:
    s, _ = loaded()
    # t1 = ops 1 (row A) and 3 (row B); t2 = op 2 (row B), which op 3 must follow.
    _queue_raw(s, [(1, "t1", A), (2, "t2", B), (3, "t1", B)])
    assert [o.op_id for o in s.push_batch(10)] == [2, 1, 3]
    assert [o.op_id for o in s.push_batch(1)] == [2]


def test_choosing_a_batch_reads_about_the_batch_not_the_queue() -> None:
    """SQLite's virtual machine steps (deterministic, unlike a clock) to choose a batch of 20
    from a queue of 500 and of 5,000 ops: the same, give or take the index's depth."""

    def steps(queued: int) -> int:
        s = new_storage()
        with s.transaction():
            _queue_raw(s, [(n, f"t{n}", f"row-{n}") for n in range(1, queued + 1)])
        count = 0

        def tick() -> int:
            nonlocal count
            count += 1
            return 0

        s._conn.set_progress_handler(tick, 100)
        assert len(s.push_batch(20)) == 20
        s._conn.set_progress_handler(None, 0)
        return count

    small, large = steps(500), steps(5000)
    assert large < small * 1.5, (small, large)


def test_read_only_table_and_unwritable_column_are_refused_locally() -> None:
    _, box = loaded()
    with pytest.raises(UnknownTable):
        box.insert("course_content", {"course_id": COURSE, "title": "t"})
    with pytest.raises(SyncError, match="version"):
        box.update("messages", A, {"version": 9})


# -- conflict policies --------------------------------------------------------------------------

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def ctx(**kw: object) -> ConflictContext:
    base = {"body": "base", "tags": ["a"], "likes": 1, "pinned": False}
    values = {
        "table": "messages",
        "kind": "update",
        "row_id": A,
        "local": {"body": "mine", "tags": ["a", "b"], "likes": 2},
        "base": base,
        "server": {
            **base,
            "body": "theirs",
            "tags": ["a", "c"],
            "likes": 5,
            "version": 6,
            "updated_at": T0.isoformat(),
        },
        "server_version": 6,
        "op_time": T0 + timedelta(seconds=1),
        "counters": frozenset({"likes"}),
    }
    values.update(kw)
    return ConflictContext(**values)  # type: ignore[arg-type]


def test_server_wins_accepts_the_server_row() -> None:
    assert resolve("server_wins", ctx()) is None


def test_client_wins_pushes_the_local_values_again() -> None:
    assert resolve("client_wins", ctx()) == {"body": "mine", "tags": ["a", "b"], "likes": 2}


def test_last_write_wins_compares_op_time_in_server_time() -> None:
    assert resolve("last_write_wins", ctx())["body"] == "mine"  # type: ignore[index]
    assert resolve("last_write_wins", ctx(op_time=T0 - timedelta(seconds=1))) is None


def test_field_merge_keeps_client_only_columns_unions_lists_and_keeps_server_counters() -> None:
    merged = resolve(
        "field_merge",
        ctx(local={"body": "mine", "tags": ["a", "b"], "likes": 2, "pinned": True}),
    )
    # body: both changed -> server; tags: both changed -> union; likes: counter -> server;
    # pinned: only the client changed -> client.
    assert merged == {"tags": ["a", "c", "b"], "pinned": True}


def test_field_merge_with_nothing_to_add_accepts_the_server() -> None:
    assert resolve("field_merge", ctx(local={"body": "mine"})) is None


def test_callable_policy_decides() -> None:
    assert resolve(lambda c: {"body": c.server["body"] + "+mine"}, ctx()) == {  # type: ignore[index]
        "body": "theirs+mine"
    }
    with pytest.raises(SyncError):
        resolve("newest", ctx())
