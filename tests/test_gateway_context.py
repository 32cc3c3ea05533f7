"""PostgREST's request context, without a database: JWT verification as PostgREST does it and
the transaction-scoped settings in PostgREST's order."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway import Identity, Unauthorized
from pysync.gateway.context import (
    Method,
    RequestClaims,
    resolve_claims,
    search_path,
    transaction_settings,
)


def token(secret: str = LOCAL_JWT_SECRET, algorithm: str = "HS256", **claims: object) -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def test_no_token_runs_as_the_anon_role() -> None:
    request = resolve_claims(Identity.anon(), LOCAL_JWT_SECRET)
    assert (request.role, dict(request.claims)) == ("anon", {"role": "anon"})
    custom = resolve_claims(Identity.anon(), LOCAL_JWT_SECRET, anon_role="web_anon")
    assert custom.claims_json == '{"role":"web_anon"}'


def test_service_role_without_a_token() -> None:
    request = resolve_claims(Identity.service_role(), LOCAL_JWT_SECRET)
    assert (request.role, request.claims_json) == ("service_role", '{"role":"service_role"}')


def test_a_valid_token_gives_its_role_and_all_its_claims() -> None:
    exp = int(time.time()) + 60
    signed = token(sub="u1", role="authenticated", exp=exp, app_metadata={"tier": "gold"})
    request = resolve_claims(Identity.from_jwt(signed), LOCAL_JWT_SECRET)
    assert request.role == "authenticated"
    assert request.claims_json == (
        f'{{"app_metadata":{{"tier":"gold"}},"exp":{exp},"role":"authenticated","sub":"u1"}}'
    )


def test_a_token_without_a_role_claim_runs_as_anon_with_the_role_filled_in() -> None:
    request = resolve_claims(Identity.from_jwt(token(sub="u1")), LOCAL_JWT_SECRET)
    assert (request.role, dict(request.claims)) == ("anon", {"sub": "u1", "role": "anon"})


def test_a_non_string_role_claim_is_used_as_json_text() -> None:
    request = resolve_claims(Identity.from_jwt(token(role=["a", 1])), LOCAL_JWT_SECRET)
    assert request.role == '["a",1]'


def test_expiry_allows_postgrests_thirty_seconds_of_skew() -> None:
    identity = Identity.from_jwt(token(role="authenticated", exp=1_000))
    assert resolve_claims(identity, LOCAL_JWT_SECRET, now=1_029).role == "authenticated"
    with pytest.raises(Unauthorized) as expired:
        resolve_claims(identity, LOCAL_JWT_SECRET, now=1_030)
    assert (expired.value.code, expired.value.message, expired.value.status) == (
        "PGRST301",
        "JWT expired",
        401,
    )


def test_a_verified_token_is_still_checked_for_expiry_on_every_call() -> None:
    identity = Identity.from_jwt(token(role="authenticated", exp=int(time.time()) + 1_000))
    assert resolve_claims(identity, LOCAL_JWT_SECRET).role == "authenticated"
    with pytest.raises(Unauthorized):
        resolve_claims(identity, LOCAL_JWT_SECRET, now=time.time() + 1_100)


def test_not_before_allows_the_same_skew() -> None:
    identity = Identity.from_jwt(token(role="authenticated", nbf=2_000))
    with pytest.raises(Unauthorized):
        resolve_claims(identity, LOCAL_JWT_SECRET, now=1_969)
    assert resolve_claims(identity, LOCAL_JWT_SECRET, now=1_970).role == "authenticated"


def test_non_numeric_expiry_is_invalid() -> None:
    with pytest.raises(Unauthorized):
        resolve_claims(Identity.from_jwt(token(exp="tomorrow")), LOCAL_JWT_SECRET)


@pytest.mark.parametrize(
    "bad",
    [
        token("another-secret-that-is-at-least-32-characters", role="authenticated"),
        token(role="authenticated") + "x",
        "not-a-jwt",
        jwt.encode({"role": "service_role"}, "", algorithm="none"),
    ],
)
def test_tokens_not_signed_with_the_secret_are_unauthorized(bad: str) -> None:
    with pytest.raises(Unauthorized) as refused:
        resolve_claims(Identity.from_jwt(bad), LOCAL_JWT_SECRET)
    assert refused.value.code == "PGRST301"


# pyjwt rightly warns that the 55-byte local secret is short for SHA-512; PostgREST accepts it.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_every_hmac_algorithm_of_the_secret_is_accepted() -> None:
    for algorithm in ("HS256", "HS384", "HS512"):
        signed = token(algorithm=algorithm, role="authenticated")
        assert resolve_claims(Identity.from_jwt(signed), LOCAL_JWT_SECRET).role == "authenticated"


def test_audience_is_only_checked_when_configured() -> None:
    signed = token(role="authenticated", aud="authenticated")
    assert resolve_claims(Identity.from_jwt(signed), LOCAL_JWT_SECRET).role == "authenticated"
    checked = resolve_claims(Identity.from_jwt(signed), LOCAL_JWT_SECRET, audience="authenticated")
    assert checked.role == "authenticated"
    with pytest.raises(Unauthorized):
        resolve_claims(Identity.from_jwt(signed), LOCAL_JWT_SECRET, audience="other")


def test_identities_refuse_inconsistent_tokens() -> None:
    with pytest.raises(ValueError):
        Identity.from_jwt("")
    assert "secret-token" not in repr(Identity.from_jwt("secret-token"))


def test_search_path_quotes_like_postgrest() -> None:
    assert search_path("api", ["public", "extensions"]) == '"api", "public", "extensions"'
    assert search_path('we"ird', []) == '"we""ird"'


def test_settings_are_in_postgrests_order() -> None:
    request = RequestClaims.of("authenticated", {"sub": "u1", "role": "authenticated"})
    settings = transaction_settings(
        search_path='"public", "extensions"',
        role_settings=[("statement_timeout", "8s"), ("lock_timeout", "1s")],
        request=request,
        method=Method.PATCH,
        path="/gw_notes",
        headers={"X-Client-Id": "d1", "Accept": "application/json"},
        function_settings=[("statement_timeout", "150ms")],
    )
    assert settings == [
        ("search_path", '"public", "extensions"'),
        ("statement_timeout", "8s"),
        ("lock_timeout", "1s"),
        ("role", "authenticated"),
        ("request.jwt.claims", '{"role":"authenticated","sub":"u1"}'),
        ("request.method", "PATCH"),
        ("request.path", "/gw_notes"),
        ("request.headers", '{"accept":"application/json","x-client-id":"d1"}'),
        ("request.cookies", "{}"),
        ("statement_timeout", "150ms"),
    ]
    assert not any(name.startswith("request.jwt.claim.") for name, _ in settings)
    assert json.loads(dict(settings)["request.jwt.claims"]) == dict(request.claims)
