"""A project's published verification keys (JWKS), for tokens signed with asymmetric keys.

Supabase projects on signing keys sign user tokens with ES256 or RS256 and publish the
public keys at ``/auth/v1/.well-known/jwks.json``; the legacy shared secret (HS256) stays
valid for the legacy API keys and older tokens. :class:`JwksKeys` holds that document: fetched
once and kept for ``max_age`` seconds (Supabase's edge caches it for ten minutes), and
fetched again at once when a token names a ``kid`` it does not hold, which is how a rotated-in
key becomes known without a restart. A flood of tokens with made-up ``kid`` values costs at
most one fetch per ``min_refetch_interval``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt

from pysync.gateway.errors import Unauthorized, Unavailable

__all__ = ["JWKS_PATH", "JwksKeys"]

JWKS_PATH = "/auth/v1/.well-known/jwks.json"


def _parse(document: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    """The usable keys of a JWKS document by ``kid`` (keys of unknown types are skipped)."""
    if not document.get("keys"):
        return {}
    try:
        found = jwt.PyJWKSet.from_dict(dict(document)).keys
    except jwt.PyJWKSetError as exc:
        raise Unavailable(f"the JWKS holds no usable key: {exc}") from exc
    return {key.key_id: key for key in found if key.key_id}


class JwksKeys:
    """The verification keys of one project, from ``url`` or a fixed ``document``."""

    def __init__(
        self,
        url: str | None = None,
        *,
        document: Mapping[str, Any] | None = None,
        http_client: httpx.Client | None = None,
        max_age: float = 600.0,
        min_refetch_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (url is None) == (document is None):
            raise ValueError("give either the JWKS url or a JWKS document")
        self.url = url
        self._http = http_client
        self._max_age = max_age
        self._min_interval = min_refetch_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = _parse(document) if document is not None else {}
        self._fetched_at: float | None = None
        #: How many times the document was fetched (observable for operators and tests).
        self.fetches = 0

    @classmethod
    def for_project(cls, supabase_url: str, **options: Any) -> JwksKeys:
        """The keys a project at ``supabase_url`` publishes at :data:`JWKS_PATH`."""
        return cls(supabase_url.rstrip("/") + JWKS_PATH, **options)

    def _fetch(self) -> None:
        assert self.url is not None
        self._fetched_at = self._clock()
        self.fetches += 1
        try:
            if self._http is not None:
                response = self._http.get(self.url)
            else:
                response = httpx.get(self.url, timeout=10.0)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable(f"cannot fetch the JWKS at {self.url}: {exc}") from exc
        if not isinstance(document, dict):
            raise Unavailable(f"the JWKS at {self.url} is not a JSON object")
        self._keys = _parse(document)

    def key_for(self, kid: str | None) -> jwt.PyJWK:
        """The key named ``kid``; fetches the document when it is stale or lacks the key.

        Raises :class:`Unauthorized` for a token without ``kid`` or naming no published key,
        :class:`Unavailable` when the document cannot be fetched.
        """
        if not kid:
            raise Unauthorized(
                "JWT invalid: an asymmetric token needs a kid", code="PGRST301", status=401
            )
        with self._lock:
            if self.url is not None:
                now = self._clock()
                stale = self._fetched_at is None or now - self._fetched_at >= self._max_age
                may_refetch = (
                    self._fetched_at is None or now - self._fetched_at >= self._min_interval
                )
                if stale or (kid not in self._keys and may_refetch):
                    try:
                        self._fetch()
                    except Unavailable:
                        # An unreachable endpoint must not reject tokens of a key still held.
                        if kid not in self._keys:
                            raise
            key = self._keys.get(kid)
        if key is None:
            raise Unauthorized(
                f"JWT invalid: no published signing key has kid {kid!r}",
                code="PGRST301",
                status=401,
            )
        return key

    def verify(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """The claims of an asymmetric ``token`` whose signature and ``exp`` hold (what
        supabase-js's ``getClaims()`` checks); :class:`Unauthorized` otherwise."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.key_for(kid)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=audience,
                options={"verify_aud": audience is not None},
            )
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"JWT invalid: {exc}", code="PGRST301", status=401) from exc
        return claims
