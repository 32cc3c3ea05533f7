"""Conflict policies: what the client does when ``sync_push`` answers ``conflict``.

A conflict means the op's ``base_version`` is stale (someone else wrote the row since) or an
insert's id exists. The server wrote nothing and sent its row. A policy looks at the op, the
row it was made on (``base``), and the server's row, and returns the values to push again
(re-queued with ``base_version`` = the server's version) or ``None`` to accept the server's row.

For a delete, any dict (even empty) means "delete it anyway"; ``None`` keeps the server row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pysync.sync.errors import SyncError

__all__ = [
    "POLICIES",
    "ConflictContext",
    "ConflictPolicy",
    "Resolver",
    "client_wins",
    "field_merge",
    "last_write_wins",
    "resolve",
    "server_wins",
]

Row = dict[str, Any]


@dataclass(frozen=True)
class ConflictContext:
    """Everything a policy may look at; none of it is to be mutated."""

    table: str
    kind: str  # the op's kind: insert | update | delete
    row_id: str
    local: Mapping[str, Any]  # the op's data: the values the client wants
    base: Mapping[str, Any] | None  # the row the edit was made on (None for an insert)
    server: Mapping[str, Any] | None  # the server's row now (None: gone or not visible)
    server_version: int | None
    op_time: datetime | None  # when the op was made, in server time (clock offset applied)
    counters: frozenset[str] = frozenset()


Resolver = Callable[[ConflictContext], dict[str, Any] | None]
ConflictPolicy = str | Resolver


def server_wins(ctx: ConflictContext) -> dict[str, Any] | None:
    """The server's row stays; the local edit is dropped."""
    return None


def client_wins(ctx: ConflictContext) -> dict[str, Any] | None:
    """The local edit is pushed again over the server's row (not over a row that is gone:
    an update of a deleted row cannot win)."""
    if ctx.server is None and ctx.kind != "delete":
        return None
    return dict(ctx.local)


def _server_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def last_write_wins(ctx: ConflictContext) -> dict[str, Any] | None:
    """The later write wins: the op's time (in server time) against the server row's
    ``updated_at``. An unknown time on either side keeps the server's row."""
    if ctx.server is None:
        return {} if ctx.kind == "delete" else None
    theirs = _server_time(ctx.server.get("updated_at"))
    if theirs is None or ctx.op_time is None:
        return None
    return dict(ctx.local) if ctx.op_time > theirs else None


def field_merge(ctx: ConflictContext) -> dict[str, Any] | None:
    """Three-way merge per column: a column only the client changed takes the client's
    value; a column both changed takes the union for lists, the server's value for counters
    and other scalars. Deletes are not merged (the server's row stays)."""
    if ctx.server is None or ctx.kind == "delete":
        return None
    merged: dict[str, Any] = {}
    for column, mine in ctx.local.items():
        theirs = ctx.server.get(column)
        if theirs == mine:
            continue
        if ctx.base is not None and column in ctx.base and ctx.base[column] == theirs:
            merged[column] = mine
        elif column in ctx.counters:
            continue
        elif isinstance(mine, list) and isinstance(theirs, list):
            union = list(theirs) + [item for item in mine if item not in theirs]
            if union != theirs:
                merged[column] = union
    return merged or None


POLICIES: Mapping[str, Resolver] = {
    "server_wins": server_wins,
    "client_wins": client_wins,
    "last_write_wins": last_write_wins,
    "field_merge": field_merge,
}


def resolve(policy: ConflictPolicy, ctx: ConflictContext) -> dict[str, Any] | None:
    """Run ``policy`` (a name from :data:`POLICIES` or a callable) on ``ctx``."""
    if isinstance(policy, str):
        try:
            resolver = POLICIES[policy]
        except KeyError:
            raise SyncError(
                f"unknown conflict policy {policy!r}: use one of {', '.join(POLICIES)} "
                "or a callable"
            ) from None
        return resolver(ctx)
    result = policy(ctx)
    if result is not None and not isinstance(result, dict):
        raise SyncError(f"conflict resolver for {ctx.table} returned {type(result).__name__}")
    return result
