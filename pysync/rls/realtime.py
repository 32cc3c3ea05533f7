"""Probe a private Realtime topic exactly as the Realtime server authorizes a channel join.

Private channels are authorized by RLS on ``realtime.messages`` (see ``policies/realtime.sql``).
When a client joins, the Realtime server, in a transaction it rolls back:

1. inserts a message for the topic (as its own, RLS-exempt role),
2. sets ``role``, ``request.jwt.claims`` and ``realtime.topic`` for the transaction,
3. selects that message back: if the user sees it, the user may *receive* on the topic,
4. inserts a message as the user under a savepoint: if RLS refuses (42501), the user may
   not *send*.

Doing the same here lets tests and operators check topic access without a Realtime server,
against the very policies the server would use.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors

from pysync.rls.request import impersonate

__all__ = ["TopicAccess", "probe_topic"]


@dataclass(frozen=True)
class TopicAccess:
    """What a user may do on a topic: receive messages (``can_read``), send (``can_write``)."""

    can_read: bool
    can_write: bool


def probe_topic(
    conn: psycopg.Connection[Any],
    user_id: uuid.UUID | str | None,
    topic: str,
    *,
    extension: str = "broadcast",
) -> TopicAccess:
    """Whether ``user_id`` (``None``: anon) may receive and send ``extension`` messages on
    ``topic``. ``conn`` must connect as a role that bypasses RLS (postgres), as the Realtime
    server does; nothing the probe writes survives it."""
    user = uuid.UUID(str(user_id)) if user_id is not None else None
    role = "authenticated" if user is not None else "anon"
    with conn.transaction(force_rollback=True):
        row = conn.execute(
            "insert into realtime.messages (topic, extension, private)"
            " values (%s, %s, true) returning id",
            (topic, extension),
        ).fetchone()
        assert row is not None
        impersonate(conn, role, user, method="GET", path="/realtime/v1/websocket")
        conn.execute("select set_config('realtime.topic', %s, true)", (topic,))
        seen = conn.execute(
            "select exists (select 1 from realtime.messages"
            " where id = %s and topic = realtime.topic() and extension = %s)",
            (row[0], extension),
        ).fetchone()
        can_read = bool(seen and seen[0])
        try:
            with conn.transaction():
                conn.execute(
                    "insert into realtime.messages (topic, extension, private)"
                    " values (realtime.topic(), %s, true)",
                    (extension,),
                )
            can_write = True
        except errors.InsufficientPrivilege:
            can_write = False
    return TopicAccess(can_read=can_read, can_write=can_write)
