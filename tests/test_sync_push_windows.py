"""A push applies interleaved ops of several tables one statement a table only when their
order cannot matter (supabase/migrations/20261212100000_sync_push_windows.sql).

A window is a stretch of whole client transactions of several tables, each op eligible for a
run. Its ops are applied grouped by table; the transaction's own statistics counters say
which tables each group read and wrote, and when one group read a table another wrote, the
window is rolled back and its ops go one at a time, in order, as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from pysync.localdb import LocalDatabase
from tests.helpers import acting_as, connect
from tests.sync_world import SyncWorld

#: The counters behave alike on 15 and 17, and the SQL suites run on both.
pytestmark = pytest.mark.sql_suite

#: Functions whose calls in the pushing transaction say which way the ops went.
COUNTED = ("private.sync_apply_window(jsonb,jsonb)", "private.sync_apply_op(jsonb)")


@pytest.fixture(scope="module")
def counted_url(app_url: str, local_db: LocalDatabase) -> Iterator[str]:
    """The module's app database, its sessions counting calls of PL/pgSQL functions."""
    name = psycopg.conninfo.conninfo_to_dict(app_url)["dbname"]
    with local_db.admin_connect(str(name)) as admin:
        admin.execute(
            psycopg.sql.SQL("alter database {} set track_functions = 'pl'").format(
                psycopg.sql.Identifier(str(name))
            )
        )
    yield app_url


def _op(op_id: int, table: str, data: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "op_id": op_id,
        "kind": "insert",
        "table": table,
        "id": str(uuid.uuid4()),
        "base_version": None,
        "priority": "normal",
        "data": data,
        **fields,
    }


