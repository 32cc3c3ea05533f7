"""`pysync sync …` drives a user's cache from the shell: thin over pysync.sync, JSON for
scripts, one readable line for every error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from pysync.auth import LocalUser
from pysync.localdb.replica import ReadReplica
from pysync.sync import SyncCache
from pysync.sync.demo import differences
from pysync.sync.files import FileSync, files_folder
from tests.sync_world import SyncWorld
from tests.test_cli import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def world(app_url: str) -> Iterator[SyncWorld]:
    made = SyncWorld(app_url)
    yield made
    made.close()


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSYNC_DATA_DIR", str(tmp_path / "data"))
    for name in ("SUPABASE_DB_URL", "SUPABASE_JWT_SECRET", "SUPABASE_URL", "PYSYNC_DEBUG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def chat(world: SyncWorld) -> tuple[LocalUser, LocalUser, str]:
    tutor, student = world.user("tutor"), world.user("student")
    conversation = world.client(student).conversations.start_direct(tutor.id).id
    return tutor, student, str(conversation)


def email_of(user: LocalUser) -> str:
    assert user.email is not None, "the sync world's users have addresses"
    return user.email


def sync_json(
    capsys: pytest.CaptureFixture[str], url: str, user: str, cache: Path, *args: str
) -> Any:
    code, out, err = run_cli(
        capsys, "sync", *args, "--as", user, "--cache", str(cache), "--db-url", url, "--json"
    )
    assert code == 0, err
    return json.loads(out)


def test_read_url_pulls_from_the_replica_and_pushes_to_the_primary(
    world: SyncWorld,
    chat: tuple[LocalUser, LocalUser, str],
    replica: ReadReplica,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tutor, student, conversation = chat
    replica.wait_for_replay()
    read_url = replica.url(str(conninfo_to_dict(world.url)["dbname"]))
    phone = tmp_path / "phone.sqlite"
    first = sync_json(capsys, world.url, email_of(student), phone, "run", "--read-url", read_url)
    assert first["streams"]["my_conversations"]["buckets"] == 1
    with replica.connect() as standby:
        standby.execute("select pg_wal_replay_pause()")
        try:
            world.client(tutor).gateway.insert(
                "messages", {"conversation_id": conversation, "sender_id": tutor.id, "body": "x"}
            )
            paused = sync_json(
                capsys, world.url, email_of(student), phone, "run", "--read-url", read_url
            )
            assert paused["tables"].get("messages", 0) == 0  # the standby has not replayed it
            direct = sync_json(
                capsys, world.url, email_of(student), tmp_path / "laptop.sqlite", "run"
            )
            assert direct["tables"]["messages"] == 1
            message = {"conversation_id": conversation, "sender_id": student.id, "body": "hi"}
            code, _, err = run_cli(
                capsys, "sync", "write", "messages", "insert", json.dumps(message),
                "--as", email_of(student), "--cache", str(phone), "--db-url", world.url,
            )  # fmt: skip
            assert code == 0, err
            pushed = sync_json(
                capsys, world.url, email_of(student), phone, "push", "--read-url", read_url
            )
            assert pushed["pending_ops"] == 0 and pushed["dead_letters"] == 0
        finally:
            standby.execute("select pg_wal_replay_resume()")
    replica.wait_for_replay()
    caught_up = sync_json(
        capsys, world.url, email_of(student), phone, "pull", "--read-url", read_url
    )
    assert caught_up["tables"]["messages"] == 2


def test_write_push_then_pull_on_another_device(
    world: SyncWorld,
    chat: tuple[LocalUser, LocalUser, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, student, conversation = chat
    phone, laptop = tmp_path / "phone.sqlite", tmp_path / "laptop.sqlite"
    first = sync_json(capsys, world.url, email_of(student), phone, "run")
    assert first["pending_ops"] == 0 and first["last_synced_at"] is not None
    assert first["streams"]["my_conversations"]["buckets"] == 1
    message = {"conversation_id": conversation, "sender_id": student.id, "body": "from a shell"}
    code, out, err = run_cli(
        capsys, "sync", "write", "messages", "insert", json.dumps(message),
        "--as", email_of(student), "--cache", str(phone), "--db-url", world.url,
    )  # fmt: skip
    assert code == 0, err
    message_id = out.strip()
    assert sync_json(capsys, world.url, email_of(student), phone, "status")["pending_ops"] == 1
    pushed = sync_json(capsys, world.url, email_of(student), phone, "push")
    assert pushed["pending_ops"] == 0 and pushed["dead_letters"] == 0
    assert world.sql("select body from public.messages where id = %s", message_id) == [
        ("from a shell",)
    ]
    pulled = sync_json(capsys, world.url, student.id, laptop, "pull")
    assert pulled["tables"]["messages"] == 1
    with SyncCache.open(world.client(student), laptop) as cache:
        assert cache.get("messages", message_id)["body"] == "from a shell"  # type: ignore[index]


def test_update_by_id_and_rejections_in_dead_letters(
    world: SyncWorld,
    chat: tuple[LocalUser, LocalUser, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tutor, student, _ = chat
    cache = tmp_path / "c.sqlite"
    sync_json(capsys, world.url, email_of(student), cache, "run")
    renamed = {"id": student.id, "display_name": "Renamed in a shell"}
    written = sync_json(
        capsys,
        world.url,
        email_of(student),
        cache,
        "write",
        "profiles",
        "update",
        json.dumps(renamed),
    )
    assert written == {"table": "profiles", "kind": "update", "id": student.id, "pending_ops": 1}
    someone_elses = {"user_id": tutor.id, "device_id": "not-mine", "platform": "ios"}
    sync_json(
        capsys, world.url, email_of(student), cache, "write", "devices", "insert",
        json.dumps(someone_elses),
    )  # fmt: skip
    status = sync_json(capsys, world.url, email_of(student), cache, "run")
    assert status["pending_ops"] == 0 and status["dead_letters"] == 1
    assert world.sql("select display_name from public.profiles where id = %s", student.id) == [
        ("Renamed in a shell",)
    ]
    letters = sync_json(capsys, world.url, email_of(student), cache, "dead-letters")
    assert [(d["table"], d["kind"], d["sqlstate"]) for d in letters] == [
        ("devices", "insert", "42501")
    ]


def test_subscribe_pull_unsubscribe(
    world: SyncWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tutor, student = world.user("tutor"), world.user("student")
    course = world.course(tutor)
    world.lesson(course, 5, preview=True)
    cache = tmp_path / "c.sqlite"
    sync_json(capsys, world.url, email_of(student), cache, "run")
    subscribed = sync_json(
        capsys, world.url, email_of(student), cache, "subscribe", "course_preview", course,
        "--ttl", "600",
    )  # fmt: skip
    assert subscribed == {"stream": "course_preview", "key": course, "ttl": 600.0}
    held = sync_json(capsys, world.url, email_of(student), cache, "pull")
    assert held["streams"]["course_preview"] == {"buckets": 1, "complete": 1, "rows": 1}
    client = world.client(student)
    with SyncCache.open(client, cache) as opened:
        assert differences(opened, client) == []
    sync_json(capsys, world.url, email_of(student), cache, "unsubscribe", "course_preview", course)
    dropped = sync_json(capsys, world.url, email_of(student), cache, "pull")
    assert "course_preview" not in dropped["streams"]


def test_human_status_and_the_default_cache_file(
    world: SyncWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    student = world.user("student")
    code, out, err = run_cli(
        capsys, "sync", "run", "--as", email_of(student), "--db-url", world.url
    )
    assert code == 0, err
    assert "pending ops" in out and "my_profile_and_contacts" in out and "profiles" in out
    assert (tmp_path / "data" / "caches" / f"{email_of(student)}.sqlite").is_file()
    code, out, _ = run_cli(
        capsys, "sync", "status", "--as", email_of(student), "--db-url", world.url
    )
    assert code == 0 and "never" not in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["write", "nope", "insert", "{}"], "'nope' is not a synced table"),
        (["write", "messages", "delete", '{"id": "x"}'], "clients may not delete 'messages'"),
        (["write", "profiles", "update", "{}"], 'update needs the row\'s "id" in JSON'),
        (["write", "profiles", "update", "[1"], None),
        (["subscribe", "my_messages", "k"], "'my_messages' is not an on-demand stream"),
    ],
)
def test_bad_writes_are_one_line_and_exit_1(
    world: SyncWorld,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    expected: str | None,
) -> None:
    student = world.user("student")
    cache = str(tmp_path / "c.sqlite")
    code, _, err = run_cli(
        capsys, "sync", *args, "--as", email_of(student), "--cache", cache, "--db-url", world.url
    )
    assert code == 1
    if expected is None:
        assert err.startswith("error: JSON is not valid JSON:") and len(err.splitlines()) == 1
    else:
        assert_one_line_error(err, expected)


def test_another_users_cache_and_an_unknown_user_are_one_line(
    world: SyncWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    student, other = world.user("student"), world.user("student")
    cache = tmp_path / "c.sqlite"
    sync_json(capsys, world.url, email_of(student), cache, "run")
    code, _, err = run_cli(
        capsys, "sync", "run", "--as", email_of(other), "--cache", str(cache), "--db-url", world.url
    )
    assert code == 1
    assert_one_line_error(
        err, f"{cache} is the cache of another user ({student.id}); open one file per user"
    )
    code, _, err = run_cli(
        capsys, "sync", "status", "--as", "nobody@example.com", "--db-url", world.url
    )
    assert code == 1
    assert_one_line_error(err, "no local user nobody@example.com")


def test_status_shows_queued_uploads_and_run_uploads_them_before_the_row(
    world: SyncWorld,
    chat: tuple[LocalUser, LocalUser, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, student, conversation = chat
    phone = tmp_path / "phone.sqlite"
    sync_json(capsys, world.url, email_of(student), phone, "run")
    with SyncCache.open(world.client(student), phone) as cache:
        files = FileSync(cache, None, files_folder(phone))  # offline: no store at all
        message = files.insert(
            "messages",
            {"conversation_id": conversation, "sender_id": student.id, "body": ""},
            file=b"12345",
            filename="notes.txt",
        )
    queued = sync_json(capsys, world.url, email_of(student), phone, "status")["files"]
    assert (queued["queued_uploads"], queued["queued_upload_bytes"]) == (1, 5)
    code, out, _ = run_cli(
        capsys,
        "sync",
        "status",
        "--as",
        email_of(student),
        "--cache",
        str(phone),
        "--db-url",
        world.url,
    )
    assert code == 0 and "queued uploads" in out and "1 (5 B)" in out
    done = sync_json(capsys, world.url, email_of(student), phone, "run")
    assert done["pending_ops"] == 0
    assert (done["files"]["queued_uploads"], done["files"]["cached_files"]) == (0, 1)
    path = f"{conversation}/{message}/notes.txt"
    assert world.sql(
        "select name from storage.objects where bucket_id = 'chat-attachments' and name = %s", path
    ) == [(path,)]
    assert world.sql("select attachment_path from public.messages where id = %s", message) == [
        (path,)
    ]
