"""The shape of the perf world: how many rows of each kind, and who relates to whom.

Everything is arithmetic on row numbers, so a generator can find any row's parents without
looking anything up, and the same plan always produces the same rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

__all__ = ["KINDS", "PerfPlan", "id_prefix", "perf_id"]

#: Table number in the ids: ``5eed00<kind>-0000-0000-0000-<index>``.
KINDS = {
    "users": 1,
    "courses": 2,
    "course_content": 3,
    "enrollments": 4,
    "tutoring_sessions": 5,
    "assignments": 6,
    "submissions": 7,
    "conversations": 8,
    "conversation_participants": 9,
    "messages": 10,
    "notifications": 11,
}


def perf_id(kind: str, index: int) -> uuid.UUID:
    """The id of row ``index`` of a perf table: ``5eed000k-…-<index>``."""
    return uuid.UUID(int=(0x5EED << 112) | (KINDS[kind] << 96) | index)


def id_prefix(kind: str) -> str:
    """The first 24 characters of every id of ``kind``; the index follows as 12 hex digits
    (``f"{prefix}{index:012x}"`` equals ``str(perf_id(kind, index))`` for indexes below 2⁴⁸)."""
    return f"5eed{KINDS[kind]:04x}-0000-0000-0000-"


@dataclass(frozen=True)
class PerfPlan:
    """How many rows of each kind; the proportions are documented in docs/performance.md.

    At ``users=100_000`` and ``scale=1``: 100k users (with 100k identities and 100k
    profiles), 10k tutors with 2 courses each (20k courses, 9 in 10 published, 100k lessons),
    270k enrollments, 90k sessions, 40k assignments, 135k submissions; then messaging:
    a direct conversation between every student and their tutor and a group conversation for
    every published course (108k conversations, 441k participants), 6 messages per direct and
    25 per course conversation (990k messages), and 303k notifications (a third unread).
    About 2.8 million rows.
    """

    users: int
    scale: float = 1.0
    messages_per_direct: int = 6
    messages_per_course: int = 25

    @property
    def admins(self) -> int:
        return max(1, self.users // 10_000)

    @property
    def tutors(self) -> int:
        return max(1, self.users // 10)

    @property
    def students(self) -> int:
        return max(1, self.users - self.admins - self.tutors)

    @property
    def courses(self) -> int:
        return self.tutors * 2

    @property
    def enrollments_per_student(self) -> int:
        return min(self.courses, max(1, round(10 / 3 * self.scale)))

    @property
    def enrollments(self) -> int:
        return self.students * self.enrollments_per_student

    def role_of(self, index: int) -> str:
        if index < self.admins:
            return "admin"
        return "tutor" if index < self.admins + self.tutors else "student"

    def student(self, number: int) -> int:
        """User index of the ``number``-th student."""
        return self.admins + self.tutors + number

    def tutor(self, number: int) -> int:
        return self.admins + number % self.tutors

    def course_tutor(self, course: int) -> int:
        """User index of the tutor who teaches ``course`` (two courses each)."""
        return self.tutor(course // 2)

    def enrolled_course(self, student: int, k: int) -> int:
        # Distinct for k < courses / 7919 … and spread evenly over courses.
        return (student * 7 + k * 7919) % self.courses

    @staticmethod
    def is_published(course: int) -> bool:
        """Nine courses in ten are published; every tenth is a draft."""
        return course % 10 != 0

    # -- messaging -----------------------------------------------------------------------

    @property
    def direct_conversations(self) -> int:
        """One per student, with the tutor of their sessions (conversation ``s``)."""
        return self.students

    @property
    def course_conversations(self) -> int:
        """One per published course."""
        return sum(1 for c in range(self.courses) if self.is_published(c))

    def course_conversation(self, course: int) -> int:
        """Conversation index of a published course's group (direct ones come first)."""
        return self.students + course

    @property
    def conversations(self) -> int:
        return self.direct_conversations + self.course_conversations

    @property
    def participants(self) -> int:
        """Two per direct conversation; the tutor and every active student per course one."""
        enrolled_in_published = sum(
            1
            for s in range(self.students)
            for k in range(self.enrollments_per_student)
            if self.is_published(self.enrolled_course(s, k))
        )
        return 2 * self.direct_conversations + self.course_conversations + enrolled_in_published

    @property
    def messages(self) -> int:
        return (
            self.direct_conversations * self.messages_per_direct
            + self.course_conversations * self.messages_per_course
        )

    @property
    def notifications(self) -> int:
        """The retained notifications: one for each of the last two messages of every direct
        conversation (the newest unread), one for every third enrollment (to the tutor) and an
        announcement for every third user."""
        return (
            min(2, self.messages_per_direct) * self.direct_conversations
            + (self.enrollments + 2) // 3
            + (self.users + 2) // 3
        )
