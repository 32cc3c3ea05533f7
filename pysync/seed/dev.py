"""The development world: a small, realistic tutoring platform to click through and test on.

Everything is generated up front from a fixed seed (faker for names and text, ``random`` for
choices), with uuid5 ids, so the same seed gives the same world on every machine (given the
same faker version), and loading it twice adds nothing: every insert is ``on conflict do
nothing``. Times are anchored to a day (default: today, UTC), so upcoming sessions stay
upcoming.

Users are created as GoTrue creates them (:func:`pysync.auth.users.create_user`); the
project's sign-up trigger gives them their profiles. Rows go in as the connecting role (the
platform, ``postgres`` locally), so guards let them through, but every row is one the schema
would accept from its real writers: enrollments only in published courses, sessions that never
double-book a tutor or a student, feedback only on completed sessions, submissions only from
enrolled students, grades within the assignment's points, refunds within their payment. The
schema's triggers add what they always add (notifications for messages, enrollments and
grades; course chat members; notification preferences), as in production.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pysync.auth.users import create_user
from pysync.errors import ConfigError
from pysync.progress import ProgressCallback, Reporter

__all__ = [
    "DEV_PASSWORD",
    "TABLES",
    "DemoUser",
    "DevPlan",
    "DevReport",
    "DevWorld",
    "build_dev_world",
    "dev_id",
    "seed_dev",
]

#: Every development user's password (printed by ``make demo``; never seed a real project).
DEV_PASSWORD = "password123"
#: Namespace of the world's uuid5 ids.
_NAMESPACE = uuid.UUID("6a0c1c9e-5eed-4dee-8000-000000000000")
#: bcrypt's base64 alphabet, for the fixed salt of the shared password's hash.
_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

Row = dict[str, Any]

#: Insertion order: parents first, and participants before messages so that the messaging
#: triggers notify them.
TABLES = (
    "public.organizations",
    "public.organization_members",
    "public.courses",
    "public.course_content",
    "public.enrollments",
    "public.tutoring_sessions",
    "public.session_feedback",
    "public.assignments",
    "public.submissions",
    "public.conversations",
    "public.conversation_participants",
    "public.messages",
    "public.devices",
    "public.notifications",
    "public.push_deliveries",
    "public.payments",
    "public.refunds",
    "public.articles",
    "public.support_queries",
    "public.support_replies",
)

_SUBJECTS = [
    ("Algebra I", "algebra", "Equations, inequalities and functions, one step at a time."),
    ("Geometry", "geometry", "Shapes, proofs and the coordinate plane."),
    ("Calculus", "calculus", "Limits, derivatives and integrals with real-world problems."),
    ("Statistics", "statistics", "Data, probability and inference for everyday decisions."),
    ("Physics: Mechanics", "physics", "Motion, forces and energy with home experiments."),
    ("Chemistry Foundations", "chemistry", "Atoms, bonds and reactions, safely explained."),
    ("Biology: The Cell", "biology", "How cells live, divide and talk to each other."),
    ("English Essay Writing", "writing", "Plan, draft and revise essays that persuade."),
    ("Spanish for Beginners", "spanish", "Everyday conversation from the first lesson."),
    ("World History", "history", "Empires, revolutions and the modern world."),
    ("Intro to Programming", "programming", "Think like a programmer with Python."),
    ("Economics Basics", "economics", "Markets, money and the choices behind them."),
    ("French Conversation", "french", "Speak with confidence in everyday situations."),
    ("Music Theory", "music", "Scales, chords and rhythm for every instrument."),
    ("SAT Math Prep", "test-prep", "Strategies and practice for the math section."),
    ("Creative Writing", "writing", "Stories and poems: find your voice."),
]
_UNITS = ["Foundations", "Core ideas", "Practice", "Applications", "Review"]
_CONTENT_TYPES = ["markdown"] * 12 + ["video"] * 4 + ["pdf"] * 2 + ["link", "quiz"]
_TIMEZONES = [
    "Europe/London", "Europe/Berlin", "Europe/Madrid", "America/New_York", "America/Chicago",
    "America/Los_Angeles", "Asia/Singapore", "Australia/Sydney",
]  # fmt: skip
_LOCALES = ["en", "en", "en-GB", "en-US", "de", "es", "fr"]
_FEEDBACK = [
    "Clear explanations and lots of practice problems.",
    "Patient and well prepared. I finally understand it.",
    "Good session, but we ran out of time for the last topic.",
    "Very helpful worked examples.",
    "Great energy, made a hard topic fun.",
    "Okay, though the connection dropped a few times.",
]
_STUDENT_LINES = [
    "Could we go over question 3 again before the next session?",
    "I'm stuck on the second part of the homework.",
    "Thanks, that makes much more sense now!",
    "Is the assignment due on Friday or Monday?",
    "Can I move our session to later in the week?",
    "I uploaded my draft, could you take a look?",
]
_TUTOR_LINES = [
    "Of course, bring your working and we'll go through it.",
    "Good question: try drawing it out first, then we'll compare.",
    "Reminder: the assignment is due at the end of the week.",
    "Nice progress this week, keep it up.",
    "I've posted extra practice problems in the course.",
    "Yes, that works for me. See you then!",
]
_TICKETS = [
    ("Cannot play the lesson video", "The video in my course stays black on my phone."),
    ("Charged twice for one session", "My card shows two payments for the same session."),
    ("How do I change my tutor?", "I'd like to continue the course with another tutor."),
    ("Push notifications stopped", "I no longer get notified about new messages."),
    ("Certificate for a completed course", "Where can I download my certificate?"),
    ("Wrong time zone in my sessions", "Session times are shown an hour off."),
    ("Cannot upload my submission", "The upload fails with a network error every time."),
    ("Request to delete my account", "Please delete my account and my data."),
    ("Refund for a cancelled session", "My tutor cancelled, can I get my money back?"),
    ("Course chat is missing", "I don't see the class chat for my new course."),
]
_ARTICLES = [
    ("Five habits that make maths stick", ["study-skills", "maths"]),
    ("How to prepare for your first tutoring session", ["getting-started"]),
    ("Spaced repetition, explained", ["study-skills", "memory"]),
    ("Writing a strong thesis statement", ["writing"]),
    ("Kitchen-table physics experiments", ["physics", "experiments"]),
    ("Learning a language with ten minutes a day", ["languages"]),
    ("What to do when you are stuck on a problem", ["study-skills"]),
    ("Getting ready for exam season", ["exams", "planning"]),
]


def dev_id(kind: str, key: object) -> uuid.UUID:
    """The id of the development world's ``kind`` row ``key`` (stable across runs)."""
    return uuid.uuid5(_NAMESPACE, f"{kind}:{key}")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-")


