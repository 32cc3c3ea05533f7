"""Act as an API caller exactly as PostgREST sets up a request, inside a transaction.

The settings, and their order, come from the gateway's replay of PostgREST
(:func:`pysync.gateway.context.transaction_settings`), so the matrix runner, ``rls explain``
and the tests impersonate users exactly as :class:`~pysync.gateway.PostgresGateway` does.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from pysync.gateway.context import Method, RequestClaims, search_path, transaction_settings

__all__ = ["claims_for", "impersonate"]

#: The gateway's default: the ``public`` schema, then ``db-extra-search-path``.
_SEARCH_PATH = search_path("public", ("public", "extensions"))


def claims_for(role: str, user_id: uuid.UUID | str | None) -> dict[str, Any]:
    """JWT claims GoTrue would issue: ``role`` always, a user's ``sub`` and ``aud`` too."""
    claims: dict[str, Any] = {"role": role}
    if user_id is not None:
        claims.update(sub=str(user_id), aud="authenticated", is_anonymous=False)
    return claims


def impersonate(
    conn: psycopg.Connection[Any],
    role: str,
    user_id: uuid.UUID | str | None,
    *,
    method: str = "GET",
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    claims: Mapping[str, Any] | None = None,
) -> None:
    """Set the transaction-local settings PostgREST sets before running a request's SQL.

    ``claims`` adds to (or overrides) the GoTrue-style claims, e.g. ``email`` or
    ``app_metadata``. Must run inside a transaction: every setting is ``is_local``.
    """
    request = RequestClaims.of(role, {**claims_for(role, user_id), **(claims or {})})
    settings = transaction_settings(
        search_path=_SEARCH_PATH,
        role_settings=(),
        request=request,
        method=Method(method),
        path=path,
        headers=headers or {},
    )
    calls = sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(name), sql.Literal(value))
        for name, value in settings
    )
    conn.execute(sql.SQL("select {}").format(calls))
