"""The local schema: what SQLite tables the cache needs, as data; :mod:`.storage` renders it.

Two parts with two lifecycles:

* **Synced tables** mirror ``sync_schema()``: same table names, same columns, SQLite types
  mapped from PostgreSQL's (:func:`sqlite_type`). When the server's schema hash changes they
  are migrated *forward* only (:func:`plan_migration`: new table → create, new column → add),
  so pending ops and cached rows survive an app update; a dropped server column stays as a
  harmless local column.
* **Internal tables** (``_sync_*``) are the client's own bookkeeping, versioned by
  :data:`LOCAL_SCHEMA_VERSION`. Every column records the version that added it, so an old
  file is upgraded by adding what came later (:func:`internal_upgrade`), never rebuilt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pysync.sync.wire import SchemaInfo, TableSpec

__all__ = [
    "INTERNAL_KEYS",
    "INTERNAL_TABLES",
    "LOCAL_SCHEMA_VERSION",
    "AddColumn",
    "CreateTable",
    "InternalColumn",
    "internal_columns",
    "internal_upgrade",
    "is_json_type",
    "plan_migration",
    "sqlite_type",
]

#: Version of the ``_sync_*`` tables. 1: first release. 2: the outbox keeps the base row (for
#: three-way merges) and the client's wall-clock time of each op (for last-write-wins);
#: subscriptions remember when they were last used (for LRU eviction).
LOCAL_SCHEMA_VERSION = 2


@dataclass(frozen=True)
class InternalColumn:
    name: str
    decl: str  # SQLite type and constraints, e.g. "TEXT NOT NULL DEFAULT ''"
    since: int = 1


#: The internal tables at :data:`LOCAL_SCHEMA_VERSION`; columns with ``since`` > an old file's
#: version are added by :func:`internal_upgrade`. Columns added later must be nullable or have
#: a default (SQLite's ALTER TABLE ADD COLUMN rule).
INTERNAL_TABLES: Mapping[str, tuple[InternalColumn, ...]] = {
    "_sync_meta": (
        InternalColumn("key", "TEXT PRIMARY KEY"),
        InternalColumn("value", "TEXT"),
    ),
    "_sync_buckets": (
        InternalColumn("bucket", "TEXT PRIMARY KEY"),
        InternalColumn("tbl", "TEXT NOT NULL"),
        InternalColumn("key", "TEXT NOT NULL"),
        InternalColumn("streams", "TEXT NOT NULL DEFAULT '[]'"),
        InternalColumn("cursor", "TEXT"),
        InternalColumn("round", "TEXT"),
        InternalColumn("after", "TEXT"),
        InternalColumn("last_used", "REAL NOT NULL DEFAULT 0"),
    ),
    "_sync_subscriptions": (
        InternalColumn("stream", "TEXT NOT NULL"),
        InternalColumn("key", "TEXT NOT NULL"),
        InternalColumn("expires_at", "REAL"),
        InternalColumn("last_used", "REAL NOT NULL DEFAULT 0", since=2),
    ),
    "_sync_outbox": (
        InternalColumn("op_id", "INTEGER PRIMARY KEY"),
        InternalColumn("tx_id", "TEXT NOT NULL"),
        InternalColumn("tbl", "TEXT NOT NULL"),
        InternalColumn("kind", "TEXT NOT NULL"),
        InternalColumn("row_id", "TEXT NOT NULL"),
        InternalColumn("data", "TEXT NOT NULL DEFAULT '{}'"),
        InternalColumn("base_version", "INTEGER"),
        InternalColumn("priority", "TEXT NOT NULL DEFAULT 'normal'"),
        InternalColumn("created_at", "REAL NOT NULL DEFAULT 0"),
        InternalColumn("base_row", "TEXT", since=2),
        InternalColumn("client_time", "TEXT", since=2),
    ),
    "_sync_dead_letters": (
        InternalColumn("op_id", "INTEGER PRIMARY KEY"),
        InternalColumn("tx_id", "TEXT NOT NULL"),
        InternalColumn("tbl", "TEXT NOT NULL"),
        InternalColumn("kind", "TEXT NOT NULL"),
        InternalColumn("row_id", "TEXT NOT NULL"),
        InternalColumn("data", "TEXT NOT NULL DEFAULT '{}'"),
        InternalColumn("base_version", "INTEGER"),
        InternalColumn("priority", "TEXT NOT NULL DEFAULT 'normal'"),
        InternalColumn("sqlstate", "TEXT"),
        InternalColumn("message", "TEXT"),
        InternalColumn("depends_on", "INTEGER"),
        InternalColumn("failed_at", "REAL NOT NULL DEFAULT 0"),
    ),
}

#: Primary keys that are not a single ``PRIMARY KEY`` column.
INTERNAL_KEYS: Mapping[str, tuple[str, ...]] = {"_sync_subscriptions": ("stream", "key")}


def internal_columns(table: str, version: int) -> tuple[InternalColumn, ...]:
    """The columns ``table`` had at ``version``."""
    return tuple(c for c in INTERNAL_TABLES[table] if c.since <= version)


def internal_upgrade(
    existing: Mapping[str, Sequence[str]],
) -> tuple[list[str], list[tuple[str, InternalColumn]]]:
    """What to create and add so internal tables with ``existing`` columns reach the current
    version: ``(tables to create, (table, column) to add)``. Works from the columns present,
    not the stored version number, so a half-upgraded file is finished rather than redone."""
    create = [t for t in INTERNAL_TABLES if t not in existing]
    add = [
        (t, c)
        for t, cols in INTERNAL_TABLES.items()
        if t in existing
        for c in cols
        if c.name not in existing[t]
    ]
    return create, add


_EXACT = {
    "integer": "INTEGER",
    "bigint": "INTEGER",
    "smallint": "INTEGER",
    "boolean": "INTEGER",
    "real": "REAL",
    "double precision": "REAL",
}


def sqlite_type(pg_type: str) -> str:
    """The SQLite column type for a PostgreSQL ``format_type``.

    Text for everything whose value PostgREST sends as a string (uuid, timestamps, dates,
    enums) or as JSON (jsonb, arrays: stored as JSON text). ``numeric`` is TEXT too: SQLite's
    REAL would round money silently, and the server sends it as a JSON number we keep exact.
    """
    t = pg_type.strip().lower()
    if t.endswith("[]") or t in ("json", "jsonb"):
        return "TEXT"
    return _EXACT.get(t, "TEXT")


def is_json_type(pg_type: str) -> bool:
    """Whether values of this type are stored as JSON text locally (and decoded on read)."""
    t = pg_type.strip().lower()
    return t.endswith("[]") or t in ("json", "jsonb")


@dataclass(frozen=True)
class CreateTable:
    table: TableSpec


@dataclass(frozen=True)
class AddColumn:
    table: str
    column: str
    sqlite_type: str


def plan_migration(
    existing: Mapping[str, Sequence[str]], schema: SchemaInfo
) -> list[CreateTable | AddColumn]:
    """The forward-only changes that make local tables with ``existing`` columns hold every
    synced table and column of ``schema``."""
    plan: list[CreateTable | AddColumn] = []
    for table in schema.tables:
        have = existing.get(table.name)
        if have is None:
            plan.append(CreateTable(table))
            continue
        plan.extend(
            AddColumn(table.name, c.name, sqlite_type(c.type))
            for c in table.columns
            if c.name not in have
        )
    return plan