@dataclass(frozen=True)
class DevPlan:
    """How big the world is, its seed, and the day its times are anchored to."""

    admins: int = 2
    tutors: int = 8
    students: int = 40
    seed: int = 2026
    #: Default: today (UTC). Two runs with the same anchor produce identical rows.
    today: date | None = None

    def anchor(self) -> datetime:
        day = self.today or datetime.now(UTC).date()
        return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class DemoUser:
    id: uuid.UUID
    email: str
    name: str
    role: str
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"id": str(self.id), "email": self.email, "name": self.name, "role": self.role}


@dataclass
class DevWorld:
    """The generated world: users, then rows per table in insertion (foreign-key) order."""

    plan: DevPlan
    users: list[DemoUser] = field(default_factory=list)
    profiles: dict[uuid.UUID, Row] = field(default_factory=dict)
    tables: dict[str, list[Row]] = field(default_factory=lambda: {t: [] for t in TABLES})

    def add(self, table: str, row: Row) -> Row:
        self.tables[table].append(row)
        return row

    def by_role(self, role: str) -> list[DemoUser]:
        return [u for u in self.users if u.role == role]


@dataclass
class DevReport:
    """What one load inserted (zero everywhere on a re-run) and who can log in."""

    password: str
    users: list[DemoUser]
    inserted: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.inserted.values())

    def logins(self) -> list[DemoUser]:
        """A few users of each role to try the app as: the admins, two tutors, three students."""
        return [
            *(u for u in self.users if u.role == "admin"),
            *[u for u in self.users if u.role == "tutor"][:2],
            *[u for u in self.users if u.role == "student"][:3],
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "password": self.password,
            "rows": self.rows,
            "seconds": round(self.seconds, 2),
            "inserted": self.inserted,
            "logins": [u.as_dict() for u in self.logins()],
            "users": [u.as_dict() for u in self.users],
        }


# -- generation ----------------------------------------------------------------------------


def _faker() -> Any:
    """A US-English Faker; faker is the ``seed`` extra's, so a library user who never seeds
    a development world does not install it."""
    try:
        from faker import Faker
    except ImportError:
        raise ConfigError("the development seed needs faker: pip install 'pysync[seed]'") from None
    return Faker("en_US")


