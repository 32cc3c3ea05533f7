"""Files offline (issue 14) against the real database: the upload queue rides with the
outbox, Storage's real ``storage.objects`` RLS decides every upload and download (the local
object store), files follow their rows out of the cache, and the byte budget is LRU without
touching files of rows with pending writes."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from pysync.gateway import NotFound
from pysync.progress import ProgressEvent
from pysync.sync import DeadLetter, SyncError
from pysync.sync.files import (
    PLATFORM_RULES,
    FileSync,
    file_status,
    files_folder,
    safe_filename,
)
from tests.fault_proxy import FaultProxy
from tests.files_world import device, eager_materials, objects_named, sync_once_reconnected
from tests.sync_world import SyncWorld


@pytest.fixture(scope="module")
def world(app_url: str) -> Iterator[SyncWorld]:
    made = SyncWorld(app_url)
    yield made
    made.close()


@pytest.fixture
def proxy(app_url: str) -> Iterator[FaultProxy]:
    params = conninfo_to_dict(app_url)
    made = FaultProxy(str(params["host"]), int(str(params["port"])))
    yield made
    made.close()


@pytest.fixture
def chat(world: SyncWorld) -> tuple[Any, Any, str]:
    tutor, student = world.user("tutor"), world.user("student")
    conversation = world.client(student).conversations.start_direct(tutor.id).id
    return tutor, student, str(conversation)


def md5(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


def test_offline_attach_uploads_the_file_before_the_row_on_reconnect(
    world: SyncWorld, chat: tuple[Any, Any, str], proxy: FaultProxy, tmp_path: Path
) -> None:
    tutor, student, conversation = chat
    photo = b"\x89PNG offline photo " * 500
    moved: list[ProgressEvent] = []
    with device(
        world,
        student,
        tmp_path / "s.db",
        tmp_path / "objects",
        proxy_port=proxy.port,
        progress=moved.append,
    ) as phone:
        phone.cache.sync()
        proxy.refuse = True
        proxy.sever_all()
        message = phone.files.insert(
            "messages",
            {"conversation_id": conversation, "sender_id": student.id, "body": "see photo"},
            file=photo,
            filename="photo 1.png",
        )
        path = f"{conversation}/{message}/photo_1.png"
        local = phone.cache.get("messages", message)
        assert local is not None and local["attachment_path"] == path
        assert phone.files.read("messages", message) == photo  # readable before upload
        status = phone.cache.status().files
        assert status is not None
        assert (status.queued_uploads, status.queued_upload_bytes) == (1, len(photo))
        with pytest.raises(SyncError):
            phone.cache.sync()
        assert objects_named(world, "chat-attachments", conversation) == []
        assert world.sql("select 1 from public.messages where id = %s", message) == []
        assert phone.cache.status().pending_ops == 1
        proxy.heal()
        sync_once_reconnected(phone.cache)
        assert objects_named(world, "chat-attachments", conversation) == [
            (path, md5(photo), student.id)
        ]
        assert world.sql("select attachment_path from public.messages where id = %s", message) == [
            (path,)
        ]
        status = phone.cache.status().files
        assert status is not None and status.queued_uploads == 0
        assert status.cached_files == 1 and status.cache_bytes == len(photo)
    assert moved[-1] == ProgressEvent(
        f"upload chat-attachments/{path}", len(photo), len(photo), "bytes"
    )
    # The tutor, another participant, gets the row by sync and the file through the select
    # policy; while it downloads, the status counts it in flight.
    in_flight: list[int] = []

    def downloading(progress: ProgressEvent) -> None:
        in_flight.append(desk.files.status().downloads_in_flight)

    with device(
        world, tutor, tmp_path / "t.db", tmp_path / "objects", progress=downloading
    ) as desk:
        desk.cache.sync()
        assert desk.files.read("messages", message) == photo
        assert in_flight and set(in_flight) == {1}
        status = desk.cache.status().files
        assert status is not None and status.cached_files == 1
        assert status.downloads_in_flight == 0


def test_lost_upload_answer_is_retried_without_a_second_object(
    world: SyncWorld, chat: tuple[Any, Any, str], proxy: FaultProxy, tmp_path: Path
) -> None:
    _, student, conversation = chat
    with device(
        world, student, tmp_path / "s.db", tmp_path / "objects", proxy_port=proxy.port
    ) as phone:
        phone.cache.sync()
        message = phone.files.insert(
            "messages",
            {"conversation_id": conversation, "sender_id": student.id, "body": ""},
            file=b"voice note",
            filename="note.ogg",
        )
        # The object's row commits on the server, its answer never arrives.
        proxy.arm("cut_after_commit", match=b"insert into", times=1)
        with pytest.raises(SyncError):
            phone.cache.sync()
        assert proxy.fired["cut_after_commit"] == 1
        assert len(objects_named(world, "chat-attachments", conversation)) == 1
        assert world.sql("select 1 from public.messages where id = %s", message) == []
        phone.cache.sync()
    objects = objects_named(world, "chat-attachments", conversation)
    assert [name for name, *_ in objects] == [f"{conversation}/{message}/note.ogg"]
    assert objects[0][1] == md5(b"voice note")
    # The store keeps the bytes of the version the row names, and only those.
    assert len([p for p in (tmp_path / "objects").rglob("*") if p.is_file()]) == 1


def _assignment(world: SyncWorld, tutor: Any) -> tuple[str, str]:
    course = world.course(tutor, lessons=0)
    assignment = str(uuid.uuid4())
    world.sql(
        "insert into public.assignments (id, course_id, title) values (%s, %s, 'Essay')",
        assignment,
        course,
    )
    return course, assignment


def test_student_cannot_upload_into_another_students_folder_and_nothing_else_is_blocked(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    tutor, mallory, conversation = chat
    alice = world.user("student")
    course, assignment = _assignment(world, tutor)
    world.enroll(alice, course)
    world.enroll(mallory, course)
    letters: list[DeadLetter] = []
    with device(
        world, mallory, tmp_path / "m.db", tmp_path / "objects", on_rejected=letters.append
    ) as phone:
        phone.cache.sync()
        # A submission row naming Alice: its file path is Alice's folder, which the insert
        # policy keeps to Alice (and the row's own RLS would refuse it too).
        intruder = phone.files.insert(
            "submissions",
            {"assignment_id": assignment, "student_id": alice.id, "body": "mine now"},
            file=b"%PDF forged",
            filename="essay.pdf",
        )
        own = phone.files.insert(
            "submissions",
            {"assignment_id": assignment, "student_id": mallory.id, "body": "my essay"},
            file=b"%PDF honest",
            filename="essay.pdf",
        )
        chat_message = phone.files.insert(
            "messages",
            {"conversation_id": conversation, "sender_id": mallory.id, "body": "done"},
            file=b"screenshot",
            filename="shot.png",
        )
        plain = phone.cache.insert(
            "messages", {"conversation_id": conversation, "sender_id": mallory.id, "body": "hi"}
        )
        phone.cache.sync()
        dead = phone.cache.dead_letters()
        assert [(d.table, d.row_id, d.sqlstate) for d in dead] == [
            ("submissions", intruder, "42501")
        ]
        assert "Storage refused submissions/" in (dead[0].message or "")
        assert [d.row_id for d in letters] == [intruder]
        assert phone.cache.get("submissions", intruder) is None  # the insert left locally
        assert [u.path for u in phone.files.rejected()] == [
            f"{alice.id}/{assignment}/{intruder}/essay.pdf"
        ]
        assert phone.cache.status().pending_ops == 0
        # Everything else arrived, files before rows.
        assert objects_named(world, "submissions", str(alice.id)) == []
        assert [n for n, *_ in objects_named(world, "submissions", str(mallory.id))] == [
            f"{mallory.id}/{assignment}/{own}/essay.pdf"
        ]
        assert world.sql("select student_id::text from public.submissions where id = %s", own) == [
            (mallory.id,)
        ]
        assert world.sql("select 1 from public.submissions where id = %s", intruder) == []
        arrived = world.sql(
            "select 1 from public.messages where id in (%s, %s)", chat_message, plain
        )
        assert len(arrived) == 2
        # The refused bytes stay with the dead letter; discarding it drops them.
        refused = tmp_path / "m.db.files" / phone.files.rejected()[0].local_name
        assert refused.read_bytes() == b"%PDF forged"
        phone.files.discard_dead_letter(dead[0].op_id)
        assert phone.files.rejected() == [] and not refused.exists()
        status = phone.cache.status().files
        assert status is not None and status.rejected_uploads == 0


def _material(
    world: SyncWorld, tutor: Any, course: str, objects: Path, tmp: Path, data: bytes
) -> str:
    """A lesson whose material the tutor uploaded through the store (insert policy: their
    course's folder)."""
    lesson = world.lesson(course, 0)
    path = f"{course}/{lesson}/slides.pdf"
    source = tmp / f"{lesson}.pdf"
    source.write_bytes(data)
    with device(world, tutor, tmp / f"tutor-{lesson}.db", objects) as desk:
        desk.store.upload(
            "course-materials", path, source, content_type="application/pdf", upsert=True
        )
    world.sql("update public.course_content set storage_path = %s where id = %s", path, lesson)
    return lesson


def test_unenrolled_student_loses_the_cached_materials(world: SyncWorld, tmp_path: Path) -> None:
    tutor, student = world.user("tutor"), world.user("student")
    course = world.course(tutor, lessons=0)
    objects = tmp_path / "objects"
    lesson = _material(world, tutor, course, objects, tmp_path, b"slides v1" * 100)
    enrollment = world.enroll(student, course)
    with device(world, student, tmp_path / "s.db", objects, rules=eager_materials()) as phone:
        phone.cache.sync()  # eager: the material is downloaded with the sync
        status = phone.cache.status().files
        assert status is not None and status.cached_files == 1
        cached = list((tmp_path / "s.db.files" / "cache").iterdir())
        assert len(cached) == 1 and cached[0].read_bytes() == b"slides v1" * 100
        world.sql("update public.enrollments set status = 'cancelled' where id = %s", enrollment)
        phone.cache.sync()
        assert phone.cache.get("course_content", lesson) is None
        assert not cached[0].exists()
        assert list((tmp_path / "s.db.files" / "cache").iterdir()) == []
        assert phone.cache.status().files.cached_files == 0  # type: ignore[union-attr]
        # And the store agrees: the object is no longer visible to them.
        with pytest.raises(NotFound):
            phone.store.info("course-materials", f"{course}/{lesson}/slides.pdf")


def test_changed_material_is_downloaded_again_only_when_its_etag_changed(
    world: SyncWorld, tmp_path: Path
) -> None:
    tutor, student = world.user("tutor"), world.user("student")
    course = world.course(tutor, lessons=0)
    objects = tmp_path / "objects"
    lesson = _material(world, tutor, course, objects, tmp_path, b"v1")
    world.enroll(student, course)
    with device(world, student, tmp_path / "s.db", objects) as phone:
        phone.cache.sync()
        first = phone.files.path("course_content", lesson)
        assert first.read_bytes() == b"v1"
        assert phone.files.path("course_content", lesson, refresh=True) == first  # 304
        source = tmp_path / "v2.pdf"
        source.write_bytes(b"v2 new slides")
        with device(world, tutor, tmp_path / "tutor2.db", objects) as desk:
            desk.store.upload(
                "course-materials",
                f"{course}/{lesson}/slides.pdf",
                source,
                content_type="application/pdf",
                upsert=True,
            )
        world.sql("update public.course_content set title = 'Slides v2' where id = %s", lesson)
        phone.cache.sync()  # the row changed: its file is checked again when next opened
        assert phone.files.read("course_content", lesson) == b"v2 new slides"
        assert not first.exists()


def test_budget_evicts_least_recently_used_files_but_never_those_of_pending_rows(
    world: SyncWorld, tmp_path: Path
) -> None:
    tutor = world.user("tutor")
    course = world.course(tutor, lessons=0)
    objects = tmp_path / "objects"
    lessons = [
        _material(world, tutor, course, objects, tmp_path, bytes([i]) * 1000) for i in range(3)
    ]
    clock = iter(range(1_000, 10_000))
    with device(
        world, tutor, tmp_path / "t.db", objects, budget_bytes=2500, now=lambda: float(next(clock))
    ) as desk:
        desk.cache.sync()
        a, b, c = lessons
        desk.cache.update("course_content", a, {"title": "editing offline"})  # pending write
        path_a = desk.files.path("course_content", a)
        path_b = desk.files.path("course_content", b)
        path_c = desk.files.path("course_content", c)  # 3000 bytes > 2500: one must go
        assert path_a.exists() and path_c.exists()
        assert not path_b.exists()  # least recently used that is not pinned
        status = desk.cache.status().files
        assert status is not None and status.cache_bytes == 2000 and status.budget_bytes == 2500
        path_b = desk.files.path("course_content", b)  # back, and now c is the oldest unpinned
        assert path_a.exists() and path_b.exists() and not path_c.exists()
        desk.cache.sync()  # a's write settles: a is unpinned and the oldest
        desk.files.path("course_content", c)
        assert not path_a.exists()


def test_file_status_reads_a_cache_file_without_a_store(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    _, student, conversation = chat
    with device(world, student, tmp_path / "s.db", tmp_path / "objects") as phone:
        phone.cache.sync()
        assert file_status(phone.cache.storage) is not None
        phone.files.insert(
            "messages",
            {"conversation_id": conversation, "sender_id": student.id, "body": ""},
            file=b"abc",
            filename="a.txt",
        )
        status = file_status(phone.cache.storage)
        assert status is not None and (status.queued_uploads, status.queued_upload_bytes) == (1, 3)


def test_retried_dead_letter_uploads_the_kept_file_once_access_is_granted(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    tutor, student, _ = chat
    course = world.course(tutor, lessons=0)
    closed = str(uuid.uuid4())  # the course's conversation; the student is not in it yet
    world.sql(
        "insert into public.conversations (id, kind, course_id, title, created_by)"
        " values (%s, 'course', %s, 'Course chat', %s)",
        closed,
        course,
        tutor.id,
    )
    with device(world, student, tmp_path / "s.db", tmp_path / "objects") as phone:
        phone.cache.sync()
        message = phone.files.insert(
            "messages",
            {"conversation_id": closed, "sender_id": student.id, "body": ""},
            file=b"too early",
            filename="early.txt",
        )
        phone.cache.sync()
        (letter,) = phone.cache.dead_letters()
        assert letter.row_id == message and letter.sqlstate == "42501"
        assert objects_named(world, "chat-attachments", closed) == []
        world.sql(
            "insert into public.conversation_participants (conversation_id, user_id)"
            " values (%s, %s)",
            closed,
            student.id,
        )
        phone.cache.retry_dead_letter(letter.op_id)
        phone.cache.sync()
        assert phone.cache.dead_letters() == [] and phone.files.rejected() == []
        path = f"{closed}/{message}/early.txt"
        assert objects_named(world, "chat-attachments", closed) == [
            (path, md5(b"too early"), student.id)
        ]
        assert world.sql("select attachment_path from public.messages where id = %s", message) == [
            (path,)
        ]


def test_a_cache_with_queued_files_refuses_to_push_without_its_file_queue(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    _, student, conversation = chat
    with device(world, student, tmp_path / "s.db", tmp_path / "objects") as phone:
        phone.cache.sync()
        message = phone.files.insert(
            "messages",
            {"conversation_id": conversation, "sender_id": student.id, "body": ""},
            file=b"later",
            filename="later.txt",
        )
        phone.files.close()  # an app that opened the cache alone
        with pytest.raises(SyncError, match="open a FileSync on this cache"):
            phone.cache.sync()
        assert world.sql("select 1 from public.messages where id = %s", message) == []
        again = FileSync(phone.cache, phone.store, files_folder(tmp_path / "s.db"))
        phone.cache.sync()
        again.close()
    assert world.sql("select attachment_path from public.messages where id = %s", message) == [
        (f"{conversation}/{message}/later.txt",)
    ]


def test_attaching_to_an_existing_row_updates_it_after_the_upload(
    world: SyncWorld, tmp_path: Path
) -> None:
    tutor, student = world.user("tutor"), world.user("student")
    course, assignment = _assignment(world, tutor)
    world.enroll(student, course)
    with device(world, student, tmp_path / "s.db", tmp_path / "objects") as phone:
        phone.cache.sync()
        submission = phone.cache.insert(
            "submissions", {"assignment_id": assignment, "student_id": student.id, "body": "v1"}
        )
        phone.cache.sync()
        path = phone.files.update(
            "submissions", submission, {"status": "submitted"}, file=b"%PDF final", filename="a.pdf"
        )
        assert path == f"{student.id}/{assignment}/{submission}/a.pdf"
        phone.cache.sync()
    assert world.sql(
        "select storage_path, status from public.submissions where id = %s", submission
    ) == [(path, "submitted")]
    assert objects_named(world, "submissions", str(student.id)) == [
        (path, md5(b"%PDF final"), student.id)
    ]
    # The course's tutor reads it through the select policy.
    with device(world, tutor, tmp_path / "t.db", tmp_path / "objects") as desk:
        desk.cache.sync()
        assert desk.files.read("submissions", submission) == b"%PDF final"


def test_object_paths_are_deterministic_and_safe() -> None:
    rule = next(r for r in PLATFORM_RULES if r.table == "messages")
    row = {"id": "m1", "conversation_id": "c1"}
    assert rule.path(row, "../../etc/passwd") == "c1/m1/passwd"
    assert (
        rule.path(row, "photo (1).png") == rule.path(row, "photo (1).png") == "c1/m1/photo_1_.png"
    )
    with pytest.raises(SyncError, match="needs the row's conversation_id"):
        rule.path({"id": "m1"}, "a.png")
    with pytest.raises(SyncError, match="not a usable file name"):
        safe_filename("...")


def test_attaching_a_missing_file_is_a_clear_error_and_writes_nothing(
    world: SyncWorld, chat: tuple[Any, Any, str], tmp_path: Path
) -> None:
    _, student, conversation = chat
    with device(world, student, tmp_path / "s.db", tmp_path / "objects") as phone:
        phone.cache.sync()
        with pytest.raises(SyncError, match="is not a file that can be attached"):
            phone.files.insert(
                "messages",
                {"conversation_id": conversation, "sender_id": student.id, "body": ""},
                file=tmp_path / "nope.png",
            )
        with pytest.raises(SyncError, match="needs a filename"):
            phone.files.insert("messages", {"conversation_id": conversation}, file=b"x")
        assert phone.cache.status().pending_ops == 0
        assert phone.cache.status().files.queued_uploads == 0  # type: ignore[union-attr]
        assert list((tmp_path / "s.db.files" / "queue").iterdir()) == []
