"""Bad input to the sync RPCs (issue 10, Faults), through the gateway as a signed-in user:
every malformed op gets its own rejection and the other ops of the request apply; a request
that cannot be processed at all gets one clear error (SQLSTATE 22023 or 22P02); the server
never answers with an unhandled error."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pysync.gateway import Gateway, GatewayError
from pysync.sync import SyncCache
from tests.sync_world import SyncWorld

#: What a malformed request may fail with: a clear "invalid parameter" / "invalid text".
CLEAR = {"22023", "22P02"}


@pytest.fixture(scope="module")
def world(app_url: str) -> Iterator[SyncWorld]:
    made = SyncWorld(app_url)
    yield made
    made.close()


@pytest.fixture
def chat(world: SyncWorld) -> tuple[Any, Any, str]:
    tutor, student = world.user("tutor"), world.user("student")
    conversation = world.client(student).conversations.start_direct(tutor.id).id
    return tutor, student, str(conversation)


def message(op_id: int, conversation: str, sender: str, **changes: Any) -> dict[str, Any]:
    op: dict[str, Any] = {
        "op_id": op_id,
        "table": "messages",
        "kind": "insert",
        "id": str(uuid.uuid4()),
        "data": {"conversation_id": conversation, "sender_id": sender, "body": f"op {op_id}"},
        "base_version": None,
    }
    op.update(changes)
    return op


def push(gateway: Gateway, client_id: str, ops: Any) -> dict[str, Any]:
    result: dict[str, Any] = gateway.rpc("sync_push", {"client_id": client_id, "ops": ops})
    return result


def count(world: SyncWorld, ids: list[str]) -> int:
    return int(
        world.sql("select count(*) from public.messages where id = any(%s::uuid[])", ids)[0][0]
    )


def test_each_malformed_op_is_rejected_alone_and_the_others_apply(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    _, student, conversation = chat
    gateway = world.gateway(student)
    good = [message(1, conversation, student.id), message(99, conversation, student.id)]
    sender = {"conversation_id": conversation, "sender_id": student.id}
    bad: list[tuple[dict[str, Any], str]] = [
        (message(2, conversation, student.id, kind="upsert"), "42501"),
        (message(3, conversation, student.id, kind=None), "22023"),
        (message(4, conversation, student.id, data=[1, 2]), "22023"),
        (message(5, conversation, student.id, data="body"), "22023"),
        (message(6, conversation, student.id, data=None), "22023"),
        (message(7, conversation, student.id, table="no_such_table"), "42501"),
        (message(8, conversation, student.id, table=None), "42501"),
        (message(9, conversation, student.id, table={"a": 1}), "42501"),
        (message(10, conversation, student.id, table="auth.users"), "42501"),
        (message(11, conversation, student.id, table='messages"; drop table x; --'), "42501"),
        (message(12, conversation, student.id, table="payments"), "42501"),  # read-only
        (message(13, conversation, student.id, data={**sender, "version": 7}), "42501"),
        (message(14, conversation, student.id, data={**sender, "no_such": 1}), "42501"),
        (message(15, conversation, student.id, data={**sender, "conversation_id": "x"}), "22P02"),
        (message(16, conversation, student.id, kind="update", base_version=None), "22023"),
        # Wrong types in typed columns: text into a boolean, an object into text.
        (
            {
                "op_id": 17,
                "table": "profiles",
                "kind": "update",
                "id": student.id,
                "data": {"onboarded": "maybe"},
                "base_version": 1,
            },
            "22P02",
        ),
        (message(18, conversation, student.id, data={**sender, "edited_at": "soon"}), "22007"),
    ]
    ops = [good[0], *(op for op, _ in bad), good[1]]
    response = push(gateway, str(uuid.uuid4()), ops)
    results = response["results"]
    assert [r["op_id"] for r in results] == [op["op_id"] for op in ops]
    assert results[0]["status"] == "applied" and results[-1]["status"] == "applied"
    for (op, sqlstate), result in zip(bad, results[1:-1], strict=True):
        assert (result["status"], result.get("sqlstate")) == ("rejected", sqlstate), (op, result)
        assert "depends_on" not in result, result  # each stands alone
        assert result["message"]
    assert count(world, [good[0]["id"], good[1]["id"]]) == 2
    assert count(world, [op["id"] for op, _ in bad]) == 0


def test_text_in_an_integer_column_rejects_that_op_only(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    tutor, _, _ = chat
    course_id = world.course(tutor, lessons=0)

    def lesson(op_id: int, position: Any) -> dict[str, Any]:
        data = {"course_id": course_id, "kind": "lesson", "position": position, "title": "T"}
        return {
            "op_id": op_id,
            "table": "course_content",
            "kind": "insert",
            "id": str(uuid.uuid4()),
            "data": data,
            "base_version": None,
        }

    ops = [lesson(1, 1), lesson(2, "first"), lesson(3, 3)]
    results = push(world.gateway(tutor), str(uuid.uuid4()), ops)["results"]
    assert [(r["status"], r.get("sqlstate")) for r in results] == [
        ("applied", None),
        ("rejected", "22P02"),
        ("applied", None),
    ]
    positions = world.sql(
        "select position from public.course_content where course_id = %s order by 1", course_id
    )
    assert positions == [(1,), (3,)]


def test_rejected_profile_edit_does_not_hold_back_messages_that_name_the_user(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    """Regression: the server followed *any* failed op to later inserts whose data names its
    row id, so one rejected profile edit dead-lettered every message of the push (their
    ``sender_id`` is the profile's id). Only a failed *insert* holds back inserts that
    reference it (docs/sync-protocol.md, and what the client's dead-lettering assumes)."""
    _, student, conversation = chat
    bad_edit = {
        "op_id": 1,
        "table": "profiles",
        "kind": "update",
        "id": student.id,
        "data": {"display_name": ""},  # check constraint: 1 to 100 characters
        "base_version": 1,
    }
    later = message(2, conversation, student.id)
    results = push(world.gateway(student), str(uuid.uuid4()), [bad_edit, later])["results"]
    assert results[0]["status"] == "rejected" and results[0]["sqlstate"] == "23514"
    assert results[1]["status"] == "applied", results[1]
    assert count(world, [later["id"]]) == 1


@pytest.mark.parametrize(
    ("ops", "why"),
    [
        ([{"table": "messages", "kind": "insert", "id": str(uuid.uuid4())}], "no op_id"),
        ([{"op_id": "abc", "id": str(uuid.uuid4())}], "op_id not an integer"),
        ([{"op_id": 1.5, "id": str(uuid.uuid4())}], "op_id a fraction"),
        ([{"op_id": -1, "id": str(uuid.uuid4())}], "op_id negative"),
        ([{"op_id": 10**20, "id": str(uuid.uuid4())}], "op_id beyond bigint"),
        ([{"op_id": 1, "id": "not-a-uuid"}], "id not a uuid"),
        ([{"op_id": 1}], "no id"),
        ([{"op_id": 1, "id": str(uuid.uuid4()), "base_version": "x"}], "base_version text"),
        (["an op"], "op not an object"),
        ({"op_id": 1}, "ops not an array"),
        ("ops", "ops a string"),
        (None, "ops null"),
        (
            [{"op_id": 5, "id": str(uuid.uuid4())}, {"op_id": "005", "id": str(uuid.uuid4())}],
            "op_id twice",
        ),
    ],
)
def test_malformed_push_request_fails_whole_with_one_clear_error(
    world: SyncWorld, chat: tuple[Any, Any, str], ops: Any, why: str
) -> None:
    """An op without an integer op_id or a uuid id cannot be stored for exactly-once, so the
    whole request is refused before anything is written (the good op with it is not
    applied)."""
    _, student, conversation = chat
    good = message(1000, conversation, student.id)
    request = [good, *ops] if isinstance(ops, list) else ops
    with pytest.raises(GatewayError) as caught:
        push(world.gateway(student), str(uuid.uuid4()), request)
    assert caught.value.sqlstate in CLEAR, (why, caught.value)
    assert count(world, [good["id"]]) == 0


def test_push_with_a_malformed_client_id_is_refused(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    _, student, _ = chat
    for client_id in ("not-a-uuid", None):
        with pytest.raises(GatewayError) as caught:
            world.gateway(student).rpc("sync_push", {"client_id": client_id, "ops": []})
        assert caught.value.sqlstate in CLEAR


def test_op_id_with_leading_zeros_replays_as_the_same_op(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    """Regression: stored results were looked up by the op_id's text, so ``"007"`` missed the
    result stored for 7 and the op ran again."""
    _, student, conversation = chat
    gateway, client_id = world.gateway(student), str(uuid.uuid4())
    op = message(7, conversation, student.id)
    first = push(gateway, client_id, [op])["results"][0]
    again = push(gateway, client_id, [{**op, "op_id": "007"}])["results"][0]
    assert first["status"] == "applied"
    assert again == {**first, "replayed": True}


def test_forged_client_id_neither_reads_nor_blocks_another_users_results(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    """Stored results are keyed by (user, client_id, op_id): user B pushing with A's client id
    and A's op ids gets its own ops applied, never A's stored results; A still replays its
    own."""
    tutor, student, conversation = chat
    client_id = str(uuid.uuid4())
    a_op = message(1, conversation, student.id)
    b_op = message(1, conversation, tutor.id)
    a_first = push(world.gateway(student), client_id, [a_op])["results"][0]
    b_result = push(world.gateway(tutor), client_id, [b_op])["results"][0]
    assert b_result["status"] == "applied" and "replayed" not in b_result
    assert count(world, [a_op["id"], b_op["id"]]) == 2
    a_again = push(world.gateway(student), client_id, [a_op])["results"][0]
    assert a_again == {**a_first, "replayed": True}
    stored = world.sql(
        "select user_id::text from private.sync_push_results where client_id = %s order by 1",
        client_id,
    )
    assert sorted(r[0] for r in stored) == sorted([student.id, tutor.id])


def test_a_batch_of_5000_ops_is_refused_whole_with_one_clear_error(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    """Decision: at most 1,000 ops per request. Each op costs a savepoint and its write (about
    3 ms on this machine), so 5,000 ops would run into the API role's statement timeout half
    done and fail again on every retry; they are refused at once, before anything is written
    (the Python client sends 200 at a time). 1,000 ops are still one request."""
    _, student, conversation = chat
    gateway = world.gateway(student)
    ops = [message(i, conversation, student.id) for i in range(1, 5001)]
    started = time.monotonic()
    with pytest.raises(GatewayError) as caught:
        push(gateway, str(uuid.uuid4()), ops)
    assert caught.value.sqlstate == "22023" and "at most 1000 ops" in str(caught.value)
    assert time.monotonic() - started < 5
    assert count(world, [op["id"] for op in ops]) == 0
    results = push(gateway, str(uuid.uuid4()), ops[:1000])["results"]
    assert len(results) == 1000 and {r["status"] for r in results} == {"applied"}


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        ([], "request an array"),
        ("x", "request a string"),
        ({"buckets": []}, "buckets an array"),
        ({"buckets": "x"}, "buckets a string"),
        ({"subscriptions": "x"}, "subscriptions a string"),
        ({"buckets": {"messages:{c}": {"cursor": "abc"}}}, "cursor garbage"),
        ({"buckets": {"messages:{c}": {"cursor": "5:3:"}}}, "cursor xmax below xmin"),
        ({"buckets": {"messages:{c}": {"cursor": None, "round": "x", "after": None}}}, "round"),
        ({"buckets": {"messages:{c}": {"cursor": None, "round": "1:1:", "after": "y"}}}, "after"),
        ({"limit": "many"}, "limit text"),
    ],
)
def test_malformed_pull_request_gets_one_clear_error(
    world: SyncWorld, chat: tuple[Any, Any, str], request_: Any, why: str
) -> None:
    _, student, conversation = chat
    if isinstance(request_, dict) and isinstance(request_.get("buckets"), dict):
        request_ = {
            "buckets": {k.format(c=conversation): v for k, v in request_["buckets"].items()}
        }
    with pytest.raises(GatewayError) as caught:
        world.gateway(student).rpc("sync_pull", {"request": request_}, read_only=True)
    assert caught.value.sqlstate in CLEAR, (why, caught.value)


def test_pull_tolerates_unknown_buckets_odd_limits_and_bad_subscriptions(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    """What is not malformed but unknown is answered, not refused: buckets the caller does
    not hold come back in ``removed_buckets``, subscriptions that cannot be granted in
    ``denied``, and the limit is clamped to 1..10000."""
    _, student, conversation = chat
    gateway = world.gateway(student)
    odd = ["nocolon", "no_such_table:k", "messages:not-a-uuid", f"payments:{uuid.uuid4()}"]
    page = gateway.rpc(
        "sync_pull",
        {
            "request": {
                "buckets": {name: {"cursor": None} for name in odd},
                "subscriptions": [
                    1,
                    {"stream": "no_such_stream", "key": "x"},
                    {"stream": "course_preview", "key": "not-a-uuid"},
                    {"key": "x"},
                ],
                "limit": 10**12,
            }
        },
        read_only=True,
    )
    assert sorted(page["removed_buckets"]) == sorted(odd)
    assert len(page["denied"]) == 4
    assert any(b["bucket"] == f"messages:{conversation}" for b in page["buckets"])
    for limit in (-1, 0, 1.5):
        small = gateway.rpc("sync_pull", {"request": {"limit": limit}}, read_only=True)
        assert small["has_more"] is True  # one row per page
    checksums = gateway.rpc(
        "sync_checksums", {"request": {"buckets": [1, "nope:1", "messages:zz"]}}, read_only=True
    )
    assert sorted(checksums["removed_buckets"]) == ["1", "messages:zz", "nope:1"]


def test_cache_dead_letters_only_the_rejected_profile_edit_not_the_users_messages(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    """The same regression end to end: before the fix the client dead-lettered the messages
    too (the server said they depended on the rejected edit)."""
    _, student, conversation = chat
    with SyncCache.open(world.client(student), tmp_path / "c.db") as cache:
        cache.sync()
        cache.update("profiles", student.id, {"display_name": ""})  # violates the check
        sent = cache.insert(
            "messages", {"conversation_id": conversation, "sender_id": student.id, "body": "hi"}
        )
        cache.sync()
        assert [(d.table, d.sqlstate) for d in cache.dead_letters()] == [("profiles", "23514")]
        assert count(world, [sent]) == 1
        assert cache.status().pending_ops == 0
