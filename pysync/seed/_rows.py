"""The perf world's rows, as lines of ``COPY … FROM STDIN`` text format.

Each generator yields finished lines (tab-separated, ``\\N`` for null, newline-terminated)
built with f-strings: no ``uuid.UUID`` or ``datetime`` per row and no per-value dumper in
psycopg. That is what keeps a few million rows within seconds of Python time. Every value
written here is free of tabs, newlines and backslashes, so nothing needs escaping.

Timestamps are minutes since :data:`EPOCH`; each day's date is formatted once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache

from pysync.seed._plan import PerfPlan, id_prefix

__all__ = ["EPOCH", "Rows", "stamp", "steps"]

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
#: Messages and notifications fall in these 180 days (2026-05-01 to 2026-10-28).
_MESSAGE_START = 120 * 1440
_MESSAGE_SPAN = 180 * 1440
_NULL = "\\N"

Rows = Iterator[str]

USER = id_prefix("users")
COURSE = id_prefix("courses")
CONTENT = id_prefix("course_content")
ENROLLMENT = id_prefix("enrollments")
SESSION = id_prefix("tutoring_sessions")
ASSIGNMENT = id_prefix("assignments")
SUBMISSION = id_prefix("submissions")
CONVERSATION = id_prefix("conversations")
PARTICIPANT = id_prefix("conversation_participants")
MESSAGE = id_prefix("messages")
NOTIFICATION = id_prefix("notifications")


@cache
def _day(day: int) -> str:
    return (EPOCH + timedelta(days=day)).strftime("%Y-%m-%d ")


def stamp(minute: int) -> str:
    """``timestamptz`` text for ``minute`` minutes after :data:`EPOCH` (UTC)."""
    return f"{_day(minute // 1440)}{minute // 60 % 24:02d}:{minute % 60:02d}:00+00"


def _now_hour() -> int:
    """The current hour, in minutes since :data:`EPOCH`."""
    return int((datetime.now(UTC) - EPOCH).total_seconds()) // 3600 * 60


# -- accounts and learning ------------------------------------------------------------------


def _users(plan: PerfPlan, password_hash: str) -> Rows:
    for i in range(plan.users):
        at = stamp(i)
        role = plan.role_of(i)
        yield (
            f"00000000-0000-0000-0000-000000000000\t{USER}{i:012x}\tauthenticated\t"
            f"authenticated\tuser{i}@perf.invalid\t{password_hash}\t{at}\t"
            f'{{"provider": "email", "providers": ["email"], "app_role": "{role}"}}\t'
            f'{{"display_name": "Perf User {i}"}}\t{at}\t{at}\t\t\t\t\n'
        )


def _identities(plan: PerfPlan) -> Rows:
    for i in range(plan.users):
        user = f"{USER}{i:012x}"
        at = stamp(i)
        yield (
            f"{user}\t{user}\t"
            f'{{"sub": "{user}", "email": "user{i}@perf.invalid", "email_verified": true}}'
            f"\temail\t{at}\t{at}\n"
        )


def _profiles(plan: PerfPlan) -> Rows:
    for i in range(plan.users):
        yield f"{USER}{i:012x}\tPerf User {i}\t{plan.role_of(i)}\n"


def _courses(plan: PerfPlan) -> Rows:
    for c in range(plan.courses):
        tutor = plan.course_tutor(c)
        if plan.is_published(c):
            yield f"{COURSE}{c:012x}\t{USER}{tutor:012x}\tCourse {c}\tpublished\t{stamp(c * 60)}\n"
        else:
            yield f"{COURSE}{c:012x}\t{USER}{tutor:012x}\tCourse {c}\tdraft\t{_NULL}\n"


def _content(plan: PerfPlan) -> Rows:
    for c in range(plan.courses):
        for position in range(5):
            yield (
                f"{CONTENT}{c * 5 + position:012x}\t{COURSE}{c:012x}\tlesson\t{position}\t"
                f"Lesson {position + 1}\tBody of lesson {position + 1} of course {c}\t"
                f"{'t' if position == 0 else 'f'}\n"
            )


def _enrollments(plan: PerfPlan) -> Rows:
    index = 0
    per_student = plan.enrollments_per_student
    for s in range(plan.students):
        student = f"{USER}{plan.student(s):012x}"
        for k in range(per_student):
            course = plan.enrolled_course(s, k)
            yield f"{ENROLLMENT}{index:012x}\t{student}\t{COURSE}{course:012x}\tactive\n"
            index += 1


def _sessions(plan: PerfPlan) -> Rows:
    now = _now_hour()
    for s in range(plan.students):
        # Spread over four weeks around now; requested and completed sessions may overlap.
        starts = now + ((s * 37) % (24 * 28) - 24 * 14) * 60
        status = "completed" if starts < now else "requested"
        yield (
            f"{SESSION}{s:012x}\t{USER}{plan.tutor(s):012x}\t{USER}{plan.student(s):012x}\t"
            f"{stamp(starts)}\t{stamp(starts + 45)}\t{status}\n"
        )


def _assignments(plan: PerfPlan) -> Rows:
    for c in range(plan.courses):
        for k in range(2):
            due = stamp((30 + k * 7) * 1440)
            yield f"{ASSIGNMENT}{c * 2 + k:012x}\t{COURSE}{c:012x}\tAssignment {k + 1}\t{due}\n"


def _submissions(plan: PerfPlan) -> Rows:
    index = 0
    for s in range(plan.students):
        student = f"{USER}{plan.student(s):012x}"
        for k in range(plan.enrollments_per_student):
            if (s + k) % 2:
                continue  # half of the enrollments have handed in the first assignment
            assignment = plan.enrolled_course(s, k) * 2
            # Handed in over the ten days before the first assignment is due.
            at = stamp(20 * 1440 + (index * 37) % (10 * 1440))
            yield (
                f"{SUBMISSION}{index:012x}\t{ASSIGNMENT}{assignment:012x}\t{student}\t"
                f"submitted\tAnswer {index}\t{at}\n"
            )
            index += 1


# -- messaging --------------------------------------------------------------------------------


def _last_message(conversation: int) -> int:
    """Minute of a conversation's newest message, spread over the messaging window."""
    return _MESSAGE_START + (conversation * 7919 + 13) % _MESSAGE_SPAN


