"""Platform behaviour beyond the access matrix: payments' money rules, organizations (joining
by verified e-mail domain, the last-owner guard), the audit trail, monthly partitions and
write rate limiting, each acted out as the API would."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import errors

from pysync.rls.request import impersonate
from tests.helpers import acting_as

Conn = psycopg.Connection[Any]

ADMIN = "a0000000-0000-4000-8000-000000000001"
TOM = "b0000000-0000-4000-8000-000000000001"  # owns Northside Academy, teaches Algebra I
TARA = "b0000000-0000-4000-8000-000000000002"
SAM = "c0000000-0000-4000-8000-000000000001"  # Northside member, paid for Algebra I
SUE = "c0000000-0000-4000-8000-000000000002"
SID = "c0000000-0000-4000-8000-000000000003"
ALGEBRA = "d0000000-0000-4000-8000-000000000001"
PHYSICS = "d0000000-0000-4000-8000-000000000002"
NORTHSIDE = "20000000-0000-4000-8000-000000000001"
SAMS_PAYMENT = "22000000-0000-4000-8000-000000000001"  # 4900, of which 900 refunded
SAMS_SUBMISSION = "13000000-0000-4000-8000-000000000001"


def _sign_up(conn: Conn, email: str, *, verified: bool) -> str:
    user_id = str(uuid.uuid4())
    conn.execute(
        "insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data)"
        " values (%s, 'authenticated', 'authenticated', %s,"
        " case when %s then now() end, '{}')",
        (user_id, email, verified),
    )
    return user_id


def _role_in(conn: Conn, organization: str, user: str) -> str | None:
    row = conn.execute(
        "select role from public.organization_members where organization_id = %s and user_id = %s",
        (organization, user),
    ).fetchone()
    return None if row is None else str(row[0])


# -- organizations -------------------------------------------------------------------------


def test_verified_addresses_join_their_domains_organization(app_conn: Conn) -> None:
    at_once = _sign_up(app_conn, "Ann@Northside.example.edu", verified=True)
    later = _sign_up(app_conn, "bob@northside.example.edu", verified=False)
    stranger = _sign_up(app_conn, "cy@elsewhere.example.edu", verified=True)
    assert _role_in(app_conn, NORTHSIDE, at_once) == "member"
    assert _role_in(app_conn, NORTHSIDE, later) is None  # unverified: never
    assert _role_in(app_conn, NORTHSIDE, stranger) is None
    app_conn.execute("update auth.users set last_sign_in_at = now() where id = %s", (later,))
    assert _role_in(app_conn, NORTHSIDE, later) is None
    app_conn.execute("update auth.users set email_confirmed_at = now() where id = %s", (later,))
    assert _role_in(app_conn, NORTHSIDE, later) == "member"


def test_the_creator_of_an_organization_owns_it(app_conn: Conn) -> None:
    organization = str(uuid.uuid4())
    with acting_as(app_conn, "authenticated", SUE, keep=True):
        app_conn.execute(
            "insert into public.organizations (id, name, slug)"
            " values (%s, 'Sue''s club', 'sues-club')",
            (organization,),
        )
    with acting_as(app_conn, "authenticated", SUE):
        rows = app_conn.execute(
            "select user_id::text, role from public.organization_members"
            " where organization_id = %s",
            (organization,),
        ).fetchall()
    assert rows == [(SUE, "owner")]


def test_the_last_owner_can_be_neither_removed_nor_demoted(app_conn: Conn) -> None:
    last_owner = errors.InsufficientPrivilege
    message = "an organization must keep at least one owner"
    for statement in (
        "update public.organization_members set role = 'member' where user_id = %s",
        "delete from public.organization_members where user_id = %s",
    ):
        for actor in (TOM, ADMIN):
            with (
                acting_as(app_conn, "authenticated", actor),
                pytest.raises(last_owner, match=message),
            ):
                app_conn.execute(statement + " and organization_id = %s", (TOM, NORTHSIDE))
    # An organization admin manages members but cannot touch the owner role.
    with acting_as(app_conn, "authenticated", TOM, keep=True):
        app_conn.execute(
            "update public.organization_members set role = 'admin'"
            " where user_id = %s and organization_id = %s",
            (SAM, NORTHSIDE),
        )
    with (
        acting_as(app_conn, "authenticated", SAM),
        pytest.raises(last_owner, match="only an owner can grant or take away the owner role"),
    ):
        app_conn.execute(
            "insert into public.organization_members (organization_id, user_id, role)"
            " values (%s, %s, 'owner')",
            (NORTHSIDE, SID),
        )
    # With a second owner, the first may leave.
    with acting_as(app_conn, "authenticated", TOM, keep=True):
        app_conn.execute(
            "insert into public.organization_members (organization_id, user_id, role)"
            " values (%s, %s, 'owner')",
            (NORTHSIDE, TARA),
        )
        app_conn.execute(
            "delete from public.organization_members where user_id = %s and organization_id = %s",
            (TOM, NORTHSIDE),
        )
    assert _role_in(app_conn, NORTHSIDE, TOM) is None
    assert _role_in(app_conn, NORTHSIDE, TARA) == "owner"


def test_deleting_the_organization_or_the_owners_account_is_not_blocked(app_conn: Conn) -> None:
    app_conn.execute("delete from auth.users where id = %s", (TOM,))
    assert _role_in(app_conn, NORTHSIDE, SAM) == "member"
    with acting_as(app_conn, "authenticated", ADMIN):
        deleted = app_conn.execute(
            "delete from public.organizations where id = %s", (NORTHSIDE,)
        ).rowcount
    assert deleted == 1


def test_an_organization_with_courses_is_not_deleted_and_internal_needs_one(
    app_conn: Conn,
) -> None:
    app_conn.execute(
        "update public.courses set organization_id = %s, visibility = 'internal' where id = %s",
        (NORTHSIDE, ALGEBRA),
    )
    with pytest.raises(errors.ForeignKeyViolation), app_conn.transaction():
        app_conn.execute("delete from public.organizations where id = %s", (NORTHSIDE,))
    with (
        pytest.raises(errors.CheckViolation, match="courses_internal_needs_organization"),
        app_conn.transaction(),
    ):
        app_conn.execute(
            "update public.courses set visibility = 'internal' where id = %s", (PHYSICS,)
        )


def test_only_admins_claim_an_email_domain(app_conn: Conn) -> None:
    with (
        acting_as(app_conn, "authenticated", TOM),
        pytest.raises(errors.InsufficientPrivilege, match="e-mail domain"),
    ):
        app_conn.execute(
            "update public.organizations set email_domain = 'gmail.com' where id = %s",
            (NORTHSIDE,),
        )
    with pytest.raises(errors.CheckViolation), app_conn.transaction():
        app_conn.execute(
            "update public.organizations set email_domain = 'Upper.Example.org' where id = %s",
            (NORTHSIDE,),
        )


# -- payments ------------------------------------------------------------------------------


def _refund(conn: Conn, amount: int, status: str = "succeeded") -> None:
    with acting_as(conn, "service_role", keep=True):
        conn.execute(
            "insert into public.refunds (payment_id, amount_minor, status, provider_refund_id)"
            " values (%s, %s, %s, %s)",
            (SAMS_PAYMENT, amount, status, f"re_{uuid.uuid4().hex}"),
        )


def test_refunds_never_exceed_the_payment(app_conn: Conn) -> None:
    _refund(app_conn, 4000)  # 900 + 4000 = 4900: all of it
    _refund(app_conn, 50, status="failed")  # failed refunds return nothing
    with pytest.raises(errors.CheckViolation, match="refunds cannot exceed the payment"):
        _refund(app_conn, 1)
    with (
        pytest.raises(errors.CheckViolation, match="refunds cannot exceed the payment"),
        app_conn.transaction(),
    ):
        app_conn.execute(
            "update public.refunds set status = 'pending' where amount_minor = 50"
            " and payment_id = %s",
            (SAMS_PAYMENT,),
        )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"session_id": "10000000-0000-4000-8000-000000000002", "course_id": ALGEBRA},
            "exactly one session or course",
        ),
        ({}, "exactly one session or course"),
        ({"course_id": ALGEBRA, "payee_id": SID}, "payments are made to a tutor"),
        ({"course_id": PHYSICS}, "to its tutor"),
        ({"course_id": ALGEBRA, "currency": "eur"}, "currency"),
    ],
)
def test_payments_name_one_subject_paid_to_its_tutor(
    app_conn: Conn, values: dict[str, str], message: str
) -> None:
    row = {"payer_id": SAM, "payee_id": TOM, "currency": "EUR", **values}
    with acting_as(app_conn, "service_role"), pytest.raises(errors.CheckViolation, match=message):
        app_conn.execute(
            "insert into public.payments (payer_id, payee_id, session_id, course_id,"
            " amount_minor, currency, provider, provider_intent_id)"
            " values (%(payer_id)s, %(payee_id)s, %(session_id)s, %(course_id)s, 100,"
            " %(currency)s, 'stripe', 'pi_test')",
            {"session_id": None, "course_id": None, **row},
        )


def test_a_deleted_account_leaves_its_payments_behind(app_conn: Conn) -> None:
    app_conn.execute("delete from auth.users where id = %s", (SAM,))
    row = app_conn.execute(
        "select payer_id, payee_id::text, amount_minor from public.payments where id = %s",
        (SAMS_PAYMENT,),
    ).fetchone()
    assert row == (None, TOM, 4900)


# -- audit log -----------------------------------------------------------------------------


def _audit(conn: Conn, table: str, row_id: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "select action, actor::text, actor_role, actor_app_role, old_data, new_data"
        " from public.audit_log where table_name = %s and row_id = %s order by id",
        (table, row_id),
    ).fetchall()


def test_role_changes_and_deactivations_are_audited(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", SID, keep=True):
        app_conn.execute("update public.profiles set display_name = 'Sidney' where id = %s", (SID,))
    assert _audit(app_conn, "public.profiles", SID) == []  # not a sensitive change
    with acting_as(app_conn, "authenticated", ADMIN, keep=True):
        app_conn.execute("update public.profiles set role = 'tutor' where id = %s", (SID,))
        app_conn.execute("update public.profiles set deleted_at = now() where id = %s", (SID,))
    rows = _audit(app_conn, "public.profiles", SID)
    assert [r[:4] for r in rows] == [("update", ADMIN, "authenticated", "admin")] * 2
    assert (rows[0][4]["role"], rows[0][5]["role"]) == ("student", "tutor")
    assert rows[1][4]["deleted_at"] is None and rows[1][5]["deleted_at"] is not None


def test_payment_changes_are_audited(app_conn: Conn) -> None:
    payment = str(uuid.uuid4())
    with acting_as(app_conn, "service_role", keep=True):
        app_conn.execute(
            "insert into public.payments (id, payer_id, payee_id, course_id, amount_minor,"
            " currency, provider, provider_intent_id)"
            " values (%s, %s, %s, %s, 1200, 'USD', 'stripe', 'pi_audit')",
            (payment, SUE, TOM, ALGEBRA),
        )
        app_conn.execute(
            "update public.payments set status = 'succeeded' where id = %s", (payment,)
        )
    rows = _audit(app_conn, "public.payments", payment)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("insert", None, "service_role"),
        ("update", None, "service_role"),
    ]
    assert rows[1][4]["status"] == "pending" and rows[1][5]["status"] == "succeeded"


def test_enrollments_are_audited(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", SID, keep=True):
        enrollment = app_conn.execute(
            "insert into public.enrollments (student_id, course_id) values (%s, %s) returning id",
            (SID, ALGEBRA),
        ).fetchone()
        assert enrollment is not None
        app_conn.execute(
            "update public.enrollments set status = 'cancelled' where id = %s", enrollment
        )
    rows = _audit(app_conn, "public.enrollments", str(enrollment[0]))
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("insert", SID, "student"),
        ("update", SID, "student"),
    ]


def test_grades_are_audited_without_the_work(app_conn: Conn) -> None:
    with acting_as(app_conn, "authenticated", TOM, keep=True):
        app_conn.execute(
            "update public.submissions set feedback = 'Nice start' where id = %s",
            (SAMS_SUBMISSION,),
        )
    assert _audit(app_conn, "public.submissions", SAMS_SUBMISSION) == []  # not a grade
    with acting_as(app_conn, "authenticated", TOM, keep=True):
        app_conn.execute(
            "update public.submissions set grade = 91, status = 'graded' where id = %s",
            (SAMS_SUBMISSION,),
        )
    rows = _audit(app_conn, "public.submissions", SAMS_SUBMISSION)
    assert len(rows) == 1
    action, actor, _, app_role, old, new = rows[0]
    assert (action, actor, app_role) == ("update", TOM, "tutor")
    assert (old["grade"], new["grade"], new["status"], new["graded_by"]) == (
        None,
        91,
        "graded",
        TOM,
    )
    assert "body" not in new and "feedback" not in new


def test_the_audit_log_is_append_only_for_everyone(app_conn: Conn) -> None:
    entry = app_conn.execute("select id from public.audit_log limit 1").fetchone()
    assert entry is not None
    for statement in ("update public.audit_log set actor_role = 'x' where id = %s",
                      "delete from public.audit_log where id = %s"):  # fmt: skip
        with (
            pytest.raises(errors.InsufficientPrivilege, match="append-only"),
            app_conn.transaction(),
        ):
            app_conn.execute(statement, entry)
        for role, user in (("authenticated", ADMIN), ("service_role", None)):
            with acting_as(app_conn, role, user), pytest.raises(errors.InsufficientPrivilege):
                app_conn.execute(statement, entry)
    with acting_as(app_conn, "authenticated", ADMIN):
        assert app_conn.execute("select count(*) from public.audit_log").fetchone() != (0,)
    with acting_as(app_conn, "authenticated", TOM):
        assert app_conn.execute("select count(*) from public.audit_log").fetchone() == (0,)


# -- partitions ----------------------------------------------------------------------------


def _maintain(conn: Conn, as_of: str) -> set[tuple[str, str]]:
    rows = conn.execute("select * from private.maintain_partitions(%s)", (as_of,)).fetchall()
    return {(str(a), str(p)) for a, p in rows}


def _exists(conn: Conn, name: str) -> bool:
    row = conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()
    return bool(row and row[0])


def test_maintenance_across_a_month_boundary(app_conn: Conn) -> None:
    months = ["y2027m01", "y2027m02", "y2027m03", "y2027m04", "y2027m05"]
    before = {m: _exists(app_conn, f"private.audit_log_{m}") for m in months}
    done = _maintain(app_conn, "2027-01-31 23:59:00+00")
    assert all(_exists(app_conn, f"private.audit_log_{m}") for m in months[:4])
    assert not _exists(app_conn, "private.audit_log_y2027m05")
    assert ("created", "private.audit_log_y2027m04") in done or before["y2027m04"]
    assert ("created", "private.analytics_events_y2027m04") in done or before["y2027m04"]

    done = _maintain(app_conn, "2027-02-01 00:01:00+00")
    assert done == {
        ("created", "private.audit_log_y2027m05"),
        ("created", "private.analytics_events_y2027m05"),
    }
    assert _maintain(app_conn, "2027-02-01 00:01:00+00") == set()  # re-runnable

    placed = app_conn.execute(
        "insert into public.audit_log (at, actor_role, action, table_name) values"
        " ('2027-01-31 23:59:59.999999+00', 'postgres', 'insert', 't'),"
        " ('2027-02-01 00:00:00+00', 'postgres', 'insert', 't')"
        " returning tableoid::regclass::text"
    ).fetchall()
    assert placed == [("private.audit_log_y2027m01",), ("private.audit_log_y2027m02",)]


def test_expired_months_are_dropped_audit_kept_longer(app_conn: Conn) -> None:
    _maintain(app_conn, "2027-01-15 00:00:00+00")
    done = _maintain(app_conn, "2028-03-01 00:00:00+00")  # analytics keep 13 months
    assert ("dropped", "private.analytics_events_y2027m01") in done
    assert not _exists(app_conn, "private.analytics_events_y2027m01")
    assert _exists(app_conn, "private.analytics_events_y2027m02")
    assert _exists(app_conn, "private.audit_log_y2027m01")  # audit: 84 months
    assert not any(p.startswith("private.audit_log") for a, p in done if a == "dropped")


def test_rows_without_a_partition_land_in_the_default_and_are_moved(app_conn: Conn) -> None:
    row = app_conn.execute(
        "insert into public.audit_log (at, actor_role, action, table_name)"
        " values ('2031-06-15 12:00:00+00', 'postgres', 'insert', 't')"
        " returning id, tableoid::regclass::text"
    ).fetchone()
    assert row is not None and row[1] == "private.audit_log_default"
    done = _maintain(app_conn, "2026-12-01 00:00:00+00")
    assert ("created", "private.audit_log_y2031m06") in done
    assert ("emptied", "private.audit_log_default") in done
    moved = app_conn.execute(
        "select tableoid::regclass::text from public.audit_log where id = %s", (row[0],)
    ).fetchone()
    assert moved == ("private.audit_log_y2031m06",)
    assert app_conn.execute("select count(*) from private.audit_log_default").fetchone() == (0,)


def test_only_service_role_may_run_maintenance(app_conn: Conn) -> None:
    with acting_as(app_conn, "service_role"):
        app_conn.execute("select * from public.maintain_partitions()")
    for role, user in (("authenticated", ADMIN), ("anon", None)):
        with acting_as(app_conn, role, user), pytest.raises(errors.InsufficientPrivilege):
            app_conn.execute("select * from public.maintain_partitions()")
    with acting_as(app_conn, "service_role"), pytest.raises(errors.InsufficientPrivilege):
        app_conn.execute("select * from private.maintain_partitions('2040-01-01')")


def test_analytics_events_keep_to_a_plausible_time(app_conn: Conn) -> None:
    insert = (
        "insert into public.analytics_events (user_id, platform, app_version, name, at)"
        " values (%s, 'ios', '1.0.0', 'app_opened', now() + %s::interval)"
    )
    with acting_as(app_conn, "authenticated", SAM, keep=True):
        app_conn.execute(insert, (SAM, "-3 days"))  # queued offline, sent late
    for offset in ("2 hours", "-200 days"):
        with (
            acting_as(app_conn, "authenticated", SAM),
            pytest.raises(errors.CheckViolation, match="within the last 90 days"),
        ):
            app_conn.execute(insert, (SAM, offset))


# -- rate limiting -------------------------------------------------------------------------

WEB = {"x-client-info": "supabase-js-web/2.45.0"}
MOBILE = {"x-client-info": "supabase-flutter/2.5.0"}


@contextmanager
def _rules(conn: Conn, **rules: tuple[int, int]) -> Iterator[None]:
    """Set rate limit rules (platform → (max_writes, window_seconds)) for the test."""
    for platform, (max_writes, window) in rules.items():
        conn.execute(
            "update private.rate_limit_rules set max_writes = %s, window_seconds = %s"
            " where platform = %s",
            (max_writes, window, platform),
        )
    yield


def _request(conn: Conn, role: str, user: str | None, method: str, headers: dict[str, str]) -> None:
    """One API request's pre-request check, kept (counted) unless it raises."""
    try:
        with conn.transaction():
            impersonate(
                conn, role, uuid.UUID(user) if user else None, method=method, headers=headers
            )
            conn.execute("select private.check_request()")
    finally:
        conn.execute("reset role")
        for name in ("request.jwt.claims", "request.jwt.claim.sub", "request.method"):
            conn.execute("select set_config(%s, '', true)", (name,))


