"""Hand-written server answers shaped exactly like docs/sync-protocol.md, for unit tests of
the sync client that need no server."""

from __future__ import annotations

from typing import Any

from pysync.sync.storage import Storage
from pysync.sync.wire import parse_schema

CONV = "3f0c0000-0000-4000-8000-000000000001"
CONV2 = "3f0c0000-0000-4000-8000-000000000002"
COURSE = "9a1b0000-0000-4000-8000-000000000001"

SCHEMA: dict[str, Any] = {
    "hash": "h1",
    "tables": [
        {
            "name": "messages",
            "bucket_column": "conversation_id",
            "columns": [
                {"name": "id", "type": "uuid", "nullable": False},
                {"name": "conversation_id", "type": "uuid", "nullable": False},
                {"name": "sender_id", "type": "uuid", "nullable": False},
                {"name": "body", "type": "text", "nullable": False},
                {"name": "tags", "type": "text[]", "nullable": True},
                {"name": "likes", "type": "integer", "nullable": False},
                {"name": "pinned", "type": "boolean", "nullable": False},
                {"name": "version", "type": "bigint", "nullable": False},
                {"name": "created_at", "type": "timestamp with time zone", "nullable": False},
                {"name": "updated_at", "type": "timestamp with time zone", "nullable": False},
            ],
            "writable": ["body", "conversation_id", "sender_id", "tags", "likes", "pinned"],
            "operations": ["insert", "update", "delete"],
            "conflict": "last_write_wins",
            "counters": ["likes"],
        },
        {
            "name": "course_content",
            "bucket_column": "course_id",
            "columns": [
                {"name": "id", "type": "uuid", "nullable": False},
                {"name": "course_id", "type": "uuid", "nullable": False},
                {"name": "title", "type": "text", "nullable": False},
                {"name": "version", "type": "bigint", "nullable": False},
                {"name": "updated_at", "type": "timestamp with time zone", "nullable": False},
            ],
            "writable": [],
            "operations": [],
            "conflict": "server_wins",
            "counters": [],
        },
    ],
    "streams": [
        {"name": "my_messages", "table": "messages", "mode": "auto", "ttl_seconds": None},
        {
            "name": "course_preview",
            "table": "course_content",
            "mode": "on_demand",
            "ttl_seconds": 86400,
        },
    ],
}


def msg(row_id: str, body: str, version: int = 1, conv: str = CONV, **extra: Any) -> dict[str, Any]:
    row = {
        "id": row_id,
        "conversation_id": conv,
        "sender_id": "c0000000-0000-4000-8000-000000000001",
        "body": body,
        "tags": [],
        "likes": 0,
        "pinned": False,
        "version": version,
        "created_at": "2026-12-01T09:00:00+00:00",
        "updated_at": "2026-12-01T09:00:00+00:00",
    }
    row.update(extra)
    return row


def page(*buckets: dict[str, Any], has_more: bool = False, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "snapshot": "1240:1244:1241",
        "server_time": "2026-12-01T10:00:00.123456+00:00",
        "schema_hash": "h1",
        "buckets": list(buckets),
        "unchanged": [],
        "removed_buckets": [],
        "denied": [],
        "has_more": has_more,
    }
    out.update(extra)
    return out


def bucket(
    table: str,
    key: str,
    rows: list[dict[str, Any]] = (),  # type: ignore[assignment]
    *,
    state: str = "changed",
    removed: list[str] = (),  # type: ignore[assignment]
    complete: bool = True,
    cursor: str | None = "1240:1244:1241",
    round: str | None = None,
    after: str | None = None,
    streams: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "bucket": f"{table}:{key}",
        "table": table,
        "key": key,
        "streams": streams or (["my_messages"] if table == "messages" else ["course_preview"]),
        "state": state,
        "rows": list(rows),
        "removed": list(removed),
        "complete": complete,
        "cursor": cursor if complete else None,
        "round": round,
        "after": after,
    }


def columnar(response: dict[str, Any], order: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """``response`` (a version 1 page) as wire version 2: each bucket's rows as arrays of
    values under its table's column list (``order``, or the columns of :data:`SCHEMA`)."""
    names = order or {t["name"]: [c["name"] for c in t["columns"]] for t in SCHEMA["tables"]}
    served = {b["table"] for b in response["buckets"] if b["rows"]}
    return {
        **response,
        "version": 2,
        "columns": {t: names[t] for t in served},
        "buckets": [
            {**b, "rows": [[row.get(n) for n in names[b["table"]]] for row in b["rows"]]}
            for b in response["buckets"]
        ],
    }


def by_column(
    response: dict[str, Any], order: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """``response`` (a version 1 page) as wire version 3 sends a bucket served whole: each
    bucket's rows column by column (``by_column``: one array per name of its table's column
    list), ``rows`` empty."""
    arrays = columnar(response, order)
    return {
        **arrays,
        "version": 3,
        "buckets": [
            {**b, "rows": [], "by_column": [list(c) for c in zip(*b["rows"], strict=True)]}
            if b["rows"]
            else b
            for b in arrays["buckets"]
        ],
    }


def new_storage(path: str = ":memory:") -> Storage:
    storage = Storage.open(path)
    storage.migrate(parse_schema(SCHEMA), SCHEMA)
    return storage
