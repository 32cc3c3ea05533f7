"""docs/flutter.md's requests, sent as the guide's users to a database built from the
migrations, with the outcomes the guide promises.

A Flutter app speaks PostgREST; locally the same requests go through
:class:`~pysync.gateway.PostgresGateway`, which runs them as PostgREST does (the
``authenticated`` role, the user's JWT claims, RLS). Each test names the guide's section.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pysync import Client, PermissionDenied
from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway.filters import eq
from tests.helpers import PROJECT_ROOT, acting_as, connect

GUIDE = (PROJECT_ROOT / "docs" / "flutter.md").read_text(encoding="utf-8")
SAM = "c0000000-0000-4000-8000-000000000001"
SID = "c0000000-0000-4000-8000-000000000003"


@pytest.fixture
def sam(app_url: str) -> Iterator[Client]:
    with Client.local(app_url, LOCAL_JWT_SECRET, "student.sam@example.com") as client:
        yield client


def _a_conversation_of(client: Client) -> str:
    rows = client.gateway.select("conversation_participants", columns="conversation_id").rows
    return str(rows[0]["conversation_id"])


def test_the_guide_has_the_sections_it_promises() -> None:
    for heading in (
        "## Set-up",
        "## Generated models",
        "## What each role may do",
        "## Client-generated ids and optimistic writes",
        "## Errors to handle",
        "## Realtime",
        "## Storage",
        "## Offline sync",
        "## Push notifications: registering a device",
    ):
        assert f"\n{heading}\n" in GUIDE, heading
    for code in ("42501", "PT409", "PT429", "23505", "PGRST116"):
        assert f"`{code}`" in GUIDE


def test_client_generated_id_is_kept(sam: Client) -> None:
    """ "Client-generated ids": the row keeps the id the app chose."""
    chosen = str(uuid.uuid4())
    (row,) = sam.gateway.insert(
        "messages",
        {
            "id": chosen,
            "conversation_id": _a_conversation_of(sam),
            "sender_id": str(sam.user_id),
            "body": "See you on Tuesday!",
        },
    )
    assert str(row["id"]) == chosen and row["version"] == 1


def test_an_update_filtered_on_a_stale_version_changes_nothing(sam: Client) -> None:
    """ "Optimistic writes": an empty result means the row moved on."""
    me = str(sam.user_id)
    (profile,) = sam.gateway.select("profiles", filters=[eq("id", me)]).rows
    stale = profile["version"] - 1
    assert (
        sam.gateway.update(
            "profiles", {"display_name": "Sam"}, filters=[eq("id", me), eq("version", stale)]
        )
        == []
    )
    (updated,) = sam.gateway.update(
        "profiles",
        {"display_name": "Sam"},
        filters=[eq("id", me), eq("version", profile["version"])],
    )
    assert updated["version"] == profile["version"] + 1


def test_a_refused_write_is_42501(sam: Client) -> None:
    """ "Errors to handle": a guard refuses a student's grade."""
    submission = sam.submissions.list_mine()[0]
    with pytest.raises(PermissionDenied) as refused:
        sam.gateway.update("submissions", {"grade": 100}, filters=[eq("id", submission.id)])
    assert refused.value.code == "42501"


def test_registering_a_device_twice_keeps_one_row(sam: Client) -> None:
    """ "Registering a device": upsert on (user_id, device_id)."""
    row = {
        "user_id": str(sam.user_id),
        "device_id": "guide-install-1",
        "platform": "android",
        "push_token": f"fcm-{uuid.uuid4()}",
        "app_version": "1.4.0",
    }
    sam.gateway.upsert("devices", row, on_conflict=("user_id", "device_id"))
    newer = {**row, "push_token": f"fcm-{uuid.uuid4()}"}
    (written,) = sam.gateway.upsert("devices", newer, on_conflict=("user_id", "device_id"))
    mine = sam.gateway.select("devices", filters=[eq("device_id", "guide-install-1")]).rows
    assert len(mine) == 1 and mine[0]["push_token"] == newer["push_token"]
    assert written["version"] == 2
    assert sam.gateway.delete("devices", filters=[eq("device_id", "guide-install-1")])


