"""GDPR: the export holds the user's rows and nobody else's; erasure leaves no row naming the
user (a generic scan of every table in public, private, auth and storage), keeps payments and
the audit log anonymized, leaves everyone else's rows as they were, and is all or nothing."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from pysync.cli.main import main
from pysync.errors import ErasureRefusedError, UnknownUserError
from pysync.gdpr import delete_user, export_user, resolve_user
from pysync.migrate import apply_seed, push
from tests.helpers import PROJECT_ROOT, acting_as, connect

ADMIN = "a0000000-0000-4000-8000-000000000001"
TOM = "b0000000-0000-4000-8000-000000000001"
TARA = "b0000000-0000-4000-8000-000000000002"
SAM = "c0000000-0000-4000-8000-000000000001"
SUE = "c0000000-0000-4000-8000-000000000002"
SID = "c0000000-0000-4000-8000-000000000003"
SAM_EMAIL = "student.sam@example.com"
SAM_NAME = "Sam Student"

SAM_PAYMENT = "22000000-0000-4000-8000-000000000001"
SAM_REFUND = "23000000-0000-4000-8000-000000000001"
SAM_MESSAGE = "19000000-0000-4000-8000-000000000001"
TOM_MESSAGE_TO_SAM = "19000000-0000-4000-8000-000000000002"
SAM_AND_TOM = "17000000-0000-4000-8000-000000000001"

#: Schemas whose every table the erasure scan reads.
SCANNED_SCHEMAS = ("public", "private", "auth", "storage")

#: Rows of other people that go with the user's own: a staff reply on the user's ticket goes
#: with the ticket.
GONE_WITH_THE_USER = ("16000000-0000-4000-8000-0000000000a1",)

#: Rows that may still name the user after erasure, per table. None: payments and the audit
#: log are kept, but anonymized (checked separately below), so no row names the user.
ALLOWED_AFTER_ERASURE: dict[str, int] = {}


def add_rows(conn: psycopg.Connection[Any]) -> None:
    """Rows the seed lacks, so every table the export covers has one of Sam's (and some of
    other people's that mention Sam)."""
    script = """
        insert into public.tutoring_sessions (id, tutor_id, student_id, starts_at, ends_at, status)
        values ('10000000-0000-4000-8000-0000000000a1', %(tom)s, %(sam)s,
                now() - interval '3 days', now() - interval '3 days' + interval '1 hour',
                'completed');
        insert into public.session_feedback (id, session_id, student_id, tutor_id, rating, comment)
        values ('11000000-0000-4000-8000-0000000000a1', '10000000-0000-4000-8000-0000000000a1',
                %(sam)s, %(tom)s, 4, 'Sam liked it');
        insert into public.support_queries (id, owner_id, subject, body)
        values ('15000000-0000-4000-8000-0000000000a1', %(sam)s, 'Refund', 'Where is my refund?');
        insert into public.support_replies (id, query_id, author_id, body)
        values ('16000000-0000-4000-8000-0000000000a1', '15000000-0000-4000-8000-0000000000a1',
                %(admin)s, 'On its way.');
        insert into public.disputes (id, payment_id, reason, provider_dispute_id)
        values ('24000000-0000-4000-8000-0000000000a1', %(payment)s, 'fraudulent', 'dp_sam');
        insert into public.analytics_events (user_id, platform, app_version, name, properties)
        values (%(sam)s, 'android', '1.0.0', 'lesson_opened', '{"lesson": "intro"}'),
               (%(sue)s, 'web', '1.0.0', 'profile_viewed', jsonb_build_object('viewed', %(sam)s));
        insert into storage.objects (bucket_id, name, owner, owner_id)
        values ('avatars', %(sam)s || '/avatar.png', %(sam)s::uuid, %(sam)s),
               ('submissions', %(sam)s || '/12000000-0000-4000-8000-000000000001/answer.pdf',
                %(sam)s::uuid, %(sam)s),
               ('chat-attachments', %(conv)s || '/photo.png', %(sam)s::uuid, %(sam)s),
               ('course-materials', 'd0000000-0000-4000-8000-000000000001/notes.pdf',
                %(tom)s::uuid, %(tom)s);
        insert into private.rate_limit_counters (key, platform, window_start, writes)
        values ('user:' || %(sam)s, 'mobile', now(), 3), ('user:' || %(sue)s, 'web', now(), 2);
        update public.profiles set onboarded = true, avatar_url = 'https://cdn.example.com/sam.png'
        where id = %(sam)s
        """
    params = {
        "sam": SAM,
        "sue": SUE,
        "tom": TOM,
        "admin": ADMIN,
        "payment": SAM_PAYMENT,
        "conv": SAM_AND_TOM,
    }
    for statement in script.split(";"):
        conn.execute(statement, params)
    # A role change is audited with the whole profile (display name included).
    conn.execute("update public.profiles set role = 'tutor' where id = %s", (SAM,))
    conn.execute("update public.profiles set role = 'student' where id = %s", (SAM,))


