"""The sync engine's promises, end to end through SyncCache (docs/sync-protocol.md,
"Guarantees"): every conflict policy converges two devices, every way of losing access
evicts, and the whole development world syncs to exactly what RLS lets each user see."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pysync.auth import LocalUser
from pysync.client import Client
from pysync.gateway import Identity, eq
from pysync.localdb import LocalDatabase
from pysync.sync import ConflictContext, SyncCache
from tests.sync_world import ROUTES, SyncWorld, assert_cache_matches_server, held_keys, make_world


@pytest.fixture(scope="module", params=ROUTES)
def world(request: pytest.FixtureRequest, app_url: str) -> Iterator[SyncWorld]:
    made = make_world(request, app_url)
    yield made
    made.close()


@pytest.fixture
def devices(
    world: SyncWorld, tmp_path: Path
) -> Iterator[Callable[..., tuple[SyncCache, SyncCache]]]:
    """Two devices (caches) of one user; closed after the test."""
    opened: list[SyncCache] = []

    def make(user: LocalUser, **options: Any) -> tuple[SyncCache, SyncCache]:
        pair = tuple(
            SyncCache.open(world.client(user), tmp_path / f"{user.id}-{name}.db", **options)
            for name in ("a", "b")
        )
        opened.extend(pair)
        return pair[0], pair[1]

    yield make
    for cache in opened:
        cache.close()


def profile(cache: SyncCache, user: LocalUser) -> dict[str, Any]:
    row = cache.get("profiles", user.id)
    assert row is not None
    return row


def server_profile(world: SyncWorld, user: LocalUser) -> tuple[Any, ...]:
    return world.sql(
        "select display_name, timezone, locale, version from public.profiles where id = %s",
        user.id,
    )[0]


# ------------------------------------------------------------------------------ conflicts


def test_field_merge_keeps_the_columns_each_device_changed(world: SyncWorld, devices: Any) -> None:
    student = world.user("student")
    a, b = devices(student)  # profiles: field_merge by default
    a.sync()
    b.sync()
    a.update("profiles", student.id, {"display_name": "Sam from A", "locale": "fr"})
    b.update("profiles", student.id, {"timezone": "Europe/Paris", "locale": "de"})
    b.sync()
    a.sync()  # conflict: base version 1, server at 2
    b.sync()
    name, zone, locale, _ = server_profile(world, student)
    # Only A changed the name, only B the time zone; both changed the locale: the server keeps B's.
    assert (name, zone, locale) == ("Sam from A", "Europe/Paris", "de")
    for cache in (a, b):
        row = profile(cache, student)
        assert (row["display_name"], row["timezone"], row["locale"]) == (name, zone, locale)
        assert cache.status().pending_ops == 0


def test_field_merge_of_two_edits_in_a_row_after_a_conflict(world: SyncWorld, devices: Any) -> None:
    """Device A edits the name twice offline; B's edits reach the server first. A's second
    edit was made on its first (its base version and base row count on it): both are
    merged as one edit over the row A started from. Found by tests/test_sync_convergence.py:
    A's second op applied over B's name on a predicted version (a lost update), or, when B
    had written twice, A's first edit won over its second."""
    student = world.user("student")
    a, b = devices(student)
    a.sync()
    b.sync()
    a.update("profiles", student.id, {"display_name": "x"})
    a.update("profiles", student.id, {"display_name": "y"})
    b.update("profiles", student.id, {"display_name": "z"})
    b.sync()
    a.sync()
    b.sync()
    # Both changed the name: the server's (B's) stays, as field_merge documents.
    assert server_profile(world, student)[0] == "z"
    assert profile(a, student)["display_name"] == profile(b, student)["display_name"] == "z"

    a.update("profiles", student.id, {"display_name": "x2"})
    a.update("profiles", student.id, {"display_name": "y2"})
    b.update("profiles", student.id, {"timezone": "Europe/Paris"})
    b.sync()
    b.update("profiles", student.id, {"timezone": "Europe/Rome"})
    b.sync()
    a.sync()
    b.sync()
    # Only A changed the name: A's last value; only B the time zone: B's last value.
    assert server_profile(world, student)[:2] == ("y2", "Europe/Rome")
    for cache in (a, b):
        assert profile(cache, student)["display_name"] == "y2"
        assert cache.status().pending_ops == 0


