"""The development world: valid under every constraint and guard, the same on every run,
added once, and a world the RLS matrix, the audit and a signed-in student are happy with."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import pytest

from pysync.auth import LocalAuth
from pysync.cli.main import main
from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway import Identity, PostgresGateway
from pysync.localdb import LocalDatabase
from pysync.migrate import apply_seed, push
from pysync.rls import load_matrix, run_matrix
from pysync.rls.audit import audit_project
from pysync.seed import DEV_PASSWORD, DevPlan, DevReport, build_dev_world, seed_dev
from pysync.seed.dev import TABLES
from tests.helpers import PROJECT_ROOT, connect

PLAN = DevPlan(today=date(2026, 11, 23))
#: Columns the database stamps at write time (clock and transaction), not the seed.
VOLATILE = ("updated_at", "sync_xid", "submitted_at")


def seeded_database(local_db: LocalDatabase) -> tuple[str, str, DevReport]:
    """A database as `make demo` leaves it: schema, policies, supabase/seed.sql, dev world."""
    name = f"dev_{uuid.uuid4().hex[:12]}"
    url = local_db.create_database(name)
    with connect(url) as conn:
        push(conn, PROJECT_ROOT / "supabase" / "migrations", PROJECT_ROOT / "policies")
        apply_seed(conn, PROJECT_ROOT / "supabase" / "seed.sql")
        report = seed_dev(conn, PLAN)
    return name, url, report


@pytest.fixture(scope="module")
def worlds(local_db: LocalDatabase) -> Iterator[list[tuple[str, str, DevReport]]]:
    made = [seeded_database(local_db), seeded_database(local_db)]
    yield made
    for name, _, _ in made:
        local_db.drop_database(name)


@pytest.fixture(scope="module")
def url(worlds: list[tuple[str, str, DevReport]]) -> str:
    return worlds[0][1]


def scalar(conn: psycopg.Connection[Any], query: str, *params: Any) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def test_the_world_has_every_role_and_every_kind_of_row(
    worlds: list[tuple[str, str, DevReport]],
) -> None:
    _, url, report = worlds[0]
    world = build_dev_world(PLAN)
    assert report.inserted == {
        "auth.users": 50,
        **{table: len(world.tables[table]) for table in TABLES},
    }
    assert all(report.inserted[table] > 0 for table in TABLES)
    with connect(url) as conn:
        roles = dict(
            conn.execute(
                "select p.role, count(*) from public.profiles p join auth.users u on u.id = p.id"
                " where u.email like '%%@example.org' group by 1"
            ).fetchall()
        )
        assert roles == {"admin": 2, "tutor": 8, "student": 40}
        assert 30 <= report.inserted["public.enrollments"] <= 160
        assert scalar(conn, "select count(distinct status) from public.submissions") == 4
        assert scalar(conn, "select count(*) from public.refunds") >= 2
        # The schema's triggers did their part: message, enrollment and grade notifications.
        notified = dict(
            conn.execute("select type, count(*) from public.notifications group by 1").fetchall()
        )
        assert set(notified) == {
            "new_message", "enrollment_created", "submission_graded", "announcement",
            "session_confirmed",
        }  # fmt: skip


def test_the_world_keeps_the_rules_the_schema_cannot_check_alone(url: str) -> None:
    with connect(url) as conn:
        checks = {
            "enrollment outside a published course": """
                select count(*) from public.enrollments e join public.courses c
                on c.id = e.course_id where c.status <> 'published'""",
            "internal course taken by a non-member": """
                select count(*) from public.enrollments e join public.courses c
                on c.id = e.course_id where c.visibility = 'internal' and not exists (
                    select 1 from public.organization_members m
                    where m.organization_id = c.organization_id and m.user_id = e.student_id)""",
            "submission without an enrollment": """
                select count(*) from public.submissions s
                join public.assignments a on a.id = s.assignment_id
                where not exists (select 1 from public.enrollments e
                    where e.student_id = s.student_id and e.course_id = a.course_id
                    and e.status in ('active', 'completed'))""",
            "grade above the points": """
                select count(*) from public.submissions s
                join public.assignments a on a.id = s.assignment_id where s.grade > a.max_points""",
            "feedback on an unfinished session": """
                select count(*) from public.session_feedback f
                join public.tutoring_sessions s on s.id = f.session_id
                where s.status <> 'completed'""",
            "student double-booked": """
                select count(*) from public.tutoring_sessions a join public.tutoring_sessions b
                on a.student_id = b.student_id and a.id < b.id
                and tstzrange(a.starts_at, a.ends_at) && tstzrange(b.starts_at, b.ends_at)
                where a.status in ('confirmed', 'in_progress')
                and b.status in ('confirmed', 'in_progress')""",
            "session with someone outside the course": """
                select count(*) from public.tutoring_sessions s
                join public.courses c on c.id = s.course_id where c.tutor_id <> s.tutor_id""",
            "direct conversation without two members": """
                select count(*) from public.conversations c where c.kind = 'direct' and (
                    select count(*) from public.conversation_participants p
                    where p.conversation_id = c.id) <> 2""",
        }
        broken = {name: scalar(conn, query) for name, query in checks.items()}
    assert broken == dict.fromkeys(checks, 0)


def test_the_same_seed_gives_the_same_ids_and_values(
    worlds: list[tuple[str, str, DevReport]],
) -> None:
    assert build_dev_world(PLAN) == build_dev_world(PLAN)
    assert build_dev_world(DevPlan(today=PLAN.today, seed=7)).users != build_dev_world(PLAN).users
    world = build_dev_world(PLAN)
    snapshots = []
    for _, url, _ in worlds:
        with connect(url) as conn:
            snapshot = {
                "auth.users": conn.execute(
                    "select id, email, encrypted_password, raw_app_meta_data, raw_user_meta_data,"
                    " created_at, email_confirmed_at from auth.users where id = any(%s)"
                    " order by id",
                    ([u.id for u in world.users],),
                ).fetchall(),
                "public.profiles": conn.execute(
                    "select to_jsonb(p) - %s::text[] - 'created_at' from public.profiles p"
                    " where id = any(%s) order by id",
                    (list(VOLATILE), [u.id for u in world.users]),
                ).fetchall(),
            }
            for table in TABLES:
                schema, name = table.split(".")
                snapshot[table] = conn.execute(
                    f"select to_jsonb(t) - %s::text[] from {schema}.{name} t"  # noqa: S608
                    " where id = any(%s) order by id",
                    (list(VOLATILE), [row["id"] for row in world.tables[table]]),
                ).fetchall()
                assert len(snapshot[table]) == len(world.tables[table]), table
            snapshots.append(snapshot)
    assert snapshots[0] == snapshots[1]


def test_loading_again_adds_nothing(url: str) -> None:
    def counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
        tables = ["auth.users", "auth.identities", "public.profiles", *TABLES]
        return {
            t: scalar(conn, f"select count(*) from {t}")  # noqa: S608
            for t in tables
        }

    with connect(url) as conn:
        before = counts(conn)
        again = seed_dev(conn, PLAN)
        assert again.rows == 0
        assert set(again.inserted.values()) == {0}
        assert counts(conn) == before


def test_the_rls_matrix_and_audit_stay_green_on_the_seeded_database(url: str) -> None:
    with connect(url) as conn:
        report = run_matrix(conn, load_matrix(PROJECT_ROOT / "policies" / "matrix.toml"))
        assert report.uncovered == []
        assert [f"{r.table} {r.actor} {r.op}: {r.detail}" for r in report.failures] == []
        audit = audit_project(conn, PROJECT_ROOT / "policies")
        assert audit.ok, [f.as_dict() for f in audit.findings if f.level != "info"]


def test_a_seeded_student_signs_in_and_sees_exactly_their_enrollments(
    local_db: LocalDatabase,
    worlds: list[tuple[str, str, DevReport]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, url, report = worlds[0]
    student = next(u for u in report.users if u.role == "student")
    session = LocalAuth(url, jwt_secret=LOCAL_JWT_SECRET).sign_in_with_password(
        student.email, DEV_PASSWORD
    )
    with connect(url) as conn:
        theirs = {
            str(row[0])
            for row in conn.execute(
                "select id from public.enrollments where student_id = %s", (student.id,)
            )
        }
    assert theirs
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.delenv("SUPABASE_JWT_SECRET", raising=False)
    assert main(["jwt", "mint", "--user", student.email, "--db-url", url]) == 0
    minted = capsys.readouterr().out.strip()
    with PostgresGateway.connect(
        local_db.url(name, user="authenticator"), jwt_secret=LOCAL_JWT_SECRET, max_size=1
    ) as gateway:
        for token in (session.access_token, minted):
            me = gateway.as_identity(Identity.from_jwt(token))
            assert {str(row["id"]) for row in me.select("enrollments").rows} == theirs


def test_seed_dev_command_reports_and_guards_remote_targets(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.delenv("SUPABASE_DB_URL", raising=False)
    assert main(["seed", "dev", "--db-url", url, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["password"], out["rows"]) == (DEV_PASSWORD, 0)
    assert [u["role"] for u in out["logins"]] == ["admin"] * 2 + ["tutor"] * 2 + ["student"] * 3
    remote = "postgresql://postgres:pw@db.abcdefghijklmnop.supabase.co:5432/postgres"
    assert main(["seed", "dev", "--db-url", remote]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: seed dev creates users whose password is published: pass --remote to seed a"
        " remote database anyway"
    )
