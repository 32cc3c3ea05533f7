"""A small world for sync tests: users, courses and conversations made as the platform would
make them, gateways acting as each user, and a reference puller that follows
docs/sync-protocol.md literally (so server tests do not depend on the SQLite client)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from pysync.auth import LocalAuth, LocalUser
from pysync.client import Client, _as_authenticator
from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway import Gateway, PostgresGateway, in_
from tests.helpers import connect


class SyncWorld:
    """Users and rows of one app database; every write here is the platform's (postgres).

    ``api_url`` is where the users' requests go (default: ``url`` as ``authenticator``):
    a transaction-mode pooler's URL with ``pooled=True``, or a read replica's.
    """

    def __init__(self, url: str, *, api_url: str | None = None, pooled: bool = False) -> None:
        self.url = url
        self.pooled = pooled
        self.auth = LocalAuth(url, jwt_secret=LOCAL_JWT_SECRET, bcrypt_cost=4)
        self.api = PostgresGateway.connect(
            _as_authenticator(api_url or url), jwt_secret=LOCAL_JWT_SECRET, pooled=pooled
        )

    def user(self, role: str = "student") -> LocalUser:
        return self.auth.create_user(
            f"{role}-{uuid.uuid4().hex[:10]}@example.com",
            "pw-123456",
            app_metadata={"app_role": role},
            user_metadata={"display_name": role.title()},
        )

    def client(self, user: LocalUser) -> Client:
        return Client.for_token(self.api, self.auth.session_for(user).access_token)

    def gateway(self, user: LocalUser) -> Gateway:
        return self.client(user).gateway

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement as postgres, committed; its rows."""
        with connect(self.url) as conn:
            cursor = conn.execute(statement, params)
            rows = cursor.fetchall() if cursor.description else []
            conn.commit()
        return [tuple(row) for row in rows]

    def course(self, tutor: LocalUser, *, lessons: int = 2) -> str:
        course_id = str(uuid.uuid4())
        self.sql(
            "insert into public.courses (id, tutor_id, title, status, published_at)"
            " values (%s, %s, 'Algebra', 'published', now())",
            course_id,
            tutor.id,
        )
        for position in range(lessons):
            self.lesson(course_id, position)
        return course_id

    def lesson(self, course_id: str, position: int, *, preview: bool = False) -> str:
        lesson_id = str(uuid.uuid4())
        self.sql(
            "insert into public.course_content (id, course_id, kind, position, title, body,"
            " is_preview) values (%s, %s, 'lesson', %s, %s, 'text', %s)",
            lesson_id,
            course_id,
            position,
            f"Lesson {position}",
            preview,
        )
        return lesson_id

    def enroll(self, student: LocalUser, course_id: str) -> str:
        rows = self.sql(
            "insert into public.enrollments (student_id, course_id, status) values (%s, %s,"
            " 'active') returning id::text",
            student.id,
            course_id,
        )
        return str(rows[0][0])

    def direct_conversation(self, user: LocalUser, other: LocalUser) -> str:
        """The direct conversation of two users, as ``user`` starts it through the API."""
        row = self.gateway(user).rpc("start_direct_conversation", {"other": other.id})
        return str(row["id"])

    def close(self) -> None:
        self.api.close()


def compiled_without(url: str, table: str, column: str, function: str) -> str:
    """The source ``function`` (a generated private.sync_* function) gets when ``table`` is
    registered again without the writable ``column``, in one transaction rolled back (the
    registry is shared by the module's tests)."""
    with psycopg.connect(url) as conn:  # not autocommit: one transaction
        conn.execute(
            "select private.sync_register_table(t.table_name, t.bucket_column,"
            " array_remove(t.writable, %s), t.operations, t.conflict, t.counters)"
            " from private.sync_tables as t where t.table_name = %s",
            (column, table),
        )
        row = conn.execute("select prosrc from pg_proc where proname = %s", (function,)).fetchone()
        conn.rollback()
    assert row is not None, function
    return str(row[0])


#: ``params`` of a module's ``world`` fixture: its tests run straight to the database and
#: again through the session's transaction-mode pgbouncer (``pooler`` in conftest.py).
ROUTES = ["direct", "pooled"]


