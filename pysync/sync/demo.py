"""The offline-sync story behind ``pysync sync demo``, told against a database with the dev
world (``supabase/seed.sql`` and ``pysync seed dev``): a student's two devices and their
tutor's, an offline edit that conflicts, an offline message with a photo attached (uploaded
before the message, downloaded by the tutor through Storage's policies), an enrollment that
ends and the course content that leaves both devices, and every cache checked against the
server.

It writes to the database it runs on and puts back what it changed (the student's profile
and enrollment), so it can run again and again; its caches live in a temporary folder.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pysync.client import Client
from pysync.gateway import eq
from pysync.sync.cache import SyncCache
from pysync.sync.conflicts import ConflictContext
from pysync.sync.connector import Connector
from pysync.sync.errors import SyncError
from pysync.sync.files import FileSync, files_folder, object_store_for
from pysync.sync.storage import quote

__all__ = ["DEMO_STUDENT", "DEMO_TUTOR", "DemoReport", "differences", "run_demo"]

#: The fixed users of ``supabase/seed.sql``: Sam takes Tom's Algebra I and they chat.
DEMO_STUDENT = "student.sam@example.com"
DEMO_TUTOR = "tutor.tom@example.com"

Say = Callable[[str], None]


@dataclass
class DemoReport:
    """What the story did, step by step, and what it found."""

    #: The steps done, in order (``first_sync``, ``offline_edit``, …, ``converged``).
    steps: list[str] = field(default_factory=list)
    student: str = ""
    tutor: str = ""
    course: str = ""
    #: The profile row on each side of the conflict and after it: base, phone, laptop, result.
    conflict: dict[str, dict[str, Any]] = field(default_factory=dict)
    message_id: str = ""
    #: The photo attached to the offline message: its object path and size.
    attachment_path: str = ""
    attachment_bytes: int = 0
    #: Course content rows of the course on each student device, before and after the end.
    content_before: dict[str, int] = field(default_factory=dict)
    content_after: dict[str, int] = field(default_factory=dict)
    #: Caches whose every held bucket equals what their user can select on the server.
    converged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "student": self.student,
            "tutor": self.tutor,
            "course": self.course,
            "conflict": self.conflict,
            "message_id": self.message_id,
            "attachment_path": self.attachment_path,
            "attachment_bytes": self.attachment_bytes,
            "content_before": self.content_before,
            "content_after": self.content_after,
            "converged": self.converged,
        }


def differences(cache: SyncCache, client: Client) -> list[str]:
    """How ``cache`` differs from what ``client``'s user can select on the server, bucket by
    bucket (ids and versions), and buckets it holds that the server would no longer give it.
    Empty when the cache is exact."""
    found: list[str] = []
    held = cache.held_buckets()
    subscriptions = cache.storage.live_subscriptions(time.time())
    gone = Connector(client).checksums(held, subscriptions).removed_buckets if held else []
    found.extend(f"{bucket}: held, but no longer the user's" for bucket in gone)
    for name, record in cache.storage.buckets().items():
        column = cache.storage.spec(record.table).bucket_column
        local = {
            str(r["id"]): r["version"]
            for r in cache.query(
                f"SELECT id, version FROM {quote(record.table)} WHERE {quote(column)} = ?",  # noqa: S608
                [record.key],
            )
        }
        remote = {
            str(r["id"]): r["version"]
            for r in client.gateway.select(
                record.table, columns="id,version", filters=[eq(column, record.key)]
            ).rows
        }
        if local != remote:
            missing = len(remote.keys() - local.keys())
            extra = len(local.keys() - remote.keys())
            stale = sum(1 for k in local.keys() & remote.keys() if local[k] != remote[k])
            found.append(f"{name}: {missing} missing, {extra} extra, {stale} stale rows")
    return found


def _total_rows(cache: SyncCache) -> int:
    return sum(cache.status().tables.values())


def _profile(cache: SyncCache, user_id: str) -> dict[str, Any]:
    row = cache.get("profiles", user_id) or {}
    return {k: row.get(k) for k in ("display_name", "timezone", "locale", "version")}


@contextlib.contextmanager
def _platform(url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def _one(conn: psycopg.Connection[Any], missing: str, query: str, *params: Any) -> tuple[Any, ...]:
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise SyncError(f"{missing}: the demo runs on the dev world (`pysync seed dev`)")
    return tuple(row)


def run_demo(
    url: str,
    jwt_secret: str,
    *,
    student: str = DEMO_STUDENT,
    tutor: str = DEMO_TUTOR,
    say: Say = print,
    workdir: Path | None = None,
    objects_dir: Path | None = None,
) -> DemoReport:
    """Tell the story against ``url`` (the database as ``postgres``), printing each step
    through ``say``; the caches go to ``workdir`` (default: a temporary folder, removed), the
    local object store's bytes to ``objects_dir`` (default: inside ``workdir``; the CLI
    passes the data dir's, so the photo stays readable with the message)."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="pysync-demo-") as tmp:
            return run_demo(
                url,
                jwt_secret,
                student=student,
                tutor=tutor,
                say=say,
                workdir=Path(tmp),
                objects_dir=objects_dir,
            )
    objects = objects_dir or workdir / "objects"
    report = DemoReport(student=student, tutor=tutor)
    stamp = time.strftime("%H:%M:%S")

    # Set-up, as the platform: find the student's enrollment in a course of the tutor and make
    # sure it is active (a previous run ends it, then puts it back; a crashed one may not have).
    with _platform(url) as conn:
        student_id, tutor_id = (
            str(_one(conn, f"no user {who}", "select id from auth.users where email = %s", who)[0])
            for who in (student.strip().lower(), tutor.strip().lower())
        )
        enrollment_id, course_id, title, status = _one(
            conn,
            f"{student} has no enrollment in a published course of {tutor}",
            "select e.id::text, c.id::text, c.title, e.status from public.enrollments as e"
            " join public.courses as c on c.id = e.course_id"
            " where e.student_id = %s and c.tutor_id = %s and c.status = 'published'"
            " order by e.status = 'active' desc, e.enrolled_at limit 1",
            student_id,
            tutor_id,
        )
        if status != "active":
            conn.execute(
                "update public.enrollments set status = 'active' where id = %s", (enrollment_id,)
            )
            say(f"set-up: re-enrolled {student} in {title} (it was {status})")
        original = _one(
            conn,
            f"{student} has no profile",
            "select display_name, timezone, locale from public.profiles where id = %s",
            student_id,
        )
    report.course = title

    conflicts: list[tuple[ConflictContext, dict[str, Any] | None]] = []
    try:
        with contextlib.ExitStack() as stack:
            student_client = stack.enter_context(Client.local(url, jwt_secret, student_id))
            tutor_client = stack.enter_context(Client.local(url, jwt_secret, tutor_id))
            conversation = str(student_client.conversations.start_direct(tutor_id).id)
            phone = stack.enter_context(
                SyncCache.open(
                    student_client,
                    workdir / "student-phone.sqlite",
                    on_conflict=lambda ctx, decision: conflicts.append((ctx, decision)),
                )
            )
            laptop = stack.enter_context(
                SyncCache.open(student_client, workdir / "student-laptop.sqlite")
            )
            teacher = stack.enter_context(SyncCache.open(tutor_client, workdir / "tutor.sqlite"))
            caches = {"phone": phone, "laptop": laptop, "tutor": teacher}
            # Files ride with the caches: the phone's upload before its rows, the tutor's
            # downloads through Storage's select policy (the local object store: real RLS).
            phone_files = FileSync(
                phone,
                object_store_for(student_client, objects),
                files_folder(workdir / "student-phone.sqlite"),
            )
            teacher_files = FileSync(
                teacher,
                object_store_for(tutor_client, objects),
                files_folder(workdir / "tutor.sqlite"),
            )

            say(f"1. First sync: {student} on a phone and a laptop, {tutor} on theirs")
            for name, cache in caches.items():
                cache.sync()
                status = cache.status()
                buckets = sum(p.buckets for p in status.streams.values())
                say(f"   {name}: {_total_rows(cache)} rows in {buckets} buckets")
            report.steps.append("first_sync")

            base = _profile(phone, student_id)
            phone_edit = {"display_name": f"{original[0]} (phone {stamp})", "locale": "fr"}
            laptop_edit = {
                "timezone": "Asia/Tokyo" if original[1] != "Asia/Tokyo" else "Europe/Paris",
                "locale": "de",
            }
            say("2. The phone goes offline (it just stops syncing) and edits the profile")
            phone.update("profiles", student_id, phone_edit)
            say(f"   phone:  {phone_edit}")
            body = f"Written offline on the train at {stamp}: see you Tuesday!"
            photo = b"\x89PNG\r\n\x1a\n" + f"whiteboard photo {stamp}".encode() * 200
            report.message_id = phone_files.insert(
                "messages",
                {"conversation_id": conversation, "sender_id": student_id, "body": body},
                file=photo,
                filename="whiteboard.png",
            )
            attached = phone.get("messages", report.message_id) or {}
            report.attachment_path = str(attached.get("attachment_path") or "")
            report.attachment_bytes = len(photo)
            say(f"   and writes a message to {tutor}: {body!r}")
            say(f"   with a photo attached ({len(photo)} bytes, queued to upload first)")
            say(f"   phone: {phone.status().pending_ops} writes pending")
            report.steps.append("offline_edit")

            say("3. Meanwhile the laptop edits the same profile row and syncs")
            laptop.update("profiles", student_id, laptop_edit)
            laptop.sync()
            version = _profile(laptop, student_id)["version"]
            say(f"   laptop: {laptop_edit} (server version {version})")
            report.steps.append("concurrent_edit")

            say("4. The phone reconnects and syncs: profiles merge field by field (field_merge)")
            phone.sync()
            laptop.sync()
            result = _profile(phone, student_id)
            report.conflict = {
                "base": base,
                "phone": {**base, **phone_edit},
                "laptop": {**base, **laptop_edit},
                "result": result,
            }
            if not conflicts:
                raise SyncError("the phone's profile edit did not conflict: is the row shared?")
            for side in ("base", "phone", "laptop", "result"):
                row = report.conflict[side]
                say(
                    f"   {side:<7} display_name={row['display_name']!r}"
                    f" timezone={row['timezone']!r} locale={row['locale']!r}"
                )
            say(
                "   only the phone changed display_name: the phone's; only the laptop changed"
                " timezone: the laptop's; both changed locale: the server's (the laptop's)"
            )
            if _profile(laptop, student_id) != result:
                raise SyncError("the laptop did not get the merged profile")
            report.steps.append("conflict_resolved")

            say("5. The tutor syncs: the message written offline arrives")
            teacher.sync()
            arrived = teacher.get("messages", report.message_id)
            if arrived is None:
                raise SyncError("the offline message did not reach the tutor's cache")
            say(f"   tutor: {arrived['body']!r}")
            if teacher_files.read("messages", report.message_id) != photo:
                raise SyncError("the photo did not reach the tutor")
            say(f"   tutor: opens {report.attachment_path.rsplit('/', 1)[-1]}: {len(photo)} bytes")
            report.steps.append("message_delivered")

            content = "SELECT count(*) AS n FROM course_content WHERE course_id = ?"
            for name in ("phone", "laptop"):
                report.content_before[name] = caches[name].query(content, [course_id])[0]["n"]
            say(
                f"6. The tutor ends the enrollment in {title} from their own cache (RLS lets a"
                " course's tutor change an enrollment's status) and syncs"
            )
            teacher.update("enrollments", enrollment_id, {"status": "cancelled"})
            teacher.sync()
            for name in ("phone", "laptop"):
                caches[name].sync()
                report.content_after[name] = caches[name].query(content, [course_id])[0]["n"]
                say(
                    f"   {name}: {report.content_before[name]} lessons and modules of {title}"
                    f" before, {report.content_after[name]} after"
                )
            if any(report.content_after.values()):
                raise SyncError("the course content did not leave the student's devices")
            report.steps.append("access_revoked")

            say("7. Every cache against what its user can select on the server")
            clients = {"phone": student_client, "laptop": student_client, "tutor": tutor_client}
            for name, cache in caches.items():
                cache.sync()
                wrong = differences(cache, clients[name])
                if wrong:
                    raise SyncError(f"{name} differs from the server: {'; '.join(wrong)}")
                report.converged.append(name)
                held = len(cache.held_buckets())
                say(f"   {name}: {held} buckets, {_total_rows(cache)} rows: match")
            report.steps.append("converged")
            say(f"converged: {len(report.converged)} caches match the server")
    finally:
        # Leave the dev world as the demo found it (the message stays: it is a chat).
        with _platform(url) as conn:
            conn.execute(
                "update public.enrollments set status = 'active' where id = %s", (enrollment_id,)
            )
            conn.execute(
                "update public.profiles set display_name = %s, timezone = %s, locale = %s"
                " where id = %s",
                (*original, student_id),
            )
    return report
