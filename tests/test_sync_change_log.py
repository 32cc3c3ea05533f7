"""The bucket change log (``private.sync_bucket_changes``): the change check answers from it
exactly as the tables and tombstones would, never misses a change past its horizon, and spares
a pull in which nothing changed every synced table it does not need.

The log is an accelerator: ``private.sync_changed_buckets`` probes it instead of each bucket's
own table. These tests hold it to the truth it replaces (rows whose ``sync_xid`` a cursor has
not seen, and tombstones), including transactions that overlap a cursor, rolled-back
savepoints and rows that move between buckets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import acting_as, connect
from tests.sync_world import RefPuller, SyncWorld, enrolled

STUDENTS = 3


@pytest.fixture(scope="module")
def world(app_url: str) -> Iterator[SyncWorld]:
    world = SyncWorld(app_url)
    yield world
    world.close()


def _truth(conn: psycopg.Connection[Any], keys: list[str], cursor: str) -> set[str]:
    """The tutoring_sessions buckets (one a student) with a row or a tombstone that ``cursor``
    has not seen: what the change check answered from the tables before the log
    (20261205090000)."""
    rows = conn.execute(
        "select k from unnest(%(keys)s::text []) as k"
        " where exists (select 1 from public.tutoring_sessions as x"
        "     where x.student_id = k::uuid"
        "     and x.sync_xid >= pg_snapshot_xmin(%(cursor)s::pg_snapshot)"
        "     and not pg_visible_in_snapshot(x.sync_xid, %(cursor)s::pg_snapshot))"
        " or exists (select 1 from private.sync_tombstones as tb"
        "     where tb.table_name = 'tutoring_sessions' and tb.bucket_key = k"
        "     and tb.sync_xid >= pg_snapshot_xmin(%(cursor)s::pg_snapshot)"
        "     and not pg_visible_in_snapshot(tb.sync_xid, %(cursor)s::pg_snapshot))",
        {"keys": keys, "cursor": cursor},
    ).fetchall()
    return {str(row[0]) for row in rows}


def _logged(
    conn: psycopg.Connection[Any], keys: list[str], cursor: str, table: str = "tutoring_sessions"
) -> set[str]:
    """Which of ``table``'s buckets ``keys`` the change check calls changed since ``cursor``."""
    rows = conn.execute(
        "select bucket_key from private.sync_changed_buckets("
        " array_fill(%(table)s::text, array[cardinality(%(keys)s::text [])]), %(keys)s::text [],"
        " array_fill(%(cursor)s::pg_snapshot, array[cardinality(%(keys)s::text [])]))",
        {"table": table, "keys": keys, "cursor": cursor},
    ).fetchall()
    return {str(row[0]) for row in rows}


def _snapshot(url: str) -> str:
    with connect(url) as conn:
        row = conn.execute("select pg_current_snapshot()::text").fetchone()
    assert row is not None
    return str(row[0])


#: One write to tutoring_sessions: what it does, in which student's bucket (an index into the
#: example's students), and how its transaction ends.
WRITES = st.tuples(
    st.sampled_from(["insert", "update", "move", "delete"]),
    st.integers(0, STUDENTS - 1),
    st.sampled_from(["commit", "rollback", "savepoint_rollback", "left_open"]),
)
#: A step: a write, or a cursor taken (as a pull would: a snapshot of its own).
STEPS = st.lists(st.one_of(WRITES, st.just(("cursor", 0, ""))), min_size=2, max_size=14)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=STEPS)
def test_the_log_answers_as_the_tables_do(world: SyncWorld, steps: list[Any]) -> None:
    """Random writes in overlapping transactions, cursors taken between them: for every
    cursor, the buckets the log calls changed are exactly those with a row or tombstone the
    cursor has not seen. A transaction "left open" stays open while later steps run (and
    cursors are taken), then commits at the end: the case where transaction ids and commit
    order disagree."""
    tutor = world.user("tutor")
    students = [str(world.user("student").id) for _ in range(STUDENTS)]
    cursors = [_snapshot(world.url)]
    held_open: list[psycopg.Connection[Any]] = []
    try:
        for kind, bucket, ending in steps:
            if kind == "cursor":
                cursors.append(_snapshot(world.url))
                continue
            conn = psycopg.connect(world.url)
            _write(conn, kind, str(tutor.id), students[bucket], students, ending)
            if ending == "left_open":
                held_open.append(conn)
            else:
                conn.close()
    finally:
        for conn in held_open:
            conn.commit()
            conn.close()
    cursors.append(_snapshot(world.url))
    with connect(world.url) as conn:
        for cursor in cursors:
            assert _logged(conn, students, cursor) == _truth(conn, students, cursor), cursor
        assert _logged(conn, students, cursors[-1]) == set(), "the last cursor has seen it all"


