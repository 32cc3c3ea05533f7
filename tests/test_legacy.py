"""Legacy import: a generated legacy database (tests/fixtures/legacy_schema.sql) goes into a
freshly pushed database; the import is idempotent, reconciles, keeps passwords working and
reports (never crashes on) rows that do not map."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pysync.errors import LegacyImportError
from pysync.migrate import apply_seed, push
from pysync.ops.legacy import import_legacy, legacy_uuid
from pysync_cli.main import main
from tests.helpers import PROJECT_ROOT, connect

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_schema.sql"
USERS, COURSES = 120, 30
START = datetime(2025, 1, 6, 9, tzinfo=UTC)


def pushed_database(new_database: Callable[[], str]) -> str:
    url = new_database()
    with connect(url) as conn:
        push(conn, PROJECT_ROOT / "supabase" / "migrations", PROJECT_ROOT / "policies")
        apply_seed(conn, PROJECT_ROOT / "supabase" / "seed.sql")
    return url


def legacy_database(new_database: Callable[[], str]) -> str:
    """A few hundred generated rows, plus one row of every kind of problem (ids noted)."""
    url = new_database()
    rng = random.Random(6)
    with connect(url) as conn:
        conn.execute(FIXTURE.read_text())
        roles = ["teacher"] * 20 + ["admin"] * 2 + ["student"] * (USERS - 22)
        for i, role in enumerate(roles, start=1):
            conn.execute(
                "insert into users (email, password_hash, full_name, role, avatar, created_at)"
                " values (%s, extensions.crypt(%s, extensions.gen_salt('bf', 4)), %s, %s, %s,"
                " %s)",
                (
                    f"User{i}@Legacy.example",
                    f"pw-{i}",
                    f"User {i}",
                    role,
                    f"https://cdn.legacy.example/{i}.png" if i % 3 else None,
                    START - timedelta(days=i),
                ),
            )
        # node's bcrypt writes $2b$: the same algorithm as pgcrypto's $2a$.
        conn.execute(
            "update users set password_hash = '$2b$' || substr(password_hash, 5) where id % 2 = 0"
        )
        teachers = list(range(1, 21))
        students = list(range(23, USERS + 1))
        for c in range(1, COURSES + 1):
            conn.execute(
                "insert into courses (teacher_id, title, description, is_published, created_at)"
                " values (%s, %s, %s, %s, %s)",
                (teachers[c % 20], f"Course {c}", "About it", c % 4 != 0, START),
            )
            for position in range(3):
                conn.execute(
                    "insert into lessons (course_id, title, content, sort_order, free_preview)"
                    " values (%s, %s, %s, %s, %s)",
                    (c, f"Lesson {position}", f"# Lesson {position}", position, position == 0),
                )
        pairs = rng.sample([(s, c) for s in students for c in range(1, COURSES + 1)], 150)
        states = ["active", "done", "dropped"]
        for s, c in pairs:
            conn.execute(
                "insert into enrollments (user_id, course_id, state, created_at)"
                " values (%s, %s, %s, %s)",
                (s, c, rng.choice(states), START),
            )
        for a in range(100):  # one hour each, never overlapping for a teacher
            start = START + timedelta(hours=a)
            conn.execute(
                "insert into appointments (teacher_id, student_id, start_time, end_time, state,"
                " link) values (%s, %s, %s, %s, %s, %s)",
                (
                    teachers[a % 20],
                    rng.choice(students),
                    start,
                    start + timedelta(hours=1),
                    rng.choice(["pending", "confirmed", "done", "cancelled", "missed"]),
                    f"https://meet.example/{a}",
                ),
            )
        for m in range(20):
            conn.execute(
                "insert into messages (from_user, to_user, body) values (%s, %s, %s)",
                (students[m], teachers[m % 20], "hello"),
            )
        # The problems, one of each.
        conn.execute(
            "insert into users (id, email, password_hash, role) values"
            " (1001, 'guest@legacy.example', 'x', 'guest'),"
            " (1002, 'not-an-email', 'x', 'student'),"
            " (1003, 'USER5@legacy.example', 'x', 'student'),"
            " (1004, 'plain@legacy.example', 'plaintext', 'teacher')"
        )
        conn.execute(
            "insert into courses (id, teacher_id, title) values (1001, 1002, 'Orphaned'),"
            " (1002, 1004, 'By a user without a password')"
        )
        conn.execute("insert into lessons (id, course_id, title) values (1001, 1001, 'Orphan')")
        conn.execute(
            "insert into enrollments (id, user_id, course_id, state) values"
            " (1001, 30, 1, 'paused'), (1002, %s, %s, 'active')",
            pairs[0],
        )
        late = START + timedelta(days=30)
        conn.execute(
            "insert into appointments (id, teacher_id, student_id, start_time, end_time, state,"
            " link) values"
            " (1001, 1, 30, %s, %s, 'confirmed', null),"
            " (1002, 1, 31, %s, %s, 'confirmed', null),"
            " (1003, 2, 30, %s, %s, 'pending', 'http://insecure.example'),"
            " (1004, 2, 31, %s, %s, 'pending', null)",
            (
                late,
                late + timedelta(hours=1),
                late + timedelta(minutes=30),
                late + timedelta(hours=2),
                late,
                late + timedelta(hours=1),
                late,
                late - timedelta(hours=1),
            ),
        )
    return url


def counts(url: str) -> dict[str, int]:
    tables = [
        "auth.users",
        "auth.identities",
        "public.profiles",
        "public.courses",
        "public.course_content",
        "public.enrollments",
        "public.tutoring_sessions",
    ]
    with connect(url) as conn:
        result = {}
        for table in tables:
            row = conn.execute(f"select count(*) from {table}").fetchone()  # noqa: S608
            assert row
            result[table] = int(row[0])
        return result


@pytest.fixture
def databases(new_database: Callable[[], str]) -> tuple[str, str]:
    return legacy_database(new_database), pushed_database(new_database)


def problem_ids(report_problems: list[tuple[str, object, str]]) -> set[tuple[str, object]]:
    return {(table, legacy_id) for table, legacy_id, _ in report_problems}


def test_dry_run_reports_every_problem_and_writes_nothing(databases: tuple[str, str]) -> None:
    legacy, target = databases
    before = counts(target)
    report = import_legacy(legacy, target, dry_run=True, batch_size=50)
    assert counts(target) == before
    assert report.reconciliation == [] and report.written == {}
    found = {(p.table, p.legacy_id): p for p in report.problems}
    assert "unknown role 'guest'" in found["users", 1001].message
    assert "bad e-mail" in found["users", 1002].message
    assert "also used by users:5" in found["users", 1003].message
    assert found["users", 1004].action == "changed"  # imported, must reset the password
    assert "not imported" in found["courses", 1001].message  # its teacher was skipped
    assert ("courses", 1002) not in found
    assert "not imported" in found["lessons", 1001].message
    assert "unknown state 'paused'" in found["enrollments", 1001].message
    assert "already enrolled" in found["enrollments", 1002].message
    assert ("appointments", 1001) not in found
    assert "overlaps confirmed appointments:1001" in found["appointments", 1002].message
    assert found["appointments", 1003].action == "changed"  # the http link is dropped
    assert "ends before it starts" in found["appointments", 1004].message
    assert any("messages" in note for note in report.notes)


def test_import_reconciles_and_a_rerun_changes_nothing(databases: tuple[str, str]) -> None:
    legacy, target = databases
    before = counts(target)
    first = import_legacy(legacy, target, batch_size=37)
    assert first.ok, [r for r in first.reconciliation if not r.ok]
    by_target = {r.target_table: r for r in first.reconciliation}
    assert by_target["auth.users"].source_rows == USERS + 4
    assert by_target["auth.users"].skipped == 3
    assert by_target["public.profiles"].target_rows == USERS + 1
    assert by_target["public.tutoring_sessions"].skipped == 2
    after = counts(target)
    assert after["public.courses"] - before["public.courses"] == COURSES + 1
    assert after["public.course_content"] - before["public.course_content"] == COURSES * 3
    assert sum(first.written.values()) > 0

    second = import_legacy(legacy, target, batch_size=500)
    assert second.ok and sum(second.written.values()) == 0
    assert counts(target) == after
    assert [(r.target_table, r.target_rows) for r in second.reconciliation] == [
        (r.target_table, r.target_rows) for r in first.reconciliation
    ]


def test_imported_users_keep_their_passwords_and_roles(databases: tuple[str, str]) -> None:
    legacy, target = databases
    import_legacy(legacy, target)
    with connect(target) as conn:
        for legacy_id, role in ((1, "tutor"), (2, "tutor"), (21, "admin"), (40, "student")):
            row = conn.execute(
                "select u.encrypted_password = extensions.crypt(%s, u.encrypted_password),"
                " extensions.crypt('wrong', u.encrypted_password) = u.encrypted_password,"
                " p.role, u.email, i.provider_id"
                " from auth.users u join public.profiles p on p.id = u.id"
                " join auth.identities i on i.user_id = u.id where u.id = %s",
                (f"pw-{legacy_id}", legacy_uuid("users", legacy_id)),
            ).fetchone()
            assert row == (
                True,
                False,
                role,
                f"user{legacy_id}@legacy.example",
                str(legacy_uuid("users", legacy_id)),
            )


def test_rows_the_target_rejects_are_reported_with_their_children(
    databases: tuple[str, str],
) -> None:
    legacy, target = databases
    with connect(target) as conn:  # someone already signed up with legacy user 7's e-mail
        conn.execute(
            "insert into auth.users (id, aud, role, email) values"
            " (gen_random_uuid(), 'authenticated', 'authenticated', 'user7@legacy.example')"
        )
    report = import_legacy(legacy, target, batch_size=10)
    assert report.ok
    found = {(p.table, p.legacy_id): p.message for p in report.problems}
    assert "rejected by the target" in found["users", 7]
    assert "not imported" in found["courses", 6]  # courses 6 and 26 are taught by teacher 7


def test_rows_lost_on_the_way_fail_reconciliation(
    databases: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    legacy, target = databases
    with connect(target) as conn:  # a target that silently drops a course
        conn.execute(
            "create function public.drop_course() returns trigger language plpgsql as"
            " $$ begin if new.title = 'Course 3' then return null; end if; return new; end $$"
        )
        conn.execute(
            "create trigger drop_course before insert on public.courses"
            " for each row execute function public.drop_course()"
        )
    code = main(["import", "legacy", "--from", legacy, "--db-url", target, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and not report["ok"]
    bad = [r for r in report["reconciliation"] if not r["ok"]]
    assert [(r["target_table"], r["checksum_ok"]) for r in bad] == [("public.courses", False)]


def test_a_source_without_the_expected_columns_is_refused(
    databases: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    legacy, target = databases
    with connect(legacy) as conn:
        conn.execute("alter table lessons rename column sort_order to position")
    with pytest.raises(LegacyImportError, match=r"lacks lessons\.sort_order"):
        import_legacy(legacy, target, dry_run=True)
    assert main(["import", "legacy", "--from", legacy, "--db-url", target, "--dry-run"]) == 1
    assert "lacks lessons.sort_order" in capsys.readouterr().err


def test_messages_wait_for_their_tables_and_an_unreachable_source_is_one_line(
    databases: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    legacy, target = databases
    # The project's migrations now create the messaging tables: take the target back to a
    # schema from before them, which is the case this note is for.
    with connect(target) as conn:
        conn.execute("drop table public.messages, public.conversations cascade")
    report = import_legacy(legacy, target, dry_run=True)
    assert report.notes == [
        "messages not imported: the target has no public.conversations and public.messages "
        "yet (re-run the import once they exist)"
    ]
    with connect(target) as conn:
        conn.execute("create table public.conversations (id uuid primary key)")
        conn.execute("create table public.messages (id uuid primary key)")
    report = import_legacy(legacy, target, dry_run=True)
    assert "no mapping for them yet" in report.notes[0]
    unreachable = "postgresql://postgres:postgres@127.0.0.1:1/legacy"
    assert main(["import", "legacy", "--from", unreachable, "--db-url", target]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the legacy database:") and err.count("\n") == 1
