"""``EXPLAIN (ANALYZE, BUFFERS)`` a query as an API caller sees it: with their role, their JWT
claims, and so their policies, inside a transaction that is rolled back.

A plan read as ``postgres`` hides what RLS costs (the owner bypasses it); read as the user it
shows each policy's filter, sub-plan and init plan with real row counts.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pysync.auth.users import lookup_user, parse_user_id
from pysync.errors import PysyncError
from pysync.rls.request import impersonate

__all__ = ["Actor", "UnknownUserError", "explain_as", "resolve_actor"]

_METHODS = {"insert": "POST", "update": "PATCH", "delete": "DELETE"}


class UnknownUserError(PysyncError):
    """``--as`` names no user of ``auth.users`` (nor ``anon`` / ``service_role``)."""


@dataclass(frozen=True)
class Actor:
    """Who a request runs as: a database role and, for a signed-in user, their id."""

    role: str
    user_id: uuid.UUID | None = None
    email: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "user_id": str(self.user_id) if self.user_id else None,
            "email": self.email,
        }


def resolve_actor(conn: psycopg.Connection[Any], who: str) -> Actor:
    """``anon``, ``service_role``, a user's e-mail or a user's id, as an :class:`Actor`."""
    if who in ("anon", "service_role"):
        return Actor(role=who)
    user_id = parse_user_id(who)
    if user_id is None and "@" not in who:
        raise UnknownUserError(
            f"--as takes a user's e-mail or id, anon or service_role (got {who!r})"
        )
    found = lookup_user(conn, who)
    if found is None:
        kind = "id" if user_id is not None else "e-mail"
        raise UnknownUserError(f"no user with {kind} {who} in auth.users")
    return Actor(role="authenticated", user_id=found[0], email=found[1])


def explain_as(
    conn: psycopg.Connection[Any], actor: Actor, query: str, *, as_json: bool = False
) -> Any:
    """The plan of ``query`` run as ``actor``: text lines, or the JSON plan.

    ``ANALYZE`` really runs the query, so it runs inside a transaction that is always rolled
    back: an ``update`` or ``delete`` changes nothing. One statement only (psycopg sends it
    as a single extended-protocol query, which refuses a second one).
    """
    verb = re.match(r"\s*(\w+)", query)
    method = _METHODS.get(verb.group(1).lower(), "GET") if verb else "GET"
    options = "analyze, buffers, format json" if as_json else "analyze, buffers"
    statement = sql.SQL("explain ({}) {}").format(sql.SQL(options), sql.SQL(query))
    with conn.transaction(force_rollback=True):
        impersonate(conn, actor.role, actor.user_id, method=method, path="/explain")
        rows = conn.execute(statement).fetchall()
    if as_json:
        return rows[0][0]
    return [row[0] for row in rows]
