"""The data sources against the embedded database, through PostgresGateway, as real users.

Every call commits (the gateway is its own connection, as PostgREST is), so each test makes
its own users with LocalAuth and its own rows; seeded rows are only read.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from pysync import (
    Client,
    Conflict,
    Cursor,
    InvalidInput,
    LocalStorage,
    NotFound,
    PermissionDenied,
    PostgresGateway,
)
from pysync.auth import LocalAuth, LocalUser
from pysync.client import _as_authenticator
from pysync.config import LOCAL_JWT_SECRET
from pysync.datasources.models import Message, Notification, Page
from pysync.datasources.storage import STORAGE_PRE_REQUEST
from pysync.gateway import eq
from tests.helpers import connect

SAM = "c0000000-0000-4000-8000-000000000001"
TOM = "b0000000-0000-4000-8000-000000000001"
ALGEBRA = "d0000000-0000-4000-8000-000000000001"


class World:
    """Users and clients over one shared pair of gateways (public and storage)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.auth = LocalAuth(url, jwt_secret=LOCAL_JWT_SECRET, bcrypt_cost=4)
        api = _as_authenticator(url)
        self.gateway = PostgresGateway.connect(api, jwt_secret=LOCAL_JWT_SECRET)
        self.files = PostgresGateway.connect(
            api, jwt_secret=LOCAL_JWT_SECRET, schemas=("storage",), pre_request=STORAGE_PRE_REQUEST
        )

    def user(self, role: str = "student", name: str | None = None) -> LocalUser:
        email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
        return self.auth.create_user(
            email,
            "pw-123456",
            app_metadata={"app_role": role},
            user_metadata={"display_name": name or role.title()},
        )

    def client(self, user: LocalUser | str) -> Client:
        token = self.auth.session_for(user).access_token
        return Client.for_token(self.gateway, token, storage_gateway=self.files)

    def new(self, role: str = "student") -> tuple[LocalUser, Client]:
        user = self.user(role)
        return user, self.client(user)

    def close(self) -> None:
        self.gateway.close()
        self.files.close()


@pytest.fixture(scope="module")
def world(app_url: str) -> Iterator[World]:
    made = World(app_url)
    yield made
    made.close()


@pytest.fixture
def published_course(world: World) -> Callable[[], tuple[LocalUser, Client, str]]:
    """A factory: a new tutor with a new published course."""

    def make() -> tuple[LocalUser, Client, str]:
        tutor, client = world.new("tutor")
        course = client.courses.create("Geometry", "Shapes")
        client.courses.publish(course.id)
        return tutor, client, str(course.id)

    return make


# -- profiles --------------------------------------------------------------------------------


def test_profile_me_update_and_optimistic_locking(world: World) -> None:
    user, client = world.new()
    me = client.profiles.me()
    assert str(me.id) == user.id and me.role == "student" and me.version == 1
    assert isinstance(me.created_at, datetime) and me.created_at.tzinfo is not None
    updated = client.profiles.update_me(display_name="Renamed", expected_version=me.version)
    assert (updated.display_name, updated.version) == ("Renamed", 2)
    with pytest.raises(Conflict) as stale:
        client.profiles.update_me(display_name="Again", expected_version=me.version)
    assert stale.value.details == {"expected_version": 1, "version": 2}
    assert client.profiles.me().display_name == "Renamed"
    cleared = client.profiles.update_me(avatar_url=None)
    assert cleared.avatar_url is None


def test_only_admins_change_roles(world: World) -> None:
    student, client = world.new()
    with pytest.raises(PermissionDenied):
        client.profiles.set_role(student.id, "admin")
    _, admin = world.new("admin")
    assert admin.profiles.set_role(student.id, "tutor").role == "tutor"
    other, _ = world.new()
    with pytest.raises(PermissionDenied):  # visible, but not the caller's profile
        client.profiles.set_role(other.id, "tutor")


# -- courses and enrollments -----------------------------------------------------------------


