"""Act as an API caller exactly as PostgREST sets up a request, inside a transaction."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg

__all__ = ["claims_for", "impersonate"]


def claims_for(role: str, user_id: uuid.UUID | None) -> dict[str, Any]:
    """JWT claims GoTrue would issue: ``role`` always, a user's ``sub`` and ``aud`` too."""
    claims: dict[str, Any] = {"role": role}
    if user_id is not None:
        claims.update(sub=str(user_id), aud="authenticated", is_anonymous=False)
    return claims


def impersonate(
    conn: psycopg.Connection[Any],
    role: str,
    user_id: uuid.UUID | None,
    *,
    method: str = "GET",
    path: str = "/",
    headers: dict[str, str] | None = None,
) -> None:
    """Set the transaction-local settings PostgREST sets before running a request's SQL.

    ``headers`` become ``request.headers`` as PostgREST passes them: a JSON object with
    lower-case names (the rate limiter reads the client platform and address from them).
    """
    claims = claims_for(role, user_id)
    settings = {
        "request.jwt.claims": json.dumps(claims),
        "request.jwt.claim.role": role,
        "request.jwt.claim.sub": str(user_id) if user_id else "",
        "request.method": method,
        "request.path": path,
        "request.headers": json.dumps({k.lower(): v for k, v in (headers or {}).items()}),
        "role": role,
    }
    for name, value in settings.items():
        conn.execute("select set_config(%s, %s, true)", (name, value))
