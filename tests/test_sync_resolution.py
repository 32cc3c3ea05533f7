"""Resolution tokens (``supabase/migrations/20261209090000_sync_pull_resolution_token.sql``): a
pull in which nothing changed skips working out the caller's buckets when the token the last
pull handed out still vouches for them, and never when anything could have changed them. Since
``20261211090000_sync_pull_changes_keep_the_resolution.sql`` a pull that finds changes only in
tables no membership query reads skips it too (wire version 4), and a pull that finds nothing
hands the token back as it came.

Each membership test holds a user's reference puller at rest (token in hand), makes one
change that gives or takes a bucket, and checks the next pull (token sent) follows it. A
missing member trigger, or a token trusted too far, answers "unchanged" there instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from pysync.auth.local import LocalUser
from tests.helpers import acting_as, connect
from tests.sync_world import RefPuller, SyncWorld

#: The tables the auto streams' membership queries read: the full resolution scans them (by
#: index), the short way does not.
MEMBERSHIP_TABLES = ("enrollments", "courses", "conversation_participants")


@pytest.fixture(scope="module")
def world(app_url: str) -> Iterator[SyncWorld]:
    world = SyncWorld(app_url)
    yield world
    world.close()


def _at_rest(world: SyncWorld, user: LocalUser) -> RefPuller:
    """``user``'s reference puller, pulled until the server hands out a token for what it
    holds."""
    puller = RefPuller(world.gateway(user), version=4)
    puller.pull()
    puller.pull()
    assert puller.resolution is not None
    return puller


def _pull_on(
    conn: psycopg.Connection[Any],
    user: LocalUser,
    request: dict[str, Any],
    tables: tuple[str, ...] = MEMBERSHIP_TABLES,
) -> tuple[dict[str, Any], int]:
    """``sync_pull(request)`` as ``user`` on ``conn``, and how many scans of ``tables`` (and
    their indexes) it made."""
    with acting_as(conn, "authenticated", str(user.id)):
        row = conn.execute("select public.sync_pull(%s::jsonb)", (Jsonb(request),)).fetchone()
        scans = conn.execute(
            "select sum(pg_stat_get_xact_numscans(t)"
            " + (select coalesce(sum(pg_stat_get_xact_numscans(i.indexrelid)), 0)"
            "    from pg_catalog.pg_index as i where i.indrelid = t))"
            " from unnest(%s::regclass []) as t",
            ([f"public.{table}" for table in tables],),
        ).fetchone()
    assert row is not None and scans is not None
    return dict(row[0]), int(scans[0])


def _pull_as(
    world: SyncWorld, user: LocalUser, request: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """``sync_pull(request)`` as ``user``, and how many scans of the membership tables it made."""
    with connect(world.url) as conn:
        return _pull_on(conn, user, request)


def _request(puller: RefPuller, **changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "version": 4,
        "buckets": puller.states,
        "subscriptions": puller.subscriptions,
        "resolution": puller.resolution,
    }
    request.update(changes)
    return request


def test_a_token_spares_a_no_change_pull_the_resolution(world: SyncWorld) -> None:
    """With the token, nothing changed: every bucket unchanged, no membership table read, the
    same token back. Without it, the same answer from the full resolution."""
    tutor, student = world.user("tutor"), world.user("student")
    world.enroll(student, world.course(tutor))
    puller = _at_rest(world, student)
    page, scans = _pull_as(world, student, _request(puller))
    assert not page["buckets"] and sorted(page["unchanged"]) == sorted(puller.states)
    assert scans == 0, "the short way reads no membership table"
    assert page["resolution"] == puller.resolution, "the token, handed back as it came"
    full, full_scans = _pull_as(world, student, _request(puller, resolution=None))
    assert sorted(full["unchanged"]) == sorted(page["unchanged"]) and not full["buckets"]
    assert full_scans > 0, "without a token the buckets are resolved"


Change = Callable[[SyncWorld, LocalUser], str]


def _enrolls_in_a_new_course(world: SyncWorld, student: LocalUser) -> str:
    course = world.course(world.user("tutor"))
    world.enroll(student, course)
    return f"course_content:{course}"


def _is_given_a_course(world: SyncWorld, tutor: LocalUser) -> str:
    return f"courses:{world.course(tutor)}"


def _is_added_to_a_conversation(world: SyncWorld, user: LocalUser) -> str:
    return f"conversations:{world.direct_conversation(world.user('student'), user)}"


def _books_a_new_student(world: SyncWorld, tutor: LocalUser) -> str:
    student = world.user("student")
    world.sql(
        "insert into public.tutoring_sessions (tutor_id, student_id, starts_at, ends_at)"
        " values (%s, %s, now() + interval '1 day', now() + interval '1 day 1 hour')",
        tutor.id,
        student.id,
    )
    return f"tutoring_sessions:{student.id}"


def _is_paid_by_a_new_payer(world: SyncWorld, tutor: LocalUser) -> str:
    payer = world.user("student")
    course = world.sql("select id from public.courses where tutor_id = %s", tutor.id)[0][0]
    world.sql(
        "insert into public.payments (payer_id, payee_id, course_id, amount_minor, currency,"
        " provider, provider_intent_id) values (%s, %s, %s, 100, 'EUR', 'stripe', %s)",
        payer.id,
        tutor.id,
        course,
        f"pi_{uuid.uuid4().hex}",
    )
    return f"payments:{payer.id}"


def _gets_a_new_student_in_a_course(world: SyncWorld, tutor: LocalUser) -> str:
    """Through a held bucket: the enrollment is in enrollments:<course>, which the tutor holds."""
    course = world.sql("select id::text from public.courses where tutor_id = %s", tutor.id)[0][0]
    student = world.user("student")
    world.enroll(student, course)
    return f"profiles:{student.id}"


@pytest.mark.parametrize(
    ("role", "change"),
    [
        ("student", _enrolls_in_a_new_course),
        ("tutor", _is_given_a_course),
        ("student", _is_added_to_a_conversation),
        ("tutor", _books_a_new_student),
        ("tutor", _is_paid_by_a_new_payer),
        ("tutor", _gets_a_new_student_in_a_course),
    ],
    ids=lambda value: getattr(value, "__name__", value).lstrip("_"),
)
def test_a_change_of_membership_reaches_a_pull_with_a_token(
    world: SyncWorld, role: str, change: Change
) -> None:
    user = world.user(role)
    if role == "tutor":
        world.course(user)
    puller = _at_rest(world, user)
    bucket = change(world, user)
    assert bucket not in puller.states
    puller.pull()
    assert bucket in puller.states, f"{bucket} reached the pull"


def _resolved_at(token: str) -> str:
    """The time of the full resolution a token carries (``r1/<snapshot>/<time>/<mac>``)."""
    return token.split("/")[2]


def test_a_change_no_membership_query_reads_keeps_the_resolution(world: SyncWorld) -> None:
    """A new lesson in a held course: served with the token's resolution (no membership table
    read, the same time of full resolution) and, in version 4, without its streams; asked in
    version 3 the same change is resolved, streams and all."""
    tutor, student = world.user("tutor"), world.user("student")
    course = world.course(tutor)
    world.enroll(student, course)
    puller = _at_rest(world, student)
    assert puller.resolution is not None
    lesson = world.lesson(course, 9)
    bucket = f"course_content:{course}"
    # The lesson's policy reads enrollments and courses; the resolution reads the
    # participants of conversations as well, for the student's contacts.
    with connect(world.url) as conn:
        page, scans = _pull_on(conn, student, _request(puller), ("conversation_participants",))
    assert scans == 0, "the token's resolution stands"
    assert [(e["bucket"], e["streams"]) for e in page["buckets"]] == [(bucket, None)]
    assert [row[0] for row in page["buckets"][0]["rows"]] == [lesson]
    assert sorted(page["unchanged"]) == sorted(b for b in puller.states if b != bucket)
    assert page["resolution"] and page["resolution"] != puller.resolution
    assert _resolved_at(page["resolution"]) == _resolved_at(puller.resolution)
    with connect(world.url) as conn:
        old, old_scans = _pull_on(
            conn, student, _request(puller, version=3), ("conversation_participants",)
        )
    assert old_scans > 0
    assert [(e["bucket"], e["streams"]) for e in old["buckets"]] == [
        (bucket, ["my_course_content"])
    ]


def test_a_change_a_membership_query_reads_is_resolved(world: SyncWorld) -> None:
    """A change to a held bucket of a table a membership query reads (another student's
    enrollment in the tutor's course, in the tutor's enrollments bucket) is resolved in full,
    streams and all, and so brings the new student's profile."""
    tutor = world.user("tutor")
    course = world.course(tutor)
    puller = _at_rest(world, tutor)
    student = world.user("student")
    world.enroll(student, course)
    page, scans = _pull_as(world, tutor, _request(puller))
    assert scans > 0
    served = {e["bucket"]: e["streams"] for e in page["buckets"]}
    assert served[f"enrollments:{course}"] == ["my_enrollments"]
    assert served[f"profiles:{student.id}"] == ["my_profile_and_contacts"]


