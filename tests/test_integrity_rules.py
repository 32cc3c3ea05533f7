"""Integrity rules beyond who may touch a row (migration 20261202160100_integrity_rules):
server-stamped columns stay the server's, coursework is archived rather than deleted, graded
work's files are locked, and what archiving, completing and deactivation leave a student.
Acts on the seed world (supabase/seed.sql) exactly as PostgREST would."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from tests.helpers import acting_as

Conn = psycopg.Connection[Any]

ADMIN = "a0000000-0000-4000-8000-000000000001"
TOM = "b0000000-0000-4000-8000-000000000001"  # tutor of Algebra I and the Calculus draft
TARA = "b0000000-0000-4000-8000-000000000002"  # tutor of Physics Basics
SAM = "c0000000-0000-4000-8000-000000000001"  # active in Algebra I, submitted Homework 1
SUE = "c0000000-0000-4000-8000-000000000002"  # graded on Homework 1; completed Physics
SID = "c0000000-0000-4000-8000-000000000003"  # active in Physics
ALGEBRA = "d0000000-0000-4000-8000-000000000001"
PHYSICS = "d0000000-0000-4000-8000-000000000002"
CALCULUS = "d0000000-0000-4000-8000-000000000003"
HOMEWORK = "12000000-0000-4000-8000-000000000001"
LAB = "12000000-0000-4000-8000-000000000002"
SAMS_SUBMISSION = "13000000-0000-4000-8000-000000000001"
SAM_AND_TOM = "17000000-0000-4000-8000-000000000001"


def one(conn: Conn, query: str, *params: Any) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


# -- server-stamped columns -------------------------------------------------------------------


def test_a_participant_cannot_rewrite_who_cancelled(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", SID, keep=True):
        session = one(
            app_conn,
            "insert into public.tutoring_sessions (tutor_id, student_id, starts_at, ends_at)"
            " values (%s, %s, '2031-07-01T10:00Z', '2031-07-01T11:00Z') returning id",
            TARA,
            SID,
        )
        app_conn.execute(
            "update public.tutoring_sessions set status = 'cancelled' where id = %s", (session,)
        )
    with (
        acting_as(app_conn, "authenticated", SID),
        pytest.raises(
            errors.InsufficientPrivilege,
            match=r"tutoring_sessions\.cancelled_by is set by the server",
        ),
    ):
        app_conn.execute(
            "update public.tutoring_sessions set cancelled_by = %s where id = %s", (TARA, session)
        )
    assert (
        one(
            app_conn,
            "select cancelled_by::text from public.tutoring_sessions where id = %s",
            session,
        )
        == SID
    )
    # An admin may correct the record.
    with acting_as(app_conn, "authenticated", ADMIN):
        fixed = one(
            app_conn,
            "update public.tutoring_sessions set cancelled_by = %s where id = %s"
            " returning cancelled_by::text",
            TARA,
            session,
        )
    assert fixed == TARA


def test_a_student_cannot_backdate_a_submission(app_conn: Conn) -> None:
    with (
        acting_as(app_conn, "authenticated", SAM),
        pytest.raises(errors.InsufficientPrivilege, match="submitted_at is set by the server"),
    ):
        app_conn.execute(
            "update public.submissions set submitted_at = '2020-01-01' where id = %s",
            (SAMS_SUBMISSION,),
        )
    with (
        acting_as(app_conn, "authenticated", SID),
        pytest.raises(errors.InsufficientPrivilege, match="submitted_at is set by the server"),
    ):
        app_conn.execute(
            "insert into public.submissions (assignment_id, student_id, status, body,"
            " submitted_at) values (%s, %s, 'draft', 'early', '2020-01-01')",
            (LAB, SID),
        )


def test_the_server_still_stamps_and_unchanged_stamps_pass(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", SID):
        draft = one(
            app_conn,
            "insert into public.submissions (assignment_id, student_id, status, body)"
            " values (%s, %s, 'draft', 'working') returning id",
            LAB,
            SID,
        )
        stamped = app_conn.execute(
            "update public.submissions set status = 'submitted' where id = %s"
            " returning submitted_at = now(), submitted_at",
            (draft,),
        ).fetchone()
        assert stamped is not None and stamped[0] is True
        # A full-row write (as sync sends) repeats the server's value: that is no change.
        app_conn.execute(
            "update public.submissions set body = 'final', submitted_at = %s where id = %s",
            (stamped[1], draft),
        )
    with acting_as(app_conn, "authenticated", TOM):
        graded = app_conn.execute(
            "update public.submissions set grade = 70, status = 'graded' where id = %s"
            " returning graded_by::text, graded_at is not null",
            (SAMS_SUBMISSION,),
        ).fetchone()
    assert graded == (TOM, True)


def test_a_tutor_cannot_put_another_name_on_a_grade(app_conn: Conn) -> None:
    sues = one(
        app_conn,
        "select id from public.submissions where student_id = %s and assignment_id = %s",
        SUE,
        HOMEWORK,
    )
    with (
        acting_as(app_conn, "authenticated", TOM),
        pytest.raises(errors.InsufficientPrivilege, match="graded_by is set by the server"),
    ):
        app_conn.execute("update public.submissions set graded_by = %s where id = %s", (TARA, sues))


@pytest.mark.parametrize(
    ("user", "statement", "column"),
    [
        (
            TOM,
            "update public.courses set published_at = '2020-01-01' where id = %s",
            "published_at",
        ),
        (
            SAM,
            "update public.enrollments set completed_at = now() where student_id = %s",
            "completed_at",
        ),
        (
            SID,
            "update public.support_queries set resolved_at = now() where owner_id = %s",
            "resolved_at",
        ),
    ],
)
def test_other_stamps_are_the_servers_too(
    app_conn: Conn, user: str, statement: str, column: str
) -> None:
    target = ALGEBRA if user == TOM else user
    with (
        acting_as(app_conn, "authenticated", user),
        pytest.raises(errors.InsufficientPrivilege, match=f"{column} is set by the server"),
    ):
        app_conn.execute(statement, (target,))


def test_an_enrollment_cannot_be_backdated(app_conn: Conn) -> None:
    with (
        acting_as(app_conn, "authenticated", SID),
        pytest.raises(errors.InsufficientPrivilege, match="enrolled_at is set by the server"),
    ):
        app_conn.execute(
            "insert into public.enrollments (student_id, course_id, enrolled_at)"
            " values (%s, %s, '2020-01-01')",
            (SID, ALGEBRA),
        )
    with acting_as(app_conn, "authenticated", SID):
        assert one(
            app_conn,
            "insert into public.enrollments (student_id, course_id) values (%s, %s)"
            " returning enrolled_at = now()",
            SID,
            ALGEBRA,
        )


# -- coursework is archived, not deleted -------------------------------------------------------


def test_a_tutor_cannot_delete_a_course_students_take(app_conn: Conn) -> None:
    with (
        acting_as(app_conn, "authenticated", TOM),
        pytest.raises(errors.InsufficientPrivilege, match="students take or took") as raised,
    ):
        app_conn.execute("delete from public.courses where id = %s", (ALGEBRA,))
    assert raised.value.diag.message_hint == "archive it instead: set status = 'archived'"
    with (
        acting_as(app_conn, "authenticated", ADMIN),
        pytest.raises(errors.InsufficientPrivilege, match="students take or took"),
    ):
        app_conn.execute("delete from public.courses where id = %s", (ALGEBRA,))
    with acting_as(app_conn, "authenticated", TOM):
        deleted = app_conn.execute("delete from public.courses where id = %s", (CALCULUS,))
        assert deleted.rowcount == 1  # a draft nobody takes goes


def test_an_assignment_with_submissions_stays(app_conn: Conn) -> None:
    with (
        acting_as(app_conn, "authenticated", TOM),
        pytest.raises(errors.InsufficientPrivilege, match="assignment with submissions"),
    ):
        app_conn.execute("delete from public.assignments where id = %s", (HOMEWORK,))
    with acting_as(app_conn, "authenticated", TOM):
        spare = one(
            app_conn,
            "insert into public.assignments (course_id, title) values (%s, 'Spare') returning id",
            ALGEBRA,
        )
        assert (
            app_conn.execute("delete from public.assignments where id = %s", (spare,)).rowcount == 1
        )
    # The platform (service_role) still may, on purpose.
    with acting_as(app_conn, "service_role"):
        assert (
            app_conn.execute("delete from public.assignments where id = %s", (HOMEWORK,)).rowcount
            == 1
        )


def test_a_refused_delete_through_sync_is_rejected_per_op(app_conn: Conn) -> None:
    ops = [
        {
            "op_id": 1,
            "tx_id": None,
            "table": "courses",
            "kind": "delete",
            "id": ALGEBRA,
            "data": {},
            "base_version": None,
            "priority": "normal",
        },
        {
            "op_id": 2,
            "tx_id": None,
            "table": "courses",
            "kind": "update",
            "id": CALCULUS,
            "data": {"title": "Calculus I"},
            "base_version": 1,
            "priority": "normal",
        },
    ]
    with acting_as(app_conn, "authenticated", TOM):
        answer = one(app_conn, "select public.sync_push(%s, %s)", str(uuid.uuid4()), Jsonb(ops))
        title = one(app_conn, "select title from public.courses where id = %s", CALCULUS)
        still_there = one(app_conn, "select count(*) from public.courses where id = %s", ALGEBRA)
    results = {r["op_id"]: r for r in answer["results"]}
    assert (results[1]["status"], results[1]["sqlstate"]) == ("rejected", "42501")
    assert "students take or took" in results[1]["message"]
    assert results[2]["status"] == "applied", results[2]
    assert (title, still_there) == ("Calculus I", 1)


# -- what archived and completed courses leave a student --------------------------------------


def test_an_archived_course_stays_with_its_students(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", TOM, keep=True):
        app_conn.execute("update public.courses set status = 'archived' where id = %s", (ALGEBRA,))
    with acting_as(app_conn, "authenticated", SAM):
        assert one(app_conn, "select title from public.courses where id = %s", ALGEBRA)
        assert (
            one(
                app_conn, "select count(*) from public.course_content where course_id = %s", ALGEBRA
            )
            > 0
        )
        assert one(app_conn, "select count(*) from public.assignments where id = %s", HOMEWORK)
    with acting_as(app_conn, "authenticated", SID):  # never enrolled: the course is gone
        assert one(app_conn, "select count(*) from public.courses where id = %s", ALGEBRA) == 0


def test_a_completed_enrollment_keeps_reading_but_submits_nothing(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", SUE):
        assert one(app_conn, "select count(*) from public.assignments where id = %s", LAB) == 1
        assert (
            one(
                app_conn, "select count(*) from public.course_content where course_id = %s", PHYSICS
            )
            > 0
        )
    with (
        acting_as(app_conn, "authenticated", SUE),
        pytest.raises(errors.InsufficientPrivilege, match="row-level security"),
    ):
        app_conn.execute(
            "insert into public.submissions (assignment_id, student_id, status, body)"
            " values (%s, %s, 'submitted', 'late')",
            (LAB, SUE),
        )


# -- graded work's files -----------------------------------------------------------------------


def test_a_graded_submissions_file_is_locked_for_its_student(app_conn: Conn) -> None:
    path = f"{SUE}/{HOMEWORK}/answer.pdf"
    app_conn.execute(
        "insert into storage.objects (bucket_id, name, owner) values ('submissions', %s, %s)",
        (path, SUE),
    )
    with acting_as(app_conn, "authenticated", SUE):
        assert one(app_conn, "select count(*) from storage.objects where name = %s", path) == 1
        replaced = app_conn.execute(
            "update storage.objects set metadata = '{\"size\": 1}' where name = %s", (path,)
        )
        # As the Storage API deletes: it lifts storage.protect_delete() for its own query.
        app_conn.execute("select set_config('storage.allow_delete_query', 'true', true)")
        deleted = app_conn.execute("delete from storage.objects where name = %s", (path,))
        assert (replaced.rowcount, deleted.rowcount) == (0, 0)
    with (
        acting_as(app_conn, "authenticated", SUE),
        pytest.raises(errors.InsufficientPrivilege, match="row-level security"),
    ):
        app_conn.execute(
            "insert into storage.objects (bucket_id, name, owner) values ('submissions', %s, %s)",
            (f"{SUE}/{HOMEWORK}/retake.pdf", SUE),
        )


# -- deactivation ------------------------------------------------------------------------------


def test_deactivation_stops_acting_on_others_not_reading_ones_own(app_conn: Conn) -> None:
    had = one(
        app_conn,
        "insert into public.tutoring_sessions (tutor_id, student_id, starts_at, ends_at, status)"
        " values (%s, %s, '2025-01-01T10:00Z', '2025-01-01T11:00Z', 'completed') returning id",
        TOM,
        SAM,
    )
    with acting_as(app_conn, "authenticated", ADMIN, keep=True):
        app_conn.execute("update public.profiles set deleted_at = now() where id = %s", (SAM,))
    with (
        acting_as(app_conn, "authenticated", SAM),
        pytest.raises(errors.InsufficientPrivilege, match="row-level security"),
    ):
        app_conn.execute(
            "insert into public.messages (conversation_id, sender_id, body) values (%s, %s, 'hi')",
            (SAM_AND_TOM, SAM),
        )
    with (
        acting_as(app_conn, "authenticated", SAM),
        pytest.raises(errors.InsufficientPrivilege, match="row-level security"),
    ):
        app_conn.execute(
            "insert into public.enrollments (student_id, course_id) values (%s, %s)",
            (SAM, PHYSICS),
        )
    with (
        acting_as(app_conn, "authenticated", SAM),
        pytest.raises(errors.InsufficientPrivilege, match="row-level security"),
    ):
        app_conn.execute(
            "insert into public.session_feedback (session_id, student_id, tutor_id, rating)"
            " values (%s, %s, %s, 1)",
            (had, SAM, TOM),
        )
    with acting_as(app_conn, "authenticated", SAM):
        assert (
            one(app_conn, "select count(*) from public.submissions where student_id = %s", SAM) == 1
        )
        assert one(app_conn, "select count(*) from public.profiles where id = %s", SAM) == 1
    with acting_as(app_conn, "authenticated", TOM):  # hidden from everyone else
        assert one(app_conn, "select count(*) from public.profiles where id = %s", SAM) == 0
