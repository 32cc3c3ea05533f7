"""Production sessions through supabase-auth, at the HTTP level with a fake clock: no network,
no waiting."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from pysync.auth import AuthError, SupabaseSession
from pysync.gateway import IdentityKind

URL = "https://abc.supabase.co"
ANON_KEY = "anon-key"
USER_ID = "8d0fd2b3-9ca5-4d6c-8a5e-2c7a7a1f0c11"


@dataclass
class Clock:
    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class GoTrue:
    """Answers /token like GoTrue: each grant returns the next numbered token pair."""

    clock: Clock
    requests: list[httpx.Request] = field(default_factory=list)
    failures: list[httpx.Response] = field(default_factory=list)
    issued: int = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures:
            return self.failures.pop(0)
        self.issued += 1
        return httpx.Response(200, json=self.session(self.issued))

    def session(self, n: int) -> dict[str, Any]:
        return {
            "access_token": f"access-{n}",
            "token_type": "bearer",
            "expires_in": 3600,
            "expires_at": int(self.clock.now) + 3600,
            "refresh_token": f"refresh-{n}",
            "user": {
                "id": USER_ID,
                "aud": "authenticated",
                "role": "authenticated",
                "email": "ada@example.com",
                "app_metadata": {"provider": "email", "providers": ["email"]},
                "user_metadata": {},
                "created_at": "2026-01-01T00:00:00Z",
            },
        }


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gotrue(clock: Clock) -> GoTrue:
    return GoTrue(clock)


@pytest.fixture
def auth(gotrue: GoTrue, clock: Clock) -> SupabaseSession:
    client = httpx.Client(transport=httpx.MockTransport(gotrue))
    return SupabaseSession.for_project(
        URL, ANON_KEY, http_client=client, clock=clock, refresh_margin=60
    )


def grant(request: httpx.Request) -> str:
    return request.url.params["grant_type"]


def test_password_sign_in_request_and_session(auth: SupabaseSession, gotrue: GoTrue) -> None:
    session = auth.sign_in_with_password("ada@example.com", "s3cret")
    request = gotrue.requests[-1]
    assert (request.method, request.url.path, grant(request)) == (
        "POST",
        "/auth/v1/token",
        "password",
    )
    assert request.headers["apikey"] == ANON_KEY
    sent = json.loads(request.content)
    assert (sent["email"], sent["password"]) == ("ada@example.com", "s3cret")
    assert (session.access_token, session.refresh_token, session.user_id) == (
        "access-1",
        "refresh-1",
        USER_ID,
    )
    assert session.expires_at == 1_700_003_600
    identity = auth.identity()
    assert (identity.kind, identity.token) == (IdentityKind.TOKEN, "access-1")


def test_a_fresh_token_is_not_refreshed(
    auth: SupabaseSession, gotrue: GoTrue, clock: Clock
) -> None:
    auth.sign_in_with_password("ada@example.com", "s3cret")
    clock.now += 3600 - 61
    assert auth.current().access_token == "access-1"
    assert len(gotrue.requests) == 1


def test_a_token_about_to_expire_is_refreshed_first(
    auth: SupabaseSession, gotrue: GoTrue, clock: Clock
) -> None:
    auth.sign_in_with_password("ada@example.com", "s3cret")
    clock.now += 3600 - 60
    assert auth.identity().token == "access-2"
    request = gotrue.requests[-1]
    assert (request.url.path, grant(request)) == ("/auth/v1/token", "refresh_token")
    assert json.loads(request.content) == {"refresh_token": "refresh-1"}
    assert auth.session is not None and auth.session.refresh_token == "refresh-2"
    assert auth.current().access_token == "access-2"
    assert len(gotrue.requests) == 2


def test_resuming_from_a_stored_refresh_token(auth: SupabaseSession, gotrue: GoTrue) -> None:
    session = auth.sign_in_with_refresh_token("stored-refresh")
    assert json.loads(gotrue.requests[-1].content) == {"refresh_token": "stored-refresh"}
    assert session.access_token == "access-1"


def test_auth_errors_carry_gotrues_code(auth: SupabaseSession, gotrue: GoTrue) -> None:
    gotrue.failures.append(
        httpx.Response(
            400,
            json={"code": "invalid_credentials", "msg": "Invalid login credentials"},
            headers={"x-supabase-api-version": "2024-01-01"},
        )
    )
    with pytest.raises(AuthError) as refused:
        auth.sign_in_with_password("ada@example.com", "guess")
    assert (refused.value.code, refused.value.status, refused.value.retryable) == (
        "invalid_credentials",
        400,
        False,
    )
    gotrue.failures.append(httpx.Response(503, text="upstream down"))
    with pytest.raises(AuthError) as down:
        auth.sign_in_with_password("ada@example.com", "s3cret")
    assert (down.value.status, down.value.retryable) == (503, True)


def test_no_session_before_signing_in(auth: SupabaseSession) -> None:
    assert auth.session is None
    with pytest.raises(AuthError) as missing:
        auth.identity()
    assert missing.value.code == "session_not_found"