def test_tutor_creates_publishes_and_student_enrolls(
    world: World, published_course: Callable[[], tuple[LocalUser, Client, str]]
) -> None:
    _, tutor, course_id = published_course()
    module = tutor.courses.add_module(course_id, "Triangles", 1)
    intro = tutor.courses.add_lesson(course_id, "Welcome", 0, is_preview=True)
    second = tutor.courses.add_lesson(course_id, "Angles", 1, module_id=module.id)
    first = tutor.courses.add_lesson(course_id, "Sides", 0, module_id=module.id)
    assert [c.id for c in tutor.courses.list_taught()] == [uuid.UUID(course_id)]
    order = [item.id for item in tutor.courses.content(course_id)]
    assert order == [intro.id, module.id, first.id, second.id]

    _, student = world.new()
    assert uuid.UUID(course_id) in {c.id for c in student.courses.list_published()}
    # Before enrolling only the preview lesson is readable.
    assert [i.id for i in student.courses.content(course_id)] == [intro.id]
    enrollment = student.enrollments.enroll(course_id)
    assert enrollment.status == "active"
    assert [c.id for c in student.courses.list_enrolled()] == [uuid.UUID(course_id)]
    assert len(student.courses.content(course_id)) == 4
    cancelled = student.enrollments.cancel(enrollment.id, expected_version=enrollment.version)
    assert cancelled.status == "cancelled"
    assert student.courses.list_enrolled() == []
    with pytest.raises(Conflict):
        student.enrollments.cancel(enrollment.id, expected_version=enrollment.version)


def test_course_denials_are_clear(
    world: World, published_course: Callable[[], tuple[LocalUser, Client, str]]
) -> None:
    _, student = world.new()
    with pytest.raises(PermissionDenied):
        student.courses.create("Not mine")
    _, tutor, course_id = published_course()
    with pytest.raises(PermissionDenied):  # visible (published) but not the student's
        student.courses.update(course_id, title="Hijacked")
    draft = tutor.courses.create("Draft only")
    with pytest.raises(NotFound):
        student.courses.get(draft.id)
    with pytest.raises(NotFound):
        student.courses.publish(draft.id)
    _, other_tutor = world.new("tutor")
    with pytest.raises(NotFound):
        other_tutor.courses.publish(draft.id)
    assert tutor.courses.get(draft.id).status == "draft"


# -- tutoring sessions and feedback ----------------------------------------------------------


def test_session_life_cycle_feedback_and_rating(world: World) -> None:
    tutor_user, tutor = world.new("tutor")
    _, student = world.new()
    now = datetime.now(UTC)
    starts = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    booked = student.sessions.book(tutor_user.id, starts, starts + timedelta(hours=1))
    assert booked.status == "requested" and booked.student_id == student.user_id
    with pytest.raises(PermissionDenied):
        student.sessions.confirm(booked.id)
    confirmed = tutor.sessions.confirm(booked.id, meeting_url="https://meet.example.com/x")
    assert confirmed.status == "confirmed"
    with pytest.raises(Conflict):
        tutor.sessions.complete(booked.id, expected_version=booked.version)
    with pytest.raises(PermissionDenied):
        student.feedback.rate(booked.id, 5, "too early")
    tutor.sessions.complete(booked.id, expected_version=confirmed.version)
    feedback = student.feedback.rate(booked.id, 4, "Helpful")
    assert (feedback.student_id, feedback.tutor_id) == (
        student.user_id,
        uuid.UUID(tutor_user.id),
    )
    rating = student.feedback.tutor_rating(tutor_user.id)
    assert (rating.average_rating, rating.ratings) == (Decimal("4.00"), 1)
    assert tutor.feedback.received()[0].comment == "Helpful"
    assert student.feedback.tutor_rating(uuid.uuid4()).ratings == 0