def _course_members(plan: PerfPlan) -> list[list[int]]:
    """Student numbers actively enrolled in each course (all perf enrollments are active)."""
    members: list[list[int]] = [[] for _ in range(plan.courses)]
    for s in range(plan.students):
        for k in range(plan.enrollments_per_student):
            members[plan.enrolled_course(s, k)].append(s)
    return members


class _Messaging:
    """Conversations, participants, messages and notifications, which share the course
    membership lists and the message timing."""

    DIRECT_GAP = 37  # minutes between messages of a direct conversation
    COURSE_GAP = 53

    def __init__(self, plan: PerfPlan) -> None:
        self.plan = plan
        self._members: list[list[int]] | None = None

    @property
    def members(self) -> list[list[int]]:
        if self._members is None:
            self._members = _course_members(self.plan)
        return self._members

    def published(self) -> Iterator[int]:
        return (c for c in range(self.plan.courses) if self.plan.is_published(c))

    def conversations(self) -> Rows:
        plan = self.plan
        n = plan.messages_per_direct
        for s in range(plan.direct_conversations):
            student, tutor = plan.student(s), plan.tutor(s)
            last = _last_message(s)
            created = stamp(last - (n - 1) * self.DIRECT_GAP - 5)
            # direct_key is '<smaller id>:<larger id>'; tutors' user indexes are the smaller.
            yield (
                f"{CONVERSATION}{s:012x}\tdirect\t{_NULL}\t{_NULL}\t{USER}{student:012x}\t"
                f"{USER}{tutor:012x}:{USER}{student:012x}\t{stamp(last)}\t{created}\n"
            )
        n = plan.messages_per_course
        for c in self.published():
            conversation = plan.course_conversation(c)
            last = _last_message(conversation)
            created = stamp(last - (n - 1) * self.COURSE_GAP - 5)
            yield (
                f"{CONVERSATION}{conversation:012x}\tcourse\t{COURSE}{c:012x}\t{_NULL}\t"
                f"{USER}{plan.course_tutor(c):012x}\t{_NULL}\t{stamp(last)}\t{created}\n"
            )

    def participants(self) -> Rows:
        plan = self.plan
        index = 0
        n = plan.messages_per_direct
        for s in range(plan.direct_conversations):
            joined = stamp(_last_message(s) - (n - 1) * self.DIRECT_GAP - 5)
            for user in (plan.student(s), plan.tutor(s)):
                yield (
                    f"{PARTICIPANT}{index:012x}\t{CONVERSATION}{s:012x}\t{USER}{user:012x}\t"
                    f"member\t{joined}\n"
                )
                index += 1
        n = plan.messages_per_course
        for c in self.published():
            conversation = plan.course_conversation(c)
            joined = stamp(_last_message(conversation) - (n - 1) * self.COURSE_GAP - 5)
            yield (
                f"{PARTICIPANT}{index:012x}\t{CONVERSATION}{conversation:012x}\t"
                f"{USER}{plan.course_tutor(c):012x}\towner\t{joined}\n"
            )
            index += 1
            for s in self.members[c]:
                yield (
                    f"{PARTICIPANT}{index:012x}\t{CONVERSATION}{conversation:012x}\t"
                    f"{USER}{plan.student(s):012x}\tmember\t{joined}\n"
                )
                index += 1

    def direct_sender(self, s: int, j: int) -> int:
        """The student opens the conversation; student and tutor take turns."""
        return self.plan.tutor(s) if j % 2 else self.plan.student(s)

    def messages(self) -> Rows:
        plan = self.plan
        n = plan.messages_per_direct
        for s in range(plan.direct_conversations):
            last = _last_message(s)
            conversation = f"{CONVERSATION}{s:012x}"
            for j in range(n):
                yield (
                    f"{MESSAGE}{s * n + j:012x}\t{conversation}\t"
                    f"{USER}{self.direct_sender(s, j):012x}\tMessage {j + 1} between student "
                    f"{s} and their tutor\t{stamp(last - (n - 1 - j) * self.DIRECT_GAP)}\n"
                )
        first = plan.direct_conversations * n
        n = plan.messages_per_course
        for c in self.published():
            index = plan.course_conversation(c)
            last = _last_message(index)
            conversation = f"{CONVERSATION}{index:012x}"
            members = self.members[c]
            tutor = plan.course_tutor(c)
            for j in range(n):
                # The tutor writes every fifth message (and all of them in an empty class).
                sender = (
                    tutor if j % 5 == 0 or not members else plan.student(members[j % len(members)])
                )
                yield (
                    f"{MESSAGE}{first + c * n + j:012x}\t{conversation}\t{USER}{sender:012x}\t"
                    f"Message {j + 1} in course {c}\t"
                    f"{stamp(last - (n - 1 - j) * self.COURSE_GAP)}\n"
                )

    def notifications(self) -> Rows:
        plan = self.plan
        index = 0
        n = plan.messages_per_direct
        # The last two messages of each direct conversation notified the other side; the
        # newest is still unread.
        for s in range(plan.direct_conversations):
            last = _last_message(s)
            for j in range(max(0, n - 2), n):
                sender = self.direct_sender(s, j)
                recipient = plan.student(s) if sender != plan.student(s) else plan.tutor(s)
                at = last - (n - 1 - j) * self.DIRECT_GAP
                read = stamp(at + 60) if j < n - 1 else _NULL
                yield (
                    f"{NOTIFICATION}{index:012x}\t{USER}{recipient:012x}\tnew_message\t"
                    f"Perf User {sender}\tMessage {j + 1} between student {s} and their tutor\t"
                    f'{{"conversation_id": "{CONVERSATION}{s:012x}", '
                    f'"message_id": "{MESSAGE}{s * n + j:012x}", '
                    f'"sender_id": "{USER}{sender:012x}"}}\t{read}\t{stamp(at)}\n'
                )
                index += 1
        # Every third enrollment told the course's tutor; a quarter of those are unread.
        e = 0
        for s in range(plan.students):
            for k in range(plan.enrollments_per_student):
                if e % 3 == 0:
                    course = plan.enrolled_course(s, k)
                    at = _MESSAGE_START + (e * 131) % _MESSAGE_SPAN
                    read = _NULL if e % 4 == 0 else stamp(at + 120)
                    yield (
                        f"{NOTIFICATION}{index:012x}\t{USER}{plan.course_tutor(course):012x}\t"
                        f"enrollment_created\tNew enrollment\tPerf User {plan.student(s)} "
                        f"enrolled in Course {course}.\t"
                        f'{{"enrollment_id": "{ENROLLMENT}{e:012x}", '
                        f'"course_id": "{COURSE}{course:012x}", '
                        f'"student_id": "{USER}{plan.student(s):012x}"}}\t{read}\t{stamp(at)}\n'
                    )
                    index += 1
                e += 1
        # An announcement for every third user; half of them unread.
        for i in range(0, plan.users, 3):
            at = _MESSAGE_START + (i % 30) * 1440 * 6
            read = _NULL if i % 2 == 0 else stamp(at + 240)
            yield (
                f"{NOTIFICATION}{index:012x}\t{USER}{i:012x}\tannouncement\tWhat is new\t"
                f"Announcement {i % 30}\t{{}}\t{read}\t{stamp(at)}\n"
            )
            index += 1


