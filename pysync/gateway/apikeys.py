"""Supabase's API keys: publishable (``sb_publishable_…``) and secret (``sb_secret_…``) keys
beside the legacy anon and service_role JWTs.

The new keys are opaque strings, not JWTs. A client sends one in the ``apikey`` header only;
the ``Authorization`` header carries a signed-in user's token, or nothing, and then the
platform's API gateway runs the request as ``anon`` (publishable key) or ``service_role``
(secret key). A legacy key is a JWT and is sent as the bearer token too, as supabase-js does.
:func:`request_headers` sends either kind that way; :class:`ApiKeys` decides, as the API
gateway does, which :class:`~pysync.gateway.Identity` a request's headers stand for, so a
server job in front of :class:`~pysync.gateway.PostgresGateway` can accept both kinds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pysync.gateway.errors import Unauthorized
from pysync.gateway.identity import Identity

__all__ = [
    "PUBLISHABLE_PREFIX",
    "SECRET_PREFIX",
    "ApiKeys",
    "is_opaque_key",
    "request_headers",
]

PUBLISHABLE_PREFIX = "sb_publishable_"
SECRET_PREFIX = "sb_secret_"


def is_opaque_key(key: str) -> bool:
    """Whether ``key`` is a publishable or secret key (not a legacy JWT key)."""
    return key.startswith((PUBLISHABLE_PREFIX, SECRET_PREFIX))


def request_headers(apikey: str, token: str | None) -> dict[str, str]:
    """The ``apikey`` and ``Authorization`` headers for a request with ``apikey`` as the
    caller identified by ``token`` (``None``: the key's own role)."""
    headers = {"apikey": apikey}
    bearer = token or (None if is_opaque_key(apikey) else apikey)
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    return headers


def _unauthorized(message: str) -> Unauthorized:
    return Unauthorized(message, code="PGRST301", status=401)


@dataclass(frozen=True)
class ApiKeys:
    """A project's current publishable and secret keys (legacy JWT keys need no listing: the
    gateway verifies them as tokens)."""

    publishable: frozenset[str] = frozenset()
    secret: frozenset[str] = frozenset()

    @classmethod
    def of(cls, publishable: Iterable[str] = (), secret: Iterable[str] = ()) -> ApiKeys:
        keys = cls(frozenset(publishable), frozenset(secret))
        wrong = [k for k in keys.publishable if not k.startswith(PUBLISHABLE_PREFIX)]
        wrong += [k for k in keys.secret if not k.startswith(SECRET_PREFIX)]
        if wrong:
            raise ValueError(
                f"publishable keys start with {PUBLISHABLE_PREFIX}, secret keys with "
                f"{SECRET_PREFIX}"
            )
        return keys

    def identity(self, apikey: str | None, authorization: str | None = None) -> Identity:
        """Who a request with these ``apikey`` and ``Authorization`` headers acts as.

        A user's token in ``Authorization`` wins (verified later, as every token is); a
        bearer equal to the key is the key itself. An unknown new-style key, a missing key
        or a new-style key as the bearer of another key is refused.
        """
        if not apikey:
            raise _unauthorized("No API key found in request")
        bearer = None
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise _unauthorized("the Authorization header must be 'Bearer <token>'")
            bearer = value.strip()
        if is_opaque_key(apikey):
            if apikey in self.publishable:
                role = Identity.anon()
            elif apikey in self.secret:
                role = Identity.service_role()
            else:
                raise _unauthorized("Invalid API key")
        else:
            if apikey.count(".") != 2:
                raise _unauthorized("Invalid API key")
            role = Identity.from_jwt(apikey)
        if bearer is None or bearer == apikey:
            return role
        if is_opaque_key(bearer):
            raise _unauthorized("an API key cannot be the bearer token of another API key")
        return Identity.from_jwt(bearer)
