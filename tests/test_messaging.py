"""Messaging, notifications, devices and realtime: what triggers write, what each user may
change, the nudges that really reach a listener, topic authorization as the Realtime server
probes it, and a message history that pages through its index."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from pysync.localdb import LocalDatabase
from pysync.migrate import apply_seed, push
from pysync.rls import TopicAccess, probe_topic
from tests.helpers import PROJECT_ROOT, acting_as, connect

Conn = psycopg.Connection[Any]

ADMIN = "a0000000-0000-4000-8000-000000000001"
TOM = "b0000000-0000-4000-8000-000000000001"  # tutor of Algebra I
TARA = "b0000000-0000-4000-8000-000000000002"  # tutor of Physics Basics
SAM = "c0000000-0000-4000-8000-000000000001"  # active in Algebra I
SUE = "c0000000-0000-4000-8000-000000000002"  # active in Algebra I
SID = "c0000000-0000-4000-8000-000000000003"  # active in Physics Basics
ALGEBRA = "d0000000-0000-4000-8000-000000000001"
SAM_TOM = "17000000-0000-4000-8000-000000000001"  # seeded direct conversation
ALGEBRA_CHAT = "17000000-0000-4000-8000-000000000002"  # seeded course conversation
SAMS_MESSAGE = "19000000-0000-4000-8000-000000000001"
SAMS_SUBMISSION = "13000000-0000-4000-8000-000000000001"
SID_TARA_SESSION = "10000000-0000-4000-8000-000000000003"  # requested
SAMS_DEVICE = "1b000000-0000-4000-8000-000000000001"


def _one(conn: Conn, query: str, params: Any = None) -> Any:
    row = conn.execute(query.encode(), params).fetchone()
    assert row is not None, query
    return row[0] if len(row) == 1 else row


def _participants(conn: Conn, conversation: str) -> dict[str, str]:
    rows = conn.execute(
        "select user_id::text, role from public.conversation_participants"
        " where conversation_id = %s",
        (conversation,),
    ).fetchall()
    return dict(rows)


def _notifications(conn: Conn, recipient: str, kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (title, body, data)
        for title, body, data in conn.execute(
            "select title, body, data from public.notifications"
            " where recipient_id = %s and type = %s order by created_at, id",
            (recipient, kind),
        ).fetchall()
    ]


def _post(conn: Conn, sender: str, conversation: str, body: str, **extra: Any) -> str:
    """Post as ``sender`` (committing the savepoint); ``extra`` sets more columns."""
    values = {"conversation_id": conversation, "sender_id": sender, "body": body, **extra}
    query = sql.SQL("insert into public.messages ({}) values ({}) returning id::text").format(
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    with acting_as(conn, "authenticated", sender, keep=True):
        row = conn.execute(query, list(values.values())).fetchone()
    assert row is not None
    return str(row[0])


# -- conversations and membership --------------------------------------------------------------


def test_direct_conversation_is_created_once_with_both_participants(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", SUE, keep=True):
        first = _one(app_conn, "select id::text from public.start_direct_conversation(%s)", (SID,))
    with acting_as(app_conn, "authenticated", SID, keep=True):
        again = _one(app_conn, "select id::text from public.start_direct_conversation(%s)", (SUE,))
    assert first == again
    assert _participants(app_conn, first) == {SUE: "member", SID: "member"}
    with acting_as(app_conn, "authenticated", TARA):
        assert (
            _one(app_conn, "select count(*) from public.conversations where id = %s", (first,)) == 0
        )
    # The seeded pair keeps its seeded conversation.
    with acting_as(app_conn, "authenticated", TOM):
        assert _one(
            app_conn, "select id::text from public.start_direct_conversation(%s)", (SAM,)
        ) == (SAM_TOM)


def test_direct_conversation_needs_another_active_user(app_conn: Conn) -> None:
    with (
        acting_as(app_conn, "authenticated", SAM),
        pytest.raises(errors.InvalidParameterValue, match="another, active user"),
    ):
        app_conn.execute("select public.start_direct_conversation(%s)", (SAM,))
    with acting_as(app_conn, "anon"), pytest.raises(errors.InsufficientPrivilege):
        app_conn.execute("select public.start_direct_conversation(%s)", (SAM,))
    app_conn.execute("update public.profiles set deleted_at = now() where id = %s", (SID,))
    with acting_as(app_conn, "authenticated", SAM), pytest.raises(errors.InvalidParameterValue):
        app_conn.execute("select public.start_direct_conversation(%s)", (SID,))


def test_clients_cannot_add_participants_directly(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", SID), pytest.raises(errors.InsufficientPrivilege):
        app_conn.execute(
            "insert into public.conversation_participants (conversation_id, user_id)"
            " values (%s, %s)",
            (SAM_TOM, SID),
        )
    # Not even the platform makes a direct conversation a group.
    with pytest.raises(errors.CheckViolation, match="exactly two participants"):
        app_conn.execute(
            "insert into public.conversation_participants (conversation_id, user_id)"
            " values (%s, %s)",
            (SAM_TOM, SID),
        )


def test_course_conversation_members_follow_enrollments(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", TARA), pytest.raises(errors.InsufficientPrivilege):
        app_conn.execute("select public.start_course_conversation(%s)", (ALGEBRA,))
    with acting_as(app_conn, "authenticated", TOM, keep=True):
        chat = str(
            _one(
                app_conn,
                "select id::text from public.start_course_conversation(%s, 'Exam prep')",
                (ALGEBRA,),
            )
        )
    assert _participants(app_conn, chat) == {TOM: "owner", SAM: "member", SUE: "member"}

    with acting_as(app_conn, "authenticated", SID, keep=True):
        enrollment = _one(
            app_conn,
            "insert into public.enrollments (student_id, course_id) values (%s, %s) returning id",
            (SID, ALGEBRA),
        )
    assert _participants(app_conn, chat)[SID] == "member"
    assert _participants(app_conn, ALGEBRA_CHAT)[SID] == "member"

    with acting_as(app_conn, "authenticated", SID, keep=True):
        app_conn.execute(
            "update public.enrollments set status = 'cancelled' where id = %s", (enrollment,)
        )
    assert SID not in _participants(app_conn, chat)
    with acting_as(app_conn, "authenticated", SID):
        assert _one(app_conn, "select count(*) from public.messages where conversation_id = %s", (
            ALGEBRA_CHAT,
        )) == 0  # fmt: skip

    # An admin hands the course to Tara: she owns its conversations, Tom is out.
    app_conn.execute("update public.courses set tutor_id = %s where id = %s", (TARA, ALGEBRA))
    members = _participants(app_conn, chat)
    assert members[TARA] == "owner" and TOM not in members


# -- messages ----------------------------------------------------------------------------------


def test_new_message_moves_conversation_up_and_notifies_the_others(app_conn: Conn) -> None:
    before = _notifications(app_conn, TOM, "new_message")
    message = _post(app_conn, SAM, SAM_TOM, "Is question 3 a typo?")
    created_at, last = _one(
        app_conn,
        "select m.created_at, c.last_message_at from public.messages m"
        " join public.conversations c on c.id = m.conversation_id where m.id = %s",
        (message,),
    )
    assert last == created_at
    after = _notifications(app_conn, TOM, "new_message")
    assert len(after) == len(before) + 1
    title, body, data = after[-1]
    assert (title, body) == ("Sam Student", "Is question 3 a typo?")
    assert data == {"conversation_id": SAM_TOM, "message_id": message, "sender_id": SAM}
    assert not [
        n for n in _notifications(app_conn, SAM, "new_message") if n[2]["message_id"] == message
    ]

    _post(app_conn, SUE, ALGEBRA_CHAT, "Anyone free to study on Friday?")
    assert [n[0] for n in _notifications(app_conn, SAM, "new_message")][-1] == (
        "Sue Student in Algebra I class chat"
    )


def test_outsider_can_neither_read_nor_post(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", SUE):
        assert _one(app_conn, "select count(*) from public.messages where conversation_id = %s", (
            SAM_TOM,
        )) == 0  # fmt: skip
    with acting_as(app_conn, "authenticated", SUE), pytest.raises(errors.InsufficientPrivilege):
        app_conn.execute(
            "insert into public.messages (conversation_id, sender_id, body) values (%s, %s, 'hi')",
            (SAM_TOM, SUE),
        )
    # Conversations are private to their participants, admins included; moderation runs with
    # the service role.
    with acting_as(app_conn, "authenticated", ADMIN):
        assert _one(app_conn, "select count(*) from public.messages where conversation_id = %s", (
            SAM_TOM,
        )) == 0  # fmt: skip
    with acting_as(app_conn, "service_role"):
        assert _one(app_conn, "select count(*) from public.messages where conversation_id = %s", (
            SAM_TOM,
        )) >= 2  # fmt: skip


def test_only_the_sender_edits_and_edits_are_stamped(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", TOM):
        touched = app_conn.execute(
            "update public.messages set body = 'Tom was here' where id = %s", (SAMS_MESSAGE,)
        ).rowcount
    assert touched == 0
    with (
        acting_as(app_conn, "authenticated", SAM),
        pytest.raises(errors.InsufficientPrivilege, match="stays in its conversation"),
    ):
        app_conn.execute(
            "update public.messages set conversation_id = %s where id = %s",
            (ALGEBRA_CHAT, SAMS_MESSAGE),
        )
    with acting_as(app_conn, "authenticated", SAM):
        edited, version = _one(
            app_conn,
            "update public.messages set body = 'Can we go over question 2 on Monday?',"
            " edited_at = '2000-01-01' where id = %s returning edited_at, version",
            (SAMS_MESSAGE,),
        )
    assert edited.year > 2000 and version == 2
    with acting_as(app_conn, "authenticated", ADMIN):
        touched = app_conn.execute(
            "update public.messages set body = 'x' where id = %s", (SAMS_MESSAGE,)
        ).rowcount
    assert touched == 0  # not a participant: the message is invisible to an admin


def test_soft_delete_clears_content_and_scrubs_notifications(app_conn: Conn) -> None:
    message = _post(
        app_conn, SAM, SAM_TOM, "My phone number is 555-0100", attachment_path=f"{SAM_TOM}/a.png"
    )
    quoted = [
        n for n in _notifications(app_conn, TOM, "new_message") if n[2]["message_id"] == message
    ]
    assert [body for _, body, _ in quoted] == ["My phone number is 555-0100"]
    with acting_as(app_conn, "authenticated", SAM, keep=True):
        row = _one(
            app_conn,
            "update public.messages set deleted_at = '2000-01-01' where id = %s"
            " returning body, attachment_path, deleted_at > now() - interval '1 minute'",
            (message,),
        )
    assert row == ("", None, True)
    quoted = [
        n for n in _notifications(app_conn, TOM, "new_message") if n[2]["message_id"] == message
    ]
    assert [body for _, body, _ in quoted] == [""]

    with (
        acting_as(app_conn, "authenticated", SAM),
        pytest.raises(errors.InsufficientPrivilege, match="a deleted message cannot change"),
    ):
        app_conn.execute("update public.messages set body = 'back' where id = %s", (message,))
    with acting_as(app_conn, "authenticated", SAM):
        assert (
            app_conn.execute("delete from public.messages where id = %s", (message,)).rowcount == 0
        )
    with acting_as(app_conn, "authenticated", ADMIN):
        assert (
            app_conn.execute("delete from public.messages where id = %s", (message,)).rowcount == 0
        )
    with acting_as(app_conn, "service_role"):
        assert (
            app_conn.execute("delete from public.messages where id = %s", (message,)).rowcount == 1
        )


def test_offline_message_keeps_its_id_and_past_time_but_not_a_future_one(app_conn: Conn) -> None:
    offline_id = str(uuid.uuid4())
    with acting_as(app_conn, "authenticated", SAM):
        row = _one(
            app_conn,
            "insert into public.messages (id, conversation_id, sender_id, body, created_at)"
            " values (%s, %s, %s, 'written on the train', now() - interval '3 hours'),"
            " (gen_random_uuid(), %s, %s, 'from the future', now() + interval '1 year')"
            " returning id::text, created_at < now() - interval '2 hours'",
            (offline_id, SAM_TOM, SAM, SAM_TOM, SAM),
        )
        future = _one(
            app_conn,
            "select created_at <= now() from public.messages where body = 'from the future'",
        )
    assert row == (offline_id, True)
    assert future is True


# -- notifications -----------------------------------------------------------------------------


def test_recipient_may_only_mark_notifications_read(app_conn: Conn) -> None:
    notification = _one(
        app_conn,
        "select id from public.notifications where recipient_id = %s limit 1",
        (TOM,),
    )
    with acting_as(app_conn, "authenticated", TOM), pytest.raises(errors.InsufficientPrivilege):
        app_conn.execute(
            "update public.notifications set title = 'Edited' where id = %s", (notification,)
        )
    with acting_as(app_conn, "authenticated", SAM):
        assert (
            app_conn.execute(
                "update public.notifications set read_at = now() where id = %s", (notification,)
            ).rowcount
            == 0
        )
    with acting_as(app_conn, "authenticated", TOM):
        assert (
            app_conn.execute(
                "update public.notifications set read_at = now() where id = %s", (notification,)
            ).rowcount
            == 1
        )
        assert (
            app_conn.execute(
                "delete from public.notifications where id = %s", (notification,)
            ).rowcount
            == 1
        )


def test_session_confirmation_and_cancellation_notify_the_other_party(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", TARA, keep=True):
        app_conn.execute(
            "update public.tutoring_sessions set status = 'confirmed' where id = %s",
            (SID_TARA_SESSION,),
        )
    confirmed = _notifications(app_conn, SID, "session_confirmed")
    assert [(t, b, d["session_id"]) for t, b, d in confirmed] == [
        ("Session confirmed", "Tara Tutor confirmed your session.", SID_TARA_SESSION)
    ]
    with acting_as(app_conn, "authenticated", SID, keep=True):
        app_conn.execute(
            "update public.tutoring_sessions set status = 'cancelled' where id = %s",
            (SID_TARA_SESSION,),
        )
    assert [b for _, b, _ in _notifications(app_conn, TARA, "session_cancelled")] == [
        "Sid Student cancelled the session."
    ]
    assert _notifications(app_conn, SID, "session_cancelled") == []


def test_grading_a_submission_notifies_the_student(app_conn: Conn) -> None:
    assert _notifications(app_conn, SAM, "submission_graded") == []
    with acting_as(app_conn, "authenticated", TOM, keep=True):
        app_conn.execute(
            "update public.submissions set grade = 88, status = 'graded' where id = %s",
            (SAMS_SUBMISSION,),
        )
    graded = _notifications(app_conn, SAM, "submission_graded")
    assert [(t, b, d["submission_id"]) for t, b, d in graded] == [
        ("Submission graded", "Homework 1: linear equations: 88.00 / 100.00", SAMS_SUBMISSION)
    ]


def test_enrollment_notifies_the_course_tutor(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", SID, keep=True):
        app_conn.execute(
            "insert into public.enrollments (student_id, course_id) values (%s, %s)",
            (SID, ALGEBRA),
        )
    latest = _notifications(app_conn, TOM, "enrollment_created")[-1]
    assert latest[1] == "Sid Student enrolled in Algebra I."
    assert latest[2]["student_id"] == SID and latest[2]["course_id"] == ALGEBRA


def test_seed_runs_again_without_duplicating_messaging_rows(app_conn: Conn) -> None:
    tables = ["conversations", "conversation_participants", "messages", "notifications"]
    count = sql.SQL(" union all ").join(
        sql.SQL("select {}, count(*) from {}").format(sql.Literal(t), sql.Identifier("public", t))
        for t in tables
    )
    before = app_conn.execute(count).fetchall()
    apply_seed(app_conn, PROJECT_ROOT / "supabase" / "seed.sql")
    assert app_conn.execute(count).fetchall() == before
    assert dict(before)["messages"] >= 5


# -- devices and preferences -------------------------------------------------------------------


def test_every_profile_has_every_preference_enabled_by_default(app_conn: Conn) -> None:
    user = str(uuid.uuid4())
    app_conn.execute(
        "insert into auth.users (id, aud, role, email) values"
        " (%s, 'authenticated', 'authenticated', 'new.user@example.com')",
        (user,),
    )
    rows = app_conn.execute(
        "select p.id::text, array_agg(n.category order by n.category), bool_and(n.enabled)"
        " from public.profiles p join public.notification_preferences n on n.user_id = p.id"
        " group by p.id"
    ).fetchall()
    everything = (["grades", "marketing", "messages", "sessions"], True)
    assert {user, SAM, ADMIN} <= {r[0] for r in rows}
    assert all((r[1], r[2]) == everything for r in rows)
    with acting_as(app_conn, "authenticated", SAM), pytest.raises(errors.InsufficientPrivilege):
        app_conn.execute(
            "update public.notification_preferences set category = 'grades'"
            " where user_id = %s and category = 'marketing'",
            (SAM,),
        )


def test_a_push_token_belongs_to_one_device(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", SUE, keep=True):
        app_conn.execute(
            "insert into public.devices (user_id, device_id, platform, push_token)"
            " values (%s, 'second-hand-pixel', 'android', 'seed-fcm-token-sam-pixel-8')",
            (SUE,),
        )
    assert (
        _one(app_conn, "select push_token from public.devices where id = %s", (SAMS_DEVICE,))
        is None
    )


def test_a_push_goes_only_to_the_recipients_devices(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", SUE, keep=True):
        sues_device = _one(
            app_conn,
            "insert into public.devices (user_id, device_id, platform) values (%s, 'ipad', 'ios')"
            " returning id",
            (SUE,),
        )
    sams_notification = "1a000000-0000-4000-8000-000000000001"
    with acting_as(app_conn, "service_role"), pytest.raises(errors.CheckViolation):
        app_conn.execute(
            "insert into public.push_deliveries (notification_id, device_id) values (%s, %s)",
            (sams_notification, sues_device),
        )
    with acting_as(app_conn, "authenticated", SAM):
        assert _one(app_conn, "select count(*) from public.push_deliveries") == 1
    with acting_as(app_conn, "authenticated", SUE):
        assert _one(app_conn, "select count(*) from public.push_deliveries") == 0


def test_chat_attachments_bucket_is_private_and_limited(app_conn: Conn) -> None:
    public, limit, types = _one(
        app_conn,
        "select public, file_size_limit, allowed_mime_types from storage.buckets"
        " where id = 'chat-attachments'",
    )
    assert public is False and limit == 20 * 1024 * 1024
    assert "image/jpeg" in types and "application/x-msdownload" not in types


# -- realtime: topic authorization -------------------------------------------------------------


def test_conversation_topic_is_open_to_participants_only(app_conn: Conn) -> None:
    topic = f"conversation:{SAM_TOM}"
    assert probe_topic(app_conn, SAM, topic) == TopicAccess(can_read=True, can_write=True)
    assert probe_topic(app_conn, TOM, topic, extension="presence") == TopicAccess(True, True)
    for outsider in (SUE, TARA, ADMIN, None):
        assert probe_topic(app_conn, outsider, topic) == TopicAccess(False, False), outsider
    # Membership is read live: Sue joins Algebra's class chat by enrolling, Sid is in none.
    assert probe_topic(app_conn, SUE, f"conversation:{ALGEBRA_CHAT}") == TopicAccess(True, True)
    assert probe_topic(app_conn, SID, f"conversation:{ALGEBRA_CHAT}") == TopicAccess(False, False)


def test_user_topic_is_for_that_user_and_receive_only(app_conn: Conn) -> None:
    assert probe_topic(app_conn, SAM, f"user:{SAM}") == TopicAccess(can_read=True, can_write=False)
    assert probe_topic(app_conn, TOM, f"user:{SAM}") == TopicAccess(False, False)
    assert probe_topic(app_conn, None, f"user:{SAM}") == TopicAccess(False, False)


@pytest.mark.parametrize(
    "topic",
    [
        "conversation:not-a-uuid",
        "conversation:",
        f"user:{SAM}:extra",
        f"users:{SAM}",
        f"conversation:{SAM_TOM}x",
        "nonsense",
        "",
    ],
)
def test_malformed_topics_are_refused_without_error(app_conn: Conn, topic: str) -> None:
    assert probe_topic(app_conn, SAM, topic) == TopicAccess(False, False)


def test_the_probe_leaves_nothing_behind(app_conn: Conn) -> None:
    before = _one(app_conn, "select count(*) from realtime.messages")
    probe_topic(app_conn, SAM, f"conversation:{SAM_TOM}")
    assert _one(app_conn, "select count(*) from realtime.messages") == before
    assert _one(app_conn, "select current_user") == "postgres"


def test_watched_tables_are_published_and_the_file_reruns_safely(app_conn: Conn) -> None:
    app_conn.execute("create table public.someone_elses (id int primary key)")
    app_conn.execute("alter publication supabase_realtime add table public.someone_elses")
    app_conn.execute((PROJECT_ROOT / "policies" / "realtime.sql").read_text().encode())
    published = {
        r[0]
        for r in app_conn.execute(
            "select tablename::text from pg_publication_tables where pubname = 'supabase_realtime'"
        ).fetchall()
    }
    assert {
        "conversations",
        "conversation_participants",
        "messages",
        "notifications",
        "someone_elses",
    } <= published


# -- realtime: broadcasts and nudges, committed and heard by a listener -------------------------


@pytest.fixture(scope="module")
def committed_url(local_db: LocalDatabase) -> Iterator[str]:
    """A database of its own for tests that must commit (NOTIFY is delivered at commit)."""
    name = f"nudge_{uuid.uuid4().hex[:10]}"
    url = local_db.create_database(name)
    with connect(url) as conn:
        push(conn, PROJECT_ROOT / "supabase" / "migrations", PROJECT_ROOT / "policies")
        apply_seed(conn, PROJECT_ROOT / "supabase" / "seed.sql")
    yield url
    local_db.drop_database(name)


def _listen(url: str, *topics: str) -> Conn:
    listener = connect(url)
    for topic in topics:
        listener.execute(f'listen "{topic}"'.encode())
    return listener


def _heard(listener: Conn) -> list[tuple[str, dict[str, Any]]]:
    """Every notification that arrives within a second (all of a commit's come at once)."""
    return [
        (n.channel, json.loads(n.payload))
        for n in listener.notifies(timeout=1.0)  # ends on the timeout
    ]


def test_message_is_broadcast_and_nudges_each_participant_once(committed_url: str) -> None:
    topics = [f"user:{SAM}", f"user:{TOM}", f"user:{SUE}", f"conversation:{SAM_TOM}"]
    with _listen(committed_url, *topics) as listener, connect(committed_url) as conn:
        message = _post(conn, SAM, SAM_TOM, "See you on Tuesday")
        heard = _heard(listener)
        sent = _one(
            conn,
            "select count(*) from realtime.messages where event = 'sync' and payload ->> 'id' = %s",
            (message,),
        )
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for channel, payload in heard:
        by_topic.setdefault(channel, []).append(payload)
    assert sorted(by_topic) == sorted([f"user:{SAM}", f"user:{TOM}", f"conversation:{SAM_TOM}"])
    for user in (SAM, TOM):
        assert [n["payload"] for n in by_topic[f"user:{user}"]] == [
            {"table": "messages", "id": message, "op": "INSERT"}
        ]
        assert by_topic[f"user:{user}"][0]["event"] == "sync"
    (broadcast,) = by_topic[f"conversation:{SAM_TOM}"]
    assert broadcast["event"] == "INSERT" and broadcast["private"] is True
    assert broadcast["payload"]["record"]["id"] == message
    assert broadcast["payload"]["record"]["body"] == "See you on Tuesday"
    assert sent == 2  # the rows the Realtime server would deliver really were written


def test_soft_delete_broadcast_carries_no_deleted_text(committed_url: str) -> None:
    with connect(committed_url) as conn:
        message = _post(conn, SAM, SAM_TOM, "Oops, wrong chat")
        with _listen(committed_url, f"conversation:{SAM_TOM}") as listener:
            with acting_as(conn, "authenticated", SAM, keep=True):
                conn.execute(
                    "update public.messages set deleted_at = now() where id = %s", (message,)
                )
            heard = _heard(listener)
    assert len(heard) == 1
    text = json.dumps(heard[0][1])
    assert "Oops" not in text
    assert heard[0][1]["payload"]["record"]["deleted_at"] is not None


def test_read_markers_notifications_and_preferences_nudge_who_can_see_them(
    committed_url: str,
) -> None:
    topics = (f"user:{SAM}", f"user:{TOM}", f"user:{SUE}")
    with connect(committed_url) as conn, _listen(committed_url, *topics) as listener:
        with acting_as(conn, "authenticated", SAM, keep=True):
            conn.execute(
                "update public.conversation_participants set last_read_at = now()"
                " where conversation_id = %s and user_id = %s",
                (SAM_TOM, SAM),
            )
        participants = _heard(listener)
        with acting_as(conn, "authenticated", TOM, keep=True):
            notification = _one(
                conn,
                "update public.notifications set read_at = now() where id = ("
                " select id from public.notifications where recipient_id = %s limit 1)"
                " returning id::text",
                (TOM,),
            )
        notifications = _heard(listener)
        with acting_as(conn, "authenticated", SUE, keep=True):
            conn.execute(
                "update public.notification_preferences set enabled = false"
                " where user_id = %s and category = 'marketing'",
                (SUE,),
            )
        preferences = _heard(listener)
    assert sorted(c for c, _ in participants) == sorted([f"user:{SAM}", f"user:{TOM}"])
    assert {p["payload"]["table"] for _, p in participants} == {"conversation_participants"}
    assert [(c, p["payload"]["table"], p["payload"]["id"]) for c, p in notifications] == [
        (f"user:{TOM}", "notifications", notification)
    ]
    assert [(c, p["payload"]["table"]) for c, p in preferences] == [
        (f"user:{SUE}", "notification_preferences")
    ]


def test_joining_a_course_nudges_the_class(committed_url: str) -> None:
    topics = (f"user:{SID}", f"user:{SAM}", f"user:{TARA}")
    with connect(committed_url) as conn, _listen(committed_url, *topics) as listener:
        with acting_as(conn, "authenticated", SID, keep=True):
            conn.execute(
                "insert into public.enrollments (student_id, course_id) values (%s, %s)",
                (SID, ALGEBRA),
            )
        heard = _heard(listener)
    channels = sorted(c for c, _ in heard)
    assert channels == sorted([f"user:{SID}", f"user:{SAM}"])
    assert {p["payload"]["table"] for _, p in heard} == {"conversation_participants"}


# -- history pages through its index -----------------------------------------------------------

KEYSET_PAGE = (
    "select id::text, created_at from public.messages"
    " where conversation_id = %(conversation)s"
    " and (%(before_at)s::timestamptz is null or (created_at, id) < (%(before_at)s, %(before_id)s))"
    " order by created_at desc, id desc limit %(limit)s"
)
KEYSET_EXPLAIN = (
    "select id from public.messages where conversation_id = %(conversation)s"
    " and (created_at, id) < (%(before_at)s, %(before_id)s)"
    " order by created_at desc, id desc limit 50"
)


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def test_message_history_pages_through_its_index(app_conn: Conn) -> None:
    chats = [
        r[0]
        for r in app_conn.execute(
            "insert into public.conversations (kind, course_id, created_by)"
            " select 'course', %s, %s from generate_series(1, 3) returning id::text",
            (ALGEBRA, TOM),
        ).fetchall()
    ]
    # 1000 messages each (long enough that a page must not sort the whole conversation), in
    # pairs that share a timestamp so the id must break the tie.
    app_conn.execute(
        "insert into public.messages (conversation_id, sender_id, body, created_at)"
        " select c, %s, 'message ' || g, now() - make_interval(mins => g / 2)"
        " from unnest(%s::uuid[]) c, generate_series(1, 1000) g",
        (SUE, chats),
    )
    app_conn.execute("analyze public.messages")
    assert _one(app_conn, "select count(*) from public.messages") >= 3000

    with acting_as(app_conn, "authenticated", SAM):
        plan = _one(
            app_conn,
            "explain (format json) " + KEYSET_EXPLAIN,
            {"conversation": chats[0], "before_at": "infinity", "before_id": str(uuid.UUID(int=0))},
        )
        nodes = list(_plan_nodes(plan[0]["Plan"]))
        pages: list[list[tuple[str, Any]]] = []
        cursor: dict[str, Any] = {"before_at": None, "before_id": None}
        while True:
            page = app_conn.execute(
                KEYSET_PAGE.encode(), {"conversation": chats[0], "limit": 30, **cursor}
            ).fetchall()
            if not page:
                break
            pages.append(page)
            cursor = {"before_at": page[-1][1], "before_id": page[-1][0]}
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], json.dumps(plan, indent=1)
    assert any(n.get("Index Name") == "messages_conversation_created_idx" for n in nodes)
    rows = [row for page in pages for row in page]
    assert [len(p) for p in pages] == [30] * 33 + [10]
    assert len({r[0] for r in rows}) == 1000
    assert rows == sorted(rows, key=lambda r: (r[1], r[0]), reverse=True)