def _writes_until_limited(conn: Conn, user: str | None, headers: dict[str, str]) -> int:
    for done in range(50):
        try:
            _request(conn, "authenticated" if user else "anon", user, "POST", headers)
        except psycopg.Error as exc:
            assert exc.sqlstate == "PT429"
            return done
    return 50


def test_reads_are_never_limited(app_conn: Conn) -> None:
    with _rules(app_conn, web=(1, 86400)):
        for method in ("GET", "HEAD", "OPTIONS", "GET", "GET"):
            _request(app_conn, "authenticated", SAM, method, WEB)
        # A POST that PostgREST runs read-only (a stable RPC) is a read too.
        with app_conn.transaction():
            app_conn.execute("set transaction read only")
            for _ in range(3):
                impersonate(app_conn, "authenticated", uuid.UUID(SAM), method="POST", headers=WEB)
                app_conn.execute("select private.check_request()")
            app_conn.execute("reset role")
        assert _writes_until_limited(app_conn, SAM, WEB) == 1


def test_web_and_mobile_have_their_own_limits(app_conn: Conn) -> None:
    with _rules(app_conn, web=(3, 86400), mobile=(6, 86400), other=(2, 86400)):
        assert _writes_until_limited(app_conn, SAM, WEB) == 3
        assert _writes_until_limited(app_conn, SAM, MOBILE) == 6
        assert _writes_until_limited(app_conn, SUE, {"x-client-platform": "android"}) == 6
        assert _writes_until_limited(app_conn, SID, {"x-client-info": "curl/8.0"}) == 2
        assert _writes_until_limited(app_conn, TOM, WEB) == 3  # per user