def test_last_write_wins_by_server_time_not_arrival(
    world: SyncWorld, devices: Any, chat: tuple[Any, Any, str]
) -> None:
    _, student, conversation = chat
    a, b = devices(student)  # conversation_participants: last_write_wins
    a.sync()
    b.sync()
    mine = a.query(
        "select id from conversation_participants where user_id = ? and conversation_id = ?",
        (student.id, conversation),
    )[0]["id"]
    a.update("conversation_participants", mine, {"last_read_at": "2026-12-01T09:00:00+00:00"})
    time.sleep(0.05)  # B's edit is made later, but A reaches the server last
    b.update("conversation_participants", mine, {"last_read_at": "2026-12-01T10:00:00+00:00"})
    b.sync()
    a.sync()
    b.sync()
    server = world.sql(
        "select last_read_at::text from public.conversation_participants where id = %s", mine
    )[0][0]
    assert server.startswith("2026-12-01 10:00:00")
    # A newer edit made after the server's row wins over it.
    a.update("conversation_participants", mine, {"last_read_at": "2026-12-01T11:00:00+00:00"})
    a.sync()
    b.sync()
    for cache in (a, b):
        local = cache.get("conversation_participants", mine)
        assert local is not None and local["last_read_at"].startswith("2026-12-01T11:00:00")


def test_a_callable_resolver_decides_the_merged_row(
    world: SyncWorld, devices: Any, chat: tuple[Any, Any, str]
) -> None:
    _, student, conversation = chat

    def join_bodies(ctx: ConflictContext) -> dict[str, Any]:
        assert ctx.server is not None
        return {"body": f"{ctx.server['body']} + {ctx.local['body']}"}

    a, b = devices(student, conflict_policies={"messages": join_bodies})
    mid = a.insert(
        "messages", {"conversation_id": conversation, "sender_id": student.id, "body": "v1"}
    )
    a.sync()
    b.sync()
    b.update("messages", mid, {"body": "B"})
    b.sync()
    a.update("messages", mid, {"body": "A"})
    a.sync()
    b.sync()
    assert world.sql("select body from public.messages where id = %s", mid) == [("B + A",)]
    assert a.get("messages", mid)["body"] == b.get("messages", mid)["body"] == "B + A"


@pytest.fixture
def chat(world: SyncWorld) -> tuple[Any, Any, str]:
    tutor, student = world.user("tutor"), world.user("student")
    conversation = world.client(student).conversations.start_direct(tutor.id).id
    return tutor, student, str(conversation)


# ------------------------------------------------------------------------------- eviction


def lessons(cache: SyncCache) -> set[str]:
    return {row["id"] for row in cache.query("select id from course_content")}


def test_eviction_on_every_loss_of_access(world: SyncWorld, tmp_path: Path) -> None:
    """One student, one cache, each way a row can leave what they may see."""
    tutor, student = world.user("tutor"), world.user("student")
    kept = world.course(tutor, lessons=1)
    dropped = world.course(tutor, lessons=2)
    world.enroll(student, kept)
    enrollment = world.enroll(student, dropped)
    chat = str(world.client(student).conversations.start_direct(tutor.id).id)
    group = str(world.client(tutor).conversations.start_for_course(kept).id)
    note = str(uuid.uuid4())
    world.sql(
        "insert into public.notifications (id, recipient_id, type, title)"
        " values (%s, %s, 'announcement', 'hello')",
        note,
        student.id,
    )
    preview_course = world.course(tutor, lessons=0)
    world.lesson(preview_course, 0, preview=True)

    with SyncCache.open(world.client(student), tmp_path / "evict.db") as cache:
        cache.subscribe("course_preview", preview_course, ttl=0.5)
        cache.sync()
        held = lessons(cache)
        assert len(held) == 4  # kept (1) + dropped (2) + preview (1)
        assert cache.query("select count(*) as n from conversations")[0]["n"] == 2

        # Unenrolled: the course's content leaves.
        world.sql("update public.enrollments set status = 'cancelled' where id = %s", enrollment)
        cache.sync()
        dropped_ids = {
            r[0]
            for r in world.sql(
                "select id::text from public.course_content where course_id = %s", dropped
            )
        }
        assert not lessons(cache) & dropped_ids

        # Removed from a conversation: it leaves with its messages and members.
        world.sql(
            "delete from public.conversation_participants"
            " where conversation_id = %s and user_id = %s",
            group,
            student.id,
        )
        cache.sync()
        ids = {r["id"] for r in cache.query("select id from conversations")}
        assert ids == {chat}

        # A row moved to another bucket (a notification re-addressed) leaves.
        other = world.user("student")
        world.sql("update public.notifications set recipient_id = %s where id = %s", other.id, note)
        cache.sync()
        assert cache.get("notifications", note) is None

        # A row updated into a state the user may not see (an unpublished preview) leaves.
        # First the TTL: wait for the preview subscription to expire.
        time.sleep(0.6)
        cache.sync()
        preview_ids = {
            r[0]
            for r in world.sql(
                "select id::text from public.course_content where course_id = %s", preview_course
            )
        }
        assert not lessons(cache) & preview_ids

        # Deleted: it leaves through its tombstone.
        gone = next(iter(lessons(cache)))
        world.sql("delete from public.course_content where id = %s", gone)
        cache.sync()
        assert gone not in lessons(cache)


