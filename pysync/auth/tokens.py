"""Tokens signed with the project's JWT secret or a signing key, shaped exactly as Supabase
issues them.

* Access tokens carry GoTrue's claims, in GoTrue's order (``internal/tokens/service.go``,
  ``AccessTokenClaims``): ``iss sub aud exp iat email phone app_metadata user_metadata role
  aal amr session_id is_anonymous``; ``aud`` is a string (GoTrue turns off golang-jwt's
  single-audience array), ``email``/``phone`` are ``""`` when absent.
* API keys are what ``supabase start`` prints: ``{"iss": "supabase-demo", "role": …,
  "exp": 1983812996}``. Signed with the local secret they are byte for byte the well-known
  local anon and service_role keys.
* A project on asymmetric signing keys signs access tokens with its current
  :class:`~pysync.auth.keys.SigningKey` (ES256 or RS256, ``kid`` in the header) instead of
  the shared secret; API keys stay as they are.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jwt

from pysync.auth.keys import SigningKey

__all__ = [
    "DEMO_KEY_EXPIRY",
    "DEMO_KEY_ISSUER",
    "LOCAL_AUTH_ISSUER",
    "Signer",
    "mint_access_token",
    "mint_api_key",
]

#: What signs access tokens: the legacy shared secret (HS256) or an asymmetric signing key.
Signer = str | SigningKey

#: ``iss`` of local access tokens: the local stack's ``API_EXTERNAL_URL`` + ``/auth/v1``.
LOCAL_AUTH_ISSUER = "http://127.0.0.1:54321/auth/v1"
#: ``iss`` and ``exp`` of the local stack's API keys.
DEMO_KEY_ISSUER = "supabase-demo"
DEMO_KEY_EXPIRY = 1983812996


def mint_access_token(
    secret: Signer,
    *,
    user_id: str,
    email: str | None = None,
    phone: str | None = None,
    role: str = "authenticated",
    audience: str = "authenticated",
    app_metadata: Mapping[str, Any] | None = None,
    user_metadata: Mapping[str, Any] | None = None,
    session_id: str | None = None,
    is_anonymous: bool = False,
    aal: str = "aal1",
    amr: Sequence[Mapping[str, Any]] | None = None,
    issuer: str = LOCAL_AUTH_ISSUER,
    expires_in: int = 3600,
    now: int | None = None,
) -> str:
    """An access token for a user, as GoTrue signs one after a password sign-in: HS256 with
    a secret, or the signing key's algorithm with its ``kid``."""
    issued_at = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": user_id,
        "aud": audience,
        "exp": issued_at + expires_in,
        "iat": issued_at,
        "email": email or "",
        "phone": phone or "",
        "app_metadata": dict(app_metadata or {}),
        "user_metadata": dict(user_metadata or {}),
        "role": role,
        "aal": aal,
        "amr": [dict(entry) for entry in amr]
        if amr is not None
        else [{"method": "password", "timestamp": issued_at}],
        "session_id": session_id or str(uuid.uuid4()),
        "is_anonymous": is_anonymous,
    }
    if isinstance(secret, SigningKey):
        return secret.sign(claims)
    return jwt.encode(claims, secret, algorithm="HS256")


def mint_api_key(
    secret: str,
    role: Literal["anon", "service_role"],
    *,
    issuer: str = DEMO_KEY_ISSUER,
    expires_at: int = DEMO_KEY_EXPIRY,
) -> str:
    """A project API key (``apikey`` header and default bearer token) for ``role``."""
    return jwt.encode({"iss": issuer, "role": role, "exp": expires_at}, secret, algorithm="HS256")
