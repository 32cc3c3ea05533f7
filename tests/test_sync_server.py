"""The sync RPCs against a real database, through the gateway as each user: exact cursors,
paging, eviction paths, exactly-once pushes and realtime nudges (docs/sync-protocol.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pysync.gateway import PermissionDenied
from tests.sync_world import ROUTES, RefPuller, SyncWorld, enrolled, make_world


@pytest.fixture(scope="module", params=ROUTES)
def world(request: pytest.FixtureRequest, app_url: str) -> Iterator[SyncWorld]:
    made = make_world(request, app_url)
    yield made
    made.close()


def lesson_ids(puller: RefPuller) -> set[str]:
    return puller.ids("course_content")


# ------------------------------------------------------------------------ exact cursors


def test_late_commit_is_not_skipped(world: SyncWorld) -> None:
    _, _, course, puller = enrolled(world)
    puller.pull()
    late = str(uuid.uuid4())
    with psycopg.connect(world.url) as t1:  # not autocommit: T1 stays open
        t1.execute(
            "insert into public.course_content (id, course_id, kind, position, title)"
            " values (%s, %s, 'lesson', 10, 'late')",
            (late, course),
        )
        early = world.lesson(course, 11)  # T2 commits while T1 is still open
        puller.pull()
        assert early in lesson_ids(puller)
        assert late not in lesson_ids(puller)
        t1.commit()
    puller.pull()
    assert late in lesson_ids(puller), "the row of the transaction that committed late was skipped"


def test_open_transaction_does_not_stall_pull(world: SyncWorld) -> None:
    _, _, course, puller = enrolled(world)
    puller.pull()
    with psycopg.connect(world.url) as t1:  # not autocommit: T1 stays open
        t1.execute("update public.courses set title = 'open' where id = %s", (course,))
        for position in range(3):
            lesson = world.lesson(course, 20 + position)
            puller.pull()
            assert lesson in lesson_ids(puller)
        t1.rollback()


def test_paged_first_sync_serves_every_row_and_changes_during_paging(world: SyncWorld) -> None:
    _tutor, _student, course, puller = enrolled(world, lessons=25)
    first = puller.pull_page(limit=10)
    assert first["has_more"]
    added = world.lesson(course, 99)  # written between pages
    world.sql("update public.course_content set title = 'renamed' where course_id = %s", course)
    puller.pull(limit=10)
    puller.pull(limit=10)  # the next round serves what changed after the first page
    server = {
        str(row[0]): row[1]
        for row in world.sql(
            "select id::text, title from public.course_content where course_id = %s", course
        )
    }
    local = {i: r["title"] for i, r in puller.rows["course_content"].items()}
    assert local == server
    assert added in local
    assert puller.pages >= 4


def test_whole_pages_of_several_buckets_are_cut_only_in_their_last_bucket(
    world: SyncWorld,
) -> None:
    """New buckets of one table are served together, in key order, the first ``limit`` rows
    in (key, id) order: only a page's last bucket may stop part-way (with the id to resume
    after), every earlier one is complete; paging this way serves every row exactly once.
    Every bucket is smaller than the limit, so whichever key sorts first, the first page ends
    inside the second bucket of one group."""
    tutor, student = world.user("tutor"), world.user("student")
    courses = [world.course(tutor, lessons=n) for n in (3, 2, 3)]
    for course in courses:
        world.enroll(student, course)
    puller = RefPuller(world.gateway(student))
    served: list[str] = []
    for _ in range(20):
        page = puller.pull_page(limit=4)
        entries = [e for e in page["buckets"] if e["table"] == "course_content"]
        assert [e["key"] for e in entries] == sorted(e["key"] for e in entries)
        assert sum(len(e["rows"]) for e in entries) <= 4
        for entry in entries[:-1]:
            assert entry["complete"] and entry["after"] is None, entry["bucket"]
        if entries and not entries[-1]["complete"]:
            cut = entries[-1]
            assert cut["after"] == max(str(r["id"]) for r in cut["rows"])
            assert page["has_more"]
        served += [str(r["id"]) for e in entries for r in e["rows"]]
        if not page["has_more"]:
            break
    assert not page["has_more"]
    expected = {
        str(row[0])
        for row in world.sql(
            "select id from public.course_content where course_id = any(%s::uuid[])", courses
        )
    }
    assert sorted(served) == sorted(expected), "a row was served twice or never"
    assert all(puller.states[f"course_content:{c}"]["cursor"] for c in courses)


def test_every_wire_version_serves_the_same_rows(world: SyncWorld) -> None:
    """Versions 1 (objects), 2 (arrays), 3 (a bucket served whole column by column, changes
    as arrays) and 5 (buckets at a shared cursor sent by table) carry the same rows, across
    pages and through a change."""
    _, student, course, _ = enrolled(world, lessons=7)
    pullers = {v: RefPuller(world.gateway(student), version=v) for v in (1, 2, 3, 5)}
    first = {v: [p.pull_page(limit=3)] for v, p in pullers.items()}
    for version, puller in pullers.items():
        while first[version][-1]["has_more"]:
            first[version].append(puller.pull_page(limit=3))
    whole = [e for page in first[3] for e in page["buckets"] if e["rows"] or e.get("by_column")]
    assert whole and all(e.get("by_column") is not None for e in whole), whole
    assert not any("by_column" in e for v in (1, 2) for page in first[v] for e in page["buckets"])
    lesson = world.lesson(course, 20)
    world.sql("update public.course_content set title = 'renamed' where id = %s", lesson)
    changed = {v: p.pull() for v, p in pullers.items()}
    entries = [e for e in changed[3]["buckets"] if e["table"] == "course_content"]
    assert entries and all(e["rows"] and "by_column" not in e for e in entries), entries
    assert pullers[1].rows == pullers[2].rows == pullers[3].rows == pullers[5].rows
    assert pullers[1].states.keys() == pullers[5].states.keys()
    assert pullers[3].rows["course_content"][lesson]["title"] == "renamed"


def test_nothing_changed_gives_unchanged_buckets(world: SyncWorld) -> None:
    _, _, _, puller = enrolled(world)
    puller.pull()
    page = puller.pull()
    assert page["buckets"] == []
    assert set(page["unchanged"]) == set(puller.states)


def test_one_changed_bucket_among_unchanged_ones_is_served_alone(world: SyncWorld) -> None:
    """The no-change fast path checks every bucket once; when it finds a change, the general
    path serves that bucket (with the row) and still reports every other one unchanged."""
    tutor, student, course, puller = enrolled(world)
    other = world.course(tutor)
    world.enroll(student, other)
    puller.pull()
    before = dict(puller.states)
    lesson = world.lesson(course, 9)
    page = puller.pull()
    served = {entry["bucket"]: entry for entry in page["buckets"]}
    assert set(served) == {f"course_content:{course}"}
    assert [row["id"] for row in served[f"course_content:{course}"]["rows"]] == [lesson]
    assert set(page["unchanged"]) == set(before) - set(served)
    assert lesson in lesson_ids(puller)
    # And a pull after it finds nothing again.
    quiet = puller.pull()
    assert quiet["buckets"] == []
    assert set(quiet["unchanged"]) == set(puller.states)


@pytest.mark.parametrize("limit", [2, 6, 7, 1000])
def test_changes_since_a_cursor_are_served_alike_whether_they_fit_a_page_or_not(
    world: SyncWorld, limit: int
) -> None:
    """``sync_changes`` reads changes that fit a page one way (from the change indexes, by a
    kept plan) and more than a page another (a one-shot plan, pages resumed after an id).
    Seven changes in two buckets of one table (updates, deletes through tombstones, an insert;
    six of them in one bucket), pulled with limits below, at and above their count: every way
    ends with the server's rows, each changed row served or removed exactly once."""
    tutor, student = world.user("tutor"), world.user("student")
    busy, quiet = world.course(tutor, lessons=8), world.course(tutor, lessons=2)
    for course in (busy, quiet):
        world.enroll(student, course)
    puller = RefPuller(world.gateway(student))
    puller.pull()
    world.sql(
        "update public.course_content set title = 'edited' where id in"
        " (select id from public.course_content where course_id = %s order by id limit 3)",
        busy,
    )
    world.sql(
        "delete from public.course_content where id in"
        " (select id from public.course_content where course_id = %s order by id desc limit 2)",
        busy,
    )
    added = world.lesson(busy, 50)
    world.sql(
        "update public.course_content set title = 'edited' where id ="
        " (select id from public.course_content where course_id = %s order by id limit 1)",
        quiet,
    )
    served: list[str] = []
    removed: list[str] = []
    for _ in range(20):
        page = puller.pull_page(limit=limit)
        for entry in page["buckets"]:
            served += [str(row["id"]) for row in entry["rows"]]
            removed += [str(row_id) for row_id in entry["removed"]]
        if not page["has_more"]:
            break
    assert not page["has_more"]
    assert len(served) == len(set(served)) == 5, "a changed row was served twice or never"
    assert len(removed) == len(set(removed)) == 2
    assert added in served
    server = {
        str(row[0]): row[1]
        for row in world.sql(
            "select id::text, title from public.course_content where course_id = any(%s::uuid[])",
            [busy, quiet],
        )
    }
    assert {i: r["title"] for i, r in puller.rows["course_content"].items()} == server


