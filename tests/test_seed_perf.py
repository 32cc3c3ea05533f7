"""The perf world: COPY-loaded, consistent with the schema's rules, and loaded only once."""

from __future__ import annotations

import json
from collections.abc import Callable

import psycopg
import pytest

from pysync.cli.main import main
from pysync.errors import PysyncError
from pysync.migrate import push
from pysync.progress import ProgressEvent
from pysync.seed import PerfPlan, seed_perf
from pysync.seed._plan import id_prefix
from pysync.seed._rows import stamp, steps
from pysync.seed.perf import BASELINE_ROWS, measure_baseline, perf_id
from tests.helpers import PROJECT_ROOT, acting_as, connect


@pytest.fixture
def pushed_url(new_database: Callable[[], str]) -> str:
    url = new_database()
    with connect(url) as conn:
        push(conn, PROJECT_ROOT / "supabase" / "migrations", PROJECT_ROOT / "policies")
    return url


def test_perf_world_has_the_planned_shape(pushed_url: str) -> None:
    plan = PerfPlan(users=200)
    seen: list[ProgressEvent] = []
    with connect(pushed_url) as conn:
        report = seed_perf(conn, plan, progress=seen.append)
        counts = dict(
            conn.execute(
                "select 'users', count(*) from auth.users union all"
                " select 'profiles', count(*) from public.profiles union all"
                " select 'tutors', count(*) from public.profiles where role = 'tutor' union all"
                " select 'courses', count(*) from public.courses union all"
                " select 'enrollments', count(*) from public.enrollments union all"
                " select 'conversations', count(*) from public.conversations union all"
                " select 'participants', count(*) from public.conversation_participants union all"
                " select 'messages', count(*) from public.messages union all"
                " select 'notifications', count(*) from public.notifications union all"
                " select 'unread', count(*) from public.notifications where read_at is null"
            ).fetchall()
        )
    unread = counts.pop("unread")
    assert counts == {
        "users": 200,
        "profiles": 200,
        "tutors": plan.tutors,
        "courses": plan.courses,
        "enrollments": plan.students * plan.enrollments_per_student,
        "conversations": plan.conversations,
        "participants": plan.participants,
        "messages": plan.messages,
        "notifications": plan.notifications,
    }
    assert 0 < unread < counts["notifications"]
    assert report.rows == sum(t.rows for t in report.tables) > 1000
    planned = {t.table: t.rows for t in report.tables}
    assert planned["public.messages"] == plan.messages
    assert seen and seen[-1].finished  # progress reached the planned count


def test_every_generated_line_has_one_field_per_column() -> None:
    for table, columns, planned, lines in steps(PerfPlan(users=60), "$2a$04$hash"):
        rows = [line.split("\t") for line in lines]
        assert len(rows) == planned, table
        assert all(len(fields) == len(columns) for fields in rows), table
        assert all(fields[-1].endswith("\n") for fields in rows), table


def test_ids_in_text_match_perf_id() -> None:
    assert f"{id_prefix('messages')}{1234:012x}" == str(perf_id("messages", 1234))
    assert stamp(0) == "2026-01-01 00:00:00+00" and stamp(1441) == "2026-01-02 00:01:00+00"


def test_messaging_rows_are_what_the_triggers_would_have_written(pushed_url: str) -> None:
    with connect(pushed_url) as conn:
        seed_perf(conn, PerfPlan(users=300))
        stale = conn.execute(
            "select count(*) from public.conversations c"
            " where c.last_message_at is distinct from"
            " (select max(m.created_at) from public.messages m where m.conversation_id = c.id)"
        ).fetchone()
        # A course conversation's members: the course's tutor (owner) and active students.
        wrong_members = conn.execute(
            "select count(*) from public.conversations c where c.kind = 'course' and"
            " (select array_agg(p.user_id || p.role order by p.user_id)"
            "  from public.conversation_participants p where p.conversation_id = c.id)"
            " is distinct from (select array_agg(x.member order by x.member) from ("
            "  select co.tutor_id || 'owner' as member from public.courses co"
            "  where co.id = c.course_id"
            "  union all select e.student_id || 'member' from public.enrollments e"
            "  where e.course_id = c.course_id and e.status = 'active') x)"
        ).fetchone()
        direct = conn.execute(
            "select count(*), count(*) filter (where c.direct_key = least(a.user_id, b.user_id)"
            " || ':' || greatest(a.user_id, b.user_id))"
            " from public.conversations c"
            " join public.conversation_participants a on a.conversation_id = c.id"
            " join public.conversation_participants b on b.conversation_id = c.id"
            "  and b.user_id > a.user_id"
            " where c.kind = 'direct'"
        ).fetchone()
        direct_total = conn.execute(
            "select count(*) from public.conversations where kind = 'direct'"
        ).fetchone()
        outsiders = conn.execute(
            "select count(*) from public.messages m where not exists ("
            " select 1 from public.conversation_participants p"
            " where p.conversation_id = m.conversation_id and p.user_id = m.sender_id)"
        ).fetchone()
        bad_notifications = conn.execute(
            "select count(*) from public.notifications n"
            " left join public.messages m on m.id = (n.data ->> 'message_id')::uuid"
            " where n.type = 'new_message' and (m.id is null or m.sender_id = n.recipient_id"
            " or not exists (select 1 from public.conversation_participants p"
            "  where p.conversation_id = m.conversation_id and p.user_id = n.recipient_id))"
        ).fetchone()
    assert stale == (0,)
    assert wrong_members == (0,)
    assert direct_total is not None and direct == (direct_total[0], direct_total[0])
    assert outsiders == (0,)
    assert bad_notifications == (0,)


