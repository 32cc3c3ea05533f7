"""Supabase's asymmetric signing keys: the local auth signs ES256/RS256 tokens and publishes
its JWKS; the gateway verifies them from that JWKS over HTTP (cached, fetched again for a
rotated-in key) and keeps verifying legacy HS256 tokens with the secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from pysync.auth import LocalAuth, mint_access_token
from pysync.auth.jwks_server import JwksServer
from pysync.auth.keys import SigningKey
from pysync.config import LOCAL_JWT_SECRET, Settings
from pysync.gateway import Identity, PostgresGateway, Unauthorized, Unavailable
from pysync.gateway.context import resolve_claims
from pysync.gateway.jwks import JwksKeys
from pysync.localdb import LocalDatabase
from tests.helpers import PROJECT_ROOT
from tests.test_gateway_contract import FIXTURE_SQL


class Clock:
    """A clock the tests move by hand: cache ages without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture
def server(key: SigningKey) -> Iterator[JwksServer]:
    with JwksServer([key]) as running:
        yield running


def _claims(token: str, jwks: JwksKeys | None) -> dict[str, object]:
    return dict(resolve_claims(Identity.from_jwt(token), LOCAL_JWT_SECRET, jwks=jwks).claims)


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_tokens_signed_with_a_published_key_are_verified(algorithm: str) -> None:
    signing = SigningKey.generate(algorithm)  # type: ignore[arg-type]
    with JwksServer([signing]) as server:
        token = mint_access_token(signing, user_id="u1", email="a@example.com")
        header = jwt.get_unverified_header(token)
        assert (header["alg"], header["kid"]) == (algorithm, signing.kid)
        claims = _claims(token, JwksKeys(server.url))
    assert (claims["sub"], claims["role"], claims["email"]) == (
        "u1",
        "authenticated",
        "a@example.com",
    )


def test_legacy_hs256_tokens_still_verify_beside_the_jwks(server: JwksServer) -> None:
    jwks = JwksKeys(server.url)
    legacy = mint_access_token(LOCAL_JWT_SECRET, user_id="u2")
    assert _claims(legacy, jwks)["sub"] == "u2"
    assert server.requests == 0  # an HS256 token never needs the JWKS


def test_the_jwks_is_fetched_once_and_cached(key: SigningKey, server: JwksServer) -> None:
    jwks = JwksKeys(server.url)
    for user in ("a", "b", "c"):
        assert _claims(mint_access_token(key, user_id=user), jwks)["sub"] == user
    assert server.requests == 1


def test_a_rotated_in_key_is_fetched_at_once(key: SigningKey, server: JwksServer) -> None:
    clock = Clock()
    jwks = JwksKeys(server.url, clock=clock, min_refetch_interval=10)
    assert _claims(mint_access_token(key, user_id="before"), jwks)["sub"] == "before"
    clock.now += 11
    rotated = SigningKey.generate("ES256")
    server.publish([rotated, key])  # the new key signs; the old one still verifies
    assert _claims(mint_access_token(rotated, user_id="after"), jwks)["sub"] == "after"
    assert _claims(mint_access_token(key, user_id="old"), jwks)["sub"] == "old"
    assert server.requests == 2


def test_unknown_kids_cost_at_most_one_fetch_per_interval(
    key: SigningKey, server: JwksServer
) -> None:
    clock = Clock()
    jwks = JwksKeys(server.url, clock=clock, min_refetch_interval=10)
    _claims(mint_access_token(key, user_id="u"), jwks)
    stranger = SigningKey.generate("ES256")
    for _ in range(3):
        with pytest.raises(
            Unauthorized, match=f"no published signing key has kid '{stranger.kid}'"
        ):
            _claims(mint_access_token(stranger, user_id="x"), jwks)
    assert server.requests == 1
    clock.now += 10
    with pytest.raises(Unauthorized):
        _claims(mint_access_token(stranger, user_id="x"), jwks)
    assert server.requests == 2


