"""Import the legacy Node.js/PostgreSQL deployment's data into this schema.

Each legacy table is handled by a small :class:`Mapper`: which source columns it reads, which
target tables it writes, how one row maps, and which cross-row problems it looks for in SQL
(duplicates, overlapping sessions). :data:`MAPPERS` runs them in dependency order, so adding a
table is adding a mapper; one that derives rows (messages → a conversation per pair of users)
also overrides how it writes and reconciles. The column mapping is documented in
``docs/legacy-import.md``.

Guarantees:

* **Idempotent.** Every target id is ``uuid5(NAMESPACE, "<legacy table>:<legacy id>")``, so a
  re-run finds its own rows: users are inserted once (``on conflict do nothing``: a password
  changed since stays changed); other rows are updated only when the legacy row changed.
* **Batched.** ``batch_size`` source rows per transaction. A batch that violates a constraint
  is retried row by row, each in a savepoint; the rows that still fail are reported and
  skipped, so one bad row never stops an import.
* **Reported, not crashed.** Values that do not map (unknown roles or states, bad e-mails,
  overlapping confirmed sessions of one tutor, ...) are *problems*: the row is skipped (or
  imported with the value dropped, when the rest is sound) and listed.
* **Reconciled.** Afterwards, per target table: the source rows, the rows skipped, the
  target rows carrying a mapped id, and whether the md5 of the sorted mapped ids agrees.
  Derived tables (conversations, participants) reconcile against their own expected keys.
* **Quiet.** Messages are written without their triggers, so imported history sends no
  notifications, broadcasts or sync nudges (:class:`MessagesMapper`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pysync.errors import LegacyImportError, first_line
from pysync.progress import ProgressCallback, Reporter

__all__ = [
    "MAPPERS",
    "NAMESPACE",
    "ImportReport",
    "Mapper",
    "Problem",
    "Reconciliation",
    "direct_key",
    "import_legacy",
    "legacy_uuid",
]

#: The namespace of every imported id; never change it, or re-runs duplicate everything.
NAMESPACE = uuid.UUID("5b0f3c1e-8a47-5e0b-9f65-2d1c7a9e4b10")
#: GoTrue's instance id for every user of a Supabase project.
_INSTANCE = "00000000-0000-0000-0000-000000000000"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_BCRYPT = re.compile(r"^\$2[abxy]\$\d\d\$[./A-Za-z0-9]{53}$")


def legacy_uuid(table: str, legacy_id: object) -> uuid.UUID:
    """The target id of legacy row ``legacy_id`` of ``table``."""
    return uuid.uuid5(NAMESPACE, f"{table}:{legacy_id}")


@dataclass(frozen=True)
class Problem:
    table: str
    legacy_id: object
    message: str
    #: ``skipped`` (the row is not imported) or ``changed`` (imported without the bad value).
    action: str = "skipped"

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "legacy_id": self.legacy_id,
            "message": self.message,
            "action": self.action,
        }


@dataclass(frozen=True)
class Reconciliation:
    source_table: str
    target_table: str
    source_rows: int
    skipped: int
    target_rows: int
    checksum_ok: bool
    #: What ``source_rows`` counts: ``rows`` of the source table, or, for a target table
    #: derived from many source rows (a conversation per pair of users), what it is derived
    #: from (``user pairs``). ``ok`` means the same either way: every expected target row is
    #: there, and nothing else carries an expected key.
    unit: str = "rows"

    @property
    def ok(self) -> bool:
        return self.checksum_ok and self.target_rows == self.source_rows - self.skipped

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_table": self.source_table,
            "target_table": self.target_table,
            "source_rows": self.source_rows,
            "skipped": self.skipped,
            "target_rows": self.target_rows,
            "checksum_ok": self.checksum_ok,
            "unit": self.unit,
            "ok": self.ok,
        }


@dataclass
class ImportReport:
    dry_run: bool
    problems: list[Problem] = field(default_factory=list)
    reconciliation: list[Reconciliation] = field(default_factory=list)
    #: Rows inserted or changed per target table in this run (0 on a repeated run).
    written: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reconciliation)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "written": self.written,
            "problems": [p.as_dict() for p in self.problems],
            "reconciliation": [r.as_dict() for r in self.reconciliation],
        }


@dataclass(frozen=True)
class Target:
    """One table a mapper writes: its columns (id first) and what a re-run does."""

    table: str
    columns: tuple[str, ...]
    #: ``nothing``: keep the existing row; ``update``: update it when the mapped values differ.
    on_conflict: str = "update"
    conflict_columns: tuple[str, ...] = ("id",)

    def insert(self) -> sql.Composed:
        schema, name = self.table.split(".")
        cols = [sql.Identifier(c) for c in self.columns]
        statement = sql.SQL("insert into {} ({}) values ({}) on conflict ({}) do ").format(
            sql.Identifier(schema, name),
            sql.SQL(", ").join(cols),
            sql.SQL(", ").join(sql.Placeholder() * len(cols)),
            sql.SQL(", ").join(sql.Identifier(c) for c in self.conflict_columns),
        )
        if self.on_conflict == "nothing":
            return statement + sql.SQL("nothing")
        rest = [sql.Identifier(c) for c in self.columns if c not in self.conflict_columns]
        return statement + sql.SQL(
            "update set ({}) = row({}) where ({}) is distinct from ({})"
        ).format(
            sql.SQL(", ").join(rest),
            sql.SQL(", ").join(sql.SQL("excluded.{}").format(c) for c in rest),
            sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(name), c) for c in rest),
            sql.SQL(", ").join(sql.SQL("excluded.{}").format(c) for c in rest),
        )


class Mapper:
    """How one legacy table becomes rows of the target. Subclasses fill in the class data
    and :meth:`map_row`; :meth:`set_problems`, :meth:`write` and :meth:`reconcile` have
    defaults that suit a table mapped row for row."""

    source: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    targets: ClassVar[tuple[Target, ...]]
    #: Legacy foreign keys: column → legacy table it points to (a row whose parent was
    #: skipped is skipped too).
    parents: ClassVar[dict[str, str]] = {}
    #: Extra target tables whose rows appear as a side effect, for reconciliation
    #: (e.g. profiles, made by the sign-up trigger from auth.users).
    side_effects: ClassVar[tuple[str, ...]] = ()

    def missing_target(self, conn: psycopg.Connection[Any]) -> str | None:
        """Why this mapper cannot run against the target, or None."""
        for target in (*(t.table for t in self.targets), *self.side_effects):
            row = conn.execute("select to_regclass(%s) is not null", (target,)).fetchone()
            if not row or not row[0]:
                return f"{self.source}: the target has no {target}"
        return None

    def set_problems(self) -> list[LiteralString]:
        """Queries over the source returning ``(legacy id, message)`` of rows to skip because
        of other rows (duplicates, overlaps)."""
        return []

    def map_row(self, row: dict[str, Any]) -> tuple[list[tuple[Any, ...]], list[Problem]]:
        """The value tuples (one per target) for ``row``, or ``[]`` to skip it, and problems."""
        raise NotImplementedError

    def target_ids(self, legacy_id: object) -> list[uuid.UUID]:
        """The mapped id in each target (and side-effect) table of one legacy row."""
        own = legacy_uuid(self.source, legacy_id)
        return [own for _ in (*self.targets, *self.side_effects)]

    def write(self, conn: psycopg.Connection[Any], rows: Sequence[list[tuple[Any, ...]]]) -> int:
        """Write mapped rows (one :meth:`map_row` result each) inside the caller's transaction
        or savepoint; return how many target rows were inserted or changed. A constraint error
        propagates: the caller then retries row by row."""
        changed = 0
        with conn.cursor() as cursor:
            for i, target in enumerate(self.targets):
                cursor.executemany(target.insert(), [values[i] for values in rows])
                changed += max(cursor.rowcount, 0)
        return changed

    def reconcile(
        self,
        source: psycopg.Connection[Any],
        target: psycopg.Connection[Any],
        source_rows: int,
        kept: list[object],
        skipped: int,
    ) -> list[Reconciliation]:
        """One line per target (and side-effect) table: the kept rows' mapped ids against
        the ids found there."""
        tables = [*(t.table for t in self.targets), *self.side_effects]
        per_table: list[list[str]] = [[] for _ in tables]
        for legacy_id in kept:
            for i, mapped in enumerate(self.target_ids(legacy_id)):
                per_table[i].append(str(mapped))
        return [
            _reconcile_ids(target, self.source, table, ids, source_rows, skipped)
            for table, ids in zip(tables, per_table, strict=True)
        ]


def _skip(
    table: str, legacy_id: object, message: str
) -> tuple[list[tuple[Any, ...]], list[Problem]]:
    return [], [Problem(table, legacy_id, message)]


class UsersMapper(Mapper):
    """users → auth.users + auth.identities, as GoTrue writes an e-mail sign-up; the sign-up
    trigger then creates the profile with the role from ``raw_app_meta_data.app_role``."""

    source = "users"
    columns = ("id", "email", "password_hash", "full_name", "role", "avatar", "created_at")
    targets = (
        Target(
            "auth.users",
            (
                "id",
                "instance_id",
                "aud",
                "role",
                "email",
                "encrypted_password",
                "email_confirmed_at",
                "raw_app_meta_data",
                "raw_user_meta_data",
                "created_at",
                "updated_at",
                "confirmation_token",
                "recovery_token",
                "email_change_token_new",
                "email_change",
                "is_sso_user",
                "is_anonymous",
            ),
            on_conflict="nothing",
        ),
        Target(
            "auth.identities",
            (
                "id",
                "provider_id",
                "user_id",
                "identity_data",
                "provider",
                "created_at",
                "updated_at",
            ),
            on_conflict="nothing",
        ),
    )
    side_effects = ("public.profiles",)
    ROLES: ClassVar[dict[str, str]] = {"student": "student", "teacher": "tutor", "admin": "admin"}

    def set_problems(self) -> list[LiteralString]:
        return [
            "select id, 'e-mail ' || lower(trim(email)) || ' is also used by users:' || first"
            " from (select id, email, first_value(id) over (partition by lower(trim(email))"
            " order by id) as first from users) as u where id <> first"
        ]

    def map_row(self, row: dict[str, Any]) -> tuple[list[tuple[Any, ...]], list[Problem]]:
        legacy_id = row["id"]
        email = (row["email"] or "").strip().lower()
        if not _EMAIL.match(email) or len(email) > 255:
            return _skip(self.source, legacy_id, f"bad e-mail {row['email']!r}")
        role = self.ROLES.get((row["role"] or "").strip().lower())
        if role is None:
            return _skip(self.source, legacy_id, f"unknown role {row['role']!r}")
        problems: list[Problem] = []
        password = row["password_hash"] or ""
        if _BCRYPT.match(password):
            # $2b$ (node bcrypt) and $2y$ are the same algorithm as $2a$ for any password
            # bcrypt accepts; GoTrue reads all of them, pgcrypto's crypt() only $2a$.
            password = "$2a$" + password[4:]
        else:
            problems.append(
                Problem(
                    self.source,
                    legacy_id,
                    "password hash is not bcrypt: the user must reset the password",
                    "changed",
                )
            )
            password = ""
        name = (row["full_name"] or "").strip()[:100] or None
        avatar = row["avatar"] if row["avatar"] and len(row["avatar"]) <= 2048 else None
        if row["avatar"] and avatar is None:
            problems.append(Problem(self.source, legacy_id, "avatar URL too long", "changed"))
        user_id = legacy_uuid(self.source, legacy_id)
        created: datetime = row["created_at"]
        app_meta = {"provider": "email", "providers": ["email"], "app_role": role}
        user_meta = {
            "display_name": name,
            "full_name": name,
            "avatar_url": avatar,
            "legacy_id": legacy_id,
        }
        user = (
            user_id,
            _INSTANCE,
            "authenticated",
            "authenticated",
            email,
            password,
            created,
            json.dumps(app_meta),
            json.dumps(user_meta),
            created,
            created,
            "",
            "",
            "",
            "",
            False,
            False,
        )
        identity_data = {
            "sub": str(user_id),
            "email": email,
            "email_verified": True,
            "phone_verified": False,
        }
        identity = (
            legacy_uuid("identities", legacy_id),
            str(user_id),
            user_id,
            json.dumps(identity_data),
            "email",
            created,
            created,
        )
        return [user, identity], problems

    def target_ids(self, legacy_id: object) -> list[uuid.UUID]:
        user = legacy_uuid(self.source, legacy_id)
        return [user, legacy_uuid("identities", legacy_id), user]


class CoursesMapper(Mapper):
    source = "courses"
    columns = ("id", "teacher_id", "title", "description", "is_published", "created_at")
    targets = (
        Target(
            "public.courses",
            ("id", "tutor_id", "title", "description", "status", "published_at", "created_at"),
        ),
    )
    parents: ClassVar[dict[str, str]] = {"teacher_id": "users"}

    def map_row(self, row: dict[str, Any]) -> tuple[list[tuple[Any, ...]], list[Problem]]:
        title = (row["title"] or "").strip()
        if not 1 <= len(title) <= 200:
            return _skip(self.source, row["id"], "title must be 1 to 200 characters")
        description = row["description"] or ""
        if len(description) > 20000:
            return _skip(self.source, row["id"], "description longer than 20000 characters")
        published = bool(row["is_published"])
        return [
            (
                legacy_uuid(self.source, row["id"]),
                legacy_uuid("users", row["teacher_id"]),
                title,
                description,
                "published" if published else "draft",
                row["created_at"] if published else None,
                row["created_at"],
            )
        ], []


class LessonsMapper(Mapper):
    """lessons → course_content, flat: each lesson at the top level of its course (the legacy
    platform had no modules, so inventing one per course would only add rows to reconcile)."""

    source = "lessons"
    columns = ("id", "course_id", "title", "content", "sort_order", "free_preview")
    targets = (
        Target(
            "public.course_content",
            ("id", "course_id", "kind", "position", "title", "content_type", "body", "is_preview"),
        ),
    )
    parents: ClassVar[dict[str, str]] = {"course_id": "courses"}

    def map_row(self, row: dict[str, Any]) -> tuple[list[tuple[Any, ...]], list[Problem]]:
        title = (row["title"] or "").strip()
        if not 1 <= len(title) <= 200:
            return _skip(self.source, row["id"], "title must be 1 to 200 characters")
        if row["content"] and len(row["content"]) > 200000:
            return _skip(self.source, row["id"], "content longer than 200000 characters")
        problems = []
        position = row["sort_order"]
        if position is None or position < 0:
            problems.append(
                Problem(self.source, row["id"], "negative sort_order set to 0", "changed")
            )
            position = 0
        return [
            (
                legacy_uuid(self.source, row["id"]),
                legacy_uuid("courses", row["course_id"]),
                "lesson",
                position,
                title,
                "markdown",
                row["content"],
                bool(row["free_preview"]),
            )
        ], problems


class EnrollmentsMapper(Mapper):
    source = "enrollments"
    columns = ("id", "user_id", "course_id", "state", "created_at")
    targets = (
        Target(
            "public.enrollments",
            (
                "id",
                "student_id",
                "course_id",
                "status",
                "enrolled_at",
                "completed_at",
                "created_at",
            ),
        ),
    )
    parents: ClassVar[dict[str, str]] = {"user_id": "users", "course_id": "courses"}
    STATES: ClassVar[dict[str, str]] = {
        "active": "active",
        "done": "completed",
        "dropped": "cancelled",
    }

    def set_problems(self) -> list[LiteralString]:
        return [
            "select id, 'users:' || user_id || ' is already enrolled in courses:' || course_id"
            " || ' by enrollments:' || first from (select id, user_id, course_id,"
            " first_value(id) over (partition by user_id, course_id order by id) as first"
            " from enrollments) as e where id <> first"
        ]

    def map_row(self, row: dict[str, Any]) -> tuple[list[tuple[Any, ...]], list[Problem]]:
        status = self.STATES.get((row["state"] or "").strip().lower())
        if status is None:
            return _skip(self.source, row["id"], f"unknown state {row['state']!r}")
        created = row["created_at"]
        # The legacy schema has no completion time: the enrollment's own date stands in.
        completed = created if status == "completed" else None
        return [
            (
                legacy_uuid(self.source, row["id"]),
                legacy_uuid("users", row["user_id"]),
                legacy_uuid("courses", row["course_id"]),
                status,
                created,
                completed,
                created,
            )
        ], []


class AppointmentsMapper(Mapper):
    """appointments → tutoring_sessions. Confirmed appointments of one tutor that overlap
    cannot all exist (the target forbids double booking): the later ones are skipped."""

    source = "appointments"
    columns = ("id", "teacher_id", "student_id", "start_time", "end_time", "state", "link")
    targets = (
        Target(
            "public.tutoring_sessions",
            ("id", "tutor_id", "student_id", "starts_at", "ends_at", "status", "meeting_url"),
        ),
    )
    parents: ClassVar[dict[str, str]] = {"teacher_id": "users", "student_id": "users"}
    STATES: ClassVar[dict[str, str]] = {
        "pending": "requested",
        "confirmed": "confirmed",
        "done": "completed",
        "cancelled": "cancelled",
        "missed": "no_show",
    }

    def set_problems(self) -> list[LiteralString]:
        return [
            "select distinct on (b.id) b.id, 'confirmed, and overlaps confirmed appointments:'"
            " || a.id || ' of the same teacher' from appointments as a join appointments as b"
            " on a.teacher_id = b.teacher_id and a.id < b.id"
            " and tstzrange(a.start_time, a.end_time) && tstzrange(b.start_time, b.end_time)"
            " where lower(a.state) = 'confirmed' and lower(b.state) = 'confirmed'"
            " and a.end_time > a.start_time and b.end_time > b.start_time"
            " order by b.id, a.id"
        ]

    def map_row(self, row: dict[str, Any]) -> tuple[list[tuple[Any, ...]], list[Problem]]:
        legacy_id = row["id"]
        status = self.STATES.get((row["state"] or "").strip().lower())
        if status is None:
            return _skip(self.source, legacy_id, f"unknown state {row['state']!r}")
        start, end = row["start_time"], row["end_time"]
        if end <= start:
            return _skip(self.source, legacy_id, "ends before it starts")
        if (end - start).total_seconds() > 8 * 3600:
            return _skip(self.source, legacy_id, "longer than 8 hours")
        if row["teacher_id"] == row["student_id"]:
            return _skip(self.source, legacy_id, "teacher and student are the same user")
        problems = []
        link = row["link"]
        if link and not (link.startswith("https://") and len(link) <= 2048):
            problems.append(
                Problem(self.source, legacy_id, f"link {link!r} dropped (not https)", "changed")
            )
            link = None
        return [
            (
                legacy_uuid(self.source, legacy_id),
                legacy_uuid("users", row["teacher_id"]),
                legacy_uuid("users", row["student_id"]),
                start,
                end,
                status,
                link or None,
            )
        ], problems


def direct_key(a: uuid.UUID, b: uuid.UUID) -> str:
    """``public.conversations.direct_key`` of two users: ``<smaller id>:<larger id>``, as
    ``start_direct_conversation()`` writes it (uuids compare alike in Python and Postgres)."""
    low, high = sorted((a, b))
    return f"{low}:{high}"


class MessagesMapper(Mapper):
    """messages → one direct conversation per unordered pair of users, its two participants,
    and the message.

    The batches run with ``session_replication_role = replica`` (transaction-local), so the
    message triggers do not fire: years of history must not notify anyone, broadcast on
    conversation topics or nudge devices to sync. Replica mode skips *every* ordinary trigger
    and the foreign-key checks, so :meth:`write` does itself what those would have done and
    the import needs: ``last_message_at`` (and ``created_at``/``created_by``) of the
    conversation, the bookkeeping of ``stamp_synced_row`` on updates, two participants per
    direct conversation, and the profile foreign keys (checked and key-share locked up
    front; a missing one is raised as a foreign-key violation, so the batch is retried row by
    row and only the rows concerned are rejected).

    Conversations are derived (many messages, one conversation), so they reconcile by their
    own expected keys, not one-to-one with source rows (:meth:`reconcile`).
    """

    source = "messages"
    columns = ("id", "from_user", "to_user", "body", "sent_at")
    targets = (
        Target(
            "public.conversations",
            ("id", "kind", "created_by", "direct_key", "last_message_at", "created_at"),
        ),
        Target(
            "public.conversation_participants",
            ("id", "conversation_id", "user_id", "role", "joined_at", "created_at"),
        ),
        Target("public.messages", ("id", "conversation_id", "sender_id", "body", "created_at")),
    )
    parents: ClassVar[dict[str, str]] = {"from_user": "users", "to_user": "users"}
    #: ``messages.body`` check: ``char_length(body) <= 4000``.
    MAX_BODY = 4000

    # The pair's conversation: created by its first message, last_message_at its latest.
    # least/greatest make batches in any order, re-runs, and a conversation the pair already
    # started in the new system converge on the same row; the where clause keeps a re-run
    # from writing. Updates stamp version/updated_at/sync_xid as stamp_synced_row would.
    _CONVERSATION: ClassVar[LiteralString] = (
        "insert into public.conversations as c"
        " (id, kind, created_by, direct_key, last_message_at, created_at)"
        " values (%s, 'direct', %s, %s, %s, %s)"
        " on conflict (direct_key) do update set"
        " created_by = case when excluded.created_at < c.created_at"
        " then excluded.created_by else c.created_by end,"
        " created_at = least(c.created_at, excluded.created_at),"
        " last_message_at = greatest(c.last_message_at, excluded.last_message_at),"
        " version = c.version + 1, updated_at = now(), sync_xid = pg_current_xact_id()"
        " where excluded.created_at < c.created_at"
        " or c.last_message_at is null or excluded.last_message_at > c.last_message_at"
    )
    # Both members, once: the conversation may be one the pair opened in the new system
    # (another id), hence the lookup by direct_key and the conflict on (conversation, user).
    _PARTICIPANT: ClassVar[LiteralString] = (
        "insert into public.conversation_participants"
        " (id, conversation_id, user_id, role, joined_at, created_at)"
        " select %s, c.id, %s, 'member', c.created_at, c.created_at"
        " from public.conversations as c where c.direct_key = %s"
        " on conflict (conversation_id, user_id) do nothing"
    )
    # The scalar subquery yields null, a not-null violation, should the conversation be
    # missing: a loud error, never a silently dropped message. A message edited or deleted
    # in the new system keeps that (a re-run would otherwise bring deleted text back).
    _MESSAGE: ClassVar[LiteralString] = (
        "insert into public.messages as m (id, conversation_id, sender_id, body, created_at)"
        " values (%s, (select c.id from public.conversations as c where c.direct_key = %s),"
        " %s, %s, %s)"
        " on conflict (id) do update set"
        " conversation_id = excluded.conversation_id, sender_id = excluded.sender_id,"
        " body = excluded.body, created_at = excluded.created_at,"
        " version = m.version + 1, updated_at = now(), sync_xid = pg_current_xact_id()"
        " where m.deleted_at is null and m.edited_at is null"
        " and (m.conversation_id, m.sender_id, m.body, m.created_at)"
        " is distinct from (excluded.conversation_id, excluded.sender_id, excluded.body,"
        " excluded.created_at)"
    )

    def map_row(self, row: dict[str, Any]) -> tuple[list[tuple[Any, ...]], list[Problem]]:
        """One value tuple: ``(legacy id, message id, direct_key, sender, recipient, body,
        sent_at)``; :meth:`write` derives the conversation and participants from it."""
        legacy_id = row["id"]
        if row["from_user"] == row["to_user"]:
            return _skip(self.source, legacy_id, "sent to the sender themself")
        if row["sent_at"] is None:
            return _skip(self.source, legacy_id, "no sent_at")
        body: str = row["body"] or ""
        if not body.strip():
            return _skip(self.source, legacy_id, "empty body")
        problems = []
        if len(body) > self.MAX_BODY:
            # Losing a whole message from a history is worse than its tail; the ellipsis
            # shows readers the cut, the problem shows the operator.
            problems.append(
                Problem(
                    self.source,
                    legacy_id,
                    f"body of {len(body)} characters cut to {self.MAX_BODY}",
                    "changed",
                )
            )
            body = body[: self.MAX_BODY - 1] + "\u2026"
        sender = legacy_uuid("users", row["from_user"])
        recipient = legacy_uuid("users", row["to_user"])
        return [
            (
                legacy_id,
                legacy_uuid(self.source, legacy_id),
                direct_key(sender, recipient),
                sender,
                recipient,
                body,
                row["sent_at"],
            )
        ], problems

    def write(self, conn: psycopg.Connection[Any], rows: Sequence[list[tuple[Any, ...]]]) -> int:
        messages = sorted((values[0] for values in rows), key=lambda m: (m[6], m[0]))
        # Transaction-local (and undone with a rolled-back savepoint): no trigger fires for
        # these writes, so no notifications, broadcasts or sync nudges.
        conn.execute("set local session_replication_role = replica")
        users = sorted({m[3] for m in messages} | {m[4] for m in messages})
        found = {
            r[0]
            for r in conn.execute(
                "select p.id from public.profiles as p where p.id = any(%s) for key share",
                (users,),
            ).fetchall()
        }
        if lost := [u for u in users if u not in found]:
            # Replica mode skips the foreign-key checks; this is the one they would make.
            raise psycopg.errors.ForeignKeyViolation(
                f"no profile {', '.join(map(str, lost))} in the target"
            )
        # Per pair: (created_by, created_at, last_message_at); messages are sorted by
        # (sent_at, legacy id), so the first one seen opened the conversation.
        pairs: dict[str, tuple[uuid.UUID, datetime, datetime]] = {}
        for _, _, key, sender, _, _, sent_at in messages:
            first = pairs.get(key)
            pairs[key] = (first[0], first[1], sent_at) if first else (sender, sent_at, sent_at)
        changed = 0
        with conn.cursor() as cursor:
            cursor.executemany(
                self._CONVERSATION,
                [
                    (legacy_uuid("conversations", key), by, key, last, created)
                    for key, (by, created, last) in pairs.items()
                ],
            )
            changed += max(cursor.rowcount, 0)
            cursor.executemany(
                self._PARTICIPANT,
                [
                    (legacy_uuid("conversation_participants", f"{key}:{user}"), user, key)
                    for key in pairs
                    for user in key.split(":")
                ],
            )
            changed += max(cursor.rowcount, 0)
            cursor.executemany(
                self._MESSAGE,
                [
                    (m_id, key, sender, body, sent)
                    for _, m_id, key, sender, _, body, sent in messages
                ],
            )
            changed += max(cursor.rowcount, 0)
        return changed

    def reconcile(
        self,
        source: psycopg.Connection[Any],
        target: psycopg.Connection[Any],
        source_rows: int,
        kept: list[object],
        skipped: int,
    ) -> list[Reconciliation]:
        """Messages one-to-one with source rows, by id. Conversations and participants are
        derived, so they reconcile against their own expectation: one conversation per
        unordered pair of users that exchanged at least one imported message (``source_rows``
        counts the pairs in the source, ``skipped`` those with nothing imported), and its two
        members, checksummed by direct_key and by direct_key and user."""
        messages = _reconcile_ids(
            target,
            self.source,
            "public.messages",
            [str(legacy_uuid(self.source, legacy_id)) for legacy_id in kept],
            source_rows,
            skipped,
        )
        every = source.execute(
            "select count(*) from (select distinct least(from_user, to_user),"
            " greatest(from_user, to_user) from messages where from_user <> to_user) as pairs"
        ).fetchone()
        assert every is not None
        imported = source.execute(
            "select distinct least(from_user, to_user), greatest(from_user, to_user)"
            " from messages where id = any(%s)",
            (kept,),
        ).fetchall()
        keys = [direct_key(legacy_uuid("users", a), legacy_uuid("users", b)) for a, b in imported]
        members = [f"{key}/{user}" for key in keys for user in key.split(":")]
        pairs, dropped = int(every[0]), int(every[0]) - len(keys)
        conversations = target.execute(
            "select count(*), coalesce(md5(string_agg(c.direct_key, E'\\n'"
            " order by c.direct_key collate \"C\")), md5(''))"
            " from public.conversations as c where c.direct_key = any(%s)",
            (keys,),
        ).fetchone()
        participants = target.execute(
            "select count(*), coalesce(md5(string_agg(m.member, E'\\n'"
            " order by m.member collate \"C\")), md5('')) from ("
            " select c.direct_key || '/' || p.user_id::text as member"
            " from public.conversations as c"
            " join public.conversation_participants as p on p.conversation_id = c.id"
            " where c.direct_key = any(%s)) as m",
            (keys,),
        ).fetchone()
        assert conversations is not None and participants is not None
        return [
            messages,
            Reconciliation(
                self.source,
                "public.conversations",
                pairs,
                dropped,
                int(conversations[0]),
                conversations[1] == _md5_lines(keys),
                "user pairs",
            ),
            Reconciliation(
                self.source,
                "public.conversation_participants",
                2 * pairs,
                2 * dropped,
                int(participants[0]),
                participants[1] == _md5_lines(members),
                "pair members",
            ),
        ]


#: Every mapper, parents before children.
MAPPERS: tuple[Mapper, ...] = (
    UsersMapper(),
    CoursesMapper(),
    LessonsMapper(),
    EnrollmentsMapper(),
    AppointmentsMapper(),
    MessagesMapper(),
)


# -- running ---------------------------------------------------------------------------------


def _check_source(conn: psycopg.Connection[Any], mappers: Sequence[Mapper]) -> None:
    missing = []
    for mapper in mappers:
        found = {
            str(r[0])
            for r in conn.execute(
                "select a.attname from pg_catalog.pg_attribute as a"
                " where a.attrelid = to_regclass(%s) and a.attnum > 0 and not a.attisdropped",
                (mapper.source,),
            ).fetchall()
        }
        if not found:
            missing.append(f"table {mapper.source}")
            continue
        missing += [f"{mapper.source}.{c}" for c in mapper.columns if c not in found]
    if missing:
        raise LegacyImportError(
            "the legacy database lacks " + ", ".join(missing) + " (see docs/legacy-import.md)"
        )


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def _source_rows(
    conn: psycopg.Connection[Any], mapper: Mapper, batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    """The source table in id order, ``batch_size`` rows at a time (keyset pagination)."""
    query = sql.SQL("select {} from {} where id > %s order by id limit %s").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in mapper.columns),
        sql.Identifier(mapper.source),
    )
    last: object = -1
    with conn.cursor(row_factory=dict_row) as cursor:
        while True:
            rows = cursor.execute(query, (last, batch_size)).fetchall()
            if not rows:
                return
            yield rows
            last = rows[-1]["id"]


def _set_problems(conn: psycopg.Connection[Any], mapper: Mapper) -> dict[object, str]:
    found: dict[object, str] = {}
    for query in mapper.set_problems():
        for legacy_id, message in conn.execute(query).fetchall():
            if message is not None and legacy_id not in found:
                found[legacy_id] = str(message)
    return found


def _write_batch(
    conn: psycopg.Connection[Any],
    mapper: Mapper,
    mapped: list[tuple[object, list[tuple[Any, ...]]]],
) -> tuple[int, list[Problem]]:
    """Insert one batch in one transaction; on a constraint error, row by row in savepoints."""

    def write(rows: list[tuple[object, list[tuple[Any, ...]]]]) -> int:
        return mapper.write(conn, [values for _, values in rows])

    try:
        with conn.transaction():
            return write(mapped), []
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
        pass
    problems: list[Problem] = []
    changed = 0
    with conn.transaction():
        for legacy_id, values in mapped:
            try:
                with conn.transaction():
                    changed += write([(legacy_id, values)])
            except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                first = first_line(exc)
                problems.append(
                    Problem(mapper.source, legacy_id, f"rejected by the target: {first}")
                )
    return changed, problems


def _md5_lines(values: list[str]) -> str:
    """md5 of the values sorted bytewise, one a line; the target side orders ``collate "C"``
    so both sides sort alike whatever the database's collation."""
    joined = "\n".join(sorted(values))
    return hashlib.md5(joined.encode(), usedforsecurity=False).hexdigest()


