"""An insert op applied alone runs the statement compiled for its table
(private.sync_insert_row, regenerated from the registry): the same insert the EXECUTE path
made, with every writable column the op leaves out getting its default, and the same results
(docs/sync-protocol.md, sync_push)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.sync_world import ROUTES, SyncWorld, compiled_without, make_world


@pytest.fixture(scope="module", params=ROUTES)
def world(request: pytest.FixtureRequest, app_url: str) -> Iterator[SyncWorld]:
    made = make_world(request, app_url)
    yield made
    made.close()


def lesson_op(op_id: int, course: str, row_id: str, **data: Any) -> dict[str, Any]:
    return {
        "op_id": op_id,
        "tx_id": str(uuid.uuid4()),
        "table": "course_content",
        "kind": "insert",
        "id": row_id,
        "data": {"course_id": course, "kind": "lesson", "position": 1, "title": "t", **data},
        "base_version": None,
    }


def push(world: SyncWorld, user: Any, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer = world.gateway(user).rpc("sync_push", {"client_id": str(uuid.uuid4()), "ops": ops})
    results: list[dict[str, Any]] = answer["results"]
    return results


def compiled_source(world: SyncWorld) -> str:
    return str(world.sql("select prosrc from pg_proc where proname = 'sync_insert_row'")[0][0])


def test_every_insertable_synced_table_has_a_compiled_insert(world: SyncWorld) -> None:
    insertable = [
        str(r[0])
        for r in world.sql(
            "select table_name from private.sync_tables"
            " where 'insert' = any(operations) and cardinality(writable) > 0"
        )
    ]
    assert "messages" in insertable
    source = compiled_source(world)
    for table in insertable:
        assert f"if $1 = '{table}' then" in source, table


def test_an_insert_alone_leaves_out_columns_as_an_insert_does(world: SyncWorld) -> None:
    """The op names neither content_type nor is_preview (defaults 'markdown' and false) nor
    body (no default): the row gets what a plain INSERT without them gives; a column the op
    names keeps its value, even one equal to null."""
    tutor = world.user("tutor")
    course = world.course(tutor, lessons=0)
    bare, named = str(uuid.uuid4()), str(uuid.uuid4())
    results = push(
        world,
        tutor,
        [
            lesson_op(1, course, bare),
            lesson_op(2, course, named, content_type="video", is_preview=True, body=None),
        ],
    )
    assert [r["status"] for r in results] == ["applied", "applied"]
    rows = {
        str(r[0]): r[1:]
        for r in world.sql(
            "select id::text, content_type, is_preview, body, version"
            " from public.course_content where id = any(%s::uuid[])",
            [bare, named],
        )
    }
    assert rows[bare] == ("markdown", False, None, 1)
    assert rows[named] == ("video", True, None, 1)


def test_an_insert_alone_of_an_existing_id_is_a_conflict_with_the_row(world: SyncWorld) -> None:
    tutor = world.user("tutor")
    course = world.course(tutor, lessons=0)
    row_id = str(uuid.uuid4())
    assert push(world, tutor, [lesson_op(1, course, row_id)])[0]["status"] == "applied"
    again = push(world, tutor, [lesson_op(1, course, row_id, title="other")])[0]
    assert again["status"] == "conflict"
    assert again["row"]["title"] == "t"
    assert world.sql("select title from public.course_content where id = %s", row_id) == [("t",)]


def test_an_insert_alone_the_caller_may_not_make_is_rejected(world: SyncWorld) -> None:
    """RLS still decides: a student cannot add a lesson to another tutor's course."""
    tutor, student = world.user("tutor"), world.user("student")
    course = world.course(tutor, lessons=0)
    result = push(world, student, [lesson_op(1, course, str(uuid.uuid4()))])[0]
    assert result["status"] == "rejected"
    assert result["sqlstate"] == "42501"


def test_a_registry_change_compiles_the_inserts_again(world: SyncWorld) -> None:
    changed = compiled_without(world.url, "support_queries", "body", "sync_insert_row")
    branch = changed.split("if $1 = 'support_queries' then", 1)[1].split("end if;")[1]
    assert "body" not in branch.split("returning")[0]
    source = compiled_source(world)
    assert "case when $3 ? 'body' then r.body" in source.split("'support_queries'", 1)[1]
