"""The hot client queries of the RLS benchmark, each written twice: as a client sends it
(row level security decides what it sees) and as a trusted job would with RLS bypassed
(the same calls plus the explicit filter that stands in for the policy).

A client sends the filter it means whenever it knows it (its own id, the course it opened),
as Supabase's RLS guide advises; a policy then only re-checks rows an index already found.
Where a client would rely on the policy alone (unread notifications), the policy itself must
be able to drive an index. docs/performance.md explains each choice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pysync.gateway import Gateway, Row, asc, desc, eq, gte, in_, is_null, lt

__all__ = ["QUERIES", "HotQuery", "Subject", "week_bounds"]


@dataclass(frozen=True)
class Subject:
    """A user the queries run as, with the rows they open (picked because they have data)."""

    user_id: str
    email: str
    role: Literal["student", "tutor"]
    #: A published course the student is enrolled in (students only).
    course_id: str | None = None
    #: The user's most recently active conversation.
    conversation_id: str | None = None


#: One query: runs its gateway call(s) for ``subject``; ``bypass`` adds the explicit filter
#: that replaces the policy. Returns the rows of the last call.
Runner = Callable[[Gateway, Subject, bool], list[Row]]


@dataclass(frozen=True)
class HotQuery:
    name: str
    actor: Literal["student", "tutor"]
    description: str
    run: Runner


def week_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    """Monday 00:00 UTC of the current week, and the Monday after."""
    today = (now or datetime.now(UTC)).astimezone(UTC)
    monday = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(
        days=today.weekday()
    )
    return monday, monday + timedelta(days=7)


def _my_courses(gw: Gateway, who: Subject, bypass: bool) -> list[Row]:
    enrolled = gw.select(
        "enrollments",
        columns="course_id",
        filters=[eq("student_id", who.user_id), eq("status", "active")],
    ).rows
    # The courses policy shows a student every course they take (archived or internal too),
    # so the bypass needs no extra filter.
    filters = [in_("id", [row["course_id"] for row in enrolled])]
    return gw.select("courses", filters=filters, order=[asc("title"), asc("id")]).rows


def _course_content(gw: Gateway, who: Subject, bypass: bool) -> list[Row]:
    # Enrolled: the policy hides nothing of this course, so the bypass needs no extra filter.
    return gw.select(
        "course_content", filters=[eq("course_id", who.course_id)], order=[asc("position")]
    ).rows


def _my_conversations(gw: Gateway, who: Subject, bypass: bool) -> list[Row]:
    # The list needs the caller's own participant rows anyway (last_read_at for the unread
    # badges), and they name the conversations to fetch.
    mine = gw.select(
        "conversation_participants",
        columns="conversation_id,last_read_at",
        filters=[eq("user_id", who.user_id)],
    ).rows
    return gw.select(
        "conversations",
        filters=[in_("id", [row["conversation_id"] for row in mine])],
        order=[desc("last_message_at", nulls_first=False), desc("id")],
        limit=20,
    ).rows


def _latest_messages(gw: Gateway, who: Subject, bypass: bool) -> list[Row]:
    return gw.select(
        "messages",
        filters=[eq("conversation_id", who.conversation_id)],
        order=[desc("created_at"), desc("id")],
        limit=50,
    ).rows


def _unread_notifications(gw: Gateway, who: Subject, bypass: bool) -> list[Row]:
    # The client relies on the policy (recipient = me) to pick its notifications.
    filters = [is_null("read_at")]
    if bypass:
        filters.append(eq("recipient_id", who.user_id))
    return gw.select(
        "notifications", filters=filters, order=[desc("created_at"), desc("id")], limit=50
    ).rows


def _tutor_sessions_this_week(gw: Gateway, who: Subject, bypass: bool) -> list[Row]:
    monday, next_monday = week_bounds()
    return gw.select(
        "tutoring_sessions",
        filters=[
            eq("tutor_id", who.user_id),
            gte("starts_at", monday),
            lt("starts_at", next_monday),
        ],
        order=[asc("starts_at"), asc("id")],
    ).rows


def _my_submissions(gw: Gateway, who: Subject, bypass: bool) -> list[Row]:
    return gw.select(
        "submissions",
        filters=[eq("student_id", who.user_id)],
        order=[desc("created_at"), desc("id")],
        limit=50,
    ).rows


QUERIES: tuple[HotQuery, ...] = (
    HotQuery(
        "my_courses", "student",
        "my active enrollments, then those courses by title", _my_courses,
    ),
    HotQuery(
        "course_content", "student",
        "the lessons of a course I am enrolled in, in order", _course_content,
    ),
    HotQuery(
        "my_conversations", "student",
        "my participant rows, then those conversations by last activity (20)",
        _my_conversations,
    ),
    HotQuery(
        "latest_messages", "student",
        "the latest 50 messages of my most recent conversation", _latest_messages,
    ),
    HotQuery(
        "unread_notifications", "student",
        "my unread notifications, newest first (50), filtered by the policy alone",
        _unread_notifications,
    ),
    HotQuery(
        "tutor_sessions_week", "tutor",
        "a tutor's sessions starting this week", _tutor_sessions_this_week,
    ),
    HotQuery(
        "my_submissions", "student",
        "my submissions, newest first (50)", _my_submissions,
    ),
)  # fmt: skip
