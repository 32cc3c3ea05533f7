"""The declared sync payloads (``pysync/gen/sync_payloads.py``) are what the server sends.

Real ``sync_*`` calls against the migrations, as real users through the gateway, with
requests chosen so that every declared field shows up, every ``null`` a field may hold shows
up, and every key that may be absent is absent somewhere. Every answer is validated against
the declaration (no missing key, no undeclared key, every value of its declared type), and the
declaration must not promise more than the answers use: a nullable field never seen ``null``
or an optional key never seen absent fails too. The generated Dart, TypeScript and Python
types are written from this declaration alone, so they cannot drift from the server either.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from pysync.gateway import Gateway, Identity
from pysync.gen.payload_types import (
    INTEGER,
    STRING,
    TIMESTAMP,
    Choice,
    Const,
    Field,
    ListOf,
    MapOf,
    PayloadType,
    RpcPayload,
    Struct,
    Usage,
    structs_of,
    validate,
)
from pysync.gen.sync_payloads import SYNC_PAYLOADS, WIRE_VERSION
from pysync.sync.wire import BucketState, PullRequest, PushOp, Subscription
from tests.helpers import connect
from tests.sync_world import SyncWorld

PAYLOADS = {p.function: p for p in SYNC_PAYLOADS}


def _argument(function: str, name: str) -> PayloadType:
    return next(a.type for a in PAYLOADS[function].arguments if a.name == name)


@pytest.fixture(scope="module")
def world(app_url: str) -> Iterator[SyncWorld]:
    made = SyncWorld(app_url)
    yield made
    made.close()


class Caller:
    """Calls RPCs as one user, checking each request and answer against the declaration."""

    def __init__(self, gateway: Gateway, usage: Usage) -> None:
        self.gateway = gateway
        self.usage = usage

    def __call__(
        self, function: str, args: dict[str, Any] | None = None, *, malformed: bool = False
    ) -> Any:
        """``malformed``: the request is knowingly outside the declaration (to make the server
        answer what only bad input gets), so only the answer is checked."""
        payload = PAYLOADS[function]
        for name, value in (args or {}).items():
            errors = validate(value, _argument(function, name))
            assert bool(errors) == malformed, (function, name, errors)
        answer = self.gateway.rpc(function, args)
        errors = validate(answer, payload.returns, f"{function}()", self.usage)
        assert errors == [], "\n".join(errors)
        return answer


# -- the validator itself -------------------------------------------------------------------

_POINT = Struct(
    "Point",
    "",
    (
        Field("x", INTEGER, ""),
        Field("label", STRING, "", nullable=True),
        Field("at", TIMESTAMP, "", required=False),
        Field("tags", MapOf(ListOf(Choice("Tag", ("a", "b"), ""))), "", required=False),
        Field("v", Const(2), "", required=False),
    ),
)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"label": None}, "$: no 'x'"),
        ({"x": 1, "label": None, "y": 2}, "$: undeclared key 'y'"),
        ({"x": None, "label": None}, "$.x: null, which is not declared"),
        ({"x": True, "label": None}, "$.x: True is not an integer"),
        ({"x": 1, "label": 5}, "$.label: 5 is not a string"),
        ({"x": 1, "label": "", "at": "2026-12-01T10:00:00"}, "not an ISO 8601 time with an offset"),
        ({"x": 1, "label": "", "tags": {"k": ["c"]}}, "$.tags['k'][0]: 'c' is not one of a, b"),
        ({"x": 1, "label": "", "tags": {"k": "a"}}, "$.tags['k']: 'a' is not a list"),
        ({"x": 1, "label": "", "v": 1}, "$.v: 1 is not 2"),
        ([], "$: [] is not an object"),
    ],
)
def test_the_validator_finds_every_kind_of_difference(value: Any, error: str) -> None:
    errors = validate(value, _POINT)
    assert len(errors) == 1 and error in errors[0], errors


def test_the_validator_accepts_a_conforming_value_and_records_usage() -> None:
    usage = Usage()
    value = {"x": 1, "label": None, "at": "2026-12-01T10:00:00+00:00", "tags": {"k": ["a"]}}
    assert validate(value, _POINT, usage=usage) == []
    assert usage.present == {"Point.x", "Point.at", "Point.tags"}
    assert usage.null == {"Point.label"}
    assert usage.absent == {"Point.v"}


# -- the Python client's requests ------------------------------------------------------------


def test_the_python_client_sends_what_the_declaration_describes() -> None:
    request = PullRequest(
        buckets={
            "messages:3f0c0000-0000-4000-8000-000000000001": BucketState(cursor="10:12:11"),
            "course_content:9a1b0000-0000-4000-8000-000000000001": BucketState(
                cursor=None, round="10:10:", after="5d2e0000-0000-4000-8000-000000000001"
            ),
        },
        subscriptions=(Subscription("course_preview", "9a1b"),),
    )
    for sent in (request, replace(request, compact=True)):
        assert validate(sent.to_json(), _argument("sync_pull", "request")) == []
    op = PushOp(
        op_id=7,
        tx_id=str(uuid.uuid4()),
        table="messages",
        kind="update",
        id=str(uuid.uuid4()),
        data={"body": "hi"},
        base_version=3,
    ).to_json()
    assert validate([op], _argument("sync_push", "ops")) == []


# -- the server's answers --------------------------------------------------------------------


def _push_op(
    op_id: int, kind: str, row: str, data: dict[str, Any], base: int | None
) -> dict[str, Any]:
    return {
        "op_id": op_id,
        "tx_id": None,
        "table": "messages",
        "kind": kind,
        "id": row,
        "data": data,
        "base_version": base,
        "priority": "normal",
    }


def test_every_sync_answer_is_what_the_declaration_says(world: SyncWorld) -> None:
    usage = Usage()
    tutor, student, stranger = world.user("tutor"), world.user("student"), world.user("student")
    course = world.course(tutor, lessons=5)
    world.enroll(student, course)
    draft = str(uuid.uuid4())
    world.sql(
        "insert into public.courses (id, tutor_id, title) values (%s, %s, 'Draft')", draft, tutor.id
    )
    call = Caller(world.gateway(student), usage)

    call("sync_schema")

    # Pull: a small page first (a bucket left incomplete: round and after), subscriptions the
    # server refuses in each way it can (null stream and key among them), a bucket not held.
    subscriptions: list[Any] = [
        {"stream": "course_preview", "key": draft},
        {"stream": "course_preview", "key": "not-a-uuid"},
        {"stream": "no_such_stream", "key": "x"},
        {},
    ]
    not_held = f"course_content:{uuid.uuid4()}"
    states: dict[str, Any] = {not_held: {"cursor": None, "round": None, "after": None}}
    pages: list[dict[str, Any]] = []
    while True:
        request = {"buckets": states, "version": WIRE_VERSION, "limit": 2}
        if not pages:
            request["subscriptions"] = subscriptions
        page = call("sync_pull", {"request": request}, malformed=not pages)
        pages.append(page)
        states = {b: s for b, s in states.items() if b not in page["removed_buckets"]}
        for entry in page["buckets"]:
            previous = states.get(entry["bucket"]) or {"cursor": None}
            states[entry["bucket"]] = (
                {"cursor": entry["cursor"], "round": None, "after": None}
                if entry["complete"]
                else {
                    "cursor": previous["cursor"],
                    "round": entry["round"],
                    "after": entry["after"],
                }
            )
        for bucket in page["unchanged"]:
            states[bucket] = {"cursor": page["snapshot"], "round": None, "after": None}
        if not page["has_more"]:
            break
    assert pages[0]["removed_buckets"] == [not_held]
    assert {d["reason"] for d in pages[0]["denied"]} == {
        "not allowed",
        "not a valid key",
        "unknown stream",
    }
    assert any(not e["complete"] for p in pages for e in p["buckets"])

    # Nothing changed, twice, then one lesson deleted: all unchanged, then unchanged buckets
    # beside a removal. The second quiet pull sends the buckets at the shared cursor by table,
    # as the client does. Sent with the token, the removal's entry leaves its streams out (a
    # lesson is no membership row).
    quiet = call("sync_pull", {"request": {"buckets": states, "version": WIRE_VERSION}})
    assert quiet["all_unchanged"] is True and quiet["unchanged"] == [] and quiet["resolution"]
    states = {bucket: {"cursor": quiet["snapshot"]} for bucket in states}
    compact = PullRequest(
        buckets={b: BucketState(**s) for b, s in states.items()},
        resolution=quiet["resolution"],
        compact=True,
    ).to_json()
    assert compact["held"] and compact["buckets"] == {}
    quiet = call("sync_pull", {"request": compact})
    assert quiet["all_unchanged"] is True and quiet["unchanged"] == []
    lesson = world.sql(
        "select id::text from public.course_content where course_id = %s limit 1", course
    )[0][0]
    world.sql("delete from public.course_content where id = %s", lesson)
    request = {"buckets": states, "version": WIRE_VERSION, "resolution": quiet["resolution"]}
    changed = call("sync_pull", {"request": request})
    assert any(lesson in e["removed"] for e in changed["buckets"])
    assert [e["streams"] for e in changed["buckets"]] == [None]
    assert changed["unchanged"] and "all_unchanged" not in changed

    sums = call(
        "sync_checksums",
        {"request": {"buckets": [f"course_content:{course}", not_held], "subscriptions": []}},
    )
    assert sums["removed_buckets"] == [not_held]

    # Push: applied (an insert, and a delete of a row already gone: version null), a conflict
    # (the server's row), a rejection with no visible row, an op that follows it, a replay.
    conversation = str(world.client(student).conversations.start_direct(tutor.id).id)
    client_id = str(uuid.uuid4())
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    first = [
        _push_op(1, "insert", mine, {"conversation_id": conversation, "sender_id": student.id,
                                     "body": "v1"}, None),
        {**_push_op(2, "delete", str(uuid.uuid4()), {}, None), "table": "devices"},
    ]  # fmt: skip
    applied = call("sync_push", {"client_id": client_id, "ops": first})["results"]
    assert [(r["status"], r["version"]) for r in applied] == [("applied", 1), ("applied", None)]
    replay = call("sync_push", {"client_id": client_id, "ops": first})
    assert all(r["replayed"] for r in replay["results"])
    second = [
        _push_op(4, "update", mine, {"body": "v2"}, 1),
        _push_op(5, "update", mine, {"body": "stale"}, 1),
        _push_op(6, "insert", theirs, {"conversation_id": conversation, "sender_id": stranger.id,
                                       "body": "not me"}, None),
        _push_op(7, "update", theirs, {"body": "edit"}, 1),
    ]  # fmt: skip
    results = call("sync_push", {"client_id": client_id, "ops": second})["results"]
    assert [r["status"] for r in results] == ["applied", "conflict", "rejected", "rejected"]

    service = world.api.as_identity(Identity.service_role())
    Caller(service, usage)("sync_prune")

    _assert_every_declared_case_was_seen(usage)


def _response_structs(payloads: tuple[RpcPayload, ...]) -> list[Struct]:
    returns = tuple(RpcPayload(p.function, (), p.returns) for p in payloads)
    return structs_of(returns)


def _assert_every_declared_case_was_seen(usage: Usage) -> None:
    """The declaration is no wider than the server: each field of an answer was seen with a
    value, each nullable one ``null`` and each optional one absent, in a real answer."""
    unseen = []
    for struct in _response_structs(SYNC_PAYLOADS):
        for declared in struct.fields:
            where = f"{struct.name}.{declared.name}"
            if where not in usage.present:
                unseen.append(f"{where} never had a value")
            if declared.nullable and where not in usage.null:
                unseen.append(f"{where} is declared nullable but was never null")
            if not declared.required and where not in usage.absent:
                unseen.append(f"{where} is declared optional but was never absent")
    assert unseen == []


def test_every_api_sync_function_has_a_declared_payload(world: SyncWorld) -> None:
    """A new ``sync_*`` RPC, or a changed signature, must come with its declaration."""
    from pysync.gen import introspect

    with connect(world.url) as conn:
        schema = introspect(conn, ["public"])
    exposed = {f.name: f for f in schema.functions if f.name.startswith("sync_")}
    assert set(exposed) == set(PAYLOADS)
    assert all(f.payload is PAYLOADS[name] for name, f in exposed.items())