def test_the_membership_tables_are_read_from_the_stream_queries(world: SyncWorld) -> None:
    """The tables the auto streams' queries read, worked out again whenever the streams change;
    a query calling a function other than auth.uid() makes the set unknown (null), so every
    pull that finds a change resolves."""
    expected = [
        "assignments",
        "conversation_participants",
        "courses",
        "enrollments",
        "payments",
        "support_queries",
        "tutoring_sessions",
    ]
    assert world.sql("select private.sync_membership_tables()") == [(expected,)]
    stream = (
        "insert into private.sync_streams (name, table_name, mode, query)"
        " values ('probe_stream', 'articles', 'auto', %s)"
    )
    with connect(world.url) as conn, conn.transaction(force_rollback=True):
        conn.execute(
            stream, ("select a.id from public.articles as a where a.status = 'published'",)
        )
        row = conn.execute("select private.sync_membership_tables()").fetchone()
        assert row == (sorted([*expected, "articles"]),)
        conn.execute("delete from private.sync_streams where name = 'probe_stream'")
        conn.execute(stream, ("select q from private.my_support_query_ids() as q",))
        assert conn.execute("select private.sync_membership_tables()").fetchone() == (None,)
    assert world.sql("select private.sync_membership_tables()") == [(expected,)]


def test_a_lost_membership_reaches_a_pull_with_a_token(world: SyncWorld) -> None:
    """A student whose enrollment ends loses the course's content at the next pull."""
    tutor, student = world.user("tutor"), world.user("student")
    course = world.course(tutor)
    world.enroll(student, course)
    puller = _at_rest(world, student)
    assert f"course_content:{course}" in puller.states
    world.sql(
        "update public.enrollments set status = 'cancelled' where student_id = %s", student.id
    )
    puller.pull()
    assert f"course_content:{course}" not in puller.states