def test_this_week_uses_the_week_of_the_profile_time_zone(world: World) -> None:
    tutor_user, tutor = world.new("tutor")
    _, student = world.new()
    student.profiles.update_me(timezone="Asia/Tokyo")
    # Wednesday 2026-11-25 12:00 UTC; the Tokyo week runs Mon 23 00:00 JST = Sun 22 15:00 UTC.
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    inside = datetime(2026, 11, 22, 16, tzinfo=UTC)  # Monday 01:00 in Tokyo
    before = datetime(2026, 11, 22, 14, tzinfo=UTC)  # Sunday 23:00 in Tokyo
    for start in (inside, before):
        student.sessions.book(tutor_user.id, start, start + timedelta(minutes=30))
    week = student.sessions.this_week(now=now)
    assert [s.starts_at for s in week] == [inside]
    assert [s.starts_at for s in student.sessions.this_week(now=now, tz=UTC)] == []
    assert len(tutor.sessions.between(before, inside + timedelta(minutes=1))) == 2
    with pytest.raises(InvalidInput):
        student.sessions.book(tutor_user.id, datetime(2026, 12, 1), datetime(2026, 12, 1, 1))


# -- assignments and submissions -------------------------------------------------------------


def test_submissions_grading_and_denials(
    world: World, published_course: Callable[[], tuple[LocalUser, Client, str]]
) -> None:
    _, tutor, course_id = published_course()
    assignment = tutor.assignments.create(course_id, "Homework", rubric={"accuracy": 100})
    _, student = world.new()
    _, classmate = world.new()
    for who in (student, classmate):
        who.enrollments.enroll(course_id)
    draft = student.submissions.save_draft(assignment.id, "x = 1")
    assert draft.status == "draft" and draft.submitted_at is None
    submitted = student.submissions.submit(assignment.id, "x = 2")
    assert (submitted.id, submitted.status) == (draft.id, "submitted")
    assert submitted.submitted_at is not None
    with pytest.raises(PermissionDenied):  # a student cannot grade, not even their own work
        student.submissions.grade(submitted.id, 100)
    with pytest.raises(NotFound):  # another student's work is not even visible
        classmate.submissions.grade(submitted.id, 0)
    graded = tutor.submissions.grade(
        submitted.id, Decimal("92.5"), "Good", expected_version=submitted.version
    )
    assert (graded.grade, graded.graded_by) == (Decimal("92.5"), tutor.user_id)
    with pytest.raises(Conflict):
        tutor.submissions.grade(submitted.id, 50, expected_version=submitted.version)
    with pytest.raises(PermissionDenied):  # graded work is closed to the student
        student.submissions.submit(assignment.id, "late change")
    assert [s.id for s in tutor.submissions.list_for_assignment(assignment.id)] == [graded.id]
    assert classmate.submissions.mine(assignment.id) is None
    types = [n.type for n in student.notifications.page()]
    assert "submission_graded" in types


# -- conversations and messages --------------------------------------------------------------


def test_direct_conversation_send_retry_and_privacy(world: World) -> None:
    alice_user, alice = world.new()
    bob_user, bob = world.new("tutor")
    _, eve = world.new()
    conversation = alice.conversations.start_direct(bob_user.id)
    assert bob.conversations.start_direct(alice_user.id).id == conversation.id
    message_id = uuid.uuid4()
    sent = alice.messages.send(conversation.id, "Hello", id=message_id)
    assert sent.id == message_id
    again = alice.messages.send(conversation.id, "Hello", id=message_id)  # a retried send
    assert (again.id, again.version) == (message_id, sent.version)
    with pytest.raises(Conflict):  # someone else's id is not "my earlier send"
        bob.messages.send(conversation.id, "Hijack", id=message_id)
    assert [m.body for m in bob.messages.page(conversation.id)] == ["Hello"]
    assert [c.id for c in bob.conversations.list_mine()] == [conversation.id]
    assert eve.messages.page(conversation.id).items == ()
    with pytest.raises(NotFound):
        eve.messages.get(message_id)
    with pytest.raises(PermissionDenied):
        eve.messages.send(conversation.id, "Let me in")
    with pytest.raises(PermissionDenied):  # visible to Bob, but only the sender edits
        bob.messages.edit(message_id, "Edited by Bob")
    edited = alice.messages.edit(message_id, "Hello!", expected_version=sent.version)
    assert edited.edited_at is not None
    removed = alice.messages.delete(message_id)
    assert (removed.body, removed.deleted_at is not None) == ("", True)
    assert bob.conversations.mark_read(conversation.id).last_read_at is not None


