"""The performance world: hundreds of thousands of rows through COPY in seconds.

Rows are generated in Python from cheap arithmetic (no faker: at a million rows the names
need not be pretty), and streamed with ``COPY … FROM STDIN``. Triggers are skipped for the
load (``session_replication_role = replica``, as data-only restores do), so the rows the
triggers would have written (profiles, bookkeeping columns) are written here directly.

Ids are deterministic (``5eed`` + table number + index), so every row can find its
parents by arithmetic and a second load into the same database fails loudly instead of
duplicating anything.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import errors, sql

from pysync.errors import PysyncError

__all__ = ["PerfPlan", "PerfReport", "TableLoad", "perf_id", "seed_perf"]

#: Called with (table, rows written so far, rows planned) while a table loads.
Progress = Callable[[str, int, int], None]

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_GOTRUE_META = json.dumps({"provider": "email", "providers": ["email"]})
_KINDS = {
    "users": 1,
    "courses": 2,
    "course_content": 3,
    "enrollments": 4,
    "tutoring_sessions": 5,
    "assignments": 6,
    "submissions": 7,
}


def perf_id(kind: str, index: int) -> uuid.UUID:
    """The id of row ``index`` of a perf table: ``5eed000k-…-<index>``."""
    return uuid.UUID(int=(0x5EED << 112) | (_KINDS[kind] << 96) | index)


@dataclass(frozen=True)
class PerfPlan:
    """How many rows of each kind; proportions documented in docs/performance.md.

    At ``users=100_000`` and ``scale=1``: 100k users (with 100k identities and 100k
    profiles), 10k tutors with 2 courses each (20k courses, 100k lessons), 300k enrollments,
    90k sessions, 40k assignments and 150k submissions: about a million rows.
    """

    users: int
    scale: float = 1.0

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

    def role_of(self, index: int) -> str:
        if index < self.admins:
            return "admin"
        return "tutor" if index < self.admins + self.tutors else "student"

    def student(self, number: int) -> int:
        """User index of the ``number``-th student."""
        return self.admins + self.tutors + number

    def tutor(self, number: int) -> int:
        return self.admins + number % self.tutors

    def enrolled_course(self, student: int, k: int) -> int:
        # Distinct for k < courses / 7919 … and spread evenly over courses.
        return (student * 7 + k * 7919) % self.courses


@dataclass(frozen=True)
class TableLoad:
    table: str
    rows: int
    seconds: float


@dataclass
class PerfReport:
    plan: PerfPlan
    tables: list[TableLoad] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.plan.users,
            "scale": self.plan.scale,
            "rows": self.rows,
            "seconds": round(self.seconds, 2),
            "rows_per_second": round(self.rows_per_second),
            "tables": [
                {"table": t.table, "rows": t.rows, "seconds": round(t.seconds, 2)}
                for t in self.tables
            ],
        }


# -- row generators ------------------------------------------------------------------------


def _users(plan: PerfPlan, password_hash: str) -> Iterator[Sequence[Any]]:
    for i in range(plan.users):
        at = _EPOCH + timedelta(minutes=i)
        meta = f'{{"provider": "email", "providers": ["email"], "app_role": "{plan.role_of(i)}"}}'
        yield (
            "00000000-0000-0000-0000-000000000000", perf_id("users", i), "authenticated",
            "authenticated", f"user{i}@perf.invalid", password_hash, at, meta,
            f'{{"display_name": "Perf User {i}"}}', at, at, "", "", "", "",
        )  # fmt: skip


def _identities(plan: PerfPlan) -> Iterator[Sequence[Any]]:
    for i in range(plan.users):
        user_id = perf_id("users", i)
        data = f'{{"sub": "{user_id}", "email": "user{i}@perf.invalid", "email_verified": true}}'
        at = _EPOCH + timedelta(minutes=i)
        yield (str(user_id), user_id, data, "email", at, at)


def _profiles(plan: PerfPlan) -> Iterator[Sequence[Any]]:
    for i in range(plan.users):
        yield (perf_id("users", i), f"Perf User {i}", plan.role_of(i))


def _courses(plan: PerfPlan) -> Iterator[Sequence[Any]]:
    for c in range(plan.courses):
        published = c % 10 != 0
        published_at = _EPOCH + timedelta(hours=c) if published else None
        yield (
            perf_id("courses", c), perf_id("users", plan.tutor(c // 2)), f"Course {c}",
            "published" if published else "draft", published_at,
        )  # fmt: skip


def _content(plan: PerfPlan) -> Iterator[Sequence[Any]]:
    for c in range(plan.courses):
        for position in range(5):
            index = c * 5 + position
            yield (
                perf_id("course_content", index), perf_id("courses", c), "lesson", position,
                f"Lesson {position + 1}", f"Body of lesson {position + 1} of course {c}",
                position == 0,
            )  # fmt: skip


def _enrollments(plan: PerfPlan) -> Iterator[Sequence[Any]]:
    index = 0
    for s in range(plan.students):
        for k in range(plan.enrollments_per_student):
            yield (
                perf_id("enrollments", index), perf_id("users", plan.student(s)),
                perf_id("courses", plan.enrolled_course(s, k)), "active",
            )  # fmt: skip
            index += 1


def _sessions(plan: PerfPlan) -> Iterator[Sequence[Any]]:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for s in range(plan.students):
        # Spread over four weeks around now; requested and completed sessions may overlap.
        starts = now + timedelta(hours=(s * 37) % (24 * 28) - 24 * 14)
        status = "completed" if starts < now else "requested"
        yield (
            perf_id("tutoring_sessions", s), perf_id("users", plan.tutor(s)),
            perf_id("users", plan.student(s)), starts, starts + timedelta(minutes=45), status,
        )  # fmt: skip


def _assignments(plan: PerfPlan) -> Iterator[Sequence[Any]]:
    for c in range(plan.courses):
        for k in range(2):
            yield (
                perf_id("assignments", c * 2 + k), perf_id("courses", c), f"Assignment {k + 1}",
                _EPOCH + timedelta(days=30 + k * 7),
            )  # fmt: skip


def _submissions(plan: PerfPlan) -> Iterator[Sequence[Any]]:
    index = 0
    for s in range(plan.students):
        for k in range(plan.enrollments_per_student):
            if (s + k) % 2:
                continue  # half of the enrollments have handed in the first assignment
            course = plan.enrolled_course(s, k)
            yield (
                perf_id("submissions", index), perf_id("assignments", course * 2),
                perf_id("users", plan.student(s)), "submitted", f"Answer {index}",
            )  # fmt: skip
            index += 1


def _steps(
    plan: PerfPlan, password_hash: str
) -> list[tuple[str, list[str], int, Iterator[Sequence[Any]]]]:
    e = plan.enrollments_per_student * plan.students
    return [
        ("auth.users", [
            "instance_id", "id", "aud", "role", "email", "encrypted_password",
            "email_confirmed_at", "raw_app_meta_data", "raw_user_meta_data", "created_at",
            "updated_at", "confirmation_token", "recovery_token", "email_change_token_new",
            "email_change",
        ], plan.users, _users(plan, password_hash)),
        ("auth.identities", [
            "provider_id", "user_id", "identity_data", "provider", "created_at", "updated_at",
        ], plan.users, _identities(plan)),
        ("public.profiles", ["id", "display_name", "role"], plan.users, _profiles(plan)),
        ("public.courses", ["id", "tutor_id", "title", "status", "published_at"],
         plan.courses, _courses(plan)),
        ("public.course_content", [
            "id", "course_id", "kind", "position", "title", "body", "is_preview",
        ], plan.courses * 5, _content(plan)),
        ("public.enrollments", ["id", "student_id", "course_id", "status"], e, _enrollments(plan)),
        ("public.tutoring_sessions", [
            "id", "tutor_id", "student_id", "starts_at", "ends_at", "status",
        ], plan.students, _sessions(plan)),
        ("public.assignments", ["id", "course_id", "title", "due_at"],
         plan.courses * 2, _assignments(plan)),
        ("public.submissions", ["id", "assignment_id", "student_id", "status", "body"],
         (e + 1) // 2, _submissions(plan)),
    ]  # fmt: skip


def _copy(
    conn: psycopg.Connection[Any],
    table: str,
    columns: list[str],
    planned: int,
    rows: Iterator[Sequence[Any]],
    progress: Progress,
) -> int:
    schema, name = table.split(".")
    statement = sql.SQL("copy {} ({}) from stdin").format(
        sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    written = 0
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            written += 1
            if written % 20_000 == 0:
                progress(table, written, planned)
    progress(table, written, planned)
    return written


def seed_perf(
    conn: psycopg.Connection[Any], plan: PerfPlan, progress: Progress | None = None
) -> PerfReport:
    """Load the perf world in one transaction (all or nothing), then ANALYZE it."""
    if plan.users < 20:
        raise PysyncError("the perf world needs at least 20 users")
    say = progress or (lambda _table, _done, _planned: None)
    report = PerfReport(plan=plan)
    started = time.perf_counter()
    try:
        with conn.transaction():
            conn.execute("set local session_replication_role = replica")
            conn.execute("set local synchronous_commit = off")
            row = conn.execute(
                "select extensions.crypt('password123', extensions.gen_salt('bf', 4))"
            ).fetchone()
            assert row is not None
            for table, columns, planned, rows in _steps(plan, str(row[0])):
                table_started = time.perf_counter()
                written = _copy(conn, table, columns, planned, rows, say)
                report.tables.append(TableLoad(table, written, time.perf_counter() - table_started))
    except errors.UniqueViolation as exc:
        raise PysyncError(
            "a perf world is already loaded here: run `pysync db reset --yes` first"
        ) from exc
    except errors.InsufficientPrivilege as exc:
        raise PysyncError(f"bulk loading needs session_replication_role: {exc}") from exc
    report.seconds = time.perf_counter() - started
    for load in report.tables:
        schema, name = load.table.split(".")
        conn.execute(sql.SQL("analyze {}").format(sql.Identifier(schema, name)))
    return report