class _Builder:
    """Generates the world table by table; each step reads what the earlier ones made."""

    def __init__(self, plan: DevPlan) -> None:
        self.plan = plan
        self.base = plan.anchor()
        self.fake = _faker()
        self.fake.seed_instance(plan.seed)
        self.rng = random.Random(plan.seed)
        self.world = DevWorld(plan=plan)

    def ago(self, days: float, hours: float = 0) -> datetime:
        return self.base - timedelta(days=days, hours=hours)

    def build(self) -> DevWorld:
        self.users()
        self.organizations()
        self.courses()
        self.enrollments()
        self.sessions()
        self.assignments()
        self.conversations()
        self.notifications_and_devices()
        self.payments()
        self.articles_and_support()
        return self.world

    def users(self) -> None:
        roles = (
            ["admin"] * self.plan.admins
            + ["tutor"] * self.plan.tutors
            + ["student"] * self.plan.students
        )
        emails: set[str] = set()
        counters: dict[str, int] = {}
        for role in roles:
            number = counters[role] = counters.get(role, 0) + 1
            first, last = self.fake.first_name(), self.fake.last_name()
            local = f"{_slug(first)}.{_slug(last)}".replace("-", "")
            email, suffix = f"{local}@example.org", 1
            while email in emails:
                suffix += 1
                email = f"{local}{suffix}@example.org"
            emails.add(email)
            age = {"admin": 200, "tutor": 150, "student": 90}[role] - number
            user = DemoUser(
                id=dev_id("user", f"{role}-{number}"),
                email=email,
                name=f"{first} {last}",
                role=role,
                created_at=self.ago(age, self.rng.randint(0, 12)),
            )
            self.world.users.append(user)
            self.world.profiles[user.id] = {
                "timezone": self.rng.choice(_TIMEZONES),
                "locale": self.rng.choice(_LOCALES),
                "onboarded": self.rng.random() < 0.9,
            }

    def organizations(self) -> None:
        tutors, students = self.world.by_role("tutor"), self.world.by_role("student")
        self.org_members: dict[uuid.UUID, set[uuid.UUID]] = {}
        names: set[str] = set()
        for k in range(min(3, len(tutors))):
            name = f"{self.fake.city()} {self.rng.choice(['Academy', 'School', 'Learning Hub'])}"
            while name in names:
                name = f"{self.fake.city()} Academy"
            names.add(name)
            org = self.world.add(
                "public.organizations",
                {
                    "id": dev_id("organization", k),
                    "name": name,
                    "slug": _slug(name),
                    "email_domain": f"{_slug(name)}.example.edu",
                    "created_at": self.ago(180 - k),
                },
            )
            members = [(tutors[k], "owner")]
            if len(tutors) > k + 3:
                members.append((tutors[k + 3], "admin"))
            members += [(s, "member") for s in students[k * 8 : k * 8 + 8]]
            self.org_members[org["id"]] = {user.id for user, _ in members}
            for user, role in members:
                self.world.add(
                    "public.organization_members",
                    {
                        "id": dev_id("organization_member", f"{k}-{user.id}"),
                        "organization_id": org["id"],
                        "user_id": user.id,
                        "role": role,
                        "created_at": max(org["created_at"], user.created_at) + timedelta(days=1),
                    },
                )

    def courses(self) -> None:
        self.published: list[Row] = []
        orgs = self.world.tables.get("public.organizations", [])
        for t, tutor in enumerate(self.world.by_role("tutor")):
            for k in range(2):
                index = t * 2 + k
                title, tag, description = _SUBJECTS[index % len(_SUBJECTS)]
                status = {6: "draft", 7: "archived"}.get(index % 8, "published")
                created = tutor.created_at + timedelta(days=self.rng.randint(2, 20))
                org = orgs[t] if k == 0 and t < len(orgs) else None
                course = self.world.add(
                    "public.courses",
                    {
                        "id": dev_id("course", index),
                        "tutor_id": tutor.id,
                        "title": title,
                        "description": f"{description} {self.fake.paragraph(nb_sentences=3)}",
                        "status": status,
                        "published_at": None
                        if status == "draft"
                        else created + timedelta(days=self.rng.randint(3, 10)),
                        "organization_id": org["id"] if org else None,
                        # One course per organization is for its members only.
                        "visibility": "internal" if org and t == 0 else "public",
                        "created_at": created,
                    },
                )
                course["_tag"] = tag
                if status == "published":
                    self.published.append(course)
                self.content(course)

    def content(self, course: Row) -> None:
        for m in range(self.rng.randint(2, 3)):
            module = self.world.add(
                "public.course_content",
                {
                    "id": dev_id("content", f"{course['id']}-m{m}"),
                    "course_id": course["id"],
                    "parent_id": None,
                    "kind": "module",
                    "position": m,
                    "title": f"Unit {m + 1}: {_UNITS[m]}",
                    "content_type": "markdown",
                    "body": None,
                    "storage_path": None,
                    "is_preview": m == 0,
                    "created_at": course["created_at"],
                },
            )
            for n in range(self.rng.randint(2, 4)):
                lesson_id = dev_id("content", f"{course['id']}-m{m}-l{n}")
                kind = self.rng.choice(_CONTENT_TYPES)
                title = self.fake.sentence(nb_words=4).rstrip(".")
                text = "\n\n".join(self.fake.paragraphs(nb=2))
                body = {
                    "markdown": f"# {title}\n\n{text}",
                    "link": f"https://example.com/resources/{_slug(title)}",
                    "quiz": "1. " + self.fake.sentence().rstrip(".") + "?",
                }.get(kind)
                path = {"video": "mp4", "pdf": "pdf"}.get(kind)
                self.world.add(
                    "public.course_content",
                    {
                        "id": lesson_id,
                        "course_id": course["id"],
                        "parent_id": module["id"],
                        "kind": "lesson",
                        "position": n,
                        "title": title,
                        "content_type": kind,
                        "body": body,
                        "storage_path": f"courses/{course['id']}/{lesson_id}.{path}"
                        if path
                        else None,
                        "is_preview": m == 0 and n == 0,
                        "created_at": course["created_at"] + timedelta(hours=m * 24 + n),
                    },
                )

    def enrollments(self) -> None:
        self.enrolled: dict[uuid.UUID, list[Row]] = {}  # course id -> active/completed rows
        for s, student in enumerate(self.world.by_role("student")):
            open_to_me = [
                c
                for c in self.published
                if c["visibility"] == "public"
                or student.id in self.org_members.get(c["organization_id"], set())
            ]
            for course in self.rng.sample(open_to_me, min(len(open_to_me), self.rng.randint(2, 4))):
                roll = self.rng.random()
                status = "active" if roll < 0.75 else "completed" if roll < 0.9 else "cancelled"
                enrolled_at = max(course["published_at"], student.created_at) + timedelta(
                    days=self.rng.randint(1, 10)
                )
                enrolled_at = min(enrolled_at, self.ago(20))
                row = self.world.add(
                    "public.enrollments",
                    {
                        "id": dev_id("enrollment", f"{s}-{course['id']}"),
                        "student_id": student.id,
                        "course_id": course["id"],
                        "status": status,
                        "enrolled_at": enrolled_at,
                        "completed_at": enrolled_at + timedelta(days=self.rng.randint(5, 15))
                        if status == "completed"
                        else None,
                        "created_at": enrolled_at,
                    },
                )
                row["_course"] = course
                if status != "cancelled":
                    self.enrolled.setdefault(course["id"], []).append(row)

    def sessions(self) -> None:
        busy: set[tuple[uuid.UUID, datetime]] = set()
        self.completed: list[Row] = []
        self.sessions_by_pair: dict[tuple[uuid.UUID, uuid.UUID], list[Row]] = {}
        rows = [e for course in self.enrolled.values() for e in course]
        rows.sort(key=lambda e: str(e["id"]))
        for e in rows:
            course = e["_course"]
            for k in range(self.rng.randint(0, 2)):
                # Two-hour slots, sessions at most 90 minutes: nobody is ever double-booked.
                for _attempt in range(20):
                    starts = self.base + timedelta(
                        days=self.rng.randint(-21, 14), hours=self.rng.choice([9, 11, 13, 15, 17])
                    )
                    keys = {(course["tutor_id"], starts), (e["student_id"], starts)}
                    if not keys & busy:
                        busy |= keys
                        break
                else:
                    continue
                past = starts < self.base
                roll = self.rng.random()
                if past:
                    status = "completed" if roll < 0.7 else "no_show" if roll < 0.8 else "cancelled"
                else:
                    status = (
                        "confirmed" if roll < 0.6 else "requested" if roll < 0.9 else "cancelled"
                    )
                session_id = dev_id("session", f"{e['id']}-{k}")
                session = self.world.add(
                    "public.tutoring_sessions",
                    {
                        "id": session_id,
                        "tutor_id": course["tutor_id"],
                        "student_id": e["student_id"],
                        "course_id": course["id"],
                        "starts_at": starts,
                        "ends_at": starts + timedelta(minutes=self.rng.choice([45, 60, 90])),
                        "status": status,
                        "meeting_url": f"https://meet.example.com/{session_id.hex[:12]}"
                        if status in ("confirmed", "completed", "no_show")
                        else None,
                        "notes": self.fake.sentence(nb_words=10) if status == "completed" else "",
                        "cancelled_by": self.rng.choice([course["tutor_id"], e["student_id"]])
                        if status == "cancelled"
                        else None,
                        "created_at": min(starts, self.base)
                        - timedelta(days=self.rng.randint(2, 9)),
                    },
                )
                pair = (e["student_id"], course["tutor_id"])
                self.sessions_by_pair.setdefault(pair, []).append(session)
                if status == "completed":
                    self.completed.append(session)
        for session in self.completed:
            if self.rng.random() < 0.7:
                self.world.add(
                    "public.session_feedback",
                    {
                        "id": dev_id("feedback", session["id"]),
                        "session_id": session["id"],
                        "student_id": session["student_id"],
                        "tutor_id": session["tutor_id"],
                        "rating": self.rng.choices([1, 2, 3, 4, 5], weights=[2, 5, 13, 35, 45])[0],
                        "comment": self.rng.choice(_FEEDBACK),
                        "created_at": session["ends_at"] + timedelta(hours=2),
                    },
                )

    def assignments(self) -> None:
        for course in self.published:
            for k, due_in in enumerate((-self.rng.randint(7, 14), self.rng.randint(5, 14))):
                points = self.rng.choice([20, 50, 100])
                due = self.base + timedelta(days=due_in, hours=23)
                assignment = self.world.add(
                    "public.assignments",
                    {
                        "id": dev_id("assignment", f"{course['id']}-{k}"),
                        "course_id": course["id"],
                        "title": f"{'Homework' if k == 0 else 'Project'} {k + 1}: "
                        + self.fake.sentence(nb_words=3).rstrip("."),
                        "instructions": self.fake.paragraph(nb_sentences=4),
                        "rubric": {"accuracy": 60, "working shown": 25, "presentation": 15},
                        "max_points": points,
                        "due_at": due,
                        "created_at": due - timedelta(days=21),
                    },
                )
                for e in self.enrolled.get(course["id"], []):
                    self.submission(course, assignment, e, past_due=due_in < 0)

    def submission(self, course: Row, assignment: Row, enrollment: Row, *, past_due: bool) -> None:
        roll = self.rng.random()
        if past_due:
            if roll > 0.85:
                return
            status = "graded" if roll < 0.45 else "submitted" if roll < 0.72 else "returned"
        else:
            if roll > 0.4:
                return
            status = "draft" if roll < 0.25 else "submitted"
        points = float(assignment["max_points"])
        graded = status in ("graded", "returned")
        handed_in = assignment["due_at"] - timedelta(days=self.rng.randint(1, 5))
        self.world.add(
            "public.submissions",
            {
                "id": dev_id("submission", f"{assignment['id']}-{enrollment['student_id']}"),
                "assignment_id": assignment["id"],
                "student_id": enrollment["student_id"],
                "status": status,
                "body": self.fake.paragraph(nb_sentences=self.rng.randint(3, 7)),
                "submitted_at": handed_in if status != "draft" else None,
                "grade": round(points * self.rng.uniform(0.45, 1.0))
                if status == "graded"
                else None,
                "feedback": (
                    self.rng.choice(
                        ["Great work.", "Check your working on part 2.", "Well argued."]
                    )
                    if status == "graded"
                    else "Please revise the second half and resubmit."
                    if status == "returned"
                    else None
                ),
                "graded_by": course["tutor_id"] if graded else None,
                "graded_at": min(assignment["due_at"] + timedelta(days=2), self.base)
                if graded
                else None,
                "created_at": handed_in - timedelta(days=1),
            },
        )

    def _messages(self, conversation: Row, senders: Sequence[tuple[uuid.UUID, str]]) -> None:
        at = self.ago(self.rng.randint(2, 12), self.rng.randint(0, 8))
        for n in range(self.rng.randint(3, 7)):
            sender, role = senders[n % len(senders)] if n < 2 else self.rng.choice(senders)
            lines = _TUTOR_LINES if role == "tutor" else _STUDENT_LINES
            self.world.add(
                "public.messages",
                {
                    "id": dev_id("message", f"{conversation['id']}-{n}"),
                    "conversation_id": conversation["id"],
                    "sender_id": sender,
                    "body": self.rng.choice(lines),
                    "created_at": at,
                },
            )
            at += timedelta(minutes=self.rng.randint(5, 600))

    def conversations(self) -> None:
        for course in self.published[:6]:
            members = [(e["student_id"], "student") for e in self.enrolled.get(course["id"], [])]
            if not members:
                continue
            conversation = self.world.add(
                "public.conversations",
                {
                    "id": dev_id("conversation", course["id"]),
                    "kind": "course",
                    "course_id": course["id"],
                    "title": f"{course['title']} class chat",
                    "created_by": course["tutor_id"],
                    "direct_key": None,
                    "created_at": course["published_at"] + timedelta(days=1),
                },
            )
            active = {
                e["student_id"] for e in self.enrolled[course["id"]] if e["status"] == "active"
            }
            senders = [(course["tutor_id"], "tutor"), *[m for m in members if m[0] in active]]
            self._messages(conversation, senders)
        for student, tutor in sorted(self.sessions_by_pair, key=str)[:15]:
            low, high = sorted((str(student), str(tutor)))
            conversation = self.world.add(
                "public.conversations",
                {
                    "id": dev_id("conversation", f"{low}:{high}"),
                    "kind": "direct",
                    "course_id": None,
                    "title": None,
                    "created_by": student,
                    "direct_key": f"{low}:{high}",
                    "created_at": self.ago(14),
                },
            )
            for user in (student, tutor):
                self.world.add(
                    "public.conversation_participants",
                    {
                        "id": dev_id("participant", f"{conversation['id']}-{user}"),
                        "conversation_id": conversation["id"],
                        "user_id": user,
                        "role": "member",
                        "joined_at": conversation["created_at"],
                        "created_at": conversation["created_at"],
                    },
                )
            self._messages(conversation, [(student, "student"), (tutor, "tutor")])

    def notifications_and_devices(self) -> None:
        devices: dict[uuid.UUID, list[Row]] = {}
        for user in self.world.users:
            if user.role == "admin" or (user.role == "student" and self.rng.random() > 0.6):
                continue
            for k in range(2 if self.rng.random() < 0.2 else 1):
                platform = self.rng.choice(["ios", "android", "android", "web"])
                device_id = f"{platform}-{dev_id('device', f'{user.id}-{k}').hex[:10]}"
                devices.setdefault(user.id, []).append(
                    self.world.add(
                        "public.devices",
                        {
                            "id": dev_id("device", f"{user.id}-{k}"),
                            "user_id": user.id,
                            "device_id": device_id,
                            "platform": platform,
                            "push_token": f"dev-push-token-{device_id}",
                            "app_version": self.rng.choice(["1.3.0", "1.4.1", "1.4.2"]),
                            "last_active_at": self.ago(
                                self.rng.randint(0, 6), self.rng.randint(0, 23)
                            ),
                            "created_at": user.created_at + timedelta(days=1),
                        },
                    )
                )
        sent = self.ago(5)
        for user in self.world.users:
            if user.role == "admin":
                continue
            notification = self.world.add(
                "public.notifications",
                {
                    "id": dev_id("notification", f"welcome-{user.id}"),
                    "recipient_id": user.id,
                    "type": "announcement",
                    "title": "New: class chats for every course",
                    "body": "Ask questions and share notes with your classmates and tutor.",
                    "data": {},
                    "read_at": sent + timedelta(hours=3) if self.rng.random() < 0.6 else None,
                    "created_at": sent,
                },
            )
            for device in devices.get(user.id, []):
                self.world.add(
                    "public.push_deliveries",
                    {
                        "id": dev_id("push", f"{notification['id']}-{device['id']}"),
                        "notification_id": notification["id"],
                        "device_id": device["id"],
                        "recipient_id": user.id,
                        "sent_at": sent + timedelta(seconds=5),
                        "clicked_at": notification["read_at"],
                        "created_at": sent + timedelta(seconds=5),
                    },
                )
        for session in self.world.tables.get("public.tutoring_sessions", []):
            if session["status"] == "confirmed":
                self.world.add(
                    "public.notifications",
                    {
                        "id": dev_id("notification", f"confirmed-{session['id']}"),
                        "recipient_id": session["student_id"],
                        "type": "session_confirmed",
                        "title": "Session confirmed",
                        "body": "Your tutor confirmed your session.",
                        "data": {
                            "session_id": str(session["id"]),
                            "starts_at": session["starts_at"].isoformat(),
                            "tutor_id": str(session["tutor_id"]),
                        },
                        "read_at": None,
                        "created_at": session["created_at"] + timedelta(hours=4),
                    },
                )

    def payments(self) -> None:
        currency = {
            t.id: self.rng.choice(["EUR", "GBP", "USD"]) for t in self.world.by_role("tutor")
        }
        refunded = 0
        for session in self.completed:
            if self.rng.random() > 0.8:
                continue
            status = "refunded" if refunded < 1 else "succeeded"
            payment = self._payment(
                f"session-{session['id']}",
                session["student_id"],
                session["tutor_id"],
                currency[session["tutor_id"]],
                self.rng.choice(range(3000, 6500, 500)),
                status,
                session["ends_at"],
                session_id=session["id"],
            )
            if status == "refunded":
                refunded += 1
                self._refund(payment, payment["amount_minor"], "The tutor ended the session early")
        enrollments = self.world.tables.get("public.enrollments", [])
        for n, e in enumerate(e for e in enrollments if e["status"] != "cancelled"):
            if n % 3:
                continue
            course = e["_course"]
            status = "pending" if n % 27 == 0 else "failed" if n % 21 == 0 else "succeeded"
            payment = self._payment(
                f"enrollment-{e['id']}",
                e["student_id"],
                course["tutor_id"],
                currency[course["tutor_id"]],
                self.rng.choice(range(4900, 20000, 1000)),
                status,
                e["enrolled_at"],
                course_id=course["id"],
            )
            if status == "succeeded" and refunded < 2:
                refunded += 1
                self._refund(
                    payment, payment["amount_minor"] // 5, "Goodwill: a lesson video was missing"
                )

    def _payment(
        self,
        key: str,
        payer: uuid.UUID,
        payee: uuid.UUID,
        currency: str,
        amount: int,
        status: str,
        at: datetime,
        *,
        session_id: uuid.UUID | None = None,
        course_id: uuid.UUID | None = None,
    ) -> Row:
        payment_id = dev_id("payment", key)
        return self.world.add(
            "public.payments",
            {
                "id": payment_id,
                "payer_id": payer,
                "payee_id": payee,
                "session_id": session_id,
                "course_id": course_id,
                "amount_minor": amount,
                "currency": currency,
                "status": status,
                "provider": "stripe",
                "provider_intent_id": f"pi_dev_{payment_id.hex[:24]}",
                "created_at": at,
            },
        )

    def _refund(self, payment: Row, amount: int, reason: str) -> None:
        refund_id = dev_id("refund", payment["id"])
        self.world.add(
            "public.refunds",
            {
                "id": refund_id,
                "payment_id": payment["id"],
                "amount_minor": amount,
                "reason": reason,
                "status": "succeeded",
                "provider_refund_id": f"re_dev_{refund_id.hex[:24]}",
                "created_at": payment["created_at"] + timedelta(days=2),
            },
        )

    def articles_and_support(self) -> None:
        authors = self.world.by_role("tutor") + self.world.by_role("admin")[:1]
        for k, (title, tags) in enumerate(_ARTICLES):
            published = k < 6
            created = self.ago(60 - k * 6)
            self.world.add(
                "public.articles",
                {
                    "id": dev_id("article", k),
                    "author_id": authors[k % len(authors)].id,
                    "title": title,
                    "slug": _slug(title),
                    "summary": self.fake.sentence(nb_words=14),
                    "body": "\n\n".join(self.fake.paragraphs(nb=4)),
                    "tags": tags,
                    "status": "published" if published else "draft",
                    "published_at": created + timedelta(days=2) if published else None,
                    "created_at": created,
                },
            )
        admins = self.world.by_role("admin")
        students = self.world.by_role("student")
        for k, (subject, body) in enumerate(_TICKETS):
            owner = students[(k * 7) % len(students)]
            status = ["open", "pending", "resolved"][k % 3]
            admin = admins[k % len(admins)] if admins and status != "open" else None
            opened = self.ago(20 - k, self.rng.randint(0, 10))
            self.world.add(
                "public.support_queries",
                {
                    "id": dev_id("ticket", k),
                    "owner_id": owner.id,
                    "subject": subject,
                    "body": body,
                    "status": status,
                    "assignee_id": admin.id if admin else None,
                    "resolved_at": opened + timedelta(days=2) if status == "resolved" else None,
                    "created_at": opened,
                },
            )
            if admin is None:
                continue
            thread = [
                (admin, f"Hi {owner.name.split()[0]}, thanks for reaching out. We're on it."),
                (owner, "Thank you! Let me know if you need anything else from me."),
            ]
            if status == "resolved":
                thread.append((admin, "This is fixed now. Closing the ticket, reply to reopen."))
            for n, (author, text) in enumerate(thread):
                self.world.add(
                    "public.support_replies",
                    {
                        "id": dev_id("reply", f"{k}-{n}"),
                        "query_id": dev_id("ticket", k),
                        "author_id": author.id,
                        "body": text,
                        "created_at": opened + timedelta(hours=4 * (n + 1)),
                    },
                )


