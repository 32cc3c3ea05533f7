"""Statements on the sync hot paths keep their plans for the session.

A statement that PostgreSQL plans again on every call costs more than most of the work of a
small pull or push (0.1-0.5 ms each, against about 3 ms for a whole pull). It happened in
every shape over the rounds of issue 10: SQL functions with a SET clause (never inlined, their
statement planned anew in every calling statement), dynamic ``EXECUTE`` where a static
statement would do, and PL/pgSQL statements whose plan cache kept preferring a custom plan
(``= any($1)`` estimated for an array of unknown length). None of them changes a result, so
no functional test sees one come back. pg_stat_statements does: with ``track = all`` and
``track_planning`` it counts calls and plans of every nested statement.

The hot paths are a push and a pull. ``sync_checksums`` (a reconcile, after a repair or on
request) still builds its per-table statement per call, and so does a page of a bucket served
whole (``sync_serve_rows``: planned once per page of up to thousands of rows).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from pysync.client import _as_authenticator
from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway import PostgresGateway
from pysync.localdb import LocalDatabase
from pysync.migrate import push
from pysync.sync import SyncCache
from tests.helpers import PROJECT_ROOT, acting_as, connect, rows_read
from tests.sync_world import RefPuller, SyncWorld

#: Plans depend on the server's planner: run on 15 and again on 17.
pytestmark = pytest.mark.sql_suite

#: Rounds of each kind of request; a statement planned on at least half its calls fails.
ROUNDS = 24

#: A statement planned on every call for sure (``EXECUTE`` plans every time): the control that
#: shows the check sees what it looks for.
CONTROL = "select count(*) from pg_catalog.pg_class where oid = "


def _preloaded(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "select 'pg_stat_statements' = any(string_to_array("
        " replace(current_setting('shared_preload_libraries'), ' ', ''), ','))"
    ).fetchone()
    return bool(row and row[0])


@pytest.fixture
def tracked_url(local_db: LocalDatabase) -> Iterator[str]:
    """A database with the project's migrations whose sessions track every nested statement
    with its planning (set on the database, so the gateway's own sessions track too), and
    whose tables are never auto-analyzed: new statistics invalidate the plans that read a
    table, and the next call plans again for a reason that is not the statement's."""
    name = f"plans_{uuid.uuid4().hex[:12]}"
    url = local_db.create_database(name)
    try:
        with local_db.admin_connect(name) as admin:
            if not _preloaded(admin):
                pytest.skip(
                    "pg_stat_statements is not preloaded: this cluster was started before "
                    "pysync preloaded it (pysync db stop, then pysync db start)"
                )
            for setting, value in (
                ("pg_stat_statements.track", "all"),
                ("pg_stat_statements.track_planning", "on"),
            ):
                admin.execute(
                    sql.SQL("alter database {} set {} = {}").format(
                        sql.Identifier(name), sql.Identifier(setting), sql.Literal(value)
                    )
                )
        with connect(url) as conn:
            push(conn, PROJECT_ROOT / "supabase" / "migrations", PROJECT_ROOT / "policies")
        with local_db.admin_connect(name) as admin:
            tables = admin.execute(
                "select n.nspname, c.relname from pg_catalog.pg_class as c"
                " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
                " where c.relkind = 'r' and n.nspname in ('public', 'private', 'realtime', 'auth')"
            ).fetchall()
            for schema, table in tables:
                admin.execute(
                    sql.SQL("alter table {} set (autovacuum_enabled = off)").format(
                        sql.Identifier(schema, table)
                    )
                )
        yield url
    finally:
        local_db.drop_database(name)


def _replanned(admin: psycopg.Connection[Any]) -> dict[str, tuple[int, int]]:
    """Nested statements of the connected database planned on at least half their calls
    (and called at least ``ROUNDS`` times): normalized text -> (calls, plans)."""
    rows = admin.execute(
        "select s.query, s.calls, s.plans from extensions.pg_stat_statements as s"
        " where s.dbid = (select d.oid from pg_catalog.pg_database as d"
        "  where d.datname = current_database())"
        " and not s.toplevel and s.calls >= %s and s.plans * 2 >= s.calls",
        (ROUNDS,),
    ).fetchall()
    return {" ".join(str(query).split()): (calls, plans) for query, calls, plans in rows}


def test_pushes_and_pulls_plan_nothing_per_call(
    local_db: LocalDatabase, tracked_url: str, tmp_path: Path
) -> None:
    """One user's requests on one session (a gateway of one connection), the platform's
    writes on another: after each statement's first five calls (custom plans by design),
    nothing in a push or a pull is planned again."""
    world = SyncWorld(tracked_url)
    world.api.close()
    world.api = PostgresGateway.connect(
        _as_authenticator(tracked_url), jwt_secret=LOCAL_JWT_SECRET, max_size=1
    )
    dbname = str(conninfo_to_dict(tracked_url)["dbname"])
    try:
        tutor, student = world.user("tutor"), world.user("student")
        course = world.course(tutor, lessons=3)
        world.enroll(student, course)
        conversation = str(world.client(student).conversations.start_direct(tutor.id).id)
        with (
            connect(tracked_url) as server,
            local_db.admin_connect(dbname) as admin,
            SyncCache.open(world.client(student), tmp_path / "student.db") as cache,
            SyncCache.open(world.client(tutor), tmp_path / "tutor.db") as teacher,
        ):
            server.autocommit = True
            # The ledger of a device that has pushed for a while: with few stored results
            # the planner likes a generic plan for any lookup in it anyway.
            server.execute(
                "insert into private.sync_push_results (user_id, client_id, op_id, result)"
                " select %s, %s, -n, '{}' from generate_series(1, 5000) as n",
                (student.id, cache.client_id),
            )
            server.execute("analyze private.sync_push_results")

            def each_kind(rounds: int) -> None:
                for n in range(rounds):
                    message = cache.insert("messages", {**says, "body": f"m{n}"})
                    cache.push()  # each op alone: the insert, then the update
                    cache.update("messages", message, {"body": f"edited {n}"})
                    cache.push()
                    query = cache.insert(
                        "support_queries",
                        {"owner_id": me, "subject": f"help {n}", "body": "please"},
                    )
                    cache.push()
                    cache.update("support_queries", query, {"subject": f"help again {n}"})
                    cache.push()
                    device = cache.insert(
                        "devices", {"user_id": me, "device_id": f"phone {n}", "platform": "ios"}
                    )
                    cache.push()
                    cache.delete("devices", device)
                    cache.push()
                    cache.update("profiles", me, {"display_name": f"Student {n}"})
                    cache.push()
                    cache.update("conversation_participants", seat, {"last_read_at": now()})
                    cache.push()
                    module = teacher.insert(
                        "course_content",
                        {
                            "course_id": course,
                            "kind": "module",
                            "position": 100 + n,
                            "title": f"Module {n}",
                        },
                    )
                    teacher.push()
                    teacher.insert(
                        "course_content",
                        {
                            "course_id": course,
                            "kind": "lesson",
                            "parent_id": module,
                            "position": 200 + n,
                            "title": f"Lesson {n}",
                        },
                    )
                    teacher.push()
                for _ in range(rounds):
                    cache.pull()  # nothing changed
                    teacher.pull()
                for n in range(rounds):
                    server.execute(
                        "update public.course_content set title = %s"
                        " where id = (select id from public.course_content"
                        " where course_id = %s order by position limit 1)",
                        (f"Lesson {n}", course),
                    )
                    cache.pull()  # one change
                    teacher.pull()

            cache.pull()
            teacher.pull()
            me = str(student.id)
            says = {"conversation_id": conversation, "sender_id": me}
            (seat,) = cache.query(
                "SELECT id FROM conversation_participants WHERE user_id = ?", (me,)
            )[0].values()

            def now() -> str:
                return datetime.now(UTC).isoformat()

            each_kind(6)
            admin.execute(
                "select extensions.pg_stat_statements_reset(0, d.oid, 0)"
                " from pg_catalog.pg_database as d where d.datname = current_database()"
            )
            each_kind(ROUNDS)
            admin.execute(
                sql.SQL(
                    "do $$ begin for i in 1..{} loop execute format('{}%s', i); end loop; end $$"
                ).format(sql.Literal(ROUNDS), sql.SQL(CONTROL))
            )
            replanned = _replanned(admin)
    finally:
        world.close()
    assert any(query.startswith(CONTROL) for query in replanned), replanned
    unexpected = {query: n for query, n in replanned.items() if not query.startswith(CONTROL)}
    assert not unexpected, "planned on every call (calls, plans): " + "; ".join(
        f"{query[:160]} {counts}" for query, counts in unexpected.items()
    )


#: Rows of the big bucket, and the page a pull asks for.
BIG_BUCKET, PAGE = 4000, 400


def _pull_reading(
    url: str, user_id: str, request: dict[str, Any], table: str
) -> tuple[dict[str, Any], int]:
    """``sync_pull(request)`` as the user in a transaction of its own, and the heap rows of
    ``table`` that the transaction read."""
    with connect(url) as conn, acting_as(conn, "authenticated", user_id):
        row = conn.execute(
            "select public.sync_pull(%s::jsonb)", (psycopg.types.json.Jsonb(request),)
        ).fetchone()
        read = rows_read(conn, table)
    assert row is not None
    return dict(row[0]), read


@pytest.mark.parametrize("version", [2, 3])
def test_a_first_page_reads_the_page_not_the_bucket(app_url: str, version: int) -> None:
    """A first sync's first page of a big bucket reads about a page of its rows, whatever
    the planner believes about the bucket's size.

    ``bucket = any($1) order by bucket, id limit n`` has a plan whose cost is the page: the
    (bucket, id) index in order, stopping after n rows. Its alternatives read the whole bucket
    and sort it (building every row's JSON under RLS on the way): a bitmap scan and a sort
    when the statistics make the bucket look small, an incremental sort over the
    (bucket, sync_xid) index when they make its groups look small. Here the statistics are
    those of a course that grew after the table was last analyzed (300 courses of ten rows,
    then one of 4,000), the state a course is in right after its content is imported."""
    world = SyncWorld(app_url)
    try:
        tutor, student = world.user("tutor"), world.user("student")
        world.sql(
            "insert into public.courses (id, tutor_id, title, status, published_at)"
            " select gen_random_uuid(), %s, 'Small ' || n, 'published', now()"
            " from generate_series(1, 300) as n",
            tutor.id,
        )
        world.sql(
            "insert into public.course_content (course_id, kind, position, title, body)"
            " select c.id, 'lesson', n, 'Lesson ' || n, 'text'"
            " from public.courses as c cross join generate_series(1, 10) as n"
            " where c.tutor_id = %s",
            tutor.id,
        )
        big = world.course(tutor, lessons=0)
        world.sql("analyze public.course_content")
        world.sql(
            "insert into public.course_content (course_id, kind, position, title, body)"
            " select %s, 'lesson', n, 'Lesson ' || n, md5(n::text) || md5(n::text)"
            " from generate_series(1, %s) as n",
            big,
            BIG_BUCKET,
        )
        world.enroll(student, big)
        request = {"version": version, "buckets": {}, "subscriptions": [], "limit": PAGE}
        response, read = _pull_reading(app_url, str(student.id), request, "public.course_content")
    finally:
        world.close()
    served = {e["key"]: e for e in response["buckets"] if e["table"] == "course_content"}
    assert served[big]["complete"] is False, "the bucket fits one page: the test proves nothing"
    assert len(served[big]["rows"] or served[big]["by_column"][0]) <= PAGE
    assert read <= 2 * PAGE, f"{read} course_content rows read for a page of {PAGE}"


def test_a_no_change_pull_probes_by_index_whatever_the_statistics(app_url: str) -> None:
    """A pull in which nothing changed probes each held bucket through its (bucket, sync_xid)
    index: its cost is the caller's buckets, never a table's size.

    The probes are ``exists (select 1 from <table> where <bucket> = $k and sync_xid …)``
    with a generic plan. When the statistics say a bucket key holds many rows (one user with
    thousands of support tickets), ``exists`` expects a match within a few rows and a
    sequential scan looks cheapest: every pull of every user holding such a bucket then read
    the whole table."""
    world = SyncWorld(app_url)
    try:
        busy, student = world.user("student"), world.user("student")
        world.sql(
            "insert into public.support_queries (owner_id, subject, body)"
            " select %s, 'help ' || n, 'please' from generate_series(1, 3000) as n",
            busy.id,
        )
        world.sql("analyze public.support_queries")
        puller = RefPuller(world.gateway(student), version=3)
        puller.pull()
        assert f"support_queries:{student.id}" in puller.states
        request = {"version": 3, "buckets": puller.states, "subscriptions": []}
        response, read = _pull_reading(app_url, str(student.id), request, "public.support_queries")
    finally:
        world.close()
    assert not response["buckets"], "nothing changed"
    assert read <= 10, f"{read} support_queries rows read by a pull in which nothing changed"


def _pushing(url: str, user_id: str, ops: list[dict[str, Any]]) -> tuple[Any, dict[str, int]]:
    """``sync_push(ops)`` as the user in a transaction of its own, and the heap rows that
    transaction read from each of the tables the statistics trap could make it scan."""
    with connect(url) as conn, acting_as(conn, "authenticated", user_id):
        row = conn.execute(
            "select public.sync_push(%s::uuid, %s::jsonb)",
            (str(uuid.uuid4()), psycopg.types.json.Jsonb(ops)),
        ).fetchone()
        read = {
            table: rows_read(conn, f"public.{table}")
            for table in ("support_queries", "support_replies", "messages")
        }
    assert row is not None
    return row[0], read


def test_a_push_probes_by_index_whatever_the_statistics(app_url: str) -> None:
    """The push path's policies, guards and triggers probe by key too (the ticket a reply
    belongs to, the conversation a message goes to). One user's 3,000 tickets, each with a
    reply, and 3,000 messages in one conversation, analyzed, must not turn another user's
    push into a scan of those tables."""
    world = SyncWorld(app_url)
    try:
        busy, student, tutor = world.user("student"), world.user("student"), world.user("tutor")
        world.sql(
            "insert into public.support_queries (owner_id, subject, body)"
            " select %s, 'help ' || n, 'please' from generate_series(1, 3000) as n",
            busy.id,
        )
        world.sql(
            "insert into public.support_replies (query_id, author_id, body)"
            " select q.id, q.owner_id, 'more' from public.support_queries as q"
            " where q.owner_id = %s",
            busy.id,
        )
        world.sql(
            "insert into public.messages (conversation_id, sender_id, body)"
            " select %s, %s, 'm' || n from generate_series(1, 3000) as n",
            world.direct_conversation(busy, tutor),
            busy.id,
        )
        talk = world.direct_conversation(student, tutor)
        world.sql("analyze public.support_queries, public.support_replies, public.messages")
        ticket = str(uuid.uuid4())
        ops: list[dict[str, Any]] = [
            {
                "op_id": n + 1,
                "tx_id": f"t{n + 1}",
                "kind": "insert",
                "id": str(uuid.uuid4()) if n else ticket,
                "base_version": None,
                "priority": "normal",
                **op,
            }
            for n, op in enumerate(
                [
                    {
                        "table": "support_queries",
                        "data": {"owner_id": str(student.id), "subject": "Hi", "body": "Help"},
                    },
                    {
                        "table": "support_replies",
                        "data": {"query_id": ticket, "author_id": str(student.id), "body": "+"},
                    },
                    {
                        "table": "messages",
                        "data": {
                            "conversation_id": talk,
                            "sender_id": str(student.id),
                            "body": "hello",
                        },
                    },
                ]
            )
        ]
        response, read = _pushing(app_url, str(student.id), ops)
    finally:
        world.close()
    assert [r["status"] for r in response["results"]] == ["applied"] * 3, response
    assert all(rows <= 20 for rows in read.values()), read


def test_a_push_reads_the_ledger_by_the_requests_op_ids(app_url: str) -> None:
    """Finding a request's stored results (is any op a retry?) reads about the request's ops,
    not every result the device ever stored: with 3,000 stored, a push of three new ops reads
    a handful of ledger rows, and a retried op is still answered from the ledger.

    With statistics that say the ledger is small, the generic plan of ``op_id = any($2)``
    reached the client's rows by (user_id, client_id) and tested every one of them against
    the request's ids: 42 ms a request of 1,000 ops with 9,000 stored."""
    world = SyncWorld(app_url)
    client_id = str(uuid.uuid4())
    try:
        student = world.user("student")
        # The statistics of a ledger that grew after it was last analyzed: a device draining
        # its queue adds 1,000 results a request, far faster than autovacuum analyzes.
        world.sql("analyze private.sync_push_results")
        world.sql(
            "insert into private.sync_push_results (user_id, client_id, op_id, result)"
            " select %s, %s, n, jsonb_build_object('op_id', n, 'status', 'applied', 'version', 1)"
            " from generate_series(1, 3000) as n",
            student.id,
            client_id,
        )
        ledger = world.sql("select 'private.sync_push_results'::regclass::oid")[0][0]
        ops: list[dict[str, Any]] = [
            {
                "op_id": op_id,
                "kind": "insert",
                "table": "support_queries",
                "id": str(uuid.uuid4()),
                "base_version": None,
                "priority": "normal",
                "data": {"owner_id": str(student.id), "subject": f"Hi {op_id}", "body": "Help"},
            }
            for op_id in (2999, 3001, 3002, 3003)
        ]
        with connect(app_url) as conn, acting_as(conn, "authenticated", str(student.id)):
            row = conn.execute(
                "select public.sync_push(%s::uuid, %s::jsonb)",
                (client_id, psycopg.types.json.Jsonb(ops)),
            ).fetchone()
            read = conn.execute(
                "select pg_stat_get_xact_tuples_returned(%s::oid)"
                " + (select coalesce(sum(pg_stat_get_xact_tuples_fetched(i.indexrelid)), 0)"
                "    from pg_catalog.pg_index as i where i.indrelid = %s::oid)",
                (ledger, ledger),
            ).fetchone()
    finally:
        world.close()
    assert row is not None and read is not None
    results = row[0]["results"]
    assert [(r["op_id"], r["status"], r.get("replayed")) for r in results] == [
        (2999, "applied", True),
        (3001, "applied", None),
        (3002, "applied", None),
        (3003, "applied", None),
    ]
    assert read[0] <= 20, f"{read[0]} ledger rows read for a push of four ops"
