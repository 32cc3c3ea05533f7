"""Set-based pushes: sync_push applies a run of whole client transactions (all inserts, or all
updates, of one table with the same columns) in one statement, and falls back to one op at a
time when the statement fails or does not write every row. Every op still gets exactly the
result it would get alone (docs/sync-protocol.md, sync_push)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

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


def message(op_id: int, conversation: str, sender: str, body: str, **extra: Any) -> dict[str, Any]:
    return {
        "op_id": op_id,
        "tx_id": str(uuid.uuid4()),
        "table": "messages",
        "kind": "insert",
        "id": str(uuid.uuid4()),
        "data": {"conversation_id": conversation, "sender_id": sender, "body": body},
        "base_version": None,
        **extra,
    }


def edit(op_id: int, row_id: str, body: str, base: int, **extra: Any) -> dict[str, Any]:
    return {
        "op_id": op_id,
        "tx_id": str(uuid.uuid4()),
        "table": "messages",
        "kind": "update",
        "id": row_id,
        "data": {"body": body},
        "base_version": base,
        **extra,
    }


def push(world: SyncWorld, user: Any, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer = world.gateway(user).rpc("sync_push", {"client_id": str(uuid.uuid4()), "ops": ops})
    results: list[dict[str, Any]] = answer["results"]
    return results


def runs(world: SyncWorld, ops: list[dict[str, Any]], stored: dict[str, Any] | None = None) -> Any:
    return world.sql(
        "select private.sync_push_runs(%s::jsonb, %s::jsonb)",
        json.dumps(ops),
        json.dumps(stored or {}),
    )[0][0]


def writers(world: SyncWorld, ops: list[dict[str, Any]]) -> int:
    """How many (sub)transactions wrote the ops' rows: one statement under one savepoint is
    one; ops applied one at a time each have their own savepoint."""
    return int(
        world.sql(
            "select count(distinct xmin::text) from public.messages where id = any(%s::uuid[])",
            [o["id"] for o in ops],
        )[0][0]
    )


def bodies(world: SyncWorld, ops: list[dict[str, Any]]) -> dict[str, str]:
    rows = world.sql(
        "select id::text, body from public.messages where id = any(%s::uuid[])",
        [o["id"] for o in ops],
    )
    return {str(i): str(b) for i, b in rows}


# ------------------------------------------------------------------------ which ops form runs


def test_runs_are_consecutive_whole_transactions_of_one_table_kind_and_columns(
    world: SyncWorld,
) -> None:
    conversation, sender = str(uuid.uuid4()), str(uuid.uuid4())
    m = [message(n, conversation, sender, f"m{n}") for n in range(1, 4)]
    query = {
        "op_id": 4,
        "tx_id": None,
        "table": "support_queries",
        "kind": "insert",
        "id": str(uuid.uuid4()),
        "data": {"owner_id": sender, "subject": "s", "body": "b"},
        "base_version": None,
    }
    tx = str(uuid.uuid4())
    pair = [
        message(5, conversation, sender, "a", tx_id=tx),
        message(6, conversation, sender, "b", tx_id=tx),
    ]
    other_columns = message(7, conversation, sender, "c")
    other_columns["data"]["attachment_path"] = None
    edits = [
        edit(8, m[0]["id"], "x", 1),
        edit(9, str(uuid.uuid4()), "y", 1),
        edit(10, str(uuid.uuid4()), "z", 2),
    ]
    ops = [*m, query, *pair, other_columns, *edits]
    # m[0] and edits[0] touch one row: neither joins a run; the query is a run of one op.
    assert runs(world, ops) == {"1": 2, "4": 5, "8": 9}
    assert runs(world, ops[1:3] + ops[4:6]) == {"0": 3}  # two whole transactions and two ops


def test_ops_that_cannot_run_together_are_left_to_one_at_a_time(world: SyncWorld) -> None:
    conversation, sender = str(uuid.uuid4()), str(uuid.uuid4())
    parent = message(1, conversation, sender, "parent")
    child = message(2, conversation, sender, parent["id"])  # names an op's row
    assert runs(world, [parent, child]) == {}
    no_base = edit(2, str(uuid.uuid4()), "x", 1)
    no_base["base_version"] = None
    assert runs(world, [edit(1, str(uuid.uuid4()), "w", 1), no_base]) == {}
    not_writable = message(2, conversation, sender, "v")
    not_writable["data"]["version"] = 3
    assert runs(world, [message(1, conversation, sender, "u"), not_writable]) == {}
    not_allowed = [
        {**message(n, conversation, sender, "d"), "kind": "delete", "data": {}} for n in (1, 2)
    ]
    assert runs(world, not_allowed) == {}
    unsynced = [{**message(n, conversation, sender, "p"), "table": "payments"} for n in (1, 2)]
    assert runs(world, unsynced) == {}
    replay = [message(n, conversation, sender, "r") for n in (1, 2, 3)]
    assert runs(world, replay, {"2": {"op_id": 2, "status": "applied"}}) == {}
    mixed_tx = str(uuid.uuid4())
    half = [
        message(1, conversation, sender, "h", tx_id=mixed_tx),
        {**edit(2, str(uuid.uuid4()), "k", 1), "tx_id": mixed_tx},
        message(3, conversation, sender, "i"),
    ]
    assert runs(world, half) == {}  # a transaction is never split between a run and the rest


# ------------------------------------------------------------------ results of a run, or not


def test_a_run_of_inserts_applies_every_op_with_its_own_result(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    _, student, conversation = chat
    ops = [message(n, conversation, student.id, f"hello {n}") for n in range(1, 6)]
    assert runs(world, ops) == {"0": 4}
    results = push(world, student, ops)
    assert [(r["op_id"], r["status"], r["version"]) for r in results] == [
        (n, "applied", 1) for n in range(1, 6)
    ]
    assert bodies(world, ops) == {o["id"]: o["data"]["body"] for o in ops}
    assert writers(world, ops) == 1  # one statement


def test_a_run_with_a_rejected_insert_falls_back_to_one_result_per_op(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    _, student, conversation = chat
    stranger = world.user("student")
    ops = [message(n, conversation, student.id, f"m{n}") for n in range(1, 5)]
    ops[1]["data"]["sender_id"] = stranger.id  # RLS: the sender must be the caller
    ops[2]["data"]["body"] = "x" * 5000  # a check constraint
    assert runs(world, ops) == {"0": 3}
    results = push(world, student, ops)
    assert [(r["status"], r.get("sqlstate")) for r in results] == [
        ("applied", None),
        ("rejected", "42501"),
        ("rejected", "23514"),
        ("applied", None),
    ]
    assert set(bodies(world, ops)) == {ops[0]["id"], ops[3]["id"]}
    assert writers(world, ops) == 2  # the run was rolled back and applied op by op


def test_a_run_of_updates_with_a_stale_base_conflicts_for_that_op_only(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    _, student, conversation = chat
    made = [message(n, conversation, student.id, f"v1 {n}") for n in range(1, 4)]
    push(world, student, made)
    world.sql("update public.messages set body = 'theirs' where id = %s", made[1]["id"])  # now v2
    edits = [edit(10 + n, m["id"], f"mine {n}", 1) for n, m in enumerate(made)]
    assert runs(world, edits) == {"0": 2}
    results = push(world, student, edits)
    assert [(r["status"], r["version"]) for r in results] == [
        ("applied", 2),
        ("conflict", 2),
        ("applied", 2),
    ]
    assert results[1]["row"]["body"] == "theirs"
    assert writers(world, made) == 3  # two edits and the other writer's
    assert bodies(world, made) == {
        made[0]["id"]: "mine 0",
        made[1]["id"]: "theirs",
        made[2]["id"]: "mine 2",
    }


def test_an_insert_of_an_existing_id_in_a_run_is_a_conflict(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    _, student, conversation = chat
    first = message(1, conversation, student.id, "original")
    push(world, student, [first])
    again = [message(n, conversation, student.id, f"m{n}") for n in range(2, 5)]
    again[1] = {**again[1], "id": first["id"], "data": {**again[1]["data"], "body": "copy"}}
    results = push(world, student, again)
    assert [r["status"] for r in results] == ["applied", "conflict", "applied"]
    assert results[1]["row"]["body"] == "original"


def test_a_failed_transaction_in_a_run_rolls_back_whole_and_the_rest_applies(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    _, student, conversation = chat
    good_tx, bad_tx = str(uuid.uuid4()), str(uuid.uuid4())
    ops = [
        message(1, conversation, student.id, "a", tx_id=good_tx),
        message(2, conversation, student.id, "b", tx_id=good_tx),
        message(3, conversation, student.id, "c", tx_id=bad_tx),
        message(4, conversation, student.id, "x" * 5000, tx_id=bad_tx),
    ]
    assert runs(world, ops) == {"0": 3}
    results = push(world, student, ops)
    assert [(r["status"], r.get("depends_on")) for r in results] == [
        ("applied", None),
        ("applied", None),
        ("rejected", 4),
        ("rejected", None),
    ]
    assert set(bodies(world, ops)) == {ops[0]["id"], ops[1]["id"]}


def test_a_replayed_run_returns_the_stored_results_and_writes_nothing(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    _, student, conversation = chat
    client_id = str(uuid.uuid4())
    ops = [message(n, conversation, student.id, f"once {n}") for n in range(1, 4)]
    gateway = world.gateway(student)
    first = gateway.rpc("sync_push", {"client_id": client_id, "ops": ops})["results"]
    again = gateway.rpc("sync_push", {"client_id": client_id, "ops": ops})["results"]
    assert again == [{**r, "replayed": True} for r in first]
    assert world.sql(
        "select count(*) from public.messages where id = any(%s::uuid[])", [o["id"] for o in ops]
    ) == [(3,)]


def test_a_run_sends_one_nudge_for_its_bucket(world: SyncWorld, chat: tuple[Any, Any, str]) -> None:
    _, student, conversation = chat
    ops = [message(n, conversation, student.id, f"n{n}") for n in range(1, 6)]
    with psycopg.connect(world.url, autocommit=True) as listener:
        listener.execute(f'listen "sync:messages:{conversation}"')
        push(world, student, ops)
        notes = list(listener.notifies(timeout=1.0, stop_after=5))
    assert len(notes) == 1
    assert f'"bucket": "messages:{conversation}"' in notes[0].payload