# -- the load order ---------------------------------------------------------------------------

#: (table, columns, rows planned, lines)
Step = tuple[str, tuple[str, ...], int, Rows]


def steps(plan: PerfPlan, password_hash: str) -> list[Step]:
    """Every table of the world, parents first, with its COPY columns and planned row count."""
    messaging = _Messaging(plan)
    return [
        ("auth.users", (
            "instance_id", "id", "aud", "role", "email", "encrypted_password",
            "email_confirmed_at", "raw_app_meta_data", "raw_user_meta_data", "created_at",
            "updated_at", "confirmation_token", "recovery_token", "email_change_token_new",
            "email_change",
        ), plan.users, _users(plan, password_hash)),
        ("auth.identities", (
            "provider_id", "user_id", "identity_data", "provider", "created_at", "updated_at",
        ), plan.users, _identities(plan)),
        ("public.profiles", ("id", "display_name", "role"), plan.users, _profiles(plan)),
        ("public.courses", ("id", "tutor_id", "title", "status", "published_at"),
         plan.courses, _courses(plan)),
        ("public.course_content", (
            "id", "course_id", "kind", "position", "title", "body", "is_preview",
        ), plan.courses * 5, _content(plan)),
        ("public.enrollments", ("id", "student_id", "course_id", "status"),
         plan.enrollments, _enrollments(plan)),
        ("public.tutoring_sessions", (
            "id", "tutor_id", "student_id", "starts_at", "ends_at", "status",
        ), plan.students, _sessions(plan)),
        ("public.assignments", ("id", "course_id", "title", "due_at"),
         plan.courses * 2, _assignments(plan)),
        ("public.submissions", (
            "id", "assignment_id", "student_id", "status", "body", "created_at",
        ),
         (plan.enrollments + 1) // 2, _submissions(plan)),
        ("public.conversations", (
            "id", "kind", "course_id", "title", "created_by", "direct_key", "last_message_at",
            "created_at",
        ), plan.conversations, messaging.conversations()),
        ("public.conversation_participants", (
            "id", "conversation_id", "user_id", "role", "joined_at",
        ), plan.participants, messaging.participants()),
        ("public.messages", ("id", "conversation_id", "sender_id", "body", "created_at"),
         plan.messages, messaging.messages()),
        ("public.notifications", (
            "id", "recipient_id", "type", "title", "body", "data", "read_at", "created_at",
        ), plan.notifications, messaging.notifications()),
    ]  # fmt: skip