def test_an_on_demand_subscription_is_checked_at_every_pull(world: SyncWorld) -> None:
    """A token never vouches for a subscription: a course taken out of the catalog takes its
    preview with it at the next pull, though nothing names the subscriber."""
    tutor, student = world.user("tutor"), world.user("student")
    course = world.course(tutor)
    puller = RefPuller(world.gateway(student), version=3)
    puller.subscriptions = [{"stream": "course_preview", "key": course}]
    puller.pull()
    puller.pull()
    assert f"course_content:{course}" in puller.states and puller.resolution
    world.sql("update public.courses set status = 'draft' where id = %s", course)
    page = puller.pull()
    assert f"course_content:{course}" not in puller.states
    assert [d["key"] for d in page["denied"]] == [course]
    assert page["resolution"] is None, "no token while a subscription is refused"


@pytest.mark.parametrize(
    "forge",
    [
        lambda token: token[:-4] + ("0000" if not token.endswith("0000") else "1111"),
        lambda token: "r1/1:1:/1/" + "0" * 64,
        lambda token: "r1/9:3:5/1/" + token[-64:],
        lambda token: "not a token",
        lambda token: token.replace("r1/", "r2/"),
    ],
    ids=["mac", "snapshot", "bad-snapshot", "garbage", "version"],
)
def test_a_forged_token_is_ignored(world: SyncWorld, forge: Callable[[str], str]) -> None:
    tutor, student = world.user("tutor"), world.user("student")
    world.enroll(student, world.course(tutor))
    puller = _at_rest(world, student)
    assert puller.resolution is not None
    page, scans = _pull_as(world, student, _request(puller, resolution=forge(puller.resolution)))
    assert scans > 0, "a forged token is not trusted"
    assert sorted(page["unchanged"]) == sorted(puller.states) and not page["buckets"]


