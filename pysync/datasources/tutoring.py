"""Tutoring sessions (booking and their life cycle) and the feedback students leave."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from uuid import uuid4
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pysync.datasources._base import DataSource, IdLike
from pysync.datasources.models import SessionFeedback, TutoringSession, TutorRating, parse
from pysync.gateway import InvalidInput, asc, desc, eq, gte, lt

__all__ = ["FeedbackSource", "SessionsSource"]


def _aware(value: datetime, name: str) -> datetime:
    """Times travel with their offset: a naive datetime would be read in the server's zone."""
    if value.tzinfo is None:
        raise InvalidInput(f"{name} needs a time zone (a naive datetime is ambiguous)")
    return value


class SessionsSource(DataSource):
    """Sessions the caller takes part in. The server's guard decides who moves a session
    along (the tutor confirms and completes; either side cancels)."""

    table = "tutoring_sessions"

    def get(self, session_id: IdLike) -> TutoringSession:
        return self._get(TutoringSession, session_id)

    def book(
        self,
        tutor_id: IdLike,
        starts_at: datetime,
        ends_at: datetime,
        course_id: IdLike | None = None,
        *,
        notes: str = "",
        id: IdLike | None = None,
    ) -> TutoringSession:
        """Request a session with a tutor (students only); it starts out ``requested``."""
        return self._insert(
            TutoringSession,
            {
                "id": id or uuid4(),
                "tutor_id": tutor_id,
                "student_id": self._me,
                "course_id": course_id,
                "starts_at": _aware(starts_at, "starts_at"),
                "ends_at": _aware(ends_at, "ends_at"),
                "notes": notes,
            },
        )

    def _move(
        self, session_id: IdLike, values: dict[str, object], expected_version: int | None
    ) -> TutoringSession:
        return self._update(TutoringSession, session_id, values, expected_version=expected_version)

    def confirm(
        self,
        session_id: IdLike,
        *,
        meeting_url: str | None = None,
        expected_version: int | None = None,
    ) -> TutoringSession:
        values: dict[str, object] = {"status": "confirmed"}
        if meeting_url is not None:
            values["meeting_url"] = meeting_url
        return self._move(session_id, values, expected_version)

    def cancel(self, session_id: IdLike, *, expected_version: int | None = None) -> TutoringSession:
        return self._move(session_id, {"status": "cancelled"}, expected_version)

    def start(self, session_id: IdLike, *, expected_version: int | None = None) -> TutoringSession:
        return self._move(session_id, {"status": "in_progress"}, expected_version)

    def complete(
        self, session_id: IdLike, *, expected_version: int | None = None
    ) -> TutoringSession:
        return self._move(session_id, {"status": "completed"}, expected_version)

    def mark_no_show(
        self, session_id: IdLike, *, expected_version: int | None = None
    ) -> TutoringSession:
        return self._move(session_id, {"status": "no_show"}, expected_version)

    def between(self, start: datetime, end: datetime) -> list[TutoringSession]:
        """The caller's sessions starting in ``[start, end)``, earliest first."""
        return self._list(
            TutoringSession,
            [gte("starts_at", _aware(start, "start")), lt("starts_at", _aware(end, "end"))],
            [asc("starts_at")],
        )

    def this_week(
        self, *, now: datetime | None = None, tz: tzinfo | None = None
    ) -> list[TutoringSession]:
        """Sessions from Monday 00:00 to the next Monday in ``tz`` (default: the time zone of
        the caller's profile, UTC when it names no known zone)."""
        zone = tz or self._profile_zone()
        current = (now or datetime.now(zone)).astimezone(zone)
        monday = (current - timedelta(days=current.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        return self.between(monday, monday + timedelta(days=7))

    def upcoming(self, *, limit: int = 20, now: datetime | None = None) -> list[TutoringSession]:
        start = now or datetime.now().astimezone()
        return self._list(
            TutoringSession,
            [gte("ends_at", _aware(start, "now"))],
            [asc("starts_at")],
            limit,
        )

    def _profile_zone(self) -> tzinfo:
        rows = self._gw.select("profiles", columns="timezone", filters=[eq("id", self._me)]).rows
        try:
            return ZoneInfo(rows[0]["timezone"]) if rows else ZoneInfo("UTC")
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")


class FeedbackSource(DataSource):
    """Ratings of completed sessions; only aggregates are public (:meth:`tutor_rating`)."""

    table = "session_feedback"

    def rate(self, session_id: IdLike, rating: int, comment: str = "") -> SessionFeedback:
        """Rate a completed session of the caller's (student and tutor are filled in by the
        server from the session)."""
        return self._insert(
            SessionFeedback,
            {
                "session_id": session_id,
                "rating": rating,
                "comment": comment,
            },
        )

    def edit(
        self,
        feedback_id: IdLike,
        *,
        rating: int,
        comment: str,
        expected_version: int | None = None,
    ) -> SessionFeedback:
        return self._update(
            SessionFeedback,
            feedback_id,
            {"rating": rating, "comment": comment},
            expected_version=expected_version,
        )

    def for_session(self, session_id: IdLike) -> SessionFeedback | None:
        rows = self._gw.select(self.table, filters=[eq("session_id", session_id)]).rows
        return parse(SessionFeedback, rows[0]) if rows else None

    def received(self) -> list[SessionFeedback]:
        """Feedback on the caller's sessions as a tutor, newest first."""
        return self._list(SessionFeedback, [eq("tutor_id", self._me)], [desc("created_at")])

    def tutor_rating(self, tutor_id: IdLike) -> TutorRating:
        rows = self._gw.rpc("tutor_rating", {"tutor": str(tutor_id)}, read_only=True)
        row = rows[0] if isinstance(rows, list) and rows else {"average_rating": None, "ratings": 0}
        return parse(TutorRating, row)