def _write(
    conn: psycopg.Connection[Any],
    kind: str,
    tutor: str,
    student: str,
    students: list[str],
    ending: str,
) -> None:
    """One write in ``student``'s bucket in ``conn``'s transaction, ended as ``ending`` says
    (``left_open`` leaves it to the caller)."""
    if ending == "savepoint_rollback":
        conn.execute("savepoint before_write")
    # A row another step's open transaction holds is skipped, not waited for.
    session = conn.execute(
        "select id from public.tutoring_sessions where student_id = %s order by id limit 1"
        " for update skip locked",
        (student,),
    ).fetchone()
    if kind == "insert" or session is None:
        conn.execute(
            "insert into public.tutoring_sessions (tutor_id, student_id, starts_at, ends_at)"
            " values (%s, %s, now() + interval '1 day', now() + interval '25 hours')",
            (tutor, student),
        )
    elif kind == "update":
        conn.execute(
            "update public.tutoring_sessions set notes = notes || '!' where id = %s",
            (session[0],),
        )
    elif kind == "move":
        elsewhere = students[(students.index(student) + 1) % len(students)]
        conn.execute(
            "update public.tutoring_sessions set student_id = %s where id = %s",
            (elsewhere, session[0]),
        )
    else:
        conn.execute("delete from public.tutoring_sessions where id = %s", (session[0],))
    if ending == "savepoint_rollback":
        conn.execute("rollback to savepoint before_write")
        conn.commit()
    elif ending == "rollback":
        conn.rollback()
    elif ending == "commit":
        conn.commit()


def test_each_bucket_is_logged_once_per_transaction(world: SyncWorld) -> None:
    tutor = world.user("tutor")
    course = world.course(tutor, lessons=3)
    with psycopg.connect(world.url) as conn:  # one transaction
        conn.execute(
            "update public.course_content set title = title || '!' where course_id = %s",
            (course,),
        )
        conn.execute("savepoint undone")
        conn.execute("delete from public.course_content where course_id = %s", (course,))
        conn.execute("rollback to savepoint undone")
        conn.execute("delete from public.course_content where course_id = %s", (course,))
        row = conn.execute(
            "select count(*) from private.sync_bucket_changes"
            " where table_name = 'course_content' and bucket_key = %s"
            " and sync_xid = pg_current_xact_id()",
            (course,),
        ).fetchone()
    assert row == (1,)


def _lesson_title(puller: RefPuller, lesson: str) -> str:
    return str(puller.rows["course_content"][lesson]["title"])


def _enrolled(world: SyncWorld) -> tuple[str, str, RefPuller]:
    """A course, one of its lessons and an enrolled student's puller, pulled once."""
    _, _, course, puller = enrolled(world, version=3)
    puller.pull()
    return course, next(iter(puller.rows["course_content"])), puller


def test_a_change_whose_log_entry_was_pruned_is_still_served(world: SyncWorld) -> None:
    """sync_prune drops old log entries and moves the log's horizon past them: a cursor from
    before the horizon is checked against the tables, so the change still arrives."""
    course, lesson, puller = _enrolled(world)
    world.sql("update public.course_content set title = 'Edited' where id = %s", lesson)
    world.sql(
        "update private.sync_bucket_changes set created_at = now() - interval '2 days'"
        " where bucket_key = %s",
        course,
    )
    world.sql("select public.sync_prune()")
    assert not world.sql(
        "select 1 from private.sync_bucket_changes where bucket_key = %s", course
    ), "the entry was pruned"
    puller.pull()
    assert _lesson_title(puller, lesson) == "Edited"
    # The bucket's new cursor is past the horizon: the log answers for it again.
    world.sql("update public.course_content set title = 'Again' where id = %s", lesson)
    puller.pull()
    assert _lesson_title(puller, lesson) == "Again"