def make_world(request: pytest.FixtureRequest, url: str) -> SyncWorld:
    """A world on ``url`` whose users' requests take the route ``request.param``."""
    if getattr(request, "param", "direct") != "pooled":
        return SyncWorld(url)
    pooler = request.getfixturevalue("pooler")
    dbname = str(conninfo_to_dict(url)["dbname"])
    return SyncWorld(url, api_url=pooler.url(dbname, "authenticator"), pooled=True)


@dataclass
class RefPuller:
    """The protocol's apply rules, kept in dictionaries: the reference client."""

    gateway: Gateway
    subscriptions: list[dict[str, str]] = field(default_factory=list)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # table -> id -> row
    bucket_columns: dict[str, str] = field(default_factory=dict)
    pages: int = 0
    #: The wire version asked for: 1 (rows as objects), 2 (arrays under ``columns``), 3
    #: (arrays, or a bucket served whole column by column in ``by_column``), 4 (a served
    #: bucket's streams may be null) or 5 (the buckets at the most common cursor sent by table
    #: under ``held``; ``all_unchanged`` answers).
    version: int = 1
    #: The last page's resolution token, sent back with the next pull (as a client does), so
    #: every test that pulls through the reference client also takes the short way whenever
    #: the server finds the token still holds.
    resolution: str | None = None

    def __post_init__(self) -> None:
        schema = self.gateway.rpc("sync_schema")
        self.bucket_columns = {t["name"]: t["bucket_column"] for t in schema["tables"]}

    def _in_bucket(self, table: str, key: str) -> dict[str, dict[str, Any]]:
        column = self.bucket_columns[table]
        held = self.rows.get(table, {})
        return {i: r for i, r in held.items() if str(r[column]) == key}

    def pull_page(self, limit: int = 1000) -> dict[str, Any]:
        request = {"buckets": self.states, "subscriptions": self.subscriptions, "limit": limit}
        if self.version > 1:
            request["version"] = self.version
        if self.version >= 5:
            request.update(compact_held(self.states))
        if self.resolution is not None:
            request["resolution"] = self.resolution
        sent = list(self.states)
        page: dict[str, Any] = self.gateway.rpc("sync_pull", {"request": request}, read_only=True)
        assert page.get("version", 1) == self.version, page.get("version")
        self.pages += 1
        for bucket in page["removed_buckets"]:
            table, key = bucket.split(":", 1)
            for row_id in self._in_bucket(table, key):
                del self.rows[table][row_id]
            self.states.pop(bucket, None)
        for entry in page["buckets"]:
            table, key = entry["table"], entry["key"]
            resumed = (self.states.get(entry["bucket"]) or {}).get("after") is not None
            if entry["state"] == "reset" and not resumed:
                for row_id in self._in_bucket(table, key):
                    del self.rows[table][row_id]
            local = self.rows.setdefault(table, {})
            for row in self._rows(page, entry):
                old = local.get(row["id"])
                if old is None or old["version"] <= row["version"]:
                    local[row["id"]] = row
            for row_id in entry["removed"]:
                if row_id in local and str(local[row_id][self.bucket_columns[table]]) == key:
                    del local[row_id]
            previous = self.states.get(entry["bucket"]) or {"cursor": None}
            if entry["complete"]:
                self.states[entry["bucket"]] = {
                    "cursor": entry["cursor"],
                    "round": None,
                    "after": None,
                }
            else:
                self.states[entry["bucket"]] = {
                    "cursor": previous["cursor"],
                    "round": entry["round"],
                    "after": entry["after"],
                }
        unchanged = list(sent) if page.get("all_unchanged") else page["unchanged"]
        for bucket in unchanged:
            self.states[bucket] = {"cursor": page["snapshot"], "round": None, "after": None}
        self.resolution = page.get("resolution")
        return page

    def _rows(self, page: dict[str, Any], entry: dict[str, Any]) -> list[dict[str, Any]]:
        """An entry's rows as objects, however the page's wire version wrote them."""
        if self.version == 1:
            return list(entry["rows"])
        names = page["columns"].get(entry["table"], [])
        arrays = entry["rows"]
        if entry.get("by_column") is not None:
            assert not arrays, "an entry carries its rows one way"
            arrays = [list(values) for values in zip(*entry["by_column"], strict=True)]
        return [dict(zip(names, values, strict=True)) for values in arrays]

    def pull(self, limit: int = 1000) -> dict[str, Any]:
        """Pull until the server has nothing more; the last page."""
        page = self.pull_page(limit)
        while page["has_more"]:
            page = self.pull_page(limit)
        return page

    def ids(self, table: str) -> set[str]:
        return set(self.rows.get(table, {}))