def leaf_tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """Every table holding rows in the scanned schemas (partitions, not their parents)."""
    rows = conn.execute(
        """
        select n.nspname, c.relname
        from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
        where c.relkind = 'r' and n.nspname = any(%s)
        order by 1, 2
        """,
        (list(SCANNED_SCHEMAS),),
    ).fetchall()
    return [(schema, name) for schema, name in rows]


def rows_as_text(conn: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    query = sql.SQL("select t::text from {}.{} as t").format(
        sql.Identifier(schema), sql.Identifier(table)
    )
    return [row[0] for row in conn.execute(query).fetchall()]


def naming(text: str, needles: tuple[str, ...]) -> bool:
    lowered = text.lower()
    return any(needle.lower() in lowered for needle in needles)


def scan(
    conn: psycopg.Connection[Any], needles: tuple[str, ...]
) -> tuple[Counter[str], Counter[str]]:
    """Rows naming any needle, per table; and every other row's text (to prove it stays)."""
    named: Counter[str] = Counter()
    others: Counter[str] = Counter()
    for schema, table in leaf_tables(conn):
        for text in rows_as_text(conn, schema, table):
            if naming(text, needles):
                named[f"{schema}.{table}"] += 1
            else:
                others[f"{schema}.{table}\t{text}"] += 1
    return named, others


SAM_NEEDLES = (SAM, SAM_EMAIL, SAM_NAME)


# -- export ---------------------------------------------------------------------------------


def ids(rows: list[dict[str, Any]]) -> set[str]:
    return {row["id"] for row in rows}


def test_export_holds_the_users_rows_from_every_table(app_conn: psycopg.Connection[Any]) -> None:
    add_rows(app_conn)
    doc = export_user(app_conn, SAM_EMAIL)
    assert doc["version"] == 1 and doc["generated_at"] and doc["user_id"] == SAM
    assert doc["account"]["email"] == SAM_EMAIL
    assert doc["profile"]["display_name"] == SAM_NAME
    assert ids(doc["enrollments"]) == {"f0000000-0000-4000-8000-000000000001"}
    assert ids(doc["tutoring_sessions"]) == {
        "10000000-0000-4000-8000-000000000001",
        "10000000-0000-4000-8000-0000000000a1",
    }
    assert ids(doc["feedback_given"]) == {"11000000-0000-4000-8000-0000000000a1"}
    assert ids(doc["submissions"]) == {"13000000-0000-4000-8000-000000000001"}
    assert ids(doc["messages_sent"]) == {SAM_MESSAGE}
    assert ids(doc["conversations"]) == {SAM_AND_TOM, "17000000-0000-4000-8000-000000000002"}
    assert "1a000000-0000-4000-8000-000000000001" in ids(doc["notifications"])
    assert ids(doc["devices"]) == {"1b000000-0000-4000-8000-000000000001"}
    assert len(doc["notification_preferences"]) == 4
    assert ids(doc["push_deliveries"]) == {"1c000000-0000-4000-8000-000000000001"}
    [payment] = doc["payments"]
    assert payment["id"] == SAM_PAYMENT
    assert ids(payment["refunds"]) == {SAM_REFUND}
    assert ids(payment["disputes"]) == {"24000000-0000-4000-8000-0000000000a1"}
    assert [m["slug"] for m in doc["organization_memberships"]] == ["northside-academy"]
    [ticket] = doc["support_tickets"]
    assert [r["body"] for r in ticket["replies"]] == ["On its way."]
    assert [e["name"] for e in doc["analytics_events"]] == ["lesson_opened"]
    assert {e["table_name"] for e in doc["audit_entries"]} >= {
        "public.profiles",
        "public.payments",
        "public.enrollments",
    }
    assert {o["bucket_id"] for o in doc["storage_objects"]} == {
        "avatars",
        "submissions",
        "chat-attachments",
    }


def test_export_as_a_tutor_holds_their_courses_articles_and_feedback_received(
    app_conn: psycopg.Connection[Any],
) -> None:
    doc = export_user(app_conn, TOM)
    assert "d0000000-0000-4000-8000-000000000001" in ids(doc["courses"])
    assert doc["courses"][0]["content"], "a course comes with its content"
    assert ids(doc["articles"]) == {"14000000-0000-4000-8000-000000000001"}
    assert ids(doc["feedback_received"]) == {"11000000-0000-4000-8000-000000000001"}
    assert {g["submission_id"] for g in doc["grades_given"]} <= {
        "13000000-0000-4000-8000-000000000002"
    }


def test_export_holds_no_other_users_private_rows(app_conn: psycopg.Connection[Any]) -> None:
    add_rows(app_conn)
    text = json.dumps(export_user(app_conn, SAM))
    others_private = [
        "13000000-0000-4000-8000-000000000002",  # Sue's submission
        "f0000000-0000-4000-8000-000000000002",  # Sue's enrollment
        "22000000-0000-4000-8000-000000000002",  # Sue's payment
        "15000000-0000-4000-8000-000000000001",  # Sid's ticket
        "1a000000-0000-4000-8000-000000000002",  # Sid's notification
        "11000000-0000-4000-8000-000000000001",  # Sue's feedback
        "student.sue@example.com",
        "profile_viewed",  # Sue's analytics event, although it names Sam
        "d0000000-0000-4000-8000-000000000001/notes.pdf",  # Tom's file
    ]
    leaked = [item for item in others_private if item in text]
    assert leaked == []
    # Others' messages are theirs (the app shows them); Sam's own notifications may quote them.
    sent = {m["id"] for m in json.loads(text)["messages_sent"]}
    assert sent == {SAM_MESSAGE}


def test_export_needs_a_signed_in_user(app_conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(errors.InsufficientPrivilege), acting_as(app_conn, "anon"):
        app_conn.execute("select public.export_my_data()")
    with pytest.raises(errors.InsufficientPrivilege), acting_as(app_conn, "service_role"):
        app_conn.execute("select public.export_my_data()")


def test_an_unknown_user_is_one_error(app_conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(UnknownUserError) as unknown:
        resolve_user(app_conn, "nobody@example.com")
    assert str(unknown.value) == "no user with e-mail or id 'nobody@example.com'"
    assert str(resolve_user(app_conn, "Student.Sam@Example.com")) == SAM


# -- erasure --------------------------------------------------------------------------------


def test_erasure_leaves_no_row_naming_the_user_and_others_rows_intact(
    app_conn: psycopg.Connection[Any],
) -> None:
    add_rows(app_conn)
    named_before, others_before = scan(app_conn, SAM_NEEDLES)
    # The scan can see the user: in at least these tables before erasure.
    assert set(named_before) >= {
        "auth.users",
        "auth.identities",
        "public.profiles",
        "public.enrollments",
        "public.messages",
        "public.conversations",
        "public.notifications",
        "public.payments",
        "public.devices",
        "public.organization_members",
        "storage.objects",
        "private.rate_limit_counters",
    }
    assert any(name.startswith("private.audit_log") for name in named_before)
    assert any(name.startswith("private.analytics_events") for name in named_before)
    audit_before = app_conn.execute("select count(*) from public.audit_log").fetchone()

    summary = delete_user(app_conn, SAM_EMAIL)

    named_after, others_after = scan(app_conn, SAM_NEEDLES)
    assert dict(named_after) == ALLOWED_AFTER_ERASURE
    missing = [
        row
        for row in others_before - others_after
        if not any(row.split("\t", 1)[1].startswith(f"({gone},") for gone in GONE_WITH_THE_USER)
    ]
    assert not missing, f"rows of other people changed or vanished: {list(missing)[:5]}"

    assert summary["deleted"]["auth.users"] == 1
    assert summary["retained"] == {
        "payments": 1,
        "refunds": 1,
        "disputes": 1,
        "audit_log": summary["retained"]["audit_log"],
    }
    assert summary["retained"]["audit_log"] > 0
    payment = app_conn.execute(
        "select payer_id, payee_id::text, amount_minor, provider_intent_id"
        " from public.payments where id = %s",
        (SAM_PAYMENT,),
    ).fetchone()
    assert payment == (None, TOM, 4900, "pi_seed_sam_algebra")
    assert app_conn.execute(
        "select count(*) from public.refunds where id = %s", (SAM_REFUND,)
    ).fetchone() == (1,)
    audit_after = app_conn.execute("select count(*) from public.audit_log").fetchone()
    assert audit_before is not None and audit_after is not None
    assert audit_after[0] > audit_before[0], "erasure keeps the log and records itself"
    pseudonymous = app_conn.execute(
        "select count(*) from public.audit_log where old_data ->> 'payer_id' = %s",
        (summary["erasure_id"],),
    ).fetchone()
    assert pseudonymous is not None and pseudonymous[0] >= 1, "payer replaced by the erasure id"


def test_erased_messages_stay_as_tombstones_in_the_others_history(
    app_conn: psycopg.Connection[Any],
) -> None:
    delete_user(app_conn, SAM)
    rows = app_conn.execute(
        "select id::text, sender_id::text, body, deleted_at is not null from public.messages"
        " where conversation_id = %s order by created_at",
        (SAM_AND_TOM,),
    ).fetchall()
    assert rows == [
        (SAM_MESSAGE, None, "", True),
        (TOM_MESSAGE_TO_SAM, TOM, "Of course, bring your working.", False),
    ]
    members = app_conn.execute(
        "select user_id::text from public.conversation_participants where conversation_id = %s",
        (SAM_AND_TOM,),
    ).fetchall()
    assert members == [(TOM,)]


def test_erasure_returns_the_files_to_delete(app_conn: psycopg.Connection[Any]) -> None:
    add_rows(app_conn)
    # Supabase Storage (and the emulation) refuses SQL deletes unless the transaction
    # allows them; the erasure does.
    with pytest.raises(errors.InsufficientPrivilege), app_conn.transaction():
        app_conn.execute("delete from storage.objects where owner_id = %s", (TOM,))
    summary = delete_user(app_conn, SAM)
    assert summary["storage_objects"] == [
        {"bucket": "avatars", "name": f"{SAM}/avatar.png"},
        {"bucket": "chat-attachments", "name": f"{SAM_AND_TOM}/photo.png"},
        {"bucket": "submissions", "name": f"{SAM}/12000000-0000-4000-8000-000000000001/answer.pdf"},
    ]
    left = app_conn.execute("select bucket_id, name from storage.objects").fetchall()
    assert left == [("course-materials", "d0000000-0000-4000-8000-000000000001/notes.pdf")]


def test_a_staff_reply_on_another_users_ticket_loses_only_its_author(
    app_conn: psycopg.Connection[Any],
) -> None:
    app_conn.execute(
        "update public.support_queries set assignee_id = null"
        " where id = '15000000-0000-4000-8000-000000000001'"
    )
    app_conn.execute("update public.profiles set role = 'admin' where id = %s", (TARA,))
    app_conn.execute(
        "update public.courses set tutor_id = %s where tutor_id = %s", (TOM, TARA)
    )  # Tara's courses move first, as an admin would do
    app_conn.execute(
        "insert into public.support_replies (query_id, author_id, body)"
        " values ('15000000-0000-4000-8000-000000000001', %s, 'Tara here: fixed.')",
        (TARA,),
    )
    summary = delete_user(app_conn, TARA)
    assert summary["anonymized"]["support_replies"] == 1
    reply = app_conn.execute(
        "select author_id, body from public.support_replies where body like 'Tara here%'"
    ).fetchone()
    assert reply == (None, "Tara here: fixed.")


def test_the_last_owner_of_an_organization_is_refused(app_conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ErasureRefusedError) as refused:
        delete_user(app_conn, TOM)
    assert str(refused.value) == (
        "not erased, nothing changed: the user is the last owner of organization(s)"
        " northside-academy: make another member an owner (or delete the organization) first"
    )
    assert resolve_user(app_conn, TOM)


def test_a_tutor_whose_courses_have_students_is_refused(app_conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ErasureRefusedError, match="teaches courses other people take: Physics"):
        delete_user(app_conn, TARA)


def test_a_student_cannot_erase_anyone(app_conn: psycopg.Connection[Any]) -> None:
    with (
        pytest.raises(errors.InsufficientPrivilege, match="only an admin or the service role"),
        acting_as(app_conn, "authenticated", SUE),
    ):
        app_conn.execute("select public.delete_user(%s)", (SID,))
    with pytest.raises(errors.InsufficientPrivilege), acting_as(app_conn, "anon"):
        app_conn.execute("select public.delete_user(%s)", (SID,))
    assert resolve_user(app_conn, SID)


def test_an_admin_can_erase_a_user(app_conn: psycopg.Connection[Any]) -> None:
    with acting_as(app_conn, "authenticated", ADMIN, keep=True):
        row = app_conn.execute("select public.delete_user(%s)", (SID,)).fetchone()
    assert row is not None and row[0]["deleted"]["auth.users"] == 1
    with pytest.raises(UnknownUserError):
        resolve_user(app_conn, SID)


def test_the_service_role_can_erase_a_user(app_conn: psycopg.Connection[Any]) -> None:
    with acting_as(app_conn, "service_role", keep=True):
        row = app_conn.execute("select public.delete_user(%s)", (SID,)).fetchone()
    assert row is not None and row[0]["deleted"]["profiles"] == 1


def test_a_failure_midway_leaves_everything(app_conn: psycopg.Connection[Any]) -> None:
    add_rows(app_conn)
    app_conn.execute(
        """
        create function public.refuse_account_delete() returns trigger language plpgsql as $$
        begin raise exception 'auth is down'; end $$;
        create trigger refuse_account_delete before delete on auth.users
        for each row execute function public.refuse_account_delete();
        """
    )
    named_before, others_before = scan(app_conn, SAM_NEEDLES)
    with pytest.raises(errors.RaiseException, match="auth is down"):
        delete_user(app_conn, SAM)
    named_after, others_after = scan(app_conn, SAM_NEEDLES)
    assert named_after == named_before
    assert others_after == others_before


# -- CLI ------------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def seeded_url(new_database: Callable[[], str]) -> str:
    """A database of its own (the CLI commits), with the project and its seed."""
    url = new_database()
    with connect(url) as conn:
        push(conn, PROJECT_ROOT / "supabase" / "migrations", PROJECT_ROOT / "policies")
        apply_seed(conn, PROJECT_ROOT / "supabase" / "seed.sql")
    return url


def test_cli_exports_and_erases(
    seeded_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    out = tmp_path / "sam.json"
    code, stdout, _ = run_cli(
        capsys, "gdpr", "export", SAM_EMAIL, "--out", str(out), "--db-url", seeded_url, "--json"
    )
    assert code == 0
    assert json.loads(stdout)["rows"]["enrollments"] == 1
    assert json.loads(out.read_text())["user_id"] == SAM

    code, stdout, _ = run_cli(capsys, "gdpr", "export", SAM, "--db-url", seeded_url)
    assert code == 0 and json.loads(stdout)["account"]["email"] == SAM_EMAIL

    code, stdout, _ = run_cli(
        capsys, "gdpr", "delete", SAM_EMAIL, "--yes", "--db-url", seeded_url, "--json"
    )
    assert code == 0 and json.loads(stdout)["deleted"]["auth.users"] == 1
    code, _, err = run_cli(capsys, "gdpr", "export", SAM_EMAIL, "--db-url", seeded_url)
    assert code == 1 and err.strip() == f"error: no user with e-mail or id '{SAM_EMAIL}'"


def test_cli_delete_needs_yes_and_a_known_user(
    app_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "gdpr", "delete", SAM_EMAIL, "--db-url", app_url)
    assert code == 1
    assert err.strip() == f"error: erasing {SAM_EMAIL} cannot be undone: run again with --yes"
    code, _, err = run_cli(
        capsys, "gdpr", "delete", "nobody@example.com", "--yes", "--db-url", app_url
    )
    assert code == 1 and err.strip() == "error: no user with e-mail or id 'nobody@example.com'"
    with connect(app_url) as conn:
        assert str(resolve_user(conn, SAM_EMAIL)) == SAM