def test_a_cursor_the_log_cannot_answer_for_counts_as_changed(world: SyncWorld) -> None:
    """A bucket whose cursor is at or below the horizon is reported changed, and its pull
    serves nothing new when nothing did change: a stale cursor costs a pull, never a row."""
    course, lesson, puller = _enrolled(world)
    cursor = puller.states[f"course_content:{course}"]["cursor"]
    with connect(world.url) as conn, conn.transaction(force_rollback=True):
        assert _logged(conn, [course], cursor, "course_content") == set()
        conn.execute(
            "update private.sync_settings"
            " set change_log_pruned = pg_snapshot_xmax(pg_current_snapshot())"
        )
        assert _logged(conn, [course], cursor, "course_content") == {course}
    rows_before = dict(puller.rows["course_content"])
    world.sql(
        "update private.sync_settings"
        " set change_log_pruned = pg_snapshot_xmax(pg_current_snapshot())"
    )
    puller.pull()
    assert puller.rows["course_content"] == rows_before
    assert puller.states[f"course_content:{course}"]["cursor"] != cursor
    assert lesson in puller.rows["course_content"]


def test_a_no_change_pull_reads_no_synced_table_to_check_for_changes(app_url: str) -> None:
    """Only the log is probed: a pull in which nothing changed does not scan course_content
    (the student's course buckets are found through enrollments, not through their rows)."""
    world = SyncWorld(app_url)
    try:
        tutor, student = world.user("tutor"), world.user("student")
        course = world.course(tutor, lessons=3)
        world.enroll(student, course)
        puller = RefPuller(world.gateway(student), version=3)
        puller.pull()
        assert f"course_content:{course}" in puller.states
        request = {"version": 3, "buckets": puller.states, "subscriptions": []}
        with connect(app_url) as conn, acting_as(conn, "authenticated", str(student.id)):
            row = conn.execute(
                "select public.sync_pull(%s::jsonb)", (psycopg.types.json.Jsonb(request),)
            ).fetchone()
            scans = conn.execute(
                "select pg_stat_get_xact_numscans('public.course_content'::regclass)"
                " + (select coalesce(sum(pg_stat_get_xact_numscans(i.indexrelid)), 0)"
                "    from pg_catalog.pg_index as i"
                "    where i.indrelid = 'public.course_content'::regclass)"
            ).fetchone()
    finally:
        world.close()
    assert row is not None and not row[0]["buckets"], "nothing changed"
    assert scans == (0,), f"{scans} scans of course_content by a pull in which nothing changed"


def test_erasing_a_user_forgets_the_log_of_their_buckets(world: SyncWorld) -> None:
    """GDPR erasure (public.delete_user) leaves no log entry keyed by the user."""
    student = world.user("student")
    world.sql(
        "insert into public.support_queries (owner_id, subject, body) values (%s, 'Hi', 'Help')",
        student.id,
    )
    assert world.sql(
        "select 1 from private.sync_bucket_changes where bucket_key = %s", str(student.id)
    )
    with connect(world.url) as conn, acting_as(conn, "service_role", keep=True):
        conn.execute("select public.delete_user(%s)", (student.id,))
    assert not world.sql(
        "select 1 from private.sync_bucket_changes where bucket_key = %s", str(student.id)
    )


def test_deleting_a_user_from_auth_forgets_their_sync_bookkeeping(world: SyncWorld) -> None:
    """Supabase Auth's admin API deletes the auth.users row and ON DELETE CASCADE takes the
    rest: the cascaded deletes' tombstones and log entries keyed by the user go too, as do
    the user's stored push results."""
    student = world.user("student")
    world.sql(
        "insert into public.support_queries (owner_id, subject, body) values (%s, 'Hi', 'Help')",
        student.id,
    )
    world.sql(
        "insert into private.sync_push_results (user_id, client_id, op_id, result)"
        " values (%s, gen_random_uuid(), 1, '{}')",
        student.id,
    )
    key = str(student.id)
    world.sql("delete from auth.users where id = %s", student.id)
    assert not world.sql("select 1 from public.profiles where id = %s", student.id), "cascaded"
    left = world.sql(
        "select 'tombstone' from private.sync_tombstones where bucket_key = %s or row_id = %s"
        " union all select 'log' from private.sync_bucket_changes where bucket_key = %s"
        " union all select 'push result' from private.sync_push_results where user_id = %s",
        key,
        student.id,
        key,
        student.id,
    )
    assert not left, left


@pytest.mark.parametrize(
    "statement",
    [
        "select 1 from private.sync_bucket_changes limit 1",
        "insert into private.sync_bucket_changes (table_name, bucket_key)"
        " values ('course_content', gen_random_uuid()::text)",
    ],
)
def test_clients_cannot_read_or_write_the_log(world: SyncWorld, statement: str) -> None:
    student = world.user("student")
    with (
        connect(world.url) as conn,
        acting_as(conn, "authenticated", str(student.id)),
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement)