def _page_of(client: Client, conversation: Any, limit: int, cursor: Cursor | None) -> Page[Any]:
    return client.messages.page(conversation, cursor, limit)


def _all_pages(fetch: Callable[[Cursor | None], Page[Any]]) -> list[Any]:
    seen: list[Any] = []
    cursor: Cursor | None = None
    for _ in range(100):  # a cursor that does not advance must fail, not hang
        page = fetch(cursor)
        seen.extend(page.items)
        if page.next is None:
            return seen
        cursor = page.next
    raise AssertionError(f"still paging after 100 pages: {len(seen)} items")


def test_message_pages_have_no_duplicates_or_gaps_with_equal_timestamps(world: World) -> None:
    alice_user, alice = world.new()
    bob_user, _ = world.new()
    conversation = alice.conversations.start_direct(bob_user.id)
    stamp = datetime.now(UTC).replace(microsecond=123456) - timedelta(hours=1)
    # Seven messages share one timestamp (written offline in one batch), around three others.
    times = [
        stamp + timedelta(seconds=1),
        *([stamp] * 7),
        stamp - timedelta(seconds=1),
        stamp - timedelta(seconds=2),
    ]
    sent = [
        alice.messages.send(conversation.id, f"m{n}", created_at=at) for n, at in enumerate(times)
    ]
    expected = sorted(sent, key=lambda m: (m.created_at, m.id), reverse=True)
    for limit in (1, 2, 3, 4, 7, 10, 50):
        pages = _all_pages(functools.partial(_page_of, alice, conversation.id, limit))
        assert [m.id for m in pages] == [m.id for m in expected], limit
    first = alice.messages.page(conversation.id, limit=4)
    assert isinstance(first.items[0], Message) and first.next == Cursor(
        first.items[-1].created_at, first.items[-1].id
    )
    last = alice.messages.page(conversation.id, limit=len(sent))
    assert last.next is None and len(last) == len(sent)
    assert alice_user.id


def test_notifications_page_unread_and_mark_read(world: World, app_url: str) -> None:
    user, client = world.new()
    stamp = datetime(2026, 1, 1, 12, tzinfo=UTC)
    with connect(app_url) as conn:
        for n in range(9):
            conn.execute(
                "insert into public.notifications (recipient_id, type, title, created_at)"
                " values (%s, 'announcement', %s, %s)",
                (user.id, f"n{n}", stamp if n < 6 else stamp - timedelta(minutes=n)),
            )
    everything = _all_pages(lambda c: client.notifications.page(c, limit=2))
    assert len(everything) == 9 and len({n.id for n in everything}) == 9
    keys = [(n.created_at, n.id) for n in everything]
    assert keys == sorted(keys, reverse=True)
    assert client.notifications.unread_count() == 9
    target: Notification = everything[3]
    assert client.notifications.mark_read(target.id).read_at is not None
    unread = _all_pages(lambda c: client.notifications.page(c, limit=4, unread_only=True))
    assert target.id not in {n.id for n in unread} and len(unread) == 8
    _, other = world.new()
    with pytest.raises(NotFound):
        other.notifications.mark_read(target.id)
    assert other.notifications.page().items == ()
    assert client.notifications.mark_all_read() == 8
    assert client.notifications.unread_count() == 0


# -- payments, devices, preferences, support -------------------------------------------------


