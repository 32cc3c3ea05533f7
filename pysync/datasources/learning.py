"""Profiles, courses and their content, enrollments, assignments and submissions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from pysync.datasources._base import UNSET, DataSource, IdLike, Unset, values_of
from pysync.datasources.models import (
    Assignment,
    ContentItem,
    ContentType,
    Course,
    Enrollment,
    Profile,
    Role,
    Submission,
    Visibility,
    parse,
)
from pysync.gateway import asc, desc, eq, in_, is_null

__all__ = [
    "AssignmentsSource",
    "CoursesSource",
    "EnrollmentsSource",
    "ProfilesSource",
    "SubmissionsSource",
]


class ProfilesSource(DataSource):
    """Public profiles; the caller edits their own, admins change roles."""

    table = "profiles"

    def me(self) -> Profile:
        return self._get(Profile, self._me)

    def get(self, user_id: IdLike) -> Profile:
        return self._get(Profile, user_id)

    def many(self, ids: Sequence[IdLike]) -> list[Profile]:
        return self._list(Profile, [in_("id", ids)])

    def tutors(self) -> list[Profile]:
        """Active tutors, by name: whom a student can book."""
        return self._list(
            Profile, [eq("role", "tutor"), is_null("deleted_at")], [asc("display_name")]
        )

    def update_me(
        self,
        *,
        display_name: str | Unset = UNSET,
        avatar_url: str | Unset | None = UNSET,
        timezone: str | Unset = UNSET,
        locale: str | Unset = UNSET,
        onboarded: bool | Unset = UNSET,
        expected_version: int | None = None,
    ) -> Profile:
        changes = values_of(
            display_name=display_name,
            avatar_url=avatar_url,
            timezone=timezone,
            locale=locale,
            onboarded=onboarded,
        )
        if not changes:
            return self.me()
        return self._update(Profile, self._me, changes, expected_version=expected_version)

    def set_role(self, user_id: IdLike, role: Role) -> Profile:
        """Admins only (a guard trigger refuses everyone else with PermissionDenied)."""
        return self._update(Profile, user_id, {"role": role})


class CoursesSource(DataSource):
    table = "courses"

    def get(self, course_id: IdLike) -> Course:
        return self._get(Course, course_id)

    def list_published(self, *, limit: int | None = None) -> list[Course]:
        """Published courses the caller may see (public, or internal to their organizations),
        newest first."""
        return self._list(Course, [eq("status", "published")], [desc("published_at")], limit)

    def list_taught(self) -> list[Course]:
        return self._list(Course, [eq("tutor_id", self._me)], [asc("title")])

    def list_enrolled(self) -> list[Course]:
        """Courses the caller is actively enrolled in."""
        enrollments = self._gw.select(
            "enrollments",
            columns="course_id",
            filters=[eq("student_id", self._me), eq("status", "active")],
        ).rows
        ids = [row["course_id"] for row in enrollments]
        return self._list(Course, [in_("id", ids)], [asc("title")]) if ids else []

    def create(
        self,
        title: str,
        description: str = "",
        *,
        organization_id: IdLike | None = None,
        visibility: Visibility = "public",
        id: IdLike | None = None,
    ) -> Course:
        """A draft course taught by the caller (tutors only)."""
        return self._insert(
            Course,
            {
                "id": id or uuid4(),
                "tutor_id": self._me,
                "title": title,
                "description": description,
                "organization_id": organization_id,
                "visibility": visibility,
            },
        )

    def update(
        self,
        course_id: IdLike,
        *,
        title: str | Unset = UNSET,
        description: str | Unset = UNSET,
        visibility: Visibility | Unset = UNSET,
        expected_version: int | None = None,
    ) -> Course:
        changes = values_of(title=title, description=description, visibility=visibility)
        return self._update(Course, course_id, changes, expected_version=expected_version)

    def publish(self, course_id: IdLike, *, expected_version: int | None = None) -> Course:
        return self._update(
            Course, course_id, {"status": "published"}, expected_version=expected_version
        )

    def archive(self, course_id: IdLike, *, expected_version: int | None = None) -> Course:
        return self._update(
            Course, course_id, {"status": "archived"}, expected_version=expected_version
        )

    def delete(self, course_id: IdLike) -> None:
        self._delete(course_id)

    # -- content --------------------------------------------------------------------------

    def content(self, course_id: IdLike) -> list[ContentItem]:
        """The course's modules and lessons the caller may read, in reading order: top-level
        items by position, each module followed by its lessons."""
        items = self._list(
            ContentItem, [eq("course_id", course_id)], [asc("position")], table="course_content"
        )
        children: dict[UUID, list[ContentItem]] = {}
        for item in items:
            if item.parent_id is not None:
                children.setdefault(item.parent_id, []).append(item)
        ordered: list[ContentItem] = []
        for item in items:
            if item.parent_id is None:
                ordered.append(item)
                ordered.extend(children.get(item.id, ()))
        return ordered

    def add_module(self, course_id: IdLike, title: str, position: int) -> ContentItem:
        return self._insert(
            ContentItem,
            {"course_id": course_id, "kind": "module", "title": title, "position": position},
            table="course_content",
        )

    def add_lesson(
        self,
        course_id: IdLike,
        title: str,
        position: int,
        *,
        module_id: IdLike | None = None,
        body: str | None = None,
        content_type: ContentType = "markdown",
        storage_path: str | None = None,
        is_preview: bool = False,
    ) -> ContentItem:
        return self._insert(
            ContentItem,
            {
                "course_id": course_id,
                "parent_id": module_id,
                "kind": "lesson",
                "title": title,
                "position": position,
                "body": body,
                "content_type": content_type,
                "storage_path": storage_path,
                "is_preview": is_preview,
            },
            table="course_content",
        )


class EnrollmentsSource(DataSource):
    table = "enrollments"

    def enroll(self, course_id: IdLike) -> Enrollment:
        """Enroll the caller (a student) in a published course they can see."""
        return self._insert(Enrollment, {"student_id": self._me, "course_id": course_id})

    def cancel(self, enrollment_id: IdLike, *, expected_version: int | None = None) -> Enrollment:
        return self._update(
            Enrollment,
            enrollment_id,
            {"status": "cancelled"},
            expected_version=expected_version,
        )

    def complete(self, enrollment_id: IdLike) -> Enrollment:
        """The course's tutor marks a student's enrollment completed."""
        return self._update(Enrollment, enrollment_id, {"status": "completed"})

    def get(self, enrollment_id: IdLike) -> Enrollment:
        return self._get(Enrollment, enrollment_id)

    def list_mine(self) -> list[Enrollment]:
        return self._list(Enrollment, [eq("student_id", self._me)], [desc("enrolled_at")])

    def list_for_course(self, course_id: IdLike) -> list[Enrollment]:
        """A course's enrollments (its tutor and admins see them)."""
        return self._list(Enrollment, [eq("course_id", course_id)], [asc("enrolled_at")])


