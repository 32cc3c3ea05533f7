"""The helpers RLS policies call read by index whatever the statistics say about the caller.

A policy helper lists the caller's rows with ``where owner_id = (select auth.uid())``. The
caller's id is unknown when the statement is planned, so the plan is costed for an average
caller; when one user owns most of a table, that average caller owns thousands of rows and a
sequential scan looks cheapest, for every user, on every request. The set-returning functions
the policies call therefore run with sequential scans off
(``supabase/migrations/20261208110000_policy_helpers_probe_by_index.sql``).
"""

from __future__ import annotations

import re

import pytest

from tests.helpers import acting_as, connect, rows_read
from tests.sync_world import SyncWorld

#: Plans depend on the server's planner: run on 15 and again on 17.
pytestmark = pytest.mark.sql_suite

#: The tickets of the one user who holds all of them.
BUSY_TICKETS = 30_000


def test_reading_replies_does_not_scan_every_ticket_when_one_user_owns_them(
    app_url: str,
) -> None:
    """Reading support replies goes through ``private.my_support_query_ids()``, planned for
    an average ticket owner: here the one who owns every ticket."""
    world = SyncWorld(app_url)
    try:
        busy, student = world.user("student"), world.user("student")
        world.sql("delete from public.support_queries")
        world.sql(
            "insert into public.support_queries (owner_id, subject, body)"
            " select %s, 'help ' || n, 'please' from generate_series(1, %s) as n",
            busy.id,
            BUSY_TICKETS,
        )
        world.sql(
            "insert into public.support_replies (query_id, author_id, body)"
            " select q.id, q.owner_id, '+' from public.support_queries as q limit 1"
        )
        world.sql("analyze public.support_queries")
        with connect(app_url) as conn, acting_as(conn, "authenticated", str(student.id)):
            replies = conn.execute("select count(*) from public.support_replies").fetchone()
            read = rows_read(conn, "public.support_queries")
    finally:
        world.close()
    assert replies == (0,), "another user's replies"
    assert read <= 10, f"{read} support_queries rows read to list a user's replies"


def test_every_set_returning_function_a_policy_calls_reads_by_index(app_url: str) -> None:
    with connect(app_url) as conn:
        named: set[str] = set()
        for qual, check in conn.execute("select qual, with_check from pg_catalog.pg_policies"):
            for expression in (qual or "", check or ""):
                named |= set(re.findall(r"private\.(\w+)\(", expression))
        rows = conn.execute(
            "select p.oid::regprocedure::text, coalesce(p.proconfig, '{}')"
            " from pg_catalog.pg_proc as p"
            " where p.pronamespace = 'private'::regnamespace and p.proname = any(%s)"
            "  and (p.proretset or p.prorettype::regtype::text like '%%[]')",
            (sorted(named),),
        ).fetchall()
    assert len(rows) >= 10, named  # the policies were read
    missing = [name for name, config in rows if "enable_seqscan=off" not in config]
    assert not missing, f"policy helpers that may scan: {missing}"