def compact_held(states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Version 5's form of ``states``: the buckets whose whole state is the most common plain
    cursor by table under ``held``, that cursor once, every other bucket in ``buckets``."""
    plain = [
        s["cursor"] for s in states.values() if s.get("cursor") and not s.get("round")
        and not s.get("after")
    ]  # fmt: skip
    if not plain:
        return {}
    shared = max(set(plain), key=plain.count)
    held: dict[str, list[str]] = {}
    others: dict[str, dict[str, Any]] = {}
    for bucket, state in states.items():
        if state.get("cursor") == shared and not state.get("round") and not state.get("after"):
            table, key = bucket.split(":", 1)
            held.setdefault(table, []).append(key)
        else:
            others[bucket] = state
    return {"buckets": others, "cursor": shared, "held": held}


def enrolled(
    world: SyncWorld, lessons: int = 2, *, version: int = 1
) -> tuple[LocalUser, LocalUser, str, RefPuller]:
    """A tutor's course of ``lessons`` lessons, a student enrolled in it, and the student's
    reference puller (asking for wire ``version``), not yet pulled."""
    tutor, student = world.user("tutor"), world.user("student")
    course = world.course(tutor, lessons=lessons)
    world.enroll(student, course)
    return tutor, student, course, RefPuller(world.gateway(student), version=version)


def held_keys(cache: Any) -> dict[str, set[str]]:
    """The bucket keys a cache holds, per table."""
    held: dict[str, set[str]] = {}
    for bucket in cache.held_buckets():
        table, key = bucket.split(":", 1)
        held.setdefault(table, set()).add(key)
    return held


def assert_cache_matches_server(
    cache: Any,
    gateway: Gateway,
    bucket_columns: dict[str, str],
    *,
    label: str = "",
    values: bool = False,
) -> int:
    """Per synced table, the cache holds no row the user cannot select on the server in a
    bucket the cache holds, and every row the user can select there is in the cache with
    the server's version (and, with ``values``, the server's column values). ``gateway``
    acts as the cache's user. Returns the number of rows compared."""
    held = held_keys(cache)
    checked = 0
    for table, column in bucket_columns.items():
        local = {
            r["id"]: r["version"]
            for r in cache.query(f'select id, version from "{table}"')  # noqa: S608
        }
        keys = sorted(held.get(table, ()))
        server: dict[str, dict[str, Any]] = {}
        if keys:
            rows = gateway.select(table, columns="*", filters=[in_(column, keys)]).rows
            server = {r["id"]: r for r in rows}
        visible = {i: r["version"] for i, r in server.items()}
        stray = set(local) - set(visible)
        assert not stray, f"{label} holds {table} rows outside its buckets: {stray}"
        assert local == visible, f"{label}: {table} differs from the server"
        if values:
            for row_id, remote in server.items():
                mine = cache.storage.get_row(table, row_id)
                assert mine is not None
                differ = {
                    k: (mine[k], remote[k])
                    for k in mine
                    if k in remote and not _same_value(mine[k], remote[k])
                }
                assert not differ, f"{label}: {table} {row_id} differs (local, server): {differ}"
        checked += len(local)
    return checked


def _same_value(local: Any, remote: Any) -> bool:
    if local == remote:
        return True
    if isinstance(local, str) and isinstance(remote, str):
        from datetime import datetime

        try:
            return datetime.fromisoformat(local) == datetime.fromisoformat(remote)
        except ValueError:
            return False
    return False