def _push(
    url: str, user_id: str, ops: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``sync_push(ops)`` as the user, committed: the results, and the calls of each of
    :data:`COUNTED` in that transaction."""
    with connect(url) as conn:
        oids = {
            name: conn.execute("select %s::regprocedure::oid", (name,)).fetchone()[0]  # type: ignore[index]
            for name in COUNTED
        }
        with acting_as(conn, "authenticated", user_id, keep=True):
            row = conn.execute(
                "select public.sync_push(%s::uuid, %s::jsonb)", (str(uuid.uuid4()), Jsonb(ops))
            ).fetchone()
            calls = {
                name: int(
                    conn.execute(
                        "select coalesce(pg_stat_get_xact_function_calls(%s), 0)", (oid,)
                    ).fetchone()[0]  # type: ignore[index]
                )
                for name, oid in oids.items()
            }
        conn.commit()
    assert row is not None
    return row[0]["results"], calls


def test_interleaved_tables_go_one_statement_a_table(counted_url: str) -> None:
    world = SyncWorld(counted_url)
    try:
        student, tutor = world.user("student"), world.user("tutor")
        talk = world.direct_conversation(student, tutor)
        me = str(student.id)
        ops = [
            _op(n, "messages", {"conversation_id": talk, "sender_id": me, "body": f"m{n}"})
            if n % 2
            else _op(n, "support_queries", {"owner_id": me, "subject": f"s{n}", "body": "?"})
            for n in range(1, 11)
        ]
        results, calls = _push(counted_url, me, ops)
        bodies = world.sql(
            "select body from public.messages where conversation_id = %s order by body", talk
        )
        tickets = world.sql("select count(*) from public.support_queries where owner_id = %s", me)
        notified = world.sql(
            "select data ->> 'message_id' from public.notifications"
            " where recipient_id = %s and type = 'new_message'",
            tutor.id,
        )
    finally:
        world.close()
    assert [(r["op_id"], r["status"]) for r in results] == [(n, "applied") for n in range(1, 11)]
    assert all(isinstance(r["version"], int) for r in results)
    assert calls == {COUNTED[0]: 1, COUNTED[1]: 0}, "applied as one window, no op alone"
    assert bodies == [(f"m{n}",) for n in (1, 3, 5, 7, 9)] and tickets == [(5,)]
    assert sorted(n for (n,) in notified) == sorted(op["id"] for op in ops[::2])


def test_a_window_whose_tables_depend_on_each_other_goes_in_order(counted_url: str) -> None:
    """A message's notification names its course; the course is renamed between messages.
    Grouped, every message would go before the rename and every notification would name the
    old title. The messages read ``courses``, which the rename writes: the window is rolled
    back and the ops go in order."""
    world = SyncWorld(counted_url)
    try:
        tutor, student = world.user("tutor"), world.user("student")
        course = world.course(tutor, lessons=0)
        world.enroll(student, course)
        talk = str(world.gateway(tutor).rpc("start_course_conversation", {"course": course})["id"])
        (version,) = world.sql("select version from public.courses where id = %s", course)[0]
        ops = [
            _op(n, "messages", {"conversation_id": talk, "sender_id": str(tutor.id), "body": "x"})
            for n in range(1, 9)
        ]
        ops[3] = _op(4, "courses", {"title": "Geometry"}, kind="update", base_version=version)
        ops[3]["id"] = course
        with connect(counted_url) as conn, acting_as(conn, "authenticated", str(tutor.id)):
            row = conn.execute(
                "select private.sync_push_windows(%s::jsonb, '{}')", (Jsonb(ops),)
            ).fetchone()
        results, calls = _push(counted_url, str(tutor.id), ops)
        titles = dict(
            world.sql(
                "select data ->> 'message_id', title from public.notifications"
                " where recipient_id = %s and type = 'new_message'",
                student.id,
            )
        )
    finally:
        world.close()
    assert [r["status"] for r in results] == ["applied"] * 8, results
    assert row is not None
    assert row[0] == {"0": {"last": 7, "groups": [[0, 1, 2, 4, 5, 6, 7], [3]]}}
    named = [titles[op["id"]].rsplit(" in ", 1)[1] for n, op in enumerate(ops) if n != 3]
    assert named == ["Algebra"] * 3 + ["Geometry"] * 4
    # The window was tried and rolled back (a call that raised is not counted); then the
    # ops before the rename went as a run, the rename alone, and the ops after it as a run.
    assert calls == {COUNTED[0]: 0, COUNTED[1]: 1}


def test_windows_are_whole_transactions_of_one_shape_a_table(app_url: str) -> None:
    """Which stretches form a window: every op eligible for a run, one kind and set of
    columns a table; a stretch of one table is a run, not a window."""
    me = str(uuid.uuid4())

    def message(op_id: int, tx: str | None = None, **data: Any) -> dict[str, Any]:
        return _op(op_id, "messages", {"conversation_id": me, "body": "x", **data}, tx_id=tx)

    def ticket(op_id: int, tx: str | None = None) -> dict[str, Any]:
        return _op(
            op_id, "support_queries", {"owner_id": me, "subject": "s", "body": "b"}, tx_id=tx
        )

    def windows(ops: list[dict[str, Any]]) -> Any:
        with connect(app_url) as conn, acting_as(conn, "authenticated", me):
            row = conn.execute(
                "select private.sync_push_windows(%s::jsonb, '{}')", (Jsonb(ops),)
            ).fetchone()
        assert row is not None
        return row[0]

    def alternating(first: int, count: int) -> list[dict[str, Any]]:
        return [message(n) if n % 2 else ticket(n) for n in range(first, first + count)]

    # Ten ops, the last two one transaction: one window.
    ops = [*alternating(1, 8), ticket(9, "t"), message(10, "t")]
    assert windows(ops) == {"0": {"last": 9, "groups": [[0, 2, 4, 6, 9], [1, 3, 5, 7, 8]]}}
    # Other columns for messages (a second shape of the table) start a new window.
    ops = [
        *alternating(1, 8),
        *(message(n, sender_id=me) if n % 2 else ticket(n) for n in range(9, 17)),
    ]
    assert windows(ops) == {
        "0": {"last": 7, "groups": [[0, 2, 4, 6], [1, 3, 5, 7]]},
        "8": {"last": 15, "groups": [[8, 10, 12, 14], [9, 11, 13, 15]]},
    }
    # An op that cannot be in a window (it names another op's row) splits it, and so does
    # the end of the request; fewer than eight ops, or a stretch of one table, make none.
    ops = [*alternating(1, 8), ticket(9), *alternating(10, 7)]
    ops[8]["data"]["body"] = ops[0]["id"]
    assert windows(ops) == {"0": {"last": 7, "groups": [[0, 2, 4, 6], [1, 3, 5, 7]]}}
    assert windows(alternating(1, 7)) == {}
    assert windows([message(n) for n in range(1, 10)]) == {}


def test_no_window_is_trusted_without_the_statistics_counters(
    app_url: str, local_db: LocalDatabase
) -> None:
    """With ``track_counts`` off every footprint would look empty and every window pass: the
    window is refused, and the push applies the ops one at a time."""
    name = psycopg.conninfo.conninfo_to_dict(app_url)["dbname"]
    world = SyncWorld(app_url)
    try:
        student = world.user("student")
        ops = [
            _op(1, "support_queries", {"owner_id": str(student.id), "subject": "a", "body": "?"}),
            _op(2, "devices", {"user_id": str(student.id), "device_id": "d1", "platform": "ios"}),
        ]
        with local_db.admin_connect(str(name)) as admin, admin.transaction(force_rollback=True):
            admin.execute("set local track_counts = off")
            with (
                acting_as(admin, "authenticated", str(student.id)),
                pytest.raises(psycopg.Error, match="track_counts is off"),
            ):
                admin.execute(
                    "select private.sync_apply_window(%s::jsonb, '[[0], [1]]')", (Jsonb(ops),)
                )
            with acting_as(admin, "authenticated", str(student.id)):
                row = admin.execute(
                    "select public.sync_push(%s::uuid, %s::jsonb)",
                    (str(uuid.uuid4()), Jsonb(ops)),
                ).fetchone()
    finally:
        world.close()
    assert row is not None
    assert [r["status"] for r in row[0]["results"]] == ["applied", "applied"]