# ------------------------------------------------------------------------------ eviction


def test_each_caller_resolves_to_their_own_buckets(world: SyncWorld) -> None:
    """The generated auto-stream statement reads its caller's id once per call into a
    variable (not a dozen init-plans calling auth.uid()); two users taking turns on the same
    connections each get their own buckets, every time."""
    source = str(world.sql("select prosrc from pg_proc where proname = 'sync_auto_buckets'")[0][0])
    assert "sync_caller_uid constant uuid := auth.uid();" in source
    assert "(select auth.uid())" not in source
    pullers = {}
    for _ in range(2):
        tutor, student = world.user("tutor"), world.user("student")
        course = world.course(tutor, lessons=1)
        world.enroll(student, course)
        pullers[(str(student.id), course)] = RefPuller(world.gateway(student))
    for _ in range(3):
        for (student_id, course), puller in pullers.items():
            puller.pull()
            held = set(puller.states)
            assert f"course_content:{course}" in held and f"profiles:{student_id}" in held
            others = {c for (_, c) in pullers if c != course}
            assert not {f"course_content:{c}" for c in others} & held


def test_unenrolled_course_content_leaves(world: SyncWorld) -> None:
    _, student, course, puller = enrolled(world)
    puller.pull()
    assert lesson_ids(puller)
    world.sql(
        "update public.enrollments set status = 'cancelled' where student_id = %s", student.id
    )
    page = puller.pull()
    assert f"course_content:{course}" in page["removed_buckets"]
    assert lesson_ids(puller) == set()