def test_row_updated_out_of_sight_leaves_the_cache(world: SyncWorld, tmp_path: Path) -> None:
    tutor, visitor = world.user("tutor"), world.user("student")
    course = world.course(tutor, lessons=0)
    preview = world.lesson(course, 0, preview=True)
    with SyncCache.open(world.client(visitor), tmp_path / "hidden.db") as cache:
        cache.subscribe("course_preview", course)
        cache.sync()
        assert lessons(cache) == {preview}
        world.sql("update public.course_content set is_preview = false where id = %s", preview)
        cache.sync()
        assert lessons(cache) == set()


def test_policy_change_is_found_by_reconcile(world: SyncWorld, tmp_path: Path) -> None:
    tutor, student = world.user("tutor"), world.user("student")
    course = world.course(tutor, lessons=3)
    world.enroll(student, course)
    with SyncCache.open(world.client(student), tmp_path / "policy.db") as cache:
        cache.sync()
        hidden = sorted(lessons(cache))[0]
        world.sql(
            'create policy "test: hide a lesson" on public.course_content as restrictive'
            f" for select to authenticated using (id <> '{hidden}'::uuid)"
        )
        try:
            cache.sync()
            assert hidden in lessons(cache), "no write happened: only reconcile can see this"
            cache.reconcile()
            assert hidden not in lessons(cache)
            assert len(lessons(cache)) == 2
        finally:
            world.sql('drop policy "test: hide a lesson" on public.course_content')


# ------------------------------------------------------------------------ schema changes