def test_payments_are_read_only_for_clients(world: World) -> None:
    sam = world.client(SAM)
    mine = sam.payments.list_mine()
    assert [p.provider_intent_id for p in mine] == ["pi_seed_sam_algebra"]
    assert mine[0].amount_minor == 4900 and mine[0].currency == "EUR"
    assert [r.amount_minor for r in sam.payments.refunds(mine[0].id)] == [900]
    tom = world.client(TOM)
    assert {p.provider_intent_id for p in tom.payments.list_received()} >= {
        "pi_seed_sam_algebra",
        "pi_seed_sue_session",
    }
    assert not hasattr(sam.payments, "create")
    with pytest.raises(PermissionDenied):
        sam.gateway.insert(
            "payments",
            {
                "payer_id": SAM,
                "payee_id": TOM,
                "course_id": ALGEBRA,
                "amount_minor": 1,
                "currency": "EUR",
                "provider": "stripe",
                "provider_intent_id": f"pi_{uuid.uuid4().hex}",
            },
        )
    with pytest.raises(PermissionDenied):
        sam.gateway.update("payments", {"status": "refunded"}, filters=[eq("id", mine[0].id)])
    _, stranger = world.new()
    assert stranger.payments.list_mine() == []


def test_devices_and_preferences(world: World) -> None:
    _, client = world.new()
    first = client.devices.register("phone-1", "ios", push_token=f"tok-{uuid.uuid4().hex}")
    again = client.devices.register("phone-1", "ios", app_version="2.0")
    assert (again.id, again.version, again.app_version) == (first.id, 2, "2.0")
    assert again.push_token == first.push_token is not None
    assert [d.device_id for d in client.devices.list_mine()] == ["phone-1"]
    assert client.preferences.as_dict() == dict.fromkeys(
        ["grades", "marketing", "messages", "sessions"], True
    )
    assert client.preferences.set("marketing", False).enabled is False
    assert client.preferences.as_dict()["marketing"] is False
    client.devices.unregister("phone-1")
    assert client.devices.list_mine() == []


def test_support_tickets_and_replies(world: World) -> None:
    _, owner = world.new()
    _, other = world.new()
    _, admin = world.new("admin")
    ticket = owner.support.open("Video", "It does not load")
    assert ticket.status == "open"
    owner.support.reply(ticket.id, "Any news?")
    admin.support.reply(ticket.id, "Looking into it")
    assert [r.body for r in owner.support.replies(ticket.id)] == [
        "Any news?",
        "Looking into it",
    ]
    with pytest.raises(NotFound):
        other.support.get(ticket.id)
    with pytest.raises(PermissionDenied):
        other.support.reply(ticket.id, "me too")
    with pytest.raises(PermissionDenied):
        owner.support.assign(ticket.id, admin.user_id)
    assigned = admin.support.assign(ticket.id, admin.user_id)
    resolved = owner.support.resolve(ticket.id, expected_version=assigned.version)
    assert resolved.status == "resolved" and resolved.resolved_at is not None


# -- storage (local: metadata rows decided by the storage policies) --------------------------


def test_local_storage_metadata_follows_the_storage_policies(world: World) -> None:
    user, client = world.new()
    _, other = world.new()
    storage = client.storage
    assert isinstance(storage, LocalStorage)
    avatar = storage.upload_metadata("avatars", f"{user.id}/me.png", 1234, "image/png")
    assert (avatar.size, avatar.mimetype, avatar.owner_id) == (1234, "image/png", user.id)
    with pytest.raises(PermissionDenied):
        storage.upload_metadata("avatars", f"{uuid.uuid4()}/me.png", 1, "image/png")
    assert isinstance(other.storage, LocalStorage)
    with pytest.raises(PermissionDenied):
        other.storage.upload_metadata("avatars", f"{user.id}/evil.png", 1, "image/png")
    storage.upload_metadata("avatars", f"{user.id}/b_1.png", 2, "image/png")
    assert [o.name for o in storage.list("avatars", f"{user.id}/")] == [
        f"{user.id}/b_1.png",
        f"{user.id}/me.png",
    ]
    assert [o.name for o in storage.list("avatars", f"{user.id}/b%")] == []
    assert other.storage.list("avatars", f"{user.id}/") == []
    assert isinstance(other.storage, LocalStorage)
    assert other.storage.remove("avatars", [f"{user.id}/me.png"]) == []
    replaced = storage.upload_metadata(
        "avatars", f"{user.id}/me.png", 99, "image/webp", upsert=True
    )
    assert replaced.size == 99
    removed = storage.remove("avatars", [f"{user.id}/me.png"])
    assert [o.name for o in removed] == [f"{user.id}/me.png"]
    with pytest.raises(NotFound):
        storage.info("avatars", f"{user.id}/me.png")