def test_deleted_row_leaves_through_tombstone(world: SyncWorld) -> None:
    _, _, _course, puller = enrolled(world)
    puller.pull()
    gone = next(iter(lesson_ids(puller)))
    world.sql("delete from public.course_content where id = %s", gone)
    page = puller.pull()
    assert any(gone in entry["removed"] for entry in page["buckets"])
    assert gone not in lesson_ids(puller)


def test_row_moved_to_another_bucket_leaves_the_old_one(world: SyncWorld) -> None:
    student, other = world.user("student"), world.user("student")
    note = str(uuid.uuid4())
    world.sql(
        "insert into public.notifications (id, recipient_id, type, title)"
        " values (%s, %s, 'announcement', 'hi')",
        note,
        student.id,
    )
    puller = RefPuller(world.gateway(student))
    puller.pull()
    assert note in puller.ids("notifications")
    world.sql("update public.notifications set recipient_id = %s where id = %s", other.id, note)
    page = puller.pull()
    assert any(note in entry["removed"] for entry in page["buckets"])
    assert note not in puller.ids("notifications")


def test_row_updated_out_of_sight_leaves(world: SyncWorld) -> None:
    tutor = world.user("tutor")
    visitor = world.user("student")
    course = world.course(tutor, lessons=0)
    preview = world.lesson(course, 0, preview=True)
    puller = RefPuller(
        world.gateway(visitor), subscriptions=[{"stream": "course_preview", "key": course}]
    )
    puller.pull()
    assert lesson_ids(puller) == {preview}
    world.sql("update public.course_content set is_preview = false where id = %s", preview)
    puller.pull()
    assert lesson_ids(puller) == set()