class AssignmentsSource(DataSource):
    table = "assignments"

    def get(self, assignment_id: IdLike) -> Assignment:
        return self._get(Assignment, assignment_id)

    def list_for_course(self, course_id: IdLike) -> list[Assignment]:
        return self._list(
            Assignment, [eq("course_id", course_id)], [asc("due_at", nulls_first=False)]
        )

    def create(
        self,
        course_id: IdLike,
        title: str,
        *,
        instructions: str = "",
        rubric: Any = None,
        max_points: Decimal | int = 100,
        due_at: datetime | None = None,
    ) -> Assignment:
        """Set an assignment in a course the caller teaches."""
        row: dict[str, Any] = {
            "course_id": course_id,
            "title": title,
            "instructions": instructions,
            "max_points": max_points,
            "due_at": due_at,
        }
        if rubric is not None:
            row["rubric"] = rubric
        return self._insert(Assignment, row)

    def delete(self, assignment_id: IdLike) -> None:
        self._delete(assignment_id)


class SubmissionsSource(DataSource):
    """A student's work on an assignment (one per student), graded by the course's tutor."""

    table = "submissions"

    def get(self, submission_id: IdLike) -> Submission:
        return self._get(Submission, submission_id)

    def mine(self, assignment_id: IdLike) -> Submission | None:
        rows = self._gw.select(
            self.table,
            filters=[eq("assignment_id", assignment_id), eq("student_id", self._me)],
        ).rows
        return parse(Submission, rows[0]) if rows else None

    def list_mine(self) -> list[Submission]:
        return self._list(Submission, [eq("student_id", self._me)], [desc("created_at")])

    def list_for_assignment(self, assignment_id: IdLike) -> list[Submission]:
        """Every submission to an assignment (its tutor); a student sees only their own."""
        return self._list(Submission, [eq("assignment_id", assignment_id)], [asc("created_at")])

    def _save(
        self, assignment_id: IdLike, body: str, storage_path: str | None, status: str
    ) -> Submission:
        (row,) = self._gw.upsert(
            self.table,
            {
                "assignment_id": assignment_id,
                "student_id": self._me,
                "body": body,
                "storage_path": storage_path,
                "status": status,
            },
            on_conflict=("assignment_id", "student_id"),
        )
        return parse(Submission, row)

    def save_draft(
        self, assignment_id: IdLike, body: str, *, storage_path: str | None = None
    ) -> Submission:
        return self._save(assignment_id, body, storage_path, "draft")

    def submit(
        self, assignment_id: IdLike, body: str = "", *, storage_path: str | None = None
    ) -> Submission:
        """Hand in (or re-submit) the caller's work; the server stamps ``submitted_at``."""
        return self._save(assignment_id, body, storage_path, "submitted")

    def grade(
        self,
        submission_id: IdLike,
        grade: Decimal | int | float,
        feedback: str | None = None,
        *,
        expected_version: int | None = None,
    ) -> Submission:
        """The course's tutor grades; anyone else gets PermissionDenied (or NotFound when the
        submission is not even visible to them)."""
        values: dict[str, Any] = {"status": "graded", "grade": grade}
        if feedback is not None:
            values["feedback"] = feedback
        return self._update(Submission, submission_id, values, expected_version=expected_version)

    def return_for_revision(self, submission_id: IdLike, feedback: str) -> Submission:
        return self._update(Submission, submission_id, {"status": "returned", "feedback": feedback})
