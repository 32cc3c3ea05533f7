"""PostgREST's request context: JWT verification and the transaction-scoped settings.

Everything here is pure (no database), so the exact settings and their order can be tested on
their own. The source of truth is PostgREST v12 itself (``src/PostgREST/Query.hs``,
``setPgLocals``; ``src/PostgREST/Auth.hs``; ``Config/Database.hs``, ``queryRoleSettings``) and
its "Transactions" reference page. In one ``select set_config(…, true), …`` statement, in
this order:

1. ``search_path``: the request's schema, then ``db-extra-search-path``, each quoted;
2. the impersonated role's own settings (``ALTER ROLE … SET``), lower-cased values, *before*
   the role so ``GRANT SET ON PARAMETER … TO authenticator`` suffices;
3. ``role``: the JWT's ``role`` claim, or ``db-anon-role`` without a token;
4. ``request.jwt.claims``: every claim, with ``role`` filled in, as compact JSON;
5. ``request.method`` and ``request.path``;
6. ``request.headers`` (lower-case names, as JSON) and ``request.cookies`` (JSON);
7. for an rpc, the function's hoisted settings (``statement_timeout``, …).

(PostgREST would also set ``timezone`` for a ``Prefer: timezone=`` header and its configured
``app.settings.*``; the gateway sends neither.) The transaction itself is ``READ ONLY`` for
``GET`` and for calls to stable or immutable functions. Then ``select <db-pre-request>()``
when configured, then the main query. PostgREST v12 sets
*no* legacy per-claim settings (``request.jwt.claim.sub`` …): those existed only up to v11 and
only on PostgreSQL < 14, and then instead of ``request.jwt.claims``, never beside it. Supabase
runs PostgreSQL 15, so code that reads them works locally only; ``auth.uid()`` reads the JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property, lru_cache
from typing import Any

import jwt

from pysync.gateway.errors import Unauthorized
from pysync.gateway.identity import Identity, IdentityKind
from pysync.gateway.jwks import JwksKeys

__all__ = [
    "HOISTED_FUNCTION_SETTINGS",
    "JWT_LEEWAY_SECONDS",
    "Method",
    "RequestClaims",
    "quote_ident",
    "resolve_claims",
    "search_path",
    "transaction_settings",
]

#: PostgREST accepts tokens up to 30 seconds past ``exp`` (``JWT.allowedSkew 30``).
JWT_LEEWAY_SECONDS = 30
#: ``db-hoisted-tx-settings``' default: function settings PostgREST applies to the transaction.
HOISTED_FUNCTION_SETTINGS = (
    "statement_timeout",
    "plan_filter.statement_cost_limit",
    "default_transaction_isolation",
)
#: The algorithms a shared secret can sign; PostgREST turns ``jwt-secret`` into an HMAC key.
_HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"]


class Method(StrEnum):
    """The HTTP method PostgREST would see, which is also ``request.method``."""

    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    OPTIONS = "OPTIONS"


@dataclass(frozen=True)
class RequestClaims:
    """The role a request runs as and the claims it exposes as ``request.jwt.claims``.

    Held as the exact JSON text PostgREST writes (Aeson's encoding: keys sorted, no spaces,
    UTF-8 as is), so a value is hashable and the text is computed once per token.
    """

    role: str
    claims_json: str

    @classmethod
    def of(cls, role: str, claims: Mapping[str, Any]) -> RequestClaims:
        text = json.dumps(dict(claims), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return cls(role, text)

    @cached_property
    def claims(self) -> Mapping[str, Any]:
        parsed: dict[str, Any] = json.loads(self.claims_json)
        return parsed


def _invalid(message: str) -> Unauthorized:
    return Unauthorized(message, code="PGRST301", status=401)


def _time_claim(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"JWT invalid: the {name} claim must be a number")
    return float(value)


def _request_claims(claims: Mapping[str, Any], anon_role: str) -> RequestClaims:
    raw = claims.get("role")
    if raw is None:
        role = anon_role
    elif isinstance(raw, str):
        role = raw
    else:
        role = json.dumps(raw, separators=(",", ":"))
    return RequestClaims.of(role, {**claims, "role": role})


def _verifying_key(token: str, secret: str, jwks: JwksKeys | None) -> tuple[Any, list[str]]:
    """The key that must have signed ``token`` and the one algorithm it may use: the shared
    secret for HS256 (legacy), else the published key the header's ``kid`` names, with that
    key's own algorithm, so no token can pick how it is checked (no HS256 signed with a
    public key, no ``none``)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise _invalid(f"JWT invalid: {exc}") from exc
    algorithm = header.get("alg")
    if algorithm in _HMAC_ALGORITHMS:
        return secret, _HMAC_ALGORITHMS
    if jwks is None:
        raise _invalid(
            f"JWT invalid: a {algorithm} token needs the project's JWKS, and this gateway "
            "has only the JWT secret"
        )
    key = jwks.key_for(header.get("kid"))
    if key.algorithm_name != algorithm:
        raise _invalid(f"JWT invalid: the key {key.key_id!r} signs {key.algorithm_name}")
    return key.key, [key.algorithm_name]