def test_subscription_dropped_removes_its_bucket(world: SyncWorld) -> None:
    tutor, visitor = world.user("tutor"), world.user("student")
    course = world.course(tutor, lessons=0)
    world.lesson(course, 0, preview=True)
    puller = RefPuller(
        world.gateway(visitor), subscriptions=[{"stream": "course_preview", "key": course}]
    )
    puller.pull()
    assert lesson_ids(puller)
    puller.subscriptions.clear()  # the TTL expired on the client
    page = puller.pull()
    assert f"course_content:{course}" in page["removed_buckets"]
    assert lesson_ids(puller) == set()


def test_subscription_to_a_forbidden_key_is_denied(world: SyncWorld) -> None:
    tutor, visitor = world.user("tutor"), world.user("student")
    draft = str(uuid.uuid4())
    world.sql(
        "insert into public.courses (id, tutor_id, title) values (%s, %s, 'Draft')", draft, tutor.id
    )
    puller = RefPuller(
        world.gateway(visitor), subscriptions=[{"stream": "course_preview", "key": draft}]
    )
    page = puller.pull()
    assert page["denied"] == [{"stream": "course_preview", "key": draft, "reason": "not allowed"}]
    assert f"course_content:{draft}" not in puller.states


def test_cursor_older_than_the_pruned_horizon_resets_the_bucket(world: SyncWorld) -> None:
    _, _, course, puller = enrolled(world)
    puller.pull()
    gone = next(iter(lesson_ids(puller)))
    world.sql("delete from public.course_content where id = %s", gone)
    world.sql("update private.sync_tombstones set created_at = now() - interval '90 days'")
    world.sql("select public.sync_prune()")
    page = puller.pull()
    states = {entry["bucket"]: entry["state"] for entry in page["buckets"]}
    assert states[f"course_content:{course}"] == "reset"
    assert gone not in lesson_ids(puller)


def test_checksums_match_a_faithful_cache_and_catch_a_policy_change(world: SyncWorld) -> None:
    import hashlib

    _, student, course, puller = enrolled(world)
    puller.pull()
    bucket = f"course_content:{course}"

    def local_checksum() -> int:
        total = sum(
            int(hashlib.md5(f"{row_id}:{row['version']}".encode()).hexdigest()[:8], 16)
            for row_id, row in puller.rows["course_content"].items()
        )
        return total % 2**32

    sums = world.gateway(student).rpc("sync_checksums", {"request": {"buckets": [bucket]}})
    assert sums["buckets"][bucket] == {
        "count": len(lesson_ids(puller)),
        "checksum": local_checksum(),
    }
    # A row hidden without any write to it (as a changed policy would): only checksums see it.
    hidden = next(iter(lesson_ids(puller)))
    world.sql(
        'create policy "test: hide one lesson" on public.course_content as restrictive'
        f" for select to authenticated using (id <> '{hidden}'::uuid)"
    )
    try:
        sums = world.gateway(student).rpc("sync_checksums", {"request": {"buckets": [bucket]}})
        assert sums["buckets"][bucket]["count"] == len(lesson_ids(puller)) - 1
        assert sums["buckets"][bucket]["checksum"] != local_checksum()
    finally:
        world.sql('drop policy "test: hide one lesson" on public.course_content')


# ---------------------------------------------------------------------------------- push


def message_op(
    op_id: int, conversation: str, sender: str, body: str, **extra: Any
) -> dict[str, Any]:
    return {
        "op_id": op_id,
        "tx_id": None,
        "table": "messages",
        "kind": "insert",
        "id": str(uuid.uuid4()),
        "data": {"conversation_id": conversation, "sender_id": sender, "body": body},
        "base_version": None,
        "priority": "normal",
        **extra,
    }


