"""An SQLite snapshot of the application's tables in ``public``, for offline inspection.

Types are mapped so that every value reads back unambiguously in any SQLite tool:

==========================================  ===============================================
PostgreSQL                                  SQLite
==========================================  ===============================================
smallint, integer, bigint                   INTEGER
real, double precision                      REAL
numeric                                     TEXT, the exact decimal (REAL would round money)
boolean                                     INTEGER 0/1
timestamptz, timestamp, date, time          TEXT, ISO 8601 (timestamptz in UTC, ``+00:00``)
json, jsonb, arrays                         TEXT holding JSON
bytea                                       BLOB
uuid, text, enums, intervals, xid8, others  TEXT (PostgreSQL's own text form)
==========================================  ===============================================

Each table keeps its primary key. A table ``_pysync_export`` records when and from which
tables the snapshot was taken, with their row counts.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pysync.errors import BackupError

__all__ = ["ExportResult", "export_sqlite"]

_INTEGER = {"smallint", "integer", "bigint"}
_REAL = {"real", "double precision"}
_DATETIME = {
    "timestamp with time zone",
    "timestamp without time zone",
    "date",
    "time without time zone",
    "time with time zone",
}
_JSON = {"json", "jsonb"}


@dataclass(frozen=True)
class _Column:
    name: str
    pg_type: str
    is_array: bool
    not_null: bool

    @property
    def sqlite_type(self) -> str:
        if self.is_array or self.pg_type in _JSON:
            return "TEXT"
        if self.pg_type in _INTEGER or self.pg_type == "boolean":
            return "INTEGER"
        if self.pg_type in _REAL:
            return "REAL"
        if self.pg_type == "bytea":
            return "BLOB"
        return "TEXT"

    def select_expression(self) -> sql.Composable:
        """How to read the column so the driver hands back the SQLite value directly."""
        column = sql.Identifier(self.name)
        if self.is_array or self.pg_type in _JSON:
            return sql.SQL("to_jsonb({})::text").format(column)
        if self.pg_type in _DATETIME:
            # jsonb renders date/time values in ISO 8601 (with a T), in the session time zone.
            return sql.SQL("to_jsonb({}) #>> '{{}}'").format(column)
        if self.pg_type in _INTEGER | _REAL | {"boolean", "bytea"}:
            return column
        return sql.SQL("{}::text").format(column)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    tables: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "tables": self.tables}


def _columns(conn: psycopg.Connection[Any], table: str) -> list[_Column]:
    rows = conn.execute(
        "select a.attname, format_type(coalesce(nullif(t.typelem, 0), t.oid), null),"
        " t.typcategory = 'A', a.attnotnull"
        " from pg_catalog.pg_attribute as a join pg_catalog.pg_type as t on t.oid = a.atttypid"
        " where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped"
        " order by a.attnum",
        (f'public."{table}"',),
    ).fetchall()
    columns = []
    for name, pg_type, is_array, not_null in rows:
        base = "bytea" if pg_type == "bytea" else str(pg_type)
        columns.append(_Column(str(name), base, bool(is_array), bool(not_null)))
    return columns


def _primary_key(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "select a.attname from pg_catalog.pg_index as i"
        " cross join lateral unnest(i.indkey) with ordinality as k(attnum, position)"
        " join pg_catalog.pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum"
        " where i.indrelid = %s::regclass and i.indisprimary order by k.position",
        (f'public."{table}"',),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def export_sqlite(url: str, path: Path) -> ExportResult:
    """Write every table of ``public`` at ``url`` into a new SQLite file at ``path``.

    The snapshot is consistent (one repeatable-read transaction) and replaces ``path`` only
    once complete.
    """
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        conn.execute("set local time zone 'UTC'")
        tables = [
            str(r[0])
            for r in conn.execute(
                "select c.relname from pg_catalog.pg_class as c"
                " where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')"
                " and not c.relispartition order by 1"
            ).fetchall()
        ]
        if not tables:
            raise BackupError("the database has no tables in public: nothing to export")
        lite = sqlite3.connect(partial)
        try:
            for table in tables:
                counts[table] = _copy_table(conn, lite, table)
            lite.execute(
                "create table _pysync_export (table_name TEXT primary key, row_count INTEGER"
                " not null, exported_at TEXT not null)"
            )
            stamp = datetime.now(UTC).isoformat()
            lite.executemany(
                "insert into _pysync_export values (?, ?, ?)",
                [(name, rows, stamp) for name, rows in counts.items()],
            )
            lite.commit()
        finally:
            lite.close()
        conn.rollback()
    partial.replace(path)
    return ExportResult(path, counts)


def _copy_table(conn: psycopg.Connection[Any], lite: sqlite3.Connection, table: str) -> int:
    columns = _columns(conn, table)
    key = _primary_key(conn, table)
    definitions = [
        f"{_quote(c.name)} {c.sqlite_type}{' NOT NULL' if c.not_null else ''}" for c in columns
    ]
    if key:
        definitions.append(f"PRIMARY KEY ({', '.join(_quote(k) for k in key)})")
    lite.execute(f"CREATE TABLE {_quote(table)} ({', '.join(definitions)})")
    insert = f"INSERT INTO {_quote(table)} VALUES ({', '.join('?' for _ in columns)})"  # noqa: S608
    query = sql.SQL("select {} from public.{}").format(
        sql.SQL(", ").join(c.select_expression() for c in columns), sql.Identifier(table)
    )
    rows = 0
    with conn.cursor(name="pysync_export") as cursor:
        cursor.execute(query)
        while batch := cursor.fetchmany(1000):
            lite.executemany(insert, batch)
            rows += len(batch)
    return rows
