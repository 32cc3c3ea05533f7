"""``pysync rls explain``: the plan as the user would run it through PostgREST, rolled back."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from pysync.cli.main import main
from pysync.rls.explain import Actor, UnknownUserError, explain_as, resolve_actor
from tests.helpers import PROJECT_ROOT, connect

Conn = psycopg.Connection[Any]
SAM = "c0000000-0000-4000-8000-000000000001"
COURSES = "select id, title from public.courses"


def plan_rows(plan: Any) -> int:
    return int(plan[0]["Plan"]["Actual Rows"])


@pytest.fixture
def in_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.delenv("SUPABASE_DB_URL", raising=False)
    monkeypatch.delenv("PYSYNC_DEBUG", raising=False)


def test_actors_resolve_from_email_id_and_api_roles(app_conn: Conn) -> None:
    sam = resolve_actor(app_conn, "Student.Sam@example.com")
    assert (sam.role, str(sam.user_id), sam.email) == (
        "authenticated",
        SAM,
        "student.sam@example.com",
    )
    assert resolve_actor(app_conn, SAM) == sam
    assert resolve_actor(app_conn, "anon") == Actor("anon")
    assert resolve_actor(app_conn, "service_role") == Actor("service_role")


@pytest.mark.parametrize(
    ("who", "message"),
    [
        ("nobody@example.com", "no user with e-mail nobody@example.com in auth.users"),
        (
            "00000000-0000-4000-8000-00000000dead",
            "no user with id 00000000-0000-4000-8000-00000000dead in auth.users",
        ),
        ("authenticated", "--as takes a user's e-mail or id, anon or service_role"),
    ],
)
def test_unknown_users_are_refused(app_conn: Conn, who: str, message: str) -> None:
    with pytest.raises(UnknownUserError, match=message):
        resolve_actor(app_conn, who)


def test_the_plan_counts_the_rows_the_actor_may_see(app_conn: Conn) -> None:
    """Impersonation is real: anon sees the published courses, service_role every course, and
    the owner tutor his drafts too."""
    counts = app_conn.execute(
        "select count(*) filter (where status = 'published'), count(*),"
        " count(*) filter (where status = 'published' or tutor_id = %s)"
        " from public.courses",
        ("b0000000-0000-4000-8000-000000000001",),
    ).fetchone()
    assert counts is not None
    published, everything, toms = counts
    assert published < toms <= everything
    as_anon = explain_as(app_conn, resolve_actor(app_conn, "anon"), COURSES, as_json=True)
    as_tom = explain_as(
        app_conn, resolve_actor(app_conn, "tutor.tom@example.com"), COURSES, as_json=True
    )
    as_platform = explain_as(app_conn, Actor("service_role"), COURSES, as_json=True)
    assert (plan_rows(as_anon), plan_rows(as_tom), plan_rows(as_platform)) == (
        published,
        toms,
        everything,
    )
    assert "Shared Hit Blocks" in as_anon[0]["Plan"]  # BUFFERS was asked for


def test_a_write_is_explained_and_rolled_back(app_conn: Conn) -> None:
    before = app_conn.execute("select count(*) from public.courses").fetchone()
    lines = explain_as(app_conn, Actor("service_role"), "delete from public.courses")
    assert lines[0].startswith("Delete on courses")
    assert any("actual time=" in line for line in lines)
    assert app_conn.execute("select count(*) from public.courses").fetchone() == before
    assert app_conn.execute("select current_user").fetchone() == ("postgres",)


def test_explain_command_text_and_json(
    in_project: None, app_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["rls", "explain", "--as", "student.sam@example.com", COURSES, "--db-url", app_url])
    out = capsys.readouterr().out
    assert code == 0
    assert "actual time=" in out and "Buffers:" in out
    code = main(["rls", "explain", "--as", "anon", COURSES, "--db-url", app_url, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (data["as"], data["role"], data["user_id"]) == ("anon", "anon", None)
    with connect(app_url) as conn:
        published = conn.execute(
            "select count(*) from public.courses where status = 'published'"
        ).fetchone()
    assert published is not None and plan_rows(data["plan"]) == published[0]


def test_explain_command_unknown_user_is_one_line(
    in_project: None, app_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["rls", "explain", "--as", "ghost@example.com", COURSES, "--db-url", app_url])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [
        "error: no user with e-mail ghost@example.com in auth.users"
    ]