def _executed_function_scans(plan: dict[str, Any]) -> list[str]:
    found = []
    if plan.get("Node Type") in ("ProjectSet", "Function Scan") and plan.get("Actual Loops", 0):
        found.append(plan.get("Subplan Name", plan["Node Type"]))
    for child in plan.get("Plans", []):
        found += _executed_function_scans(child)
    return found


@pytest.mark.parametrize(
    "query",
    [
        "select id from public.messages where conversation_id = %(chat)s"
        " order by created_at desc, id desc limit 50",
        "select id from public.conversations where id = any(%(chats)s::uuid[])"
        " order by last_message_at desc nulls last limit 20",
        "select conversation_id from public.conversation_participants where user_id = %(me)s",
    ],
)
def test_a_participant_reads_messaging_without_calling_a_helper(app_conn: Conn, query: str) -> None:
    """The membership tests read the caller's own participant rows inline; a definer helper
    (my_conversation_ids()) costs about 0.15 ms a call, most of these queries' cost."""
    params = {"chat": ALGEBRA_CHAT, "chats": [ALGEBRA_CHAT, SAM_TOM], "me": SAM}
    with acting_as(app_conn, "authenticated", SAM):
        rows = app_conn.execute(query.encode(), params).fetchall()
        plan = _one(app_conn, "explain (analyze, format json) " + query, params)
    assert rows
    assert _executed_function_scans(plan[0]["Plan"]) == [], json.dumps(plan, indent=1)