# -- Client.local ----------------------------------------------------------------------------


def test_client_local_signs_in_and_reads_as_the_user(app_url: str) -> None:
    with Client.local(
        app_url, LOCAL_JWT_SECRET, "student.sam@example.com", password="password123"
    ) as sam:
        assert str(sam.user_id) == SAM
        assert [c.title for c in sam.courses.list_enrolled()] == ["Algebra I"]
        assert sam.profiles.me().display_name == "Sam Student"
    with Client.local(app_url, LOCAL_JWT_SECRET, TOM) as tom:
        assert {c.title for c in tom.courses.list_taught()} >= {"Algebra I", "Calculus (draft)"}
    with pytest.raises(Exception, match="Invalid login credentials"):
        Client.local(app_url, LOCAL_JWT_SECRET, "student.sam@example.com", password="wrong")


def test_gateway_rows_parse_into_models_with_real_types(world: World) -> None:
    sam = world.client(SAM)
    (enrollment,) = [e for e in sam.enrollments.list_mine() if str(e.course_id) == ALGEBRA]
    assert isinstance(enrollment.id, uuid.UUID) and isinstance(enrollment.enrolled_at, datetime)
    assignment = sam.assignments.list_for_course(ALGEBRA)[0]
    assert assignment.max_points == Decimal("100") and assignment.rubric["accuracy"] == 70
    with psycopg.connect(world.url) as conn:
        row = conn.execute("select count(*) from public.assignments").fetchone()
    assert row is not None and row[0] >= 1


# -- the models agree with the schema --------------------------------------------------------

ENUM_COLUMNS = [
    ("Profile", "role", "profiles", "role"),
    ("Course", "status", "courses", "status"),
    ("Course", "visibility", "courses", "visibility"),
    ("ContentItem", "kind", "course_content", "kind"),
    ("ContentItem", "content_type", "course_content", "content_type"),
    ("Enrollment", "status", "enrollments", "status"),
    ("TutoringSession", "status", "tutoring_sessions", "status"),
    ("Submission", "status", "submissions", "status"),
    ("Conversation", "kind", "conversations", "kind"),
    ("Participant", "role", "conversation_participants", "role"),
    ("Notification", "type", "notifications", "type"),
    ("NotificationPreference", "category", "notification_preferences", "category"),
    ("Device", "platform", "devices", "platform"),
    ("Payment", "status", "payments", "status"),
    ("Refund", "status", "refunds", "status"),
    ("SupportQuery", "status", "support_queries", "status"),
]


def test_model_literals_match_the_check_constraints(app_url: str) -> None:
    """A status added by a migration must be added to the model too (else ModelError)."""
    import re
    import typing

    from pysync.datasources import models

    with connect(app_url) as conn:
        for model_name, field, table, column in ENUM_COLUMNS:
            definitions = [
                row[0]
                for row in conn.execute(
                    "select pg_get_constraintdef(c.oid) from pg_constraint c"
                    " join pg_attribute a on a.attrelid = c.conrelid"
                    "  and a.attnum = any(c.conkey)"
                    " where c.contype = 'c' and c.conrelid = %s::regclass and a.attname = %s"
                    "  and cardinality(c.conkey) = 1",
                    (f"public.{table}", column),
                ).fetchall()
            ]
            allowed = {v for d in definitions for v in re.findall(r"'([^']*)'::text", d)}
            hint = typing.get_type_hints(getattr(models, model_name))[field]
            assert set(typing.get_args(hint)) == allowed, (model_name, field)


def test_the_public_api_resolves() -> None:
    import pysync

    missing = [name for name in pysync.__all__ if not hasattr(pysync, name)]
    assert not missing
