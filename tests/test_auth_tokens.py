"""Tokens shaped exactly as Supabase issues them."""

from __future__ import annotations

import base64
import json
import uuid

import jwt

from pysync.auth import LOCAL_AUTH_ISSUER, mint_access_token, mint_api_key
from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway import Identity
from pysync.gateway.context import resolve_claims

#: The keys every local Supabase stack prints (`supabase start`), signed with the local secret.
LOCAL_ANON_KEY = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleH"
    "AiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0"
)
LOCAL_SERVICE_ROLE_KEY = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6InNlcnZpY2Vfcm"
    "9sZSIsImV4cCI6MTk4MzgxMjk5Nn0.EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU"
)


def payload_json(token: str) -> str:
    """The raw JSON of a token's payload, key order included."""
    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def test_api_keys_are_the_local_stacks_keys() -> None:
    assert mint_api_key(LOCAL_JWT_SECRET, "anon") == LOCAL_ANON_KEY
    assert mint_api_key(LOCAL_JWT_SECRET, "service_role") == LOCAL_SERVICE_ROLE_KEY


def test_access_token_has_gotrues_claims_in_gotrues_order() -> None:
    user_id, session_id = str(uuid.uuid4()), str(uuid.uuid4())
    token = mint_access_token(
        LOCAL_JWT_SECRET,
        user_id=user_id,
        email="ada@example.com",
        app_metadata={"provider": "email", "providers": ["email"]},
        user_metadata={"email_verified": True},
        session_id=session_id,
        now=1_700_000_000,
    )
    claims = json.loads(payload_json(token))
    assert list(claims) == [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "email",
        "phone",
        "app_metadata",
        "user_metadata",
        "role",
        "aal",
        "amr",
        "session_id",
        "is_anonymous",
    ]
    assert claims == {
        "iss": LOCAL_AUTH_ISSUER,
        "sub": user_id,
        "aud": "authenticated",
        "exp": 1_700_003_600,
        "iat": 1_700_000_000,
        "email": "ada@example.com",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {"email_verified": True},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": 1_700_000_000}],
        "session_id": session_id,
        "is_anonymous": False,
    }
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT"}


def test_a_minted_token_is_accepted_as_postgrest_would() -> None:
    user_id = str(uuid.uuid4())
    token = mint_access_token(LOCAL_JWT_SECRET, user_id=user_id)
    request = resolve_claims(Identity.from_jwt(token), LOCAL_JWT_SECRET)
    assert (request.role, request.claims["sub"]) == ("authenticated", user_id)
    assert uuid.UUID(request.claims["session_id"])
