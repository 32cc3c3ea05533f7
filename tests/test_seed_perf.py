"""The perf world: COPY-loaded, consistent with the schema's rules, and loaded only once."""

from __future__ import annotations

import json
from collections.abc import Callable

import psycopg
import pytest

from pysync.errors import PysyncError
from pysync.migrate import push
from pysync.seed import PerfPlan, seed_perf
from pysync.seed.perf import perf_id
from pysync_cli.main import main
from tests.helpers import PROJECT_ROOT, acting_as, connect


@pytest.fixture
def pushed_url(new_database: Callable[[], str]) -> str:
    url = new_database()
    with connect(url) as conn:
        push(conn, PROJECT_ROOT / "supabase" / "migrations", PROJECT_ROOT / "policies")
    return url


def test_perf_world_has_the_planned_shape(pushed_url: str) -> None:
    plan = PerfPlan(users=200)
    seen: list[tuple[str, int, int]] = []
    with connect(pushed_url) as conn:
        report = seed_perf(conn, plan, progress=lambda *args: seen.append(args))
        counts = dict(
            conn.execute(
                "select 'users', count(*) from auth.users union all"
                " select 'profiles', count(*) from public.profiles union all"
                " select 'tutors', count(*) from public.profiles where role = 'tutor' union all"
                " select 'courses', count(*) from public.courses union all"
                " select 'enrollments', count(*) from public.enrollments"
            ).fetchall()
        )
    assert counts == {
        "users": 200,
        "profiles": 200,
        "tutors": plan.tutors,
        "courses": plan.courses,
        "enrollments": plan.students * plan.enrollments_per_student,
    }
    assert report.rows == sum(t.rows for t in report.tables) > 1000
    assert {t.table for t in report.tables} >= {"auth.users", "public.submissions"}
    assert seen and seen[-1][1] == seen[-1][2]  # progress reached the planned count


def test_perf_world_respects_the_policies(pushed_url: str) -> None:
    plan = PerfPlan(users=200)
    student = str(perf_id("users", plan.student(0)))
    with connect(pushed_url) as conn:
        seed_perf(conn, plan)
        with acting_as(conn, "authenticated", student):
            mine = conn.execute("select count(*) from public.enrollments").fetchone()
            others = conn.execute(
                "select count(*) from public.submissions where student_id <> %s", (student,)
            ).fetchone()
    assert mine == (plan.enrollments_per_student,)
    assert others == (0,)


def test_loading_twice_is_refused_and_changes_nothing(pushed_url: str) -> None:
    with connect(pushed_url) as conn:
        seed_perf(conn, PerfPlan(users=50))
        with pytest.raises(PysyncError, match="already loaded here"):
            seed_perf(conn, PerfPlan(users=50))
        assert conn.execute("select count(*) from auth.users").fetchone() == (50,)


def test_triggers_are_back_on_after_the_load(pushed_url: str) -> None:
    with connect(pushed_url) as conn:
        seed_perf(conn, PerfPlan(users=50))
        setting = conn.execute("show session_replication_role").fetchone()
        course = str(perf_id("courses", 1))
        version = conn.execute(
            "update public.courses set title = 'x' where id = %s returning version", (course,)
        ).fetchone()
    assert setting == ("origin",)
    assert version == (2,)


def test_cli_reports_rows_per_second(pushed_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "perf", "--users", "100", "--db-url", pushed_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["users"] == 100 and report["rows"] > 500 and report["rows_per_second"] > 0


def test_too_small_a_world_is_refused(pushed_url: str) -> None:
    with psycopg.connect(pushed_url, autocommit=True) as conn, pytest.raises(PysyncError):
        seed_perf(conn, PerfPlan(users=5))