def test_a_token_vouches_for_its_own_user_and_buckets_only(world: SyncWorld) -> None:
    """Another user's token does not serve; a foreign bucket slipped in beside a valid token
    is resolved, and removed."""
    tutor = world.user("tutor")
    course = world.course(tutor)
    student, other = world.user("student"), world.user("student")
    world.enroll(student, course)
    puller, others = _at_rest(world, student), _at_rest(world, other)
    _, scans = _pull_as(world, other, _request(others, resolution=puller.resolution))
    assert scans > 0
    foreign = f"course_content:{course}"
    assert foreign not in others.states
    held = {**others.states, foreign: dict(puller.states[foreign])}
    page, scans = _pull_as(world, other, _request(others, buckets=held))
    assert scans > 0
    assert foreign in page["removed_buckets"]


def test_a_token_older_than_the_horizon_or_the_log_is_not_trusted(world: SyncWorld) -> None:
    tutor, student = world.user("tutor"), world.user("student")
    world.enroll(student, world.course(tutor))
    puller = _at_rest(world, student)
    try:
        world.sql("update private.sync_settings set resolution_horizon = interval '0 seconds'")
        _, scans = _pull_as(world, student, _request(puller))
        assert scans > 0, "a full resolution older than resolution_horizon is redone"
    finally:
        world.sql("update private.sync_settings set resolution_horizon = interval '10 minutes'")
    _, scans = _pull_as(world, student, _request(puller))
    assert scans == 0
    with connect(world.url) as conn, conn.transaction(force_rollback=True):
        conn.execute(
            "update private.sync_settings"
            " set change_log_pruned = pg_snapshot_xmax(pg_current_snapshot())"
        )
        _, scans = _pull_on(conn, student, _request(puller), ("enrollments",))
    assert scans > 0, "a token from before the log's horizon is not trusted"


def _member_entries(world: SyncWorld, user: LocalUser) -> int:
    return int(
        world.sql(
            "select count(*) from private.sync_bucket_changes"
            " where table_name = '@member' and bucket_key = %s",
            str(user.id),
        )[0][0]
    )


def test_a_member_is_logged_once_per_transaction(world: SyncWorld) -> None:
    tutor, student = world.user("tutor"), world.user("student")
    courses = [world.course(tutor, lessons=0) for _ in range(3)]
    before = _member_entries(world, student)
    with connect(world.url) as conn, conn.transaction():
        for course in courses:
            conn.execute(
                "insert into public.enrollments (student_id, course_id, status)"
                " values (%s, %s, 'active')",
                (student.id, course),
            )
        conn.execute(
            "update public.enrollments set status = 'cancelled' where student_id = %s",
            (student.id,),
        )
    assert _member_entries(world, student) == before + 1


def test_erasing_a_user_forgets_their_member_entries(world: SyncWorld) -> None:
    tutor, student = world.user("tutor"), world.user("student")
    world.enroll(student, world.course(tutor))
    assert _member_entries(world, student) > 0
    world.sql("delete from auth.users where id = %s", student.id)
    assert _member_entries(world, student) == 0


def test_clients_cannot_read_the_key(world: SyncWorld) -> None:
    """The key stays in the database: sync_settings is out of every client's reach."""
    student = world.user("student")
    with (
        connect(world.url) as conn,
        acting_as(conn, "authenticated", str(student.id)),
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("select resolution_key from private.sync_settings")