def test_a_forged_token_naming_a_published_kid_is_refused(
    key: SigningKey, server: JwksServer
) -> None:
    forger = SigningKey.generate("ES256", kid=key.kid)
    with pytest.raises(Unauthorized, match="Signature verification failed"):
        _claims(mint_access_token(forger, user_id="x"), JwksKeys(server.url))


def test_a_token_cannot_choose_hs256_with_the_public_key_as_secret(key: SigningKey) -> None:
    public = ECAlgorithm.from_jwk(json.dumps(key.public_jwk()))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # pyjwt refuses to sign HMAC with a PEM key; build the token by hand, as an attacker would.
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    body = jwt.utils.base64url_encode(b'{"sub":"x","role":"service_role"}')
    signature = hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    forged = b".".join([header, body, jwt.utils.base64url_encode(signature)]).decode()
    with pytest.raises(Unauthorized, match="Signature verification failed"):
        _claims(forged, JwksKeys(document={"keys": [key.public_jwk()]}))


def test_an_asymmetric_token_without_a_jwks_is_refused_saying_why(key: SigningKey) -> None:
    with pytest.raises(Unauthorized, match="ES256 token needs the project's JWKS"):
        _claims(mint_access_token(key, user_id="x"), None)


def test_an_unreachable_jwks_keeps_the_keys_it_holds(key: SigningKey) -> None:
    clock = Clock()
    server = JwksServer([key]).start()
    jwks = JwksKeys(server.url, clock=clock, max_age=600)
    _claims(mint_access_token(key, user_id="u"), jwks)
    server.stop()
    clock.now += 601  # stale: a fetch is tried, fails, and the held key still verifies
    assert _claims(mint_access_token(key, user_id="v"), jwks)["sub"] == "v"
    with pytest.raises(Unavailable, match="cannot fetch the JWKS"):
        _claims(mint_access_token(key, user_id="w"), JwksKeys(server.url))


def test_the_gateway_runs_asymmetric_tokens_as_their_user(local_db: LocalDatabase) -> None:
    name = f"keys_{uuid.uuid4().hex[:12]}"
    url = local_db.create_database(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(FIXTURE_SQL.encode())
        signing = SigningKey.generate("ES256")
        auth = LocalAuth(url, jwt_secret=LOCAL_JWT_SECRET, bcrypt_cost=4, signing_key=signing)
        legacy_auth = LocalAuth(url, jwt_secret=LOCAL_JWT_SECRET, bcrypt_cost=4)
        user = auth.create_user(f"{uuid.uuid4().hex[:10]}@example.com", "pw-123456")
        assert auth.jwks() == {"keys": [signing.public_jwk()]}
        with (
            JwksServer([signing]) as server,
            PostgresGateway.connect(
                local_db.url(name, user="authenticator"),
                jwt_secret=LOCAL_JWT_SECRET,
                jwks=JwksKeys.for_project(server.base_url),
                max_size=1,
            ) as gateway,
        ):
            identity = auth.identity(user)
            assert jwt.get_unverified_header(identity.token or "")["alg"] == "ES256"
            assert gateway.as_identity(identity).rpc("gw_whoami") == user.id
            assert gateway.as_identity(legacy_auth.identity(user)).rpc("gw_whoami") == user.id
            server.publish([])  # key revoked: tokens already verified stay cached, new ones fail
            stranger = SigningKey.generate("ES256")
            with pytest.raises(Unauthorized):
                gateway.as_identity(
                    Identity.from_jwt(mint_access_token(stranger, user_id=user.id))
                ).rpc("gw_whoami")
    finally:
        local_db.drop_database(name)


@pytest.mark.live
def test_a_live_projects_jwks_is_fetched_and_parsed() -> None:
    settings = Settings.load(PROJECT_ROOT)
    if not settings.supabase_url:
        pytest.skip("the live JWKS check needs SUPABASE_URL (a real project)")
    jwks = JwksKeys.for_project(settings.supabase_url)
    with pytest.raises(Unauthorized, match="no published signing key"):
        jwks.key_for("no-such-kid")
    assert jwks.fetches == 1