@pytest.fixture
def chat(world: SyncWorld) -> tuple[Any, Any, str]:
    tutor, student = world.user("tutor"), world.user("student")
    conversation = world.client(student).conversations.start_direct(tutor.id).id
    return tutor, student, str(conversation)


def push(
    world: SyncWorld, user: Any, client_id: str, ops: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    answer = world.gateway(user).rpc("sync_push", {"client_id": client_id, "ops": ops})
    results: list[dict[str, Any]] = answer["results"]
    return results


def test_lost_response_push_applies_once(world: SyncWorld, chat: tuple[Any, Any, str]) -> None:
    _, student, conversation = chat
    client_id = str(uuid.uuid4())
    ops = [message_op(1, conversation, student.id, "hello")]
    first = push(world, student, client_id, ops)
    again = push(world, student, client_id, ops)  # the first response was lost
    assert first[0]["status"] == "applied" and "replayed" not in first[0]
    assert again[0] == {**first[0], "replayed": True}
    count = world.sql("select count(*) from public.messages where id = %s", ops[0]["id"])
    assert count == [(1,)]


def test_stale_base_version_is_a_conflict_with_the_server_row(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    _, student, conversation = chat
    client_id = str(uuid.uuid4())
    op = message_op(1, conversation, student.id, "v1")
    push(world, student, client_id, [op])
    update = {**op, "op_id": 2, "kind": "update", "data": {"body": "v2"}, "base_version": 1}
    assert push(world, student, client_id, [update])[0]["status"] == "applied"
    stale = {**update, "op_id": 3, "data": {"body": "v3"}, "base_version": 1}
    result = push(world, student, client_id, [stale])[0]
    assert result["status"] == "conflict"
    assert result["version"] == 2 and result["row"]["body"] == "v2"


def test_a_later_op_on_a_row_whose_update_conflicted_is_not_tried(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    """A client's second edit of a row has the base version its first edit would give. If
    the first conflicts, the second must not apply just because another writer happened to
    bring the row to that version (a lost update found by tests/test_sync_convergence.py)."""
    _, student, conversation = chat
    op = message_op(1, conversation, student.id, "v1")
    push(world, student, str(uuid.uuid4()), [op])
    other = {**op, "op_id": 1, "kind": "update", "data": {"body": "theirs"}, "base_version": 1}
    assert push(world, student, str(uuid.uuid4()), [other])[0]["status"] == "applied"  # now v2
    first = {**op, "op_id": 2, "kind": "update", "data": {"body": "x"}, "base_version": 1}
    second = {**first, "op_id": 3, "tx_id": str(uuid.uuid4()), "data": {"body": "y"}}
    second["base_version"] = 2  # predicted: 1 + the first edit
    results = push(world, student, str(uuid.uuid4()), [first, second])
    assert [(r["status"], r.get("depends_on")) for r in results] == [
        ("conflict", None),
        ("conflict", 2),
    ]
    assert results[1]["row"]["body"] == "theirs"
    assert world.sql("select body, version from public.messages where id = %s", op["id"]) == [
        ("theirs", 2)
    ]
    # An insert that merely refers to the row's id is still tried: the row exists.
    reply = message_op(4, conversation, student.id, op["id"])
    assert push(world, student, str(uuid.uuid4()), [first, reply])[1]["status"] == "applied"


def test_rejections_do_not_block_later_ops_and_dependants_follow(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    _tutor, student, conversation = chat
    stranger = world.user("student")
    client_id = str(uuid.uuid4())
    denied = message_op(1, conversation, stranger.id, "not me")  # RLS: sender must be the caller
    follow = {**denied, "op_id": 2, "kind": "update", "data": {"body": "edit"}, "base_version": 1}
    too_long = message_op(3, conversation, student.id, "x" * 5000)  # check constraint
    not_writable = message_op(4, conversation, student.id, "hi")
    not_writable["data"]["version"] = 7
    fine = message_op(5, conversation, student.id, "this one is fine")
    results = push(world, student, client_id, [denied, follow, too_long, not_writable, fine])
    statuses = [(r["op_id"], r["status"], r.get("sqlstate"), r.get("depends_on")) for r in results]
    assert statuses == [
        (1, "rejected", "42501", None),
        (2, "rejected", "42501", 1),
        (3, "rejected", "23514", None),
        (4, "rejected", "42501", None),
        (5, "applied", None, None),
    ]
    assert "version" in results[3]["message"]


def test_a_client_transaction_applies_whole_or_not_at_all(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    _, student, conversation = chat
    tx = str(uuid.uuid4())
    good = message_op(1, conversation, student.id, "first", tx_id=tx)
    bad = message_op(2, conversation, student.id, "x" * 5000, tx_id=tx)
    results = push(world, student, str(uuid.uuid4()), [good, bad])
    assert [r["status"] for r in results] == ["rejected", "rejected"]
    assert results[0]["depends_on"] == 2
    assert world.sql("select count(*) from public.messages where id = %s", good["id"]) == [(0,)]


def test_push_needs_a_signed_in_user(world: SyncWorld) -> None:
    from pysync.gateway import Identity

    anon = world.api.as_identity(Identity.anon())
    with pytest.raises(PermissionDenied):
        anon.rpc("sync_push", {"client_id": str(uuid.uuid4()), "ops": []})


def test_read_only_tables_refuse_writes(world: SyncWorld) -> None:
    student = world.user("student")
    op = {
        "op_id": 1,
        "table": "payments",
        "kind": "insert",
        "id": str(uuid.uuid4()),
        "data": {},
        "base_version": None,
    }
    result = push(world, student, str(uuid.uuid4()), [op])[0]
    assert result["status"] == "rejected" and result["sqlstate"] == "42501"


# -------------------------------------------------------------------------------- nudges


def test_one_nudge_per_bucket_per_transaction(world: SyncWorld) -> None:
    tutor = world.user("tutor")
    course = world.course(tutor, lessons=0)
    with psycopg.connect(world.url, autocommit=True) as listener:
        listener.execute(f'listen "sync:course_content:{course}"')
        with psycopg.connect(world.url) as writer:  # one transaction
            for position in range(3):
                writer.execute(
                    "insert into public.course_content (course_id, kind, position, title)"
                    " values (%s, 'lesson', %s, 'x')",
                    (course, position),
                )
            writer.commit()
        notes = list(listener.notifies(timeout=1.0, stop_after=5))
    assert len(notes) == 1
    assert f'"bucket": "course_content:{course}"' in notes[0].payload


def test_sync_topic_is_authorized_for_bucket_holders_only(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    tutor, student, conversation = chat
    stranger = world.user("student")
    for user, allowed in ((student, True), (tutor, True), (stranger, False)):
        with psycopg.connect(world.url) as conn:
            conn.execute(
                "select set_config('request.jwt.claims', %s, true)",
                (f'{{"sub": "{user.id}", "role": "authenticated"}}',),
            )
            topic = f"sync:messages:{conversation}"
            row = conn.execute(
                "select private.can_access_topic(%s), private.can_access_topic(%s, true)",
                (topic, topic),
            ).fetchone()
            assert row == (allowed, False)


def test_a_sync_topic_reveals_nothing_of_another_table_with_the_same_key(
    world: SyncWorld, chat: tuple[Any, Any, str]
) -> None:
    """The student may hold the tutor's profile bucket, never the tutor's notifications: the
    nudge for a notification to the tutor goes on a topic only the tutor may join."""
    tutor, student, _ = chat
    with psycopg.connect(world.url) as conn:
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (f'{{"sub": "{student.id}", "role": "authenticated"}}',),
        )
        row = conn.execute(
            "select private.can_access_topic(%s), private.can_access_topic(%s)",
            (f"sync:profiles:{tutor.id}", f"sync:notifications:{tutor.id}"),
        ).fetchone()
    assert row == (True, False)
    world.sql(
        "insert into public.notifications (recipient_id, type, title)"
        " values (%s, 'announcement', 'for the tutor')",
        tutor.id,
    )
    topics = {
        r[0]
        for r in world.sql(
            "select topic from realtime.messages where payload ->> 'bucket' = %s",
            f"notifications:{tutor.id}",
        )
    }
    assert topics == {f"sync:notifications:{tutor.id}"}