def _reconcile_ids(
    target: psycopg.Connection[Any],
    source_table: str,
    table: str,
    ids: list[str],
    source_rows: int,
    skipped: int,
) -> Reconciliation:
    """Count and checksum the rows of ``table`` whose id is one of ``ids``."""
    schema, name = table.split(".")
    row = target.execute(
        sql.SQL(
            "select count(*), coalesce(md5(string_agg(id::text, E'\\n'"
            " order by id::text collate \"C\")), md5('')) from {} where id = any(%s::uuid[])"
        ).format(sql.Identifier(schema, name)),
        (ids,),
    ).fetchone()
    assert row is not None
    return Reconciliation(
        source_table, table, source_rows, skipped, int(row[0]), row[1] == _md5_lines(ids)
    )


def _orphan(mapper: Mapper, row: dict[str, Any], kept: dict[str, set[object]]) -> str | None:
    """Why ``row`` cannot go in because of a parent, or None."""
    for column, parent in mapper.parents.items():
        value = row[column]
        if value not in kept.get(parent, set()):
            return f"{column} points at {parent}:{value}, which is not imported"
    return None


@dataclass
class _Run:
    """One import run's shared state: connections, options and what was kept so far."""

    source: psycopg.Connection[Any]
    target: psycopg.Connection[Any]
    dry_run: bool
    batch_size: int
    progress: ProgressCallback | None
    report: ImportReport
    #: Legacy ids per legacy table that are (or, in a dry run, would be) in the target.
    kept: dict[str, set[object]] = field(default_factory=dict)

    def run(self, mapper: Mapper) -> None:
        total = _count(self.source, mapper.source)
        cross = _set_problems(self.source, mapper)
        kept: set[object] = set()
        skipped = 0
        rows_done = Reporter(self.progress, mapper.source, total=total, unit="rows")
        rows_done.update()
        for rows in _source_rows(self.source, mapper, self.batch_size):
            batch: list[tuple[object, list[tuple[Any, ...]]]] = []
            for row in rows:
                legacy_id = row["id"]
                why = _orphan(mapper, row, self.kept) or cross.get(legacy_id)
                values: list[tuple[Any, ...]] = []
                if why:
                    self.report.problems.append(Problem(mapper.source, legacy_id, why))
                else:
                    values, problems = mapper.map_row(row)
                    self.report.problems += problems
                if values:
                    batch.append((legacy_id, values))
                else:
                    skipped += 1
            rejected: set[object] = set()
            if not self.dry_run and batch:
                changed, problems = _write_batch(self.target, mapper, batch)
                written = self.report.written
                written[mapper.source] = written.get(mapper.source, 0) + changed
                self.report.problems += problems
                rejected = {p.legacy_id for p in problems}
                skipped += len(rejected)
            kept |= {legacy_id for legacy_id, _ in batch if legacy_id not in rejected}
            rows_done.advance(len(rows))
        self.kept[mapper.source] = kept
        if not self.dry_run:
            self.report.reconciliation += mapper.reconcile(
                self.source, self.target, total, sorted(kept, key=str), skipped
            )


def import_legacy(
    source_url: str,
    target_url: str,
    *,
    dry_run: bool = False,
    batch_size: int = 500,
    progress: ProgressCallback | None = None,
    mappers: Sequence[Mapper] = MAPPERS,
) -> ImportReport:
    """Import (or with ``dry_run`` only validate) the legacy database at ``source_url``.

    ``progress`` hears one task per legacy table (``users``, ``courses``, …), in source rows.
    """
    if batch_size < 1:
        raise LegacyImportError("--batch-size must be at least 1")
    started = time.monotonic()
    report = ImportReport(dry_run=dry_run)
    try:
        source = psycopg.connect(source_url)
    except psycopg.OperationalError as exc:
        first = first_line(exc)
        raise LegacyImportError(f"cannot reach the legacy database: {first}") from None
    with source, psycopg.connect(target_url, autocommit=True) as target:
        source.read_only = True
        source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        for mapper in mappers:
            why = mapper.missing_target(target)
            if why is not None:
                raise LegacyImportError(f"{why}: push the migrations to the target first")
        _check_source(source, mappers)
        run = _Run(source, target, dry_run, batch_size, progress, report)
        for mapper in mappers:
            run.run(mapper)
        source.rollback()
    report.seconds = time.monotonic() - started
    return report