@lru_cache(maxsize=1024)
def _verified(
    token: str, secret: str, jwks: JwksKeys | None, audience: str | None, anon_role: str
) -> tuple[RequestClaims, float | None, float | None]:
    """Signature, audience and claims of a token: the same answer every time, so cached.

    Only ``exp`` and ``nbf`` depend on the clock; they are returned to be checked on every
    call. (PostgREST offers the same cache as ``jwt-cache-max-lifetime``.) Failures raise,
    so they are never cached.
    """
    key, algorithms = _verifying_key(token, secret, jwks)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=audience,
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": audience is not None,
                "require": [],
            },
        )
    except jwt.InvalidTokenError as exc:
        raise _invalid(f"JWT invalid: {exc}") from exc
    if not isinstance(claims, dict):
        raise _invalid("JWT invalid: the claims must be a JSON object")
    return (
        _request_claims(claims, anon_role),
        _time_claim(claims, "exp"),
        _time_claim(claims, "nbf"),
    )


def resolve_claims(
    identity: Identity,
    secret: str,
    *,
    anon_role: str = "anon",
    audience: str | None = None,
    now: float | None = None,
    jwks: JwksKeys | None = None,
) -> RequestClaims:
    """Verify the identity's token as PostgREST does and decide the role.

    Without a token the claims are ``{"role": <anon role>}``; a token without a ``role`` claim
    also runs as the anon role. A non-string role claim is used as its JSON text, as PostgREST
    does. Raises :class:`Unauthorized` for a bad signature, an expired or not yet valid token
    (with PostgREST's 30 seconds of skew) or a wrong audience (when ``audience`` is set:
    PostgREST's ``jwt-aud``). HS256 tokens are checked with ``secret``; ES256/RS256 tokens
    with the key of ``jwks`` their ``kid`` names (PostgREST's ``jwt-secret`` as a JWKS).
    """
    if identity.kind is IdentityKind.ANON:
        return _request_claims({}, anon_role)
    if identity.kind is IdentityKind.SERVICE_ROLE:
        return _request_claims({"role": "service_role"}, anon_role)
    token = identity.token or ""
    request, expires, not_before = _verified(token, secret, jwks, audience, anon_role)
    current = time.time() if now is None else now
    if expires is not None and expires <= current - JWT_LEEWAY_SECONDS:
        raise _invalid("JWT expired")
    if not_before is not None and not_before > current + JWT_LEEWAY_SECONDS:
        raise _invalid("JWT invalid: the token is not yet valid (nbf)")
    return request


def quote_ident(name: str) -> str:
    """PostgREST's ``escapeIdent``: double-quoted, inner quotes doubled, NULs dropped."""
    return '"' + name.replace("\x00", "").replace('"', '""') + '"'


def search_path(schema: str, extra: Sequence[str]) -> str:
    """The ``search_path`` value: the request's schema, then the extra search path."""
    return ", ".join(quote_ident(name) for name in (schema, *extra))


def transaction_settings(
    *,
    search_path: str,
    role_settings: Sequence[tuple[str, str]],
    request: RequestClaims,
    method: Method,
    path: str,
    headers: Mapping[str, str],
    function_settings: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs to ``set_config(name, value, true)``, in PostgREST's order."""
    lowered = {name.lower(): value for name, value in headers.items()}
    return [
        ("search_path", search_path),
        *role_settings,
        ("role", request.role),
        ("request.jwt.claims", request.claims_json),
        ("request.method", method.value),
        ("request.path", path),
        ("request.headers", json.dumps(lowered, sort_keys=True, separators=(",", ":"))),
        ("request.cookies", "{}"),
        *function_settings,
    ]
