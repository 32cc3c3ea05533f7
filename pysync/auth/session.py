"""Signed-in sessions: tokens that know when they expire, refreshed before they do.

:class:`AuthSession` is a value (what GoTrue returns from ``/token``). :class:`SupabaseSession`
signs in through supabase-auth (supabase-py's auth client) and hands out a fresh
:class:`~pysync.gateway.Identity` on demand, refreshing with the refresh token when the access
token is within ``refresh_margin`` seconds of expiry. The clock is injectable, so expiry and
refresh are tested without waiting; supabase-auth's own background refresh timer is off,
because refreshing on use is deterministic and needs no thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from supabase_auth import SyncGoTrueClient
from supabase_auth.errors import AuthApiError, AuthRetryableError
from supabase_auth.errors import AuthError as SupabaseAuthError
from supabase_auth.types import AuthResponse, Session

from pysync.auth.errors import AuthError
from pysync.gateway.apikeys import request_headers
from pysync.gateway.identity import Identity

__all__ = ["AuthSession", "Clock", "SupabaseSession"]

Clock = Callable[[], float]


@dataclass(frozen=True)
class AuthSession:
    """An access token, the refresh token that renews it, and when it expires."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    #: Unix time (seconds) at which the access token expires.
    expires_at: int
    user_id: str
    token_type: str = "bearer"

    def expires_in(self, now: float) -> float:
        return self.expires_at - now

    def needs_refresh(self, now: float, margin: float) -> bool:
        """Whether the token expires within ``margin`` seconds of ``now`` (or already has)."""
        return self.expires_in(now) <= margin

    def identity(self) -> Identity:
        return Identity.from_jwt(self.access_token)


def _session_from(response: AuthResponse | Session, now: float) -> AuthSession:
    session = response if isinstance(response, Session) else response.session
    if session is None:
        raise AuthError("the auth server returned no session", code="session_not_found")
    expires_at = session.expires_at or int(now) + int(session.expires_in)
    return AuthSession(
        access_token=session.access_token,
        refresh_token=session.refresh_token,
        expires_at=int(expires_at),
        user_id=session.user.id,
        token_type=session.token_type,
    )


def _translate(exc: SupabaseAuthError) -> AuthError:
    status = exc.status if isinstance(exc, AuthApiError | AuthRetryableError) else None
    return AuthError(
        exc.message,
        code=exc.code,
        status=status,
        retryable=isinstance(exc, AuthRetryableError),
    )


class SupabaseSession:
    """One user's session with a Supabase project's auth server (GoTrue)."""

    def __init__(
        self,
        client: SyncGoTrueClient,
        *,
        clock: Clock = time.time,
        refresh_margin: float = 60.0,
    ) -> None:
        self._client = client
        self._clock = clock
        self._margin = refresh_margin
        self._session: AuthSession | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_project(
        cls,
        url: str,
        anon_key: str,
        *,
        http_client: httpx.Client | None = None,
        clock: Clock = time.time,
        refresh_margin: float = 60.0,
    ) -> SupabaseSession:
        """A session manager for the project at ``url`` (``https://<ref>.supabase.co``)."""
        client = SyncGoTrueClient(
            url=f"{url.rstrip('/')}/auth/v1",
            headers=request_headers(anon_key, None),
            auto_refresh_token=False,
            persist_session=False,
            http_client=http_client,
        )
        return cls(client, clock=clock, refresh_margin=refresh_margin)

    @property
    def session(self) -> AuthSession | None:
        return self._session

    def sign_in_with_password(self, email: str, password: str) -> AuthSession:
        """``POST /auth/v1/token?grant_type=password``."""
        try:
            response = self._client.sign_in_with_password({"email": email, "password": password})
        except SupabaseAuthError as exc:
            raise _translate(exc) from exc
        self._session = _session_from(response, self._clock())
        return self._session

    def sign_in_with_refresh_token(self, refresh_token: str) -> AuthSession:
        """``POST /auth/v1/token?grant_type=refresh_token``: resume a stored session."""
        try:
            response = self._client.refresh_session(refresh_token)
        except SupabaseAuthError as exc:
            raise _translate(exc) from exc
        self._session = _session_from(response, self._clock())
        return self._session

    def current(self) -> AuthSession:
        """The session, refreshed first when its access token is about to expire."""
        with self._lock:
            session = self._session
            if session is None:
                raise AuthError("not signed in", code="session_not_found")
            if session.needs_refresh(self._clock(), self._margin):
                return self.sign_in_with_refresh_token(session.refresh_token)
            return session

    def identity(self) -> Identity:
        """A gateway identity carrying a token valid for at least ``refresh_margin`` seconds."""
        return self.current().identity()
