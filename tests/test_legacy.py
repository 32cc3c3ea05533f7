"""Legacy import: a generated legacy database (tests/fixtures/legacy_schema.sql) goes into a
freshly pushed database; the import is idempotent, reconciles, keeps passwords working,
imports message history quietly (no notifications or nudges) and reports (never crashes on)
rows that do not map."""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pysync.cli.main import main
from pysync.errors import LegacyImportError
from pysync.migrate import apply_seed, push
from pysync.ops.legacy import direct_key, import_legacy, legacy_uuid
from tests.helpers import PROJECT_ROOT, connect

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_schema.sql"
USERS, COURSES = 120, 30
START = datetime(2025, 1, 6, 9, tzinfo=UTC)
#: Messages: 3 per pair of 20 (student, teacher) pairs, then the problem rows 1001-1004.
PAIRS, PER_PAIR = 20, 3
#: The message problems: to oneself, blank body, orphan (the guest user 1001 is skipped).
SKIPPED_MESSAGES = (1001, 1002, 1004)


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
        for m in range(PAIRS):  # both directions; for even pairs ids run against time
            student, teacher = students[m], teachers[m % 20]
            at = START + timedelta(days=m)
            exchange = [
                (student, teacher, "question", at),
                (teacher, student, "answer", at + timedelta(minutes=5)),
                (student, teacher, "thanks", at + timedelta(hours=2)),
            ]
            for sender, recipient, body, sent in exchange[:: -1 if m % 2 == 0 else 1]:
                conn.execute(
                    "insert into messages (from_user, to_user, body, sent_at)"
                    " values (%s, %s, %s, %s)",
                    (sender, recipient, body, sent),
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
        conn.execute(
            "insert into messages (id, from_user, to_user, body, sent_at) values"
            " (1001, 23, 23, 'note to self', %s), (1002, 24, 2, '   ', %s),"
            " (1003, 25, 3, repeat('x', 4500), %s), (1004, 1001, 1, 'hi', %s)",
            (START, START, START + timedelta(days=2, hours=1), START),
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
        "public.conversations",
        "public.conversation_participants",
        "public.messages",
        "public.notifications",
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
    assert "sent to the sender themself" in found["messages", 1001].message
    assert "empty body" in found["messages", 1002].message
    assert found["messages", 1003].action == "changed"  # cut to the target's 4000
    assert "not imported" in found["messages", 1004].message  # from the skipped guest
    assert {key for key in found if key[0] == "messages"} == {
        ("messages", i) for i in (1001, 1002, 1003, 1004)
    }


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


def test_an_unreachable_source_is_one_line(
    databases: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, target = databases
    unreachable = "postgresql://postgres:postgres@127.0.0.1:1/legacy"
    assert main(["import", "legacy", "--from", unreachable, "--db-url", target]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the legacy database:") and err.count("\n") == 1


def test_a_target_migrated_only_up_to_before_messaging_is_refused_before_writing(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    """Messages are no longer optional: their tables come with the same migrations as every
    other target table, so a target without them is not pushed, and nothing is written."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for file in sorted((PROJECT_ROOT / "supabase" / "migrations").glob("*.sql")):
        if file.name < "20261123090000":  # before messaging
            shutil.copy(file, migrations / file.name)
    target = new_database()
    with connect(target) as conn:
        push(conn, migrations, tmp_path / "no-policies")
        assert conn.execute("select to_regclass('public.messages')").fetchone() == (None,)
    legacy = legacy_database(new_database)
    with pytest.raises(
        LegacyImportError,
        match=r"messages: the target has no public\.conversations: push the migrations",
    ):
        import_legacy(legacy, target)
    with connect(target) as conn:
        assert conn.execute("select count(*) from auth.users").fetchone() == (0,)


# -- messages --------------------------------------------------------------------------------


def expected_pairs(legacy: str) -> dict[str, dict[str, Any]]:
    """Per direct_key, what the imported conversation must look like, from the legacy rows
    that import (every message but SKIPPED_MESSAGES)."""
    with connect(legacy) as conn:
        rows = conn.execute(
            "select least(from_user, to_user), greatest(from_user, to_user), count(*),"
            " min(sent_at), max(sent_at), (array_agg(from_user order by sent_at, id))[1]"
            " from messages where id <> all(%s) group by 1, 2",
            (list(SKIPPED_MESSAGES),),
        ).fetchall()
    return {
        direct_key(legacy_uuid("users", a), legacy_uuid("users", b)): {
            "members": {legacy_uuid("users", a), legacy_uuid("users", b)},
            "messages": n,
            "created_at": first,
            "last_message_at": last,
            "created_by": legacy_uuid("users", by),
        }
        for a, b, n, first, last, by in rows
    }


def imported_conversations(target: str) -> dict[str, dict[str, Any]]:
    with connect(target) as conn:
        rows = conn.execute(
            "select c.direct_key, c.id, c.kind, c.created_by, c.created_at, c.last_message_at,"
            " (select array_agg(p.user_id) from public.conversation_participants as p"
            "  where p.conversation_id = c.id),"
            " (select count(*) from public.messages as m where m.conversation_id = c.id)"
            " from public.conversations as c where c.direct_key is not null"
        ).fetchall()
    return {
        key: {
            "id": cid,
            "kind": kind,
            "members": set(members or []),
            "messages": n,
            "created_at": created,
            "last_message_at": last,
            "created_by": by,
        }
        for key, cid, kind, by, created, last, members, n in rows
    }


def test_each_pair_of_users_gets_one_direct_conversation(databases: tuple[str, str]) -> None:
    legacy, target = databases
    seeded = set(imported_conversations(target))  # the seed's own direct conversations
    # One message per batch: a pair's messages arrive in several batches, newest first for
    # half of the pairs, and still make one conversation with the right first and last.
    report = import_legacy(legacy, target, batch_size=1)
    assert report.ok
    want = expected_pairs(legacy)
    assert len(want) == PAIRS
    got = {k: v for k, v in imported_conversations(target).items() if k not in seeded}
    assert set(got) == set(want)
    for key, conversation in got.items():
        assert conversation["id"] == legacy_uuid("conversations", key)
        assert conversation["kind"] == "direct"
        assert {k: conversation[k] for k in want[key]} == want[key], key
    # Both directions of a pair share it; message 1003 (cut to size) is a fourth in one.
    assert sum(c["messages"] for c in got.values()) == PAIRS * PER_PAIR + 1
    with connect(target) as conn:
        body = conn.execute(
            "select m.body, m.sender_id from public.messages as m where m.id = %s",
            (legacy_uuid("messages", 1003),),
        ).fetchone()
        assert body is not None
        assert len(body[0]) == 4000 and body[0].endswith("\u2026")
        assert body[1] == legacy_uuid("users", 25)


def test_a_message_to_oneself_and_empty_messages_are_skipped(databases: tuple[str, str]) -> None:
    legacy, target = databases
    report = import_legacy(legacy, target)
    found = {(p.table, p.legacy_id): p for p in report.problems}
    assert found["messages", 1001].message == "sent to the sender themself"
    assert found["messages", 1001].action == "skipped"
    me = legacy_uuid("users", 23)
    with connect(target) as conn:
        skipped = [legacy_uuid("messages", i) for i in SKIPPED_MESSAGES]
        assert conn.execute(
            "select count(*) from public.messages where id = any(%s)", (skipped,)
        ).fetchone() == (0,)
        assert conn.execute(
            "select count(*) from public.conversations where direct_key = %s",
            (f"{me}:{me}",),
        ).fetchone() == (0,)
        # User 23's one real conversation is there, without the note to self.
        assert conn.execute(
            "select count(*) from public.messages where sender_id = %s", (me,)
        ).fetchone() == (2,)


def test_imported_history_notifies_nobody_and_the_triggers_stay_on(
    databases: tuple[str, str],
) -> None:
    legacy, target = databases
    quiet = (
        "select (select count(*) from public.notifications where type = 'new_message'),"
        " (select count(*) from realtime.messages where topic like 'conversation:%%'"
        "  or payload ->> 'table' in ('messages', 'conversations', 'conversation_participants'))"
    )
    with connect(target) as conn:  # the seed's conversations have some
        seeded = conn.execute(quiet).fetchone()
        assert seeded is not None
    report = import_legacy(legacy, target, batch_size=7)
    assert report.ok and report.written["messages"] > 0
    with connect(target) as conn:
        assert conn.execute(quiet).fetchone() == seeded
        # The import's replica mode was transaction-local: a message sent now (as postgres,
        # like an import batch) notifies, broadcasts and moves the conversation up.
        student, teacher = legacy_uuid("users", 23), legacy_uuid("users", 1)
        key = direct_key(student, teacher)
        conn.execute(
            "insert into public.messages (conversation_id, sender_id, body)"
            " values (%s, %s, 'new here')",
            (legacy_uuid("conversations", key), student),
        )
        row = conn.execute(quiet).fetchone()
        assert row is not None and row[0] == seeded[0] + 1 and row[1] > seeded[1]
        recipient = conn.execute(
            "select recipient_id from public.notifications where type = 'new_message'"
            " and body = 'new here'"
        ).fetchone()
        assert recipient == (teacher,)
        moved = conn.execute(
            "select last_message_at > now() - interval '1 minute' from public.conversations"
            " where direct_key = %s",
            (key,),
        ).fetchone()
        assert moved == (True,)


def test_a_rerun_converges_and_keeps_new_system_deletes(databases: tuple[str, str]) -> None:
    legacy, target = databases
    first = import_legacy(legacy, target, batch_size=5)
    assert first.ok and first.written["messages"] > 0
    before = counts(target)
    again = import_legacy(legacy, target, batch_size=500)
    assert again.ok and again.written == {table: 0 for table in first.written}
    assert counts(target) == before

    # Meanwhile: a newer legacy message in pair 0, an older one in pair 1 (from the teacher,
    # who therefore opened it), and a user removed an imported message in the new system.
    pair0 = direct_key(legacy_uuid("users", 23), legacy_uuid("users", 1))
    pair1 = direct_key(legacy_uuid("users", 24), legacy_uuid("users", 2))
    newest, oldest = START + timedelta(days=90), START - timedelta(days=90)
    with connect(legacy) as conn:
        conn.execute(
            "insert into messages (id, from_user, to_user, body, sent_at) values"
            " (2001, 1, 23, 'still there?', %s), (2002, 2, 24, 'welcome', %s)",
            (newest, oldest),
        )
    removed = conn_first_message(target, pair0)
    with connect(target) as conn:
        conn.execute("update public.messages set deleted_at = now() where id = %s", (removed,))
    third = import_legacy(legacy, target, batch_size=2)
    assert third.ok
    # Two new messages and the two conversations they moved; nothing else.
    assert sum(third.written.values()) == 4
    got = imported_conversations(target)
    assert got[pair0]["last_message_at"] == newest
    assert (got[pair1]["created_at"], got[pair1]["created_by"]) == (
        oldest,
        legacy_uuid("users", 2),
    )
    with connect(target) as conn:
        assert conn.execute(
            "select body, deleted_at is not null from public.messages where id = %s", (removed,)
        ).fetchone() == ("", True)
    assert sum(import_legacy(legacy, target).written.values()) == 0


def conn_first_message(target: str, key: str) -> object:
    with connect(target) as conn:
        row = conn.execute(
            "select m.id from public.messages as m join public.conversations as c"
            " on c.id = m.conversation_id where c.direct_key = %s order by m.created_at limit 1",
            (key,),
        ).fetchone()
        assert row is not None
        return row[0]


def test_messages_reconcile_one_to_one_and_conversations_per_pair(
    databases: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    legacy, target = databases
    report = import_legacy(legacy, target, batch_size=9)
    lines = {r.target_table: r for r in report.reconciliation if r.source_table == "messages"}
    shape = {
        table: (r.source_rows, r.skipped, r.target_rows, r.unit, r.ok) for table, r in lines.items()
    }
    messages = PAIRS * PER_PAIR + 4
    assert shape == {
        "public.messages": (messages, 3, messages - 3, "rows", True),
        # The 20 pairs, plus guest user 1001 and teacher 1, whose one message is an orphan.
        "public.conversations": (PAIRS + 1, 1, PAIRS, "user pairs", True),
        "public.conversation_participants": (2 * PAIRS + 2, 2, 2 * PAIRS, "pair members", True),
    }
    # The table the CLI prints says what a derived line counts.
    capsys.readouterr()
    assert main(["import", "legacy", "--from", legacy, "--db-url", target]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps cells at 80 columns
    assert re.search(rf"│ {PAIRS + 1} user .*│ pairs", out), out
    assert "0 row(s) written, reconciled" in out


def test_lost_messages_and_participants_fail_reconciliation(
    databases: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    legacy, target = databases
    lost = legacy_uuid("users", 30)
    answer = legacy_uuid("users", 3)
    drops = {  # teacher 3's "answer" and user 30's membership vanish in the target
        "messages": f"new.body = 'answer' and new.sender_id = '{answer}'",
        "conversation_participants": f"new.user_id = '{lost}'",
    }
    with connect(target) as conn:  # ALWAYS triggers fire even in the import's replica mode
        for table, condition in drops.items():
            conn.execute(
                f"create function public.lose_{table}() returns trigger language plpgsql as"
                f" $$ begin if {condition} then return null; end if; return new; end $$"
            )
            conn.execute(
                f"create trigger lose_rows before insert on public.{table}"
                f" for each row execute function public.lose_{table}()"
            )
            conn.execute(f"alter table public.{table} enable always trigger lose_rows")
    code = main(["import", "legacy", "--from", legacy, "--db-url", target, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and not report["ok"]
    bad = [
        (r["target_table"], r["target_rows"], r["checksum_ok"])
        for r in report["reconciliation"]
        if not r["ok"]
    ]
    assert bad == [
        ("public.messages", PAIRS * PER_PAIR, False),
        ("public.conversation_participants", 2 * PAIRS - 1, False),
    ]


def test_replica_mode_still_keeps_messages_of_users_without_a_profile_out(
    databases: tuple[str, str],
) -> None:
    """The batches skip foreign-key checks with the triggers; the mapper makes the profile
    check itself, so a kept user whose profile is missing gets their messages rejected."""
    legacy, target = databases
    with connect(target) as conn:  # the target drops user 30's profile on sign-up
        conn.execute(
            "create function public.no_profile() returns trigger language plpgsql as $$ begin"
            f" if new.id = '{legacy_uuid('users', 30)}' then return null; end if;"
            " return new; end $$"
        )
        conn.execute(
            "create trigger no_profile before insert on public.profiles"
            " for each row execute function public.no_profile()"
        )
    report = import_legacy(legacy, target, batch_size=50)
    rejected = {
        p.legacy_id: p.message
        for p in report.problems
        if p.table == "messages" and "rejected by the target" in p.message
    }
    assert len(rejected) == PER_PAIR  # pair 7: student 30 and teacher 8
    assert all("no profile" in message for message in rejected.values())
    lines = {r.target_table: r for r in report.reconciliation if r.source_table == "messages"}
    assert lines["public.messages"].ok and lines["public.messages"].skipped == 3 + PER_PAIR
    assert lines["public.conversations"].ok and lines["public.conversations"].skipped == 2
    assert not {r.target_table for r in report.reconciliation if not r.ok} - {"public.profiles"}
    with connect(target) as conn:
        assert conn.execute(
            "select count(*) from public.messages as m"
            " where not exists (select from public.profiles as p where p.id = m.sender_id)"
        ).fetchone() == (0,)
