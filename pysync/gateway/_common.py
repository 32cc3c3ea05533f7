"""Checks and encodings both gateways share, so they accept and send exactly the same things."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from pysync.gateway.errors import InvalidInput
from pysync.gateway.filters import Filter
from pysync.gateway.protocol import Columns, Row

__all__ = [
    "check_name",
    "check_range",
    "column_names",
    "encode_json",
    "require_filters",
    "row_list",
]

#: PostgreSQL truncates identifiers longer than NAMEDATALEN - 1 bytes.
_MAX_NAME_BYTES = 63


def check_name(kind: str, name: object) -> str:
    """``name`` when it could name a table, column or function of the API.

    Refuses what no exposed object can be called and what would change the meaning of a
    PostgREST URL: empty names, path separators, control characters, over-long names. Whether
    the object exists is the gateway's question (``NotFound`` / ``InvalidInput``).
    """
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{kind} name must be a non-empty string, not {name!r}")
    if "/" in name or name in (".", "..") or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidInput(f"invalid {kind} name {name!r}")
    if len(name.encode()) > _MAX_NAME_BYTES:
        raise InvalidInput(f"{kind} name {name[:20]!r}… is longer than {_MAX_NAME_BYTES} bytes")
    return name


def check_range(limit: object, offset: object) -> None:
    """``limit`` and ``offset`` must be absent or non-negative integers."""
    for bound, label in ((limit, "limit"), (offset, "offset")):
        if bound is not None and (
            not isinstance(bound, int) or isinstance(bound, bool) or bound < 0
        ):
            raise InvalidInput(f"{label} must be a non-negative integer, not {bound!r}")


def column_names(columns: Columns) -> tuple[str, ...] | None:
    """The selected column names, or ``None`` for ``"*"``."""
    if isinstance(columns, str):
        if columns.strip() == "*":
            return None
        names: Sequence[str] = [part.strip() for part in columns.split(",")]
    else:
        names = list(columns)
    if not names:
        raise InvalidInput("select at least one column, or '*'")
    return tuple(check_name("column", name) for name in names)


def require_filters(action: str, filters: Sequence[Filter]) -> None:
    """Refuse unfiltered ``update``/``delete`` (Supabase's pg-safeupdate would, too)."""
    if not filters:
        raise InvalidInput(
            f"refusing to {action} every row: pass at least one filter "
            "(the API rejects unfiltered UPDATE/DELETE)",
            code="21000",
        )


def row_list(rows: Row | Sequence[Row]) -> list[Row]:
    """One row or many, as a non-empty list of mappings with valid column names."""
    listed = [rows] if isinstance(rows, Mapping) else list(rows)
    if not listed:
        raise InvalidInput("nothing to write: pass at least one row")
    for row in listed:
        if not isinstance(row, Mapping):
            raise InvalidInput(f"a row must be a mapping of column to value, not {row!r}")
        for key in row:
            check_name("column", key)
    return [dict(row) for row in listed]


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")


def encode_json(value: Any) -> str:
    """``value`` as the JSON body PostgREST would receive (uuid, dates, decimals as strings)."""
    try:
        return json.dumps(value, default=_default, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(str(exc)) from exc