def test_server_schema_change_migrates_the_cache_and_keeps_pending_ops(
    local_db: LocalDatabase, tmp_path: Path
) -> None:
    from pysync.migrate import apply_seed, push
    from tests.helpers import PROJECT_ROOT, connect

    name = f"schema_{uuid.uuid4().hex[:10]}"
    url = local_db.create_database(name)
    try:
        with connect(url) as conn:
            push(conn, PROJECT_ROOT / "supabase" / "migrations", PROJECT_ROOT / "policies")
            apply_seed(conn, PROJECT_ROOT / "supabase" / "seed.sql")
        world = SyncWorld(url)
        try:
            student = world.user("student")
            with SyncCache.open(world.client(student), tmp_path / "schema.db") as cache:
                cache.sync()
                cache.update("profiles", student.id, {"display_name": "Pending"})
                world.sql(
                    """
                    alter table public.profiles add column pronouns text;
                    grant update (pronouns) on public.profiles to authenticated;
                    create table public.bookmarks (
                        id uuid primary key default gen_random_uuid(),
                        user_id uuid not null references public.profiles (id),
                        url text not null,
                        created_at timestamptz not null default now(),
                        updated_at timestamptz not null default now(),
                        version bigint not null default 1,
                        sync_xid xid8 not null default pg_current_xact_id()
                    );
                    alter table public.bookmarks enable row level security;
                    create policy "Users own their bookmarks" on public.bookmarks
                    for all to authenticated
                    using (user_id = (select auth.uid()))
                    with check (user_id = (select auth.uid()));
                    grant select, insert, update, delete on public.bookmarks to authenticated;
                    create trigger stamp_synced_row before insert or update on public.bookmarks
                    for each row execute function private.stamp_synced_row();
                    select private.sync_register_table(
                        'profiles', 'id',
                        array['display_name', 'avatar_url', 'timezone', 'locale', 'onboarded',
                            'pronouns'],
                        array['update'], 'field_merge');
                    select private.sync_register_table(
                        'bookmarks', 'user_id', array['user_id', 'url'],
                        array['insert', 'update', 'delete'], 'client_wins');
                    insert into private.sync_streams (name, table_name, mode, query)
                    values ('my_bookmarks', 'bookmarks', 'auto', 'select (select auth.uid())');
                    """
                )
                world.api.reload_schema_cache()
                cache.sync()  # pushes the pending op, then sees the new hash and migrates
                assert world.sql(
                    "select display_name from public.profiles where id = %s", student.id
                ) == [("Pending",)]
                assert "pronouns" in profile(cache, student)
                cache.update("profiles", student.id, {"pronouns": "they/them"})
                mark = cache.insert("bookmarks", {"user_id": student.id, "url": "https://x.y"})
                cache.sync()
                assert world.sql(
                    "select pronouns from public.profiles where id = %s", student.id
                ) == [("they/them",)]
                assert world.sql("select url from public.bookmarks where id = %s", mark) == [
                    ("https://x.y",)
                ]
        finally:
            world.close()
    finally:
        local_db.drop_database(name)


# ----------------------------------------------------------------- the development world


@pytest.fixture(scope="module")
def dev_url(local_db: LocalDatabase) -> Iterator[str]:
    from datetime import date

    from pysync.migrate import apply_seed, push
    from pysync.seed import DevPlan, seed_dev
    from tests.helpers import PROJECT_ROOT, connect

    name = f"devsync_{uuid.uuid4().hex[:10]}"
    url = local_db.create_database(name)
    with connect(url) as conn:
        push(conn, PROJECT_ROOT / "supabase" / "migrations", PROJECT_ROOT / "policies")
        apply_seed(conn, PROJECT_ROOT / "supabase" / "seed.sql")
        seed_dev(conn, DevPlan(today=date(2026, 11, 23)))
    yield url
    local_db.drop_database(name)


def test_every_cache_matches_what_its_user_can_select(dev_url: str, tmp_path: Path) -> None:
    """Sync every user of the development world; then, per user and table, the cache holds
    no row the user cannot select on the server, and every row the user can select in a
    bucket it holds is there with the server's version."""
    world = SyncWorld(dev_url)
    try:
        users = world.sql("select id::text from auth.users order by email")
        schema = world.api.as_identity(Identity.service_role()).rpc("sync_schema")
        columns = {t["name"]: t["bucket_column"] for t in schema["tables"]}
        checked_rows = 0
        for (user_id,) in users:
            client = Client.for_token(world.api, world.auth.session_for(user_id).access_token)
            with SyncCache.open(client, tmp_path / f"{user_id}.db") as cache:
                cache.sync()
                held = held_keys(cache)
                checked_rows += assert_cache_matches_server(
                    cache, client.gateway, columns, label=user_id
                )
                # The auto streams gave the buckets the app promises, found here independently.
                gateway = client.gateway
                mine = [eq("user_id", user_id)]
                conversations = {
                    r["conversation_id"]
                    for r in gateway.select(
                        "conversation_participants", columns="conversation_id", filters=mine
                    ).rows
                }
                studied = {
                    r["course_id"]
                    for r in gateway.select(
                        "enrollments",
                        columns="course_id",
                        filters=[eq("student_id", user_id), eq("status", "active")],
                    ).rows
                }
                taught = {
                    r["id"]
                    for r in gateway.select(
                        "courses", columns="id", filters=[eq("tutor_id", user_id)]
                    ).rows
                }
                assert held.get("notifications") == {user_id}
                assert held.get("messages", set()) == conversations
                assert held.get("course_content", set()) == studied | taught
                assert user_id in held.get("profiles", set())
    finally:
        world.close()