def test_the_error_is_pt429_with_a_retry_hint(app_conn: Conn) -> None:
    with _rules(app_conn, web=(1, 86400)):
        _request(app_conn, "authenticated", SAM, "PATCH", WEB)
        with pytest.raises(psycopg.Error) as caught:
            _request(app_conn, "authenticated", SAM, "DELETE", WEB)
    diag = caught.value.diag
    assert caught.value.sqlstate == "PT429"
    assert diag.message_primary == "rate limit exceeded"
    assert diag.message_hint is not None and diag.message_hint.startswith("retry after ")
    seconds = int(diag.message_hint.split()[2])
    assert 1 <= seconds <= 86400


def test_the_window_resets(app_conn: Conn) -> None:
    with _rules(app_conn, web=(2, 1)):
        assert _writes_until_limited(app_conn, SAM, WEB) == 2
        time.sleep(1.05)  # the next one-second window
        assert _writes_until_limited(app_conn, SAM, WEB) == 2


def test_service_role_is_never_limited_and_anon_is_limited_by_address(app_conn: Conn) -> None:
    with _rules(app_conn, web=(1, 86400)):
        for _ in range(5):
            _request(app_conn, "service_role", None, "POST", WEB)
        first = {**WEB, "x-forwarded-for": "203.0.113.7, 10.0.0.1"}
        second = {**WEB, "x-forwarded-for": "198.51.100.2"}
        assert _writes_until_limited(app_conn, None, first) == 1
        assert _writes_until_limited(app_conn, None, second) == 1
    keys = app_conn.execute(
        "select key from private.rate_limit_counters where key like 'ip:%' order by key"
    ).fetchall()
    assert keys == [("ip:198.51.100.2",), ("ip:203.0.113.7",)]