def test_the_report_compares_copy_with_row_by_row_inserts(pushed_url: str) -> None:
    with connect(pushed_url) as conn:
        report = seed_perf(conn, PerfPlan(users=100))
        enrollments = conn.execute("select count(*) from public.enrollments").fetchone()
        temporary = conn.execute(
            "select count(*) from pg_class where relname = 'perf_baseline'"
        ).fetchone()
    baseline = report.baseline
    assert baseline is not None and enrollments is not None
    assert baseline.rows == min(BASELINE_ROWS, enrollments[0])
    assert baseline.executemany_seconds > 0 and baseline.copy_seconds > 0
    assert baseline.speedup == pytest.approx(baseline.executemany_seconds / baseline.copy_seconds)
    assert report.as_dict()["baseline"]["rows"] == baseline.rows
    # Measured on a temporary copy that is gone: the world keeps exactly its rows.
    assert enrollments == (PerfPlan(users=100).enrollments,) and temporary == (0,)


def test_the_baseline_copies_completed_enrollments_whole(pushed_url: str) -> None:
    """A completed enrollment carries its completed_at (a check ties the two): a sample that
    holds one once broke the baseline after the world had been loaded."""
    with connect(pushed_url) as conn:
        seed_perf(conn, PerfPlan(users=100), baseline=False)
        conn.execute(
            "update public.enrollments set status = 'completed'"
            " where id in (select id from public.enrollments order by id limit 3)"
        )
        conn.commit()
        baseline = measure_baseline(conn, 50)
    assert baseline.rows == 50
    assert baseline.executemany_seconds > 0 and baseline.copy_seconds > 0


def test_perf_world_respects_the_policies(pushed_url: str) -> None:
    plan = PerfPlan(users=200)
    student = str(perf_id("users", plan.student(0)))
    with connect(pushed_url) as conn:
        seed_perf(conn, plan, baseline=False)
        with acting_as(conn, "authenticated", student):
            mine = conn.execute("select count(*) from public.enrollments").fetchone()
            others = conn.execute(
                "select count(*) from public.submissions where student_id <> %s", (student,)
            ).fetchone()
            conversations = conn.execute("select count(*) from public.conversations").fetchone()
            foreign_messages = conn.execute(
                "select count(*) from public.messages m where not exists ("
                " select 1 from public.conversation_participants p"
                " where p.conversation_id = m.conversation_id and p.user_id = %s)",
                (student,),
            ).fetchone()
            notifications = conn.execute(
                "select count(*), count(*) filter (where recipient_id = %s)"
                " from public.notifications",
                (student,),
            ).fetchone()
    assert mine == (plan.enrollments_per_student,)
    assert others == (0,)
    assert conversations is not None and conversations[0] >= 1  # at least the tutor chat
    assert foreign_messages == (0,)
    assert notifications is not None and notifications[0] == notifications[1] > 0


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
    assert {"public.messages", "public.notifications"} <= {t["table"] for t in report["tables"]}
    assert report["baseline"]["speedup"] > 0


def test_too_small_a_world_is_refused(pushed_url: str) -> None:
    with psycopg.connect(pushed_url, autocommit=True) as conn, pytest.raises(PysyncError):
        seed_perf(conn, PerfPlan(users=5))
