"""An update or a delete op applied alone runs the statement compiled for its table
(private.sync_update_row, private.sync_delete_row, regenerated from the registry), and ends
exactly as the EXECUTE form did: the columns it does not name keep their values, UPDATE OF
triggers fire for the columns it names and no others, a caller who may not update every
writable column still updates the ones it may (docs/sync-protocol.md, sync_push)."""

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


def op(
    op_id: int, table: str, kind: str, row_id: str, base: int | None, **data: Any
) -> dict[str, Any]:
    return {
        "op_id": op_id,
        "tx_id": str(uuid.uuid4()),
        "table": table,
        "kind": kind,
        "id": row_id,
        "data": data,
        "base_version": base,
    }


def push(world: SyncWorld, user: Any, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer = world.gateway(user).rpc("sync_push", {"client_id": str(uuid.uuid4()), "ops": ops})
    results: list[dict[str, Any]] = answer["results"]
    return results


def source(world: SyncWorld, function: str) -> str:
    return str(world.sql("select prosrc from pg_proc where proname = %s", function)[0][0])


def support_query(world: SyncWorld, owner: Any) -> str:
    query = str(uuid.uuid4())
    world.sql(
        "insert into public.support_queries (id, owner_id, subject, body)"
        " values (%s, %s, 'help', 'please')",
        query,
        owner.id,
    )
    return query


def conversation_with_message(world: SyncWorld, sender: Any, other: Any) -> str:
    conversation = world.client(sender).conversations.start_direct(other.id).id
    message = str(uuid.uuid4())
    world.sql(
        "insert into public.messages (id, conversation_id, sender_id, body) values (%s, %s, %s,"
        " 'hello')",
        message,
        conversation,
        sender.id,
    )
    return message


def test_every_updatable_and_deletable_synced_table_has_its_statement(world: SyncWorld) -> None:
    updates, deletes = source(world, "sync_update_row"), source(world, "sync_delete_row")
    for (table,) in world.sql(
        "select table_name from private.sync_tables"
        " where 'update' = any(operations) and cardinality(writable) > 0"
    ):
        assert f"if $1 = '{table}' then" in updates, table
    for (table,) in world.sql(
        "select table_name from private.sync_tables where 'delete' = any(operations)"
    ):
        assert f"if $1 = '{table}' then" in deletes, table
    # messages.deleted_at is named by an UPDATE OF trigger (scrub_deleted_message): it is
    # assigned only by the statement for ops that name it.
    branch = updates.split("if $1 = 'messages' then", 1)[1].split("\n    end if;", 1)[0]
    assert "($4 ? 'deleted_at') = true" in branch and "($4 ? 'deleted_at') = false" in branch


def test_an_update_alone_keeps_the_columns_it_does_not_name(world: SyncWorld) -> None:
    student = world.user("student")
    query = support_query(world, student)
    result = push(world, student, [op(1, "support_queries", "update", query, 1, subject="again")])
    assert result[0]["status"] == "applied" and result[0]["version"] == 2
    assert world.sql(
        "select subject, body, status, version from public.support_queries where id = %s", query
    ) == [("again", "please", "open", 2)]
    stale = push(world, student, [op(1, "support_queries", "update", query, 1, body="late")])
    assert stale[0]["status"] == "conflict" and stale[0]["row"]["body"] == "please"


def test_update_of_triggers_fire_for_the_columns_an_op_names_and_no_other(
    world: SyncWorld,
) -> None:
    """Two logging triggers on messages: one on deleted_at, a column the compiled statements
    already treat as triggering (the compiled path stays), and one on body, which becomes
    triggering after the compilation (the op must notice and take the EXECUTE path). Either
    way a trigger fires exactly for the ops that name its column."""
    student, tutor = world.user("student"), world.user("tutor")
    message = conversation_with_message(world, student, tutor)
    world.sql("create table private.update_of_log (message_id uuid, fired_for text)")
    world.sql(
        "create function private.log_update_of() returns trigger language plpgsql security definer"
        " set search_path = '' as $$ begin"
        " insert into private.update_of_log values (new.id, tg_argv[0]); return null; end $$"
    )
    try:
        world.sql(
            "create trigger log_deleted_at after update of deleted_at on public.messages"
            " for each row execute function private.log_update_of('deleted_at')"
        )
        applied = push(world, student, [op(1, "messages", "update", message, 1, body="edited")])
        assert applied[0]["status"] == "applied"
        assert world.sql("select fired_for from private.update_of_log") == []

        world.sql(
            "create trigger log_body after update of body on public.messages"
            " for each row execute function private.log_update_of('body')"
        )
        applied = push(world, student, [op(1, "messages", "update", message, 2, body="again")])
        assert applied[0]["status"] == "applied", applied
        deleted = push(
            world, student, [op(1, "messages", "update", message, 3, deleted_at="2026-12-01")]
        )
        assert deleted[0]["status"] == "applied"
        assert sorted(r[0] for r in world.sql("select fired_for from private.update_of_log")) == [
            "body",
            "deleted_at",
        ]
        # scrub_deleted_message fired too: a deleted message keeps no body.
        assert world.sql("select body from public.messages where id = %s", message) == [("",)]
    finally:
        world.sql("drop trigger if exists log_deleted_at on public.messages")
        world.sql("drop trigger if exists log_body on public.messages")
        world.sql("drop function private.log_update_of() cascade")
        world.sql("drop table private.update_of_log")


def test_an_update_by_a_caller_who_may_not_assign_every_writable_column(
    world: SyncWorld,
) -> None:
    """profiles is updatable column by column. With UPDATE on one writable column revoked,
    the compiled statement (which assigns every writable column) would be refused; the op
    that names only the others is applied all the same, and one that names it is rejected."""
    student = world.user("student")
    world.sql("revoke update (avatar_url) on public.profiles from authenticated")
    try:
        renamed = push(
            world,
            student,
            [op(1, "profiles", "update", str(student.id), 1, display_name="Renamed")],
        )
        assert renamed[0]["status"] == "applied"
        refused = push(
            world,
            student,
            [
                op(
                    2,
                    "profiles",
                    "update",
                    str(student.id),
                    2,
                    avatar_url="https://example.com/a.png",
                )
            ],
        )
        assert refused[0]["status"] == "rejected" and refused[0]["sqlstate"] == "42501"
    finally:
        world.sql("grant update (avatar_url) on public.profiles to authenticated")
    assert world.sql(
        "select display_name, avatar_url from public.profiles where id = %s", student.id
    ) == [("Renamed", None)]


def test_a_delete_alone_checks_its_base_version(world: SyncWorld) -> None:
    student = world.user("student")
    device = str(uuid.uuid4())
    inserted = push(
        world,
        student,
        [
            op(
                1,
                "devices",
                "insert",
                device,
                None,
                user_id=str(student.id),
                device_id="phone",
                platform="ios",
            )
        ],
    )
    assert inserted[0]["status"] == "applied"
    world.sql("update public.devices set platform = 'android' where id = %s", device)
    stale = push(world, student, [op(1, "devices", "delete", device, 1)])
    assert stale[0]["status"] == "conflict" and stale[0]["row"]["platform"] == "android"
    assert push(world, student, [op(2, "devices", "delete", device, 2)])[0]["status"] == "applied"
    assert world.sql("select count(*) from public.devices where id = %s", device) == [(0,)]
    again = push(world, student, [op(3, "devices", "delete", device, 2)])
    assert again[0]["status"] == "applied"


def test_a_registry_change_compiles_the_updates_again(world: SyncWorld) -> None:
    changed = compiled_without(world.url, "support_queries", "body", "sync_update_row")
    branch = changed.split("if $1 = 'support_queries' then", 1)[1].split("\n    end if;")[0]
    assert "body" not in branch and "subject" in branch
    branch = source(world, "sync_update_row").split("if $1 = 'support_queries' then", 1)[1]
    assert "body = case when $4 ? 'body' then r.body else t.body end" in branch