def test_counters_stay_one_row_per_caller_and_old_windows_are_pruned(app_conn: Conn) -> None:
    app_conn.execute(
        "insert into private.rate_limit_counters (key, platform, window_start, writes)"
        " select 'user:' || gen_random_uuid(), 'web', now() - interval '2 days', 1"
        " from generate_series(1, 20)"
    )
    with _rules(app_conn, web=(100, 60)):
        for _ in range(5):
            _request(app_conn, "authenticated", SAM, "POST", WEB)
    rows = app_conn.execute(
        "select key, writes from private.rate_limit_counters order by key"
    ).fetchall()
    assert rows == [(f"user:{SAM}", 5)]


@pytest.mark.parametrize(
    ("headers", "platform"),
    [
        ({"x-client-info": "supabase-flutter/2.5.0"}, "mobile"),
        ({"x-client-info": "supabase-js-web/2.45.0"}, "web"),
        ({"x-client-info": "supabase-js-react-native/2.45.0"}, "mobile"),
        ({"x-client-info": "supabase-js-node/2.45.0"}, "other"),
        ({"x-client-platform": "iOS", "x-client-info": "supabase-js-web/2.45.0"}, "mobile"),
        ({"x-client-platform": "web"}, "web"),
        ({}, "other"),
    ],
)
def test_the_platform_comes_from_the_client_headers(
    app_conn: Conn, headers: dict[str, str], platform: str
) -> None:
    row = app_conn.execute(
        "select private.request_platform(%s::jsonb)", (json.dumps(headers),)
    ).fetchone()
    assert row == (platform,)