def test_turning_a_category_off(sam: Client) -> None:
    (row,) = sam.gateway.update(
        "notification_preferences",
        {"enabled": False},
        filters=[eq("user_id", str(sam.user_id)), eq("category", "marketing")],
    )
    assert row["enabled"] is False


def test_the_sync_rpcs_as_the_guide_calls_them(sam: Client) -> None:
    """ "Offline sync": sync_schema, then the guide's first push of one message."""
    schema = sam.gateway.rpc("sync_schema")
    assert {"tables", "streams"} <= set(schema)
    installation = str(uuid.uuid4())
    message = str(uuid.uuid4())
    ops = [
        {
            "op_id": 1,
            "tx_id": "t1",
            "table": "messages",
            "kind": "insert",
            "id": message,
            "data": {
                "conversation_id": _a_conversation_of(sam),
                "sender_id": str(sam.user_id),
                "body": "Hi!",
            },
        }
    ]
    assert "'ops': [" in GUIDE and "'kind': 'insert'" in GUIDE
    pushed = sam.gateway.rpc("sync_push", {"client_id": installation, "ops": ops})
    assert [r["status"] for r in pushed["results"]] == ["applied"]
    again = sam.gateway.rpc("sync_push", {"client_id": installation, "ops": ops})
    assert again["results"][0].get("replayed") is True  # a retry writes nothing twice


def test_anon_reads_a_tutor_rating(app_url: str) -> None:
    """ "What each role may do": anon calls rpc('tutor_rating', params: {"tutor": …})."""
    with connect(app_url) as conn:
        tutor = conn.execute(
            "select id from public.profiles where role = 'tutor' limit 1"
        ).fetchone()
        assert tutor is not None
        with acting_as(conn, "anon"):
            rating = conn.execute(
                "select average_rating, ratings from public.tutor_rating(tutor => %s)", tutor
            ).fetchone()
    assert rating is not None and rating[1] >= 0


def test_export_my_data_is_one_document(sam: Client) -> None:
    document = sam.gateway.rpc("export_my_data")
    assert isinstance(document, dict) and document  # everything about Sam, as JSON


def _can_join(conn: psycopg.Connection[Any], user: str, topic: str) -> bool:
    with acting_as(conn, "authenticated", user):
        row = conn.execute("select private.can_access_topic(%s, false)", (topic,)).fetchone()
    return bool(row and row[0])


def test_private_topics_admit_whom_the_guide_says(app_url: str) -> None:
    """ "Realtime": conversation topics for participants, user topics for their user."""
    with connect(app_url) as conn:
        (conversation,) = conn.execute(
            "select c.id from public.conversations as c"
            " join public.conversation_participants as p on p.conversation_id = c.id"
            " where p.user_id = %s and c.kind = 'direct'"
            " and not exists (select from public.conversation_participants as q"
            "                 where q.conversation_id = c.id and q.user_id = %s)"
            " limit 1",
            (SAM, SID),
        ).fetchone() or (None,)
        assert conversation is not None
        assert _can_join(conn, SAM, f"conversation:{conversation}")
        assert not _can_join(conn, SID, f"conversation:{conversation}")
        assert _can_join(conn, SAM, f"user:{SAM}")
        assert not _can_join(conn, SID, f"user:{SAM}")


def test_submission_paths_follow_the_storage_table(app_url: str) -> None:
    """ "Storage": a student writes under their own id, never another student's."""
    with connect(app_url) as conn:
        (assignment,) = conn.execute(
            "select a.id from public.assignments as a"
            " join public.enrollments as e on e.course_id = a.course_id"
            " where e.student_id = %s and e.status = 'active' limit 1",
            (SAM,),
        ).fetchone() or (None,)
        assert assignment is not None
        for owner, allowed in ((SAM, True), (SID, False)):
            with acting_as(conn, "authenticated", SAM):
                insert = (
                    "insert into storage.objects (bucket_id, name, owner_id)"
                    " values ('submissions', %s, %s)"
                )
                path = f"{owner}/{assignment}/essay.pdf"
                if allowed:
                    conn.execute(insert, (path, SAM))
                else:
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        conn.execute(insert, (path, SAM))