def build_dev_world(plan: DevPlan | None = None) -> DevWorld:
    """Generate the world (no database needed): the same plan gives the same rows."""
    return _Builder(plan or DevPlan()).build()


# -- loading -------------------------------------------------------------------------------

#: Rows between two progress events of a table.
_REPORT_EVERY = 50


def _password_hash(conn: psycopg.Connection[Any], seed: int) -> str:
    """The shared password's bcrypt hash (GoTrue's cost 10) with a salt fixed by the seed, so
    it is hashed once per load and the same on every run."""
    rng = random.Random(f"salt-{seed}")
    # The last character carries 2 bits of the 128-bit salt: pick one with the rest zero.
    salt = "".join(rng.choice(_BCRYPT_ALPHABET) for _ in range(21)) + rng.choice(".Oeu")
    row = conn.execute(
        "select extensions.crypt(%s, %s)", (DEV_PASSWORD, f"$2a$10${salt}")
    ).fetchone()
    assert row is not None
    return str(row[0])


def _insert(conn: psycopg.Connection[Any], table: str, row: Row) -> int:
    values = {
        k: Jsonb(v) if isinstance(v, dict) else v for k, v in row.items() if not k.startswith("_")
    }
    schema, name = table.split(".")
    query = sql.SQL("insert into {} ({}) values ({}) on conflict do nothing").format(
        sql.Identifier(schema, name),
        sql.SQL(", ").join(sql.Identifier(c) for c in values),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    return conn.execute(query, list(values.values())).rowcount


def _create_user(
    conn: psycopg.Connection[Any], world: DevWorld, user: DemoUser, password_hash: str
) -> int:
    """Create ``user`` as GoTrue would, unless there already: 1 if created, else 0."""
    known = conn.execute("select 1 from auth.users where id = %s", (user.id,)).fetchone()
    if known:
        return 0
    create_user(
        conn,
        user.email,
        user_id=user.id,
        password_hash=password_hash,
        app_metadata={"app_role": user.role},
        user_metadata={"display_name": user.name},
        created_at=user.created_at,
    )
    # What the user would have set while onboarding; only for users made just now.
    profile = world.profiles[user.id]
    conn.execute(
        "update public.profiles set timezone = %s, locale = %s, onboarded = %s where id = %s",
        (profile["timezone"], profile["locale"], profile["onboarded"], user.id),
    )
    return 1


def seed_dev(
    conn: psycopg.Connection[Any],
    plan: DevPlan | None = None,
    progress: ProgressCallback | None = None,
) -> DevReport:
    """Load the development world in one transaction; rows already there are left alone.

    ``progress`` hears one task per table (``auth.users``, ``public.courses``, …) counting
    the world's rows gone through, inserted or already there; each task's last event says how
    many were inserted."""
    world = build_dev_world(plan)
    report = DevReport(password=DEV_PASSWORD, users=world.users)
    started = time.perf_counter()
    with conn.transaction():
        password_hash = _password_hash(conn, world.plan.seed)
        users = Reporter(progress, "auth.users", total=len(world.users), unit="rows")
        users.update()
        created = 0
        for n, user in enumerate(world.users, 1):
            created += _create_user(conn, world, user, password_hash)
            if n % _REPORT_EVERY == 0:
                users.update(n)
        report.inserted["auth.users"] = created
        users.finish(message=f"{created} inserted")
        for table, rows in world.tables.items():
            loaded = Reporter(progress, table, total=len(rows), unit="rows")
            loaded.update()
            inserted = 0
            for n, row in enumerate(rows, 1):
                inserted += _insert(conn, table, row)
                if n % _REPORT_EVERY == 0:
                    loaded.update(n)
            report.inserted[table] = inserted
            loaded.finish(message=f"{inserted} inserted")
    report.seconds = time.perf_counter() - started
    return report
