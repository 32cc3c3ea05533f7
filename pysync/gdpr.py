"""GDPR requests for one user: a copy of their data, and erasure.

Both are SQL functions (``public.export_my_data()``, ``public.delete_user(uuid)``, see
docs/rls.md, "GDPR") so the app, an edge function and this module share one definition.
This module only finds the user and calls them the way the API would:

- the export runs *as the user*, with the request context PostgREST sets
  (:func:`pysync.rls.request.impersonate`), in a transaction that is rolled back, so the
  document holds exactly what the user could fetch with their own token;
- erasure runs as ``service_role`` in one transaction: it either happens entirely or not at
  all.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import psycopg
from psycopg import errors
from psycopg.pq import TransactionStatus

from pysync.auth.users import lookup_user
from pysync.errors import ErasureRefusedError, UnknownUserError
from pysync.rls.request import impersonate

__all__ = ["delete_user", "export_user", "resolve_user"]


def resolve_user(conn: psycopg.Connection[Any], user: str) -> uuid.UUID:
    """The id of the account named by ``user``: an id, or an e-mail address (any case)."""
    found = lookup_user(conn, user.strip())
    if found is None:
        raise UnknownUserError(f"no user with e-mail or id {user!r}")
    return found[0]


def export_user(conn: psycopg.Connection[Any], user: str) -> dict[str, Any]:
    """``export_my_data()`` as the user would get it from the API (read only, rolled back)."""
    user_id = resolve_user(conn, user)
    with conn.transaction(force_rollback=True):
        impersonate(conn, "authenticated", user_id, method="POST", path="/rpc/export_my_data")
        row = conn.execute("select public.export_my_data()").fetchone()
    assert row is not None
    return cast(dict[str, Any], row[0])


def delete_user(conn: psycopg.Connection[Any], user: str) -> dict[str, Any]:
    """Erase the user as ``service_role``; returns ``delete_user()``'s summary.

    The files whose rows it removed are listed under ``storage_objects``: delete them
    through the Storage API next (the database holds only their metadata).
    """
    user_id = resolve_user(conn, user)
    try:
        with conn.transaction():
            impersonate(conn, "service_role", None, method="POST", path="/rpc/delete_user")
            row = conn.execute("select public.delete_user(%s)", (user_id,)).fetchone()
        if conn.info.transaction_status != TransactionStatus.IDLE:
            # Inside the caller's transaction the released savepoint keeps its settings.
            conn.execute("reset role")
            conn.execute("select set_config('request.jwt.claims', '', true)")
    except errors.ObjectNotInPrerequisiteState as exc:
        diag = exc.diag
        hint = f": {diag.message_hint}" if diag.message_hint else ""
        raise ErasureRefusedError(
            f"not erased, nothing changed: {diag.message_primary}{hint}"
        ) from exc
    assert row is not None
    return cast(dict[str, Any], row[0])
