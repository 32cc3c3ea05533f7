"""Local storage: every SQL statement the cache runs against SQLite lives in this module.

One :class:`Storage` wraps one connection (stdlib ``sqlite3``, or SQLCipher's ``sqlcipher3``
when the cache is encrypted) in WAL mode, so readers never block the sync thread and a crash
leaves the last committed transaction intact. Identifiers come from the server's schema, never
from a user, but are still always quoted (:func:`quote`).

The invariants it keeps:

* A pulled page and the bucket states it yields are written in **one** transaction
  (:meth:`Storage.apply_page`): after a crash the cache holds either both or neither.
* The ``version`` column of a local row is the last **server** version; local edits never bump
  it, so pulls compare versions with the server's and pushes send it as ``base_version``.
* A row with pending outbox ops is the server state with those ops laid over it again
  (:meth:`Storage.rebase_row`), and no pull deletes it until its ops are settled.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pysync.sync.errors import SchemaMismatch, SyncError, UnknownTable, WrongKey
from pysync.sync.schema import (
    INTERNAL_KEYS,
    INTERNAL_TABLES,
    LOCAL_SCHEMA_VERSION,
    AddColumn,
    CreateTable,
    internal_columns,
    internal_upgrade,
    is_json_type,
    plan_migration,
    sqlite_type,
)
from pysync.sync.wire import (
    BucketState,
    PullResponse,
    PushOp,
    SchemaInfo,
    Subscription,
    TableSpec,
    parse_schema,
    split_bucket,
)

_log = logging.getLogger(__name__)

__all__ = [
    "BucketRecord",
    "DeadLetter",
    "KeptPull",
    "OutboxOp",
    "Storage",
    "bucket_checksum",
    "quote",
]

Row = dict[str, Any]
ChangeListener = Callable[[frozenset[str]], None]


def quote(name: str) -> str:
    """A SQLite identifier, quoted (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def bucket_checksum(pairs: Sequence[tuple[str, int]]) -> tuple[int, int]:
    """``(count, checksum)`` of ``(id, version)`` pairs, exactly as ``sync_checksums``: the
    sum modulo 2^32 of the first 8 hex digits of ``md5("<id>:<version>")``."""
    total = 0
    for row_id, version in pairs:
        digest = hashlib.md5(f"{row_id}:{version}".encode(), usedforsecurity=False).hexdigest()
        total = (total + int(digest[:8], 16)) % 2**32
    return len(pairs), total


@dataclass(frozen=True)
class OutboxOp:
    """One pending local write, as queued (``data`` holds only changed columns for an update)."""

    op_id: int
    tx_id: str
    table: str
    kind: str
    row_id: str
    data: Mapping[str, Any]
    base_version: int | None
    priority: str
    created_at: float
    base_row: Row | None = None
    client_time: str | None = None

    def to_push(self) -> PushOp:
        return PushOp(
            op_id=self.op_id,
            tx_id=self.tx_id,
            table=self.table,
            kind=self.kind,  # type: ignore[arg-type]
            id=self.row_id,
            data=self.data,
            base_version=self.base_version,
            priority=self.priority,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class DeadLetter:
    """An op the server rejected (or that depended on one), kept for the app to fix or drop."""

    op_id: int
    tx_id: str
    table: str
    kind: str
    row_id: str
    data: Mapping[str, Any]
    base_version: int | None
    priority: str
    sqlstate: str | None
    message: str | None
    depends_on: int | None
    failed_at: float


class BucketRecord(NamedTuple):
    """A held bucket as ``_sync_buckets`` stores it. A named tuple rather than a frozen
    dataclass: a pull in which nothing changed makes one for every bucket held, and a frozen
    dataclass's ``__init__`` costs twice as much (about 2 µs against 1)."""

    bucket: str
    table: str
    key: str
    streams: tuple[str, ...]
    state: BucketState
    last_used: float


#: SQLite's default ``wal_autocheckpoint`` (pages of 4 KiB).
DEFAULT_WAL_PAGES = 1000
#: ``wal_autocheckpoint`` during a multi-page pull: 1 GiB of WAL (the WAL file on disk, not
#: memory), about 2.4 million rows of a first sync. A checkpoint copies what the WAL holds into
#: the database file, at about 250 MiB a second here, on the thread whose commit crosses the
#: limit: with 64 MiB (every 150,000 rows), a 1M-row first sync spent 13% of its time copying,
#: and ran at 94k rows/s against 109k with none. So a first sync writes its rows once while it
#: runs and the copy waits for :meth:`Storage.release_checkpoints`, off the pulling thread; a
#: sync larger than this still checkpoints as it goes. The price is disk: up to this much WAL
#: beside the database until the copy, and :data:`WAL_SIZE_LIMIT` afterwards.
BULK_WAL_PAGES = 262144
#: ``journal_size_limit``: once checkpointed, the WAL file is cut back to 64 MiB when SQLite next
#: starts it over, rather than keeping the size a first sync grew it to.
WAL_SIZE_LIMIT = 64 * 1024 * 1024

_PRIORITY_ORDER = "CASE priority WHEN 'critical' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END"

#: The outbox's indexes, so choosing a batch reads about as many ops as it sends, whatever
#: the queue's length: the queue in push order, a transaction's ops, a row's ops.
_OUTBOX_INDEXES = {
    "_sync_outbox_push_order": f"({_PRIORITY_ORDER}, op_id)",
    "_sync_outbox_tx": "(tx_id, op_id)",
    "_sync_outbox_row": "(tbl, row_id, op_id)",
}

#: Rows of the queue read at a time while choosing a batch.
_QUEUE_CHUNK = 256

#: How long a pull in which nothing changed may keep its new cursors (and resolution token) in
#: memory before one is written to the file (see :meth:`Storage.keep_unchanged`).
KEEP_UNCHANGED_SECONDS = 5.0


class KeptPull(NamedTuple):
    """A pull in which nothing changed, kept in memory: the snapshot its unchanged buckets
    moved to, which buckets, and the token it brought."""

    snapshot: str
    buckets: tuple[str, ...]
    resolution: str | None


def _connect(path: str, key: str | None) -> sqlite3.Connection:
    if key is None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    else:
        try:
            from sqlcipher3 import dbapi2 as sqlcipher
        except ImportError as exc:
            raise SyncError(
                "an encryption key needs SQLCipher: pip install 'pysync[sqlcipher]'"
            ) from exc
        conn = sqlcipher.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA key = '{key.replace(chr(39), chr(39) * 2)}'")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except Exception as exc:  # sqlite3 and sqlcipher3 have distinct DatabaseError classes
        conn.close()
        if "not a database" in str(exc) or "encrypted" in str(exc):
            raise WrongKey(
                f"{path} cannot be opened: it is encrypted with another key, or is not a cache"
            ) from exc
        raise SyncError(f"{path} cannot be opened: {exc}") from exc
    return conn


def _checkpoint(reopen: Callable[[], sqlite3.Connection]) -> None:
    """A ``PASSIVE`` checkpoint through a connection of its own (see
    :meth:`Storage.release_checkpoints`). A failure is logged and costs nothing: SQLite's
    automatic checkpoints copy the WAL later."""
    try:
        conn = reopen()
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()
    except Exception as exc:  # sqlite3 and sqlcipher3 have distinct error classes
        _log.warning("the WAL checkpoint after a bulk pull failed: %s", exc)


class Storage:
    """The cache's SQLite database. Thread-safe: one re-entrant lock around every statement."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.lock = threading.RLock()
        self._depth = 0
        self._changed: set[str] = set()
        self._listeners: list[ChangeListener] = []
        self._specs: dict[str, TableSpec] = {}
        self._schema: SchemaInfo | None = None
        # The bucket records as last read, or None: every pull reads them to build its
        # request, and decoding ~50 rows of JSON each time cost more than the rest of a
        # no-change pull's SQLite work. Only this class writes _sync_buckets (the cache file
        # is locked to one process), so every write below drops the copy, and so does a
        # rollback (a copy read inside a transaction may hold what it undid).
        self._bucket_records: dict[str, BucketRecord] | None = None
        #: Every bucket record's state, when a pull that found nothing moved them all to one
        #: cursor: laid into the records only when a record itself is read (see
        #: :meth:`_mark_unchanged`).
        self._shared_state: BucketState | None = None
        # The meta rows as last read, or None, for the same reasons: a pull read the schema
        # hash and a sync's end wrote its outcome, a statement each, on every run. Every meta
        # write goes through _set_meta, which skips a value the row already holds.
        self._meta_rows: dict[str, str | None] | None = None
        # The last pull in which nothing changed, when it was not written (keep_unchanged),
        # and when a pull's unchanged cursors were last written.
        self._kept: KeptPull | None = None
        self._cursors_written_at = float("-inf")
        # The subscription rows as last read, or None (written only by this class too).
        self._subscription_rows: list[Row] | None = None
        self._checkpoints_held = False
        # Opens another connection to the same file, for the checkpoint that ends a held
        # stretch (None: the database lives in this connection only, as ":memory:" does).
        self._reopen: Callable[[], sqlite3.Connection] | None = None
        self._checkpointer: threading.Thread | None = None
        self._default_checkpoints_due = False

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, key: str | None = None) -> Storage:
        conn = _connect(str(path), key)
        storage = cls(conn)
        if str(path) not in ("", ":memory:") and not str(path).startswith("file:"):
            storage._reopen = functools.partial(_connect, str(path), key)
        with storage.lock:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        storage.upgrade_internal()
        storage._load_schema()
        return storage

    def close(self) -> None:
        with self.lock:
            try:
                self.write_kept()
                self.release_checkpoints()
                self.wait_for_checkpoint()
            finally:
                self._conn.close()

    def hold_checkpoints(self) -> None:
        """Let the WAL grow to :data:`BULK_WAL_PAGES` pages before SQLite checkpoints it, while
        a pull brings page after page (a first sync). With the default of 1000 pages, a page
        of 5000 rows (about 2 MB with its indexes) made SQLite copy the WAL back into the
        database file every page or two, so every row was written twice during the sync
        rather than once when it ends. A connection setting: a crash loses nothing, and the
        next open starts from SQLite's default."""
        with self.lock:
            self._default_checkpoints_due = False
            if not self._checkpoints_held:
                self._conn.execute(f"PRAGMA wal_autocheckpoint = {BULK_WAL_PAGES}")
                self._checkpoints_held = True

    def release_checkpoints(self) -> None:
        """End a held stretch: the held WAL is checkpointed (``PASSIVE``: it waits for no
        reader) on a thread of its own, through a connection of its own, and SQLite's default
        automatic checkpoints come back once that is done.

        Copying a first sync's WAL into the database file took about 180 ms of a 100,000-row
        sync's 1.1 s, after the last page was committed and readable. SQLite's advice for WAL
        databases is to run checkpoints off the thread that writes; readers and writers go on
        meanwhile. Until the copy is done this connection keeps the held setting, or its next
        commit would find the WAL over the default and copy it itself. A checkpoint cut short
        by a crash loses nothing: the WAL stays, and the next open or checkpoint copies it."""
        with self.lock:
            if not self._checkpoints_held:
                return
            self._checkpoints_held = False
            if self._reopen is None:
                self._conn.execute(f"PRAGMA wal_autocheckpoint = {DEFAULT_WAL_PAGES}")
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                return
            self.wait_for_checkpoint()
            self._checkpointer = threading.Thread(
                target=_checkpoint, args=(self._reopen,), name="pysync-checkpoint", daemon=True
            )
            self._checkpointer.start()
            self._default_checkpoints_due = True

    def wait_for_checkpoint(self) -> None:
        """Wait until a checkpoint started by :meth:`release_checkpoints` is done."""
        with self.lock:
            checkpointer, self._checkpointer = self._checkpointer, None
            if checkpointer is not None:
                checkpointer.join()
            self._restore_default_checkpoints()

    def _restore_default_checkpoints(self) -> None:
        """SQLite's default automatic checkpoints again, once the background checkpoint that
        ended a held stretch is done (called under the lock as each transaction begins)."""
        if self._default_checkpoints_due and not (
            self._checkpointer is not None and self._checkpointer.is_alive()
        ):
            self._default_checkpoints_due = False
            self._checkpointer = None
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {DEFAULT_WAL_PAGES}")

    # -- statements and transactions -------------------------------------------------------

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self.lock:
            cur = self._conn.execute(sql, tuple(params))
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, values, strict=True)) for values in cur.fetchall()]

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self.lock:
            return self._conn.execute(sql, tuple(params)).rowcount

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One SQLite transaction (``BEGIN IMMEDIATE``); nested calls join the outer one.
        Change listeners hear about the tables written once it commits."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            if self._default_checkpoints_due:
                self._restore_default_checkpoints()
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
                self._depth = 0
                self._conn.execute("COMMIT")
            except BaseException:
                # The body or the COMMIT failed: nothing reached the file, so neither the tables
                # to announce nor what the copy of the bucket records was given stand.
                self._depth = 0
                self._changed.clear()
                self._bucket_records = None
                self._shared_state = None
                self._kept = None
                self._meta_rows = None
                self._subscription_rows = None
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            changed, self._changed = frozenset(self._changed), set()
        if changed:
            for listener in list(self._listeners):
                listener(changed)

    def on_change(self, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener(tables)`` after each commit that wrote synced tables; returns an
        unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _touched(self, table: str) -> None:
        self._changed.add(table)

    # -- internal tables and meta ----------------------------------------------------------

    def _columns(self) -> dict[str, list[str]]:
        tables = self._all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        return {
            t["name"]: [c["name"] for c in self._all(f"PRAGMA table_info({quote(t['name'])})")]
            for t in tables
        }

    def create_internal(self, version: int = LOCAL_SCHEMA_VERSION) -> None:
        """Create the internal tables as they were at ``version`` (tests build old files)."""
        with self.transaction():
            for table in INTERNAL_TABLES:
                self._create_internal_table(table, internal_columns(table, version))
            self._set_meta("local_schema_version", str(version))

    def _create_internal_table(self, table: str, columns: Sequence[Any]) -> None:
        defs = [f"{quote(c.name)} {c.decl}" for c in columns]
        if table in INTERNAL_KEYS:
            defs.append(f"PRIMARY KEY ({', '.join(quote(k) for k in INTERNAL_KEYS[table])})")
        self._run(f"CREATE TABLE IF NOT EXISTS {quote(table)} ({', '.join(defs)})")

    def upgrade_internal(self) -> None:
        """Bring the ``_sync_*`` tables to :data:`LOCAL_SCHEMA_VERSION`, keeping every row."""
        with self.transaction():
            existing = {k: v for k, v in self._columns().items() if k in INTERNAL_TABLES}
            version = int(self.meta("local_schema_version") or 0) if existing else 0
            if version > LOCAL_SCHEMA_VERSION:
                raise SchemaMismatch(
                    f"this cache was written by a newer client (local schema {version} > "
                    f"{LOCAL_SCHEMA_VERSION}); update the app or delete the cache"
                )
            create, add = internal_upgrade(existing)
            for table in create:
                self._create_internal_table(table, INTERNAL_TABLES[table])
            for table, column in add:
                self._run(
                    f"ALTER TABLE {quote(table)} ADD COLUMN {quote(column.name)} {column.decl}"
                )
            for name, columns in _OUTBOX_INDEXES.items():
                self._run(f"CREATE INDEX IF NOT EXISTS {quote(name)} ON _sync_outbox {columns}")
            self._set_meta("local_schema_version", str(LOCAL_SCHEMA_VERSION))

    def meta(self, key: str) -> str | None:
        return self._meta().get(key)

    def _meta(self) -> dict[str, str | None]:
        with self.lock:
            if self._meta_rows is None:
                self._meta_rows = {
                    row["key"]: row["value"]
                    for row in self._all("SELECT key, value FROM _sync_meta")
                }
            return self._meta_rows

    def _set_meta(self, key: str, value: str | None) -> None:
        with self.lock:
            rows = self._meta()
            if key in rows and rows[key] == value:
                return
            self._run(
                "INSERT INTO _sync_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
            rows[key] = value

    def set_meta(self, key: str, value: str | None) -> None:
        with self.transaction():
            self._set_meta(key, value)

    # -- synced tables ---------------------------------------------------------------------

    def _load_schema(self) -> None:
        raw = self.meta("schema")
        if raw:
            self._set_specs(parse_schema(json.loads(raw)))

    def _set_specs(self, schema: SchemaInfo) -> None:
        self._schema = schema
        self._specs = {t.name: t for t in schema.tables}

    @property
    def schema(self) -> SchemaInfo | None:
        return self._schema

    def spec(self, table: str) -> TableSpec:
        spec = self._specs.get(table)
        if spec is None:
            raise UnknownTable(f"{table!r} is not a synced table")
        return spec

    def migrate(self, schema: SchemaInfo, raw: Mapping[str, Any]) -> list[CreateTable | AddColumn]:
        """Create and extend the synced tables for ``schema`` (forward only), in one
        transaction with the new hash; pending ops are untouched."""
        with self.transaction():
            existing = {k: v for k, v in self._columns().items() if k not in INTERNAL_TABLES}
            for table in schema.tables:
                have = existing.get(table.name)
                for column in table.columns:
                    if have is not None and column.name in have:
                        continue
                if have is not None and "id" not in have:
                    raise SchemaMismatch(f"local table {table.name!r} has no id column")
            plan = plan_migration(existing, schema)
            for change in plan:
                if isinstance(change, CreateTable):
                    cols = [
                        f"{quote(c.name)} {sqlite_type(c.type)}"
                        + (" PRIMARY KEY" if c.name == "id" else "")
                        for c in change.table.columns
                    ]
                    t = change.table
                    self._run(f"CREATE TABLE {quote(t.name)} ({', '.join(cols)})")
                    self._run(
                        f"CREATE INDEX {quote(f'_sync_idx_{t.name}_bucket')} "
                        f"ON {quote(t.name)} ({quote(t.bucket_column)})"
                    )
                else:
                    self._run(
                        f"ALTER TABLE {quote(change.table)} "
                        f"ADD COLUMN {quote(change.column)} {change.sqlite_type}"
                    )
            self._set_meta("schema", json.dumps(raw))
            self._set_meta("schema_hash", schema.hash)
            self._set_specs(schema)
        return plan

    # -- rows ------------------------------------------------------------------------------

    def _decode(self, spec: TableSpec, row: Row) -> Row:
        out: Row = {}
        for name, value in row.items():
            col = spec.column(name)
            if col is not None and value is not None:
                if is_json_type(col.type) and isinstance(value, str):
                    value = json.loads(value)
                elif col.type == "boolean":
                    value = bool(value)
            out[name] = value
        return out

    def _encode(self, spec: TableSpec, row: Mapping[str, Any]) -> Row:
        out: Row = {}
        for name, value in row.items():
            col = spec.column(name)
            if col is None:
                continue  # a column this client does not know yet: kept on the server only
            if value is not None and is_json_type(col.type):
                value = json.dumps(value)
            elif isinstance(value, bool):
                value = int(value)
            out[name] = value
        return out

    def get_row(self, table: str, row_id: str) -> Row | None:
        spec = self.spec(table)
        row = self._one(f"SELECT * FROM {quote(table)} WHERE id = ?", (str(row_id),))  # noqa: S608
        return None if row is None else self._decode(spec, row)

    def put_row(self, table: str, row: Mapping[str, Any]) -> None:
        """Insert or replace the whole local row (columns missing from ``row`` become null)."""
        spec = self.spec(table)
        values = self._encode(spec, row)
        names = list(values)
        self._run(
            f"INSERT OR REPLACE INTO {quote(table)} ({', '.join(quote(n) for n in names)}) "  # noqa: S608
            f"VALUES ({', '.join('?' for _ in names)})",
            [values[n] for n in names],
        )
        self._touched(table)

    def delete_row(self, table: str, row_id: str) -> None:
        if self._run(f"DELETE FROM {quote(table)} WHERE id = ?", (str(row_id),)):  # noqa: S608
            self._touched(table)

    def set_row_version(self, table: str, row_id: str, version: int) -> None:
        """Record the server version an applied op gave the row (never lower it: a pull may
        already have brought a later one)."""
        self.set_row_versions([(table, row_id, version)])

    def set_row_versions(self, versions: Sequence[tuple[str, str, int]]) -> None:
        """:meth:`set_row_version` for many (table, row id, version) at once: one
        ``executemany`` per table, for a push whose ops were all applied."""
        by_table: dict[str, list[tuple[int, str, int]]] = {}
        for table, row_id, version in versions:
            by_table.setdefault(table, []).append((version, str(row_id), version))
        with self.lock:
            for table, rows in by_table.items():
                changed = self._conn.executemany(
                    f"UPDATE {quote(table)} SET version = ? "  # noqa: S608
                    "WHERE id = ? AND (version IS NULL OR version < ?)",
                    rows,
                ).rowcount
                if changed:
                    self._touched(table)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run an application query on the local tables (JSON columns come back as text)."""
        return self._all(sql, params)

    def tables_read_by(self, sql: str, params: Sequence[Any] = ()) -> frozenset[str]:
        """The synced tables ``sql`` reads, as SQLite's authorizer sees it when compiling."""
        seen: set[str] = set()

        def authorize(action: int, arg1: str | None, *_: Any) -> int:
            if action == sqlite3.SQLITE_READ and arg1 in self._specs:
                seen.add(arg1)
            return sqlite3.SQLITE_OK

        with self.lock:
            self._conn.set_authorizer(authorize)
            try:
                self._conn.execute(f"EXPLAIN {sql}", tuple(params)).fetchall()
            finally:
                self._conn.set_authorizer(None)
        return frozenset(seen)

    def row_counts(self) -> dict[str, int]:
        return {
            t: int(self._all(f"SELECT count(*) AS n FROM {quote(t)}")[0]["n"])  # noqa: S608
            for t in self._specs
        }

    # -- outbox ----------------------------------------------------------------------------

    def next_op_id(self) -> int:
        """Strictly increasing per cache, also across dead letters and restarts: op ids must
        never repeat for one ``client_id`` (the server stores results under them)."""
        last = int(self.meta("last_op_id") or 0)
        self._set_meta("last_op_id", str(last + 1))
        return last + 1

    def add_op(
        self,
        *,
        tx_id: str,
        table: str,
        kind: str,
        row_id: str,
        data: Mapping[str, Any],
        base_version: int | None,
        priority: str,
        base_row: Mapping[str, Any] | None = None,
        client_time: str | None = None,
    ) -> int:
        op_id = self.next_op_id()
        self._run(
            "INSERT INTO _sync_outbox (op_id, tx_id, tbl, kind, row_id, data, base_version, "
            "priority, created_at, base_row, client_time) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                op_id,
                tx_id,
                table,
                kind,
                str(row_id),
                json.dumps(dict(data), default=str),
                base_version,
                priority,
                time.time(),
                None if base_row is None else json.dumps(dict(base_row), default=str),
                client_time,
            ),
        )
        return op_id

    @staticmethod
    def _op(row: Row) -> OutboxOp:
        return OutboxOp(
            op_id=row["op_id"],
            tx_id=row["tx_id"],
            table=row["tbl"],
            kind=row["kind"],
            row_id=row["row_id"],
            data=json.loads(row["data"]),
            base_version=row["base_version"],
            priority=row["priority"],
            created_at=row["created_at"],
            base_row=None if row.get("base_row") is None else json.loads(row["base_row"]),
            client_time=row.get("client_time"),
        )

    def pending_ops(self, table: str | None = None, row_id: str | None = None) -> list[OutboxOp]:
        """Pending ops in the order they were made (optionally of one row)."""
        if table is None:
            rows = self._all("SELECT * FROM _sync_outbox ORDER BY op_id")
        else:
            rows = self._all(
                "SELECT * FROM _sync_outbox WHERE tbl = ? AND row_id = ? ORDER BY op_id",
                (table, str(row_id)),
            )
        return [self._op(r) for r in rows]

    def op(self, op_id: int) -> OutboxOp | None:
        row = self._one("SELECT * FROM _sync_outbox WHERE op_id = ?", (op_id,))
        return None if row is None else self._op(row)

    def has_op(self, op_id: int) -> bool:
        """Whether the op is still pending (without decoding it)."""
        return self._one("SELECT 1 AS one FROM _sync_outbox WHERE op_id = ?", (op_id,)) is not None

    def push_batch(self, limit: int) -> list[OutboxOp]:
        """The next ops to push: by priority (critical, normal, background), then in order.

        A client transaction is never split, and an op is never sent before an earlier op on
        the same row (the server applies the array in order). The queue is read in push order
        a chunk at a time, and each transaction met is taken whole unless an earlier op on
        one of its rows is still queued outside it and the batch (it waits in a later
        priority); a pass that reaches the end of the queue with room left starts again, for
        the transactions that waited. Only the ops' keys are read, by index, until the chosen
        ops are decoded: the cost follows the batch, not the queue's length.

        Checking only each op's nearest earlier op on its row is enough: an op is taken only
        when every earlier op on its rows is taken or comes with it, so a taken nearest op
        vouches for all before it, and one in the same transaction is checked in turn."""
        with self.lock:
            chosen = self._choose(limit)
        return self._ops(chosen)

    def _choose(self, limit: int) -> list[int]:
        """The op ids of :meth:`push_batch`, in the order to send (the caller holds the lock).
        Each pass's read of the queue is closed when the choice is made, so no statement is
        left open on the connection."""
        chosen: list[int] = []
        taken: set[int] = set()
        progress = True
        while progress and len(chosen) < limit:
            progress = False
            with contextlib.closing(
                self._conn.execute(
                    "SELECT op_id, tx_id FROM _sync_outbox"  # noqa: S608
                    f" ORDER BY {_PRIORITY_ORDER}, op_id"
                )
            ) as queue:
                while rows := queue.fetchmany(_QUEUE_CHUNK):
                    for op_id, tx_id in rows:
                        if op_id in taken:
                            continue
                        group = self._conn.execute(
                            "SELECT op_id, tbl, row_id FROM _sync_outbox"
                            " WHERE tx_id = ? ORDER BY op_id",
                            (tx_id,),
                        ).fetchall()
                        members = {member[0] for member in group}
                        if self._waits(group, members, taken):
                            continue
                        if chosen and len(chosen) + len(group) > limit:
                            return chosen
                        chosen.extend(member[0] for member in group)
                        taken.update(members)
                        progress = True
                        if len(chosen) >= limit:
                            return chosen
        return chosen

    def _waits(
        self, group: Sequence[tuple[int, str, str]], members: set[int], taken: set[int]
    ) -> bool:
        """Whether an op of ``group`` has an earlier op on its row that is neither taken nor
        in ``group`` (the caller holds the lock)."""
        for op_id, table, row_id in group:
            (nearest,) = self._conn.execute(
                "SELECT max(op_id) FROM _sync_outbox WHERE tbl = ? AND row_id = ? AND op_id < ?",
                (table, row_id, op_id),
            ).fetchone()
            if nearest is not None and nearest not in taken and nearest not in members:
                return True
        return False

    def _ops(self, op_ids: Sequence[int]) -> list[OutboxOp]:
        """These pending ops, decoded, in the order given."""
        found: dict[int, OutboxOp] = {}
        for start in range(0, len(op_ids), 500):
            chunk = op_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._all(f"SELECT * FROM _sync_outbox WHERE op_id IN ({marks})", chunk):  # noqa: S608
                found[row["op_id"]] = self._op(row)
        return [found[op_id] for op_id in op_ids]

    def remove_op(self, op_id: int) -> None:
        self.remove_ops([op_id])

    def remove_ops(self, op_ids: Sequence[int]) -> None:
        with self.lock:
            self._conn.executemany(
                "DELETE FROM _sync_outbox WHERE op_id = ?", [(op_id,) for op_id in op_ids]
            )

    def set_base_version(self, op_id: int, base_version: int | None) -> None:
        self._run("UPDATE _sync_outbox SET base_version = ? WHERE op_id = ?", (base_version, op_id))

    def pending_count(self) -> tuple[int, float | None]:
        row = self._one("SELECT count(*) AS n, min(created_at) AS oldest FROM _sync_outbox")
        assert row is not None
        return int(row["n"]), row["oldest"]

    def pending_row_ids(self, table: str) -> set[str]:
        return {
            r["row_id"]
            for r in self._all("SELECT DISTINCT row_id FROM _sync_outbox WHERE tbl = ?", (table,))
        }

    # -- dead letters ----------------------------------------------------------------------

    def add_dead_letter(
        self, op: OutboxOp, sqlstate: str | None, message: str | None, depends_on: int | None
    ) -> None:
        self._run(
            "INSERT OR REPLACE INTO _sync_dead_letters (op_id, tx_id, tbl, kind, row_id, data, "
            "base_version, priority, sqlstate, message, depends_on, failed_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                op.op_id,
                op.tx_id,
                op.table,
                op.kind,
                op.row_id,
                json.dumps(dict(op.data), default=str),
                op.base_version,
                op.priority,
                sqlstate,
                message,
                depends_on,
                time.time(),
            ),
        )
        self.remove_op(op.op_id)

    def dead_letters(self) -> list[DeadLetter]:
        return [
            DeadLetter(
                op_id=r["op_id"],
                tx_id=r["tx_id"],
                table=r["tbl"],
                kind=r["kind"],
                row_id=r["row_id"],
                data=json.loads(r["data"]),
                base_version=r["base_version"],
                priority=r["priority"],
                sqlstate=r["sqlstate"],
                message=r["message"],
                depends_on=r["depends_on"],
                failed_at=r["failed_at"],
            )
            for r in self._all("SELECT * FROM _sync_dead_letters ORDER BY op_id")
        ]

    def remove_dead_letter(self, op_id: int) -> None:
        self._run("DELETE FROM _sync_dead_letters WHERE op_id = ?", (op_id,))

    def dead_letter_count(self) -> int:
        row = self._one("SELECT count(*) AS n FROM _sync_dead_letters")
        return 0 if row is None else int(row["n"])

    # -- rebase ----------------------------------------------------------------------------

    def rebase_row(self, table: str, row_id: str, server_row: Mapping[str, Any] | None) -> None:
        """Make the local row ``server_row`` with the row's pending ops laid over it again
        (``None``: the server has no such row for us). Without pending ops: the server row."""
        row: Row | None = None if server_row is None else dict(server_row)
        for op in self.pending_ops(table, row_id):
            if op.kind == "delete":
                row = None
            elif op.kind == "insert":
                row = {**(row or {}), **op.data, "id": row_id}
            elif row is not None:
                row.update(op.data)
            else:
                # An update with no row under it (deleted on the server meanwhile): keep what
                # the op was made on, so the user still sees their edit until it settles.
                row = {**(op.base_row or {}), **op.data, "id": row_id}
        if row is None:
            self.delete_row(table, row_id)
        else:
            self.put_row(table, row)

    # -- buckets ---------------------------------------------------------------------------

    def buckets(self) -> dict[str, BucketRecord]:
        """Every held bucket's record, by name (a copy: callers may change it)."""
        with self.lock:
            return dict(self._records())

    def bucket_states(self) -> dict[str, BucketState]:
        """Every held bucket's state, by name: what a pull request sends. After a pull that
        found nothing, one state shared by all, without making a record a bucket."""
        with self.lock:
            records = self._loaded_records()
            shared = self._shared_state
            if shared is not None:
                return dict.fromkeys(records, shared)
            return {name: record.state for name, record in records.items()}

    def _records(self) -> dict[str, BucketRecord]:
        """The copy of the bucket records, loaded if need be, with a shared state laid in."""
        records = self._loaded_records()
        shared, self._shared_state = self._shared_state, None
        if shared is not None:
            make = tuple.__new__
            for name, r in records.items():
                records[name] = make(BucketRecord, (r[0], r[1], r[2], r[3], shared, r[5]))
        return records

    def _loaded_records(self) -> dict[str, BucketRecord]:
        """The copy of the bucket records as kept (a shared state not laid in)."""
        if self._bucket_records is None:
            self._shared_state = None
            self._bucket_records = {
                r["bucket"]: BucketRecord(
                    bucket=r["bucket"],
                    table=r["tbl"],
                    key=r["key"],
                    streams=tuple(json.loads(r["streams"])),
                    state=BucketState(r["cursor"], r["round"], r["after"]),
                    last_used=r["last_used"],
                )
                for r in self._all("SELECT * FROM _sync_buckets ORDER BY bucket")
            }
        return self._bucket_records

    def _mark_unchanged(self, buckets: Sequence[str], snapshot: str) -> None:
        """Give the copy of the bucket records the cursor a page of unchanged buckets just
        wrote, as the UPDATE did, rather than drop it: a pull in which nothing changed, the
        common one, then reads no bucket row back (a rollback still drops the copy).

        When the page names every bucket held, the cursor becomes the shared state instead:
        making a new record for each of 55 buckets was most of the client's own time in a
        pull that found nothing."""
        if self._bucket_records is None:
            return
        state = BucketState(snapshot)
        if self._bucket_records.keys() == set(buckets):
            self._shared_state = state
            return
        records = self._records()
        for bucket in buckets:
            record = records.get(bucket)
            if record is None:
                self._bucket_records = None
                return
            records[bucket] = BucketRecord(
                record.bucket, record.table, record.key, record.streams, state, record.last_used
            )

    def _bucket_written(
        self,
        bucket: str,
        table: str,
        key: str,
        streams: tuple[str, ...],
        state: BucketState,
        now: float,
    ) -> None:
        """Give the copy of the bucket records what a page's UPDATE (or INSERT) of one bucket
        writes: its streams and state (and, for a new bucket, ``last_used``), so that the next
        pull reads no bucket row back either."""
        if self._bucket_records is None:
            return
        records = self._records()
        held = records.get(bucket)
        records[bucket] = BucketRecord(
            bucket, table, key, streams, state, now if held is None else held.last_used
        )

    def _buckets_written(self) -> None:
        """Drop the copy of the bucket records after a write to ``_sync_buckets``, and with
        it a kept pull: the file's states are older but valid, and writing the kept cursors
        later could overwrite what this write stores."""
        self._bucket_records = None
        self._shared_state = None
        self._kept = None

    def keep_unchanged(self, page: PullResponse, *, now: float) -> bool:
        """Keep a page in which nothing changed in memory instead of writing it; ``False``
        when it must be written (:meth:`apply_page`).

        Such a page moves every bucket's cursor to its snapshot and brings a new resolution
        token, and nothing else: writing that cost a transaction on every pull, most of the
        client's share of a pull that found nothing. The cursors the file holds instead are
        older but just as valid, since nothing changed in those buckets between the two
        snapshots (a bucket is unchanged only if the server saw no change since the cursor
        sent), and the older token holds or is refused, never wrong: after a crash the next
        pull asks from a little further back and gets the same answer. So the copy of the
        bucket records takes the new cursors, the next request sends them, and they reach the
        file with the next page that changes something, at most :data:`KEEP_UNCHANGED_SECONDS`
        later, or when the cache closes (:meth:`write_kept`).

        Only a page that is exactly that qualifies: no bucket served or removed, no page to
        follow, and every bucket it names held with a plain cursor (not mid-round)."""
        with self.lock:
            records = self._bucket_records
            if (
                self._depth
                or records is None
                or page.buckets
                or page.removed_buckets
                or page.has_more
                or now - self._cursors_written_at >= KEEP_UNCHANGED_SECONDS
            ):
                return False
            shared = self._shared_state  # when set, every record's state, and a plain one
            for bucket in page.unchanged:
                record = records.get(bucket)
                if record is None:
                    return False
                state = record.state if shared is None else shared
                if state.round is not None or state.after is not None:
                    return False
            self._mark_unchanged(page.unchanged, page.snapshot)
            self._kept = KeptPull(page.snapshot, tuple(page.unchanged), page.resolution)
            return True

    def resolution(self) -> str | None:
        """The resolution token to send: a kept pull's, or the file's."""
        kept = self._kept
        return kept.resolution if kept is not None else self.meta("resolution")

    def write_kept(self) -> None:
        """Write a kept pull's cursors and token, as :meth:`apply_page` would have."""
        with self.lock:
            kept = self._kept
            if kept is None:
                return
            with self.transaction():
                self._write_unchanged(kept.buckets, kept.snapshot)
                self._set_meta("resolution", kept.resolution)
            self._kept = None

    def set_bucket_state(self, bucket: str, state: BucketState) -> None:
        self._buckets_written()
        self._run(
            "UPDATE _sync_buckets SET cursor = ?, round = ?, after = ? WHERE bucket = ?",
            (state.cursor, state.round, state.after, bucket),
        )

    def touch_bucket(self, bucket: str, now: float) -> None:
        self._buckets_written()
        self._run("UPDATE _sync_buckets SET last_used = ? WHERE bucket = ?", (now, bucket))

    def _bucket_rows(self, table: str, key: str) -> list[Row]:
        spec = self.spec(table)
        return self._all(
            f"SELECT id, version FROM {quote(table)} "  # noqa: S608
            f"WHERE CAST({quote(spec.bucket_column)} AS TEXT) = ?",
            (key,),
        )

    def _clear_bucket_rows(self, table: str, key: str) -> None:
        """Delete the bucket's local rows, except rows with pending ops (settled by push)."""
        if table not in self._specs:
            return
        keep = self.pending_row_ids(table)
        for r in self._bucket_rows(table, key):
            if r["id"] not in keep:
                self.delete_row(table, r["id"])

    def forget_bucket(self, bucket: str) -> None:
        table, key = split_bucket(bucket)
        self._clear_bucket_rows(table, key)
        self._buckets_written()
        self._run("DELETE FROM _sync_buckets WHERE bucket = ?", (bucket,))

    def local_checksum(self, bucket: str) -> tuple[int, int]:
        """``(count, checksum)`` of the bucket's local rows that came from the server."""
        table, key = split_bucket(bucket)
        if table not in self._specs:
            return 0, 0
        pairs = [
            (r["id"], r["version"])
            for r in self._bucket_rows(table, key)
            if r["version"] is not None
        ]
        return bucket_checksum(pairs)

    def apply_page(
        self,
        requested: Mapping[str, BucketState],
        page: PullResponse,
        *,
        now: float | None = None,
        repairing: frozenset[str] = frozenset(),
    ) -> None:
        """Apply one ``sync_pull`` page by the contract's rules, with the new bucket states,
        in one transaction: if anything fails, nothing of the page is kept.

        ``repairing`` names buckets sent with ``cursor: null`` after a checksum mismatch: their
        rows are cleared first as for a ``reset``."""
        stamp = time.time() if now is None else now
        with self.transaction():
            # A kept pull's cursors, for the buckets this page does not write itself (nearly
            # always none: a page names every bucket held).
            kept, self._kept = self._kept, None
            if kept is not None:
                named = {*page.unchanged, *page.removed_buckets, *(b.bucket for b in page.buckets)}
                self._write_unchanged([b for b in kept.buckets if b not in named], kept.snapshot)
            known = self.buckets()
            for bucket in page.removed_buckets:
                self.forget_bucket(bucket)
            for b in page.buckets:
                spec = self.spec(b.table)
                sent = requested.get(b.bucket)
                first_page = sent is None or sent.after is None
                if first_page and (b.state == "reset" or b.bucket in repairing):
                    self._clear_bucket_rows(b.table, b.key)
                pending = self.pending_row_ids(b.table)
                if pending:
                    rows = b.row_dicts()
                    rebased = [row for row in rows if str(row["id"]) in pending]
                    self._upsert_rows(spec, [r for r in rows if str(r["id"]) not in pending])
                    for row in rebased:
                        self._apply_row(spec, row, pending)
                elif b.values:
                    self._upsert_values(spec, b.columns, b.values)
                else:
                    self._upsert_rows(spec, b.rows)
                for row_id in b.removed:
                    if row_id in pending:
                        continue
                    current = self._one(
                        f"SELECT CAST({quote(spec.bucket_column)} AS TEXT) AS k "  # noqa: S608
                        f"FROM {quote(b.table)} WHERE id = ?",
                        (row_id,),
                    )
                    if current is not None and current["k"] == b.key:
                        self.delete_row(b.table, row_id)
                state = b.next_state(sent)
                streams = b.streams
                if streams is None:
                    # Version 4: the streams the bucket is held through, unchanged.
                    held = known.get(b.bucket)
                    if held is None:
                        raise SyncError(
                            f"malformed sync_pull bucket {b.bucket}: no streams for a bucket "
                            "not held"
                        )
                    streams = held.streams
                self._bucket_written(b.bucket, b.table, b.key, streams, state, stamp)
                if b.bucket in known:
                    self._run(
                        "UPDATE _sync_buckets SET streams = ?, cursor = ?, round = ?, after = ? "
                        "WHERE bucket = ?",
                        (
                            json.dumps(list(streams)),
                            state.cursor,
                            state.round,
                            state.after,
                            b.bucket,
                        ),
                    )
                else:
                    self._run(
                        "INSERT INTO _sync_buckets (bucket, tbl, key, streams, cursor, round, "
                        "after, last_used) VALUES (?,?,?,?,?,?,?,?)",
                        (
                            b.bucket,
                            b.table,
                            b.key,
                            json.dumps(list(streams)),
                            state.cursor,
                            state.round,
                            state.after,
                            stamp,
                        ),
                    )
            self._write_unchanged(page.unchanged, page.snapshot)
            self._mark_unchanged(page.unchanged, page.snapshot)
            self._cursors_written_at = stamp

    def _write_unchanged(self, buckets: Sequence[str], snapshot: str) -> None:
        # One statement per 500 unchanged buckets, not one per bucket: half the time.
        for start in range(0, len(buckets), 500):
            chunk = buckets[start : start + 500]
            self._run(
                "UPDATE _sync_buckets SET cursor = ?, round = NULL, after = NULL "  # noqa: S608
                f"WHERE bucket IN ({', '.join('?' for _ in chunk)})",
                (snapshot, *chunk),
            )

    def _upsert_rows(self, spec: TableSpec, rows: Sequence[Mapping[str, Any]]) -> None:
        """Server rows without pending local writes, as :meth:`_apply_row` would apply them one
        by one (a row older than the local version is ignored; otherwise it replaces the local
        row), but with one prepared statement per column set and ``executemany``."""
        if not rows:
            return
        names = spec.column_names
        json_at = [i for i, c in enumerate(spec.columns) if is_json_type(c.type)]
        batch: list[list[Any]] = []
        for row in rows:
            values = [row.get(n) for n in names]
            for i in json_at:
                if values[i] is not None:
                    values[i] = json.dumps(values[i])
            batch.append(values)
        with self.lock:
            self._conn.executemany(self._upsert_sql(spec.name, names), batch)
        self._touched(spec.name)

    def _upsert_values(
        self, spec: TableSpec, columns: tuple[str, ...], values: Sequence[Sequence[Any]]
    ) -> None:
        """:meth:`_upsert_rows` for rows that arrive as arrays of values under ``columns`` (wire
        version 2): when the server's column list is the local table's, as it is unless the
        schema is changing, the arrays are the statement's parameters as they are."""
        names = spec.column_names
        json_at = [i for i, c in enumerate(spec.columns) if is_json_type(c.type)]
        batch: Sequence[Sequence[Any]] = values
        if columns != names or json_at:
            position = {name: i for i, name in enumerate(columns)}
            picks = [position.get(n) for n in names]
            copied = [[None if i is None else v[i] for i in picks] for v in values]
            for row in copied:
                for i in json_at:
                    if row[i] is not None:
                        row[i] = json.dumps(row[i])
            batch = copied
        with self.lock:
            self._conn.executemany(self._upsert_sql(spec.name, names), batch)
        self._touched(spec.name)

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _upsert_sql(table: str, names: tuple[str, ...]) -> str:
        """Insert, or overwrite every column of the local row unless the local version is newer
        (a column missing from a server row becomes null, as ``INSERT OR REPLACE`` left it)."""
        columns = ", ".join(quote(n) for n in names)
        updates = ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in names if n != "id")
        statement = (
            f"INSERT INTO {quote(table)} ({columns}) "  # noqa: S608
            f"VALUES ({', '.join('?' for _ in names)}) ON CONFLICT (id) DO "
        )
        if not updates:
            return statement + "NOTHING"
        statement += f"UPDATE SET {updates}"
        if "version" in names:
            statement += (
                f" WHERE {quote(table)}.version IS NULL OR excluded.version IS NULL"
                f" OR excluded.version >= {quote(table)}.version"
            )
        return statement

    def _apply_row(self, spec: TableSpec, row: Mapping[str, Any], pending: set[str]) -> None:
        row_id = str(row["id"])
        local = self._one(
            f"SELECT version FROM {quote(spec.name)} WHERE id = ?",  # noqa: S608
            (row_id,),
        )
        version = row.get("version")
        if (
            local is not None
            and local["version"] is not None
            and version is not None
            and int(version) < int(local["version"])
        ):
            return
        if row_id in pending:
            self.rebase_row(spec.name, row_id, row)
        else:
            self.put_row(spec.name, row)

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(self, stream: str, key: str, expires_at: float | None, now: float) -> None:
        with self.transaction():
            self._subscription_rows = None
            self._run(
                "INSERT INTO _sync_subscriptions (stream, key, expires_at, last_used) "
                "VALUES (?,?,?,?) ON CONFLICT (stream, key) DO UPDATE SET "
                "expires_at = excluded.expires_at, last_used = excluded.last_used",
                (stream, key, expires_at, now),
            )

    def unsubscribe(self, stream: str, key: str) -> None:
        with self.transaction():
            self._subscription_rows = None
            self._run("DELETE FROM _sync_subscriptions WHERE stream = ? AND key = ?", (stream, key))

    def _subscriptions(self) -> list[Row]:
        """Every subscription row, as last read: every pull asks for the live ones and drops
        the expired ones, a statement each, to find nearly always the same few rows."""
        with self.lock:
            if self._subscription_rows is None:
                self._subscription_rows = self._all(
                    "SELECT * FROM _sync_subscriptions ORDER BY stream, key"
                )
            return self._subscription_rows

    @staticmethod
    def _is_live(row: Row, now: float) -> bool:
        return row["expires_at"] is None or row["expires_at"] > now

    def subscriptions(self, now: float, *, include_expired: bool = False) -> list[Row]:
        """Copies of the rows (the kept ones are not the caller's to change)."""
        return [dict(r) for r in self._subscriptions() if include_expired or self._is_live(r, now)]

    def live_subscriptions(self, now: float) -> tuple[Subscription, ...]:
        return tuple(
            Subscription(r["stream"], r["key"])
            for r in self._subscriptions()
            if self._is_live(r, now)
        )

    def drop_expired_subscriptions(self, now: float) -> int:
        with self.lock:
            if all(self._is_live(r, now) for r in self._subscriptions()):
                return 0
            self._subscription_rows = None
            return self._run(
                "DELETE FROM _sync_subscriptions WHERE expires_at IS NOT NULL AND expires_at <= ?",
                (now,),
            )

    def total_rows(self) -> int:
        return sum(self.row_counts().values())

    def row_counts_by_bucket_stream(self) -> dict[str, int]:
        """Rows held per stream (a bucket held through two streams counts for both)."""
        counts: dict[str, int] = {}
        for record in self.buckets().values():
            if record.table not in self._specs:
                continue
            n = len(self._bucket_rows(record.table, record.key))
            for stream in record.streams:
                counts[stream] = counts.get(stream, 0) + n
        return counts

    # -- files (pysync.sync.files keeps its own tables; the row cache only asks this) -------

    def queued_file_uploads(self) -> int:
        """Files waiting to upload before their rows are pushed (0 when the cache has none)."""
        if not self._one("SELECT 1 AS x FROM sqlite_master WHERE name = '_files_uploads'"):
            return 0
        row = self._one("SELECT count(*) AS n FROM _files_uploads WHERE state = 'queued'")
        return 0 if row is None else int(row["n"])
