"""Publishable and secret API keys beside the legacy anon/service_role JWT keys: what clients
send (request level, no network; Client.supabase also checks an asymmetric session token
against the project's JWKS), and which identity a request's keys stand for, run against the
real database through PostgresGateway."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from pysync import Client
from pysync.auth import AuthError, LocalAuth, SupabaseSession, mint_access_token, mint_api_key
from pysync.auth.keys import SigningKey, jwks_document
from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway import Identity, IdentityKind, PostgresGateway, PostgrestGateway, Unauthorized
from pysync.gateway.apikeys import ApiKeys, request_headers
from pysync.gateway.jwks import JWKS_PATH
from pysync.localdb import LocalDatabase
from tests.helpers import gotrue_session
from tests.test_gateway_contract import FIXTURE_SQL

URL = "https://abc.supabase.co"
PUBLISHABLE = "sb_publishable_Q2hhbmdlTWUtbm90LWEtcmVhbC1rZXk"
SECRET = "sb_secret_Tm90LWEtcmVhbC1zZWNyZXQta2V5LWVpdGhlcg"
PROJECT_KEY = SigningKey.generate("ES256")
USER_ID = str(uuid.uuid4())
USER_TOKEN = mint_access_token(PROJECT_KEY, user_id=USER_ID)
KEYS = ApiKeys.of(publishable=[PUBLISHABLE], secret=[SECRET])


class Recorder:
    """A fake project: GoTrue's /token answering ``token``, its JWKS, and ``[]`` elsewhere."""

    def __init__(self, token: str = USER_TOKEN) -> None:
        self.requests: list[httpx.Request] = []
        self.token = token

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == JWKS_PATH:
            return httpx.Response(200, json=jwks_document([PROJECT_KEY]))
        self.requests.append(request)
        if request.url.path == "/auth/v1/token":
            return httpx.Response(200, json=gotrue_session(USER_ID, self.token))
        return httpx.Response(200, json=[])


def test_legacy_keys_double_as_the_bearer_and_new_keys_never_do() -> None:
    legacy = mint_api_key(LOCAL_JWT_SECRET, "anon")
    assert request_headers(legacy, None) == {"apikey": legacy, "Authorization": f"Bearer {legacy}"}
    assert request_headers(PUBLISHABLE, None) == {"apikey": PUBLISHABLE}
    assert request_headers(PUBLISHABLE, USER_TOKEN) == {
        "apikey": PUBLISHABLE,
        "Authorization": f"Bearer {USER_TOKEN}",
    }


def test_postgrest_gateway_sends_new_keys_in_apikey_only() -> None:
    api = Recorder()
    http = httpx.Client(transport=httpx.MockTransport(api))
    gateway = PostgrestGateway.connect(URL, PUBLISHABLE, service_role_key=SECRET, http_client=http)
    gateway.select("notes")
    gateway.as_identity(Identity.service_role()).select("notes")
    gateway.as_identity(Identity.from_jwt(USER_TOKEN)).select("notes")
    anon, service, user = api.requests
    assert anon.headers["apikey"] == PUBLISHABLE and "authorization" not in anon.headers
    assert service.headers["apikey"] == SECRET and "authorization" not in service.headers
    assert (user.headers["apikey"], user.headers["authorization"]) == (
        PUBLISHABLE,
        f"Bearer {USER_TOKEN}",
    )


def test_client_supabase_signs_in_and_reads_with_a_publishable_key() -> None:
    api = Recorder()
    http = httpx.Client(transport=httpx.MockTransport(api))
    client = Client.supabase(URL, PUBLISHABLE, "ada@example.com", "pw", http_client=http)
    client.gateway.select("profiles")
    sign_in, read = api.requests
    assert sign_in.url.path == "/auth/v1/token"
    assert sign_in.headers["apikey"] == PUBLISHABLE and "authorization" not in sign_in.headers
    assert (read.headers["apikey"], read.headers["authorization"]) == (
        PUBLISHABLE,
        f"Bearer {USER_TOKEN}",
    )


def test_client_supabase_refuses_a_token_its_project_did_not_sign() -> None:
    forged = mint_access_token(SigningKey.generate("ES256", kid=PROJECT_KEY.kid), user_id=USER_ID)
    http = httpx.Client(transport=httpx.MockTransport(Recorder(forged)))
    with pytest.raises(AuthError, match="does not verify against its JWKS"):
        Client.supabase(URL, PUBLISHABLE, "ada@example.com", "pw", http_client=http)


def test_supabase_session_sends_a_legacy_key_as_before() -> None:
    api = Recorder()
    http = httpx.Client(transport=httpx.MockTransport(api))
    legacy = mint_api_key(LOCAL_JWT_SECRET, "anon")
    SupabaseSession.for_project(URL, legacy, http_client=http).sign_in_with_password("a@b.c", "pw")
    assert api.requests[0].headers["authorization"] == f"Bearer {legacy}"


@pytest.mark.parametrize(
    ("apikey", "authorization", "kind"),
    [
        (PUBLISHABLE, None, IdentityKind.ANON),
        (SECRET, None, IdentityKind.SERVICE_ROLE),
        (SECRET, f"Bearer {SECRET}", IdentityKind.SERVICE_ROLE),
        (PUBLISHABLE, f"Bearer {USER_TOKEN}", IdentityKind.TOKEN),
        (mint_api_key(LOCAL_JWT_SECRET, "anon"), None, IdentityKind.TOKEN),
    ],
)
def test_request_keys_map_to_the_identity_the_api_gateway_gives(
    apikey: str, authorization: str | None, kind: IdentityKind
) -> None:
    assert KEYS.identity(apikey, authorization).kind is kind


@pytest.mark.parametrize(
    ("apikey", "authorization", "message"),
    [
        (None, None, "No API key found in request"),
        ("sb_publishable_not_this_project", None, "Invalid API key"),
        ("sb_secret_revoked", None, "Invalid API key"),
        ("not-a-key", None, "Invalid API key"),
        (PUBLISHABLE, f"Bearer {SECRET}", "cannot be the bearer token of another API key"),
        (PUBLISHABLE, "Basic abc", "must be 'Bearer <token>'"),
    ],
)
def test_bad_request_keys_are_refused(
    apikey: str | None, authorization: str | None, message: str
) -> None:
    with pytest.raises(Unauthorized, match=message):
        KEYS.identity(apikey, authorization)


def test_misfiled_keys_are_refused_when_configured() -> None:
    with pytest.raises(ValueError, match="publishable keys start with sb_publishable_"):
        ApiKeys.of(publishable=[SECRET])


@pytest.fixture(scope="module")
def dbname(local_db: LocalDatabase) -> Iterator[str]:
    name = f"keys_{uuid.uuid4().hex[:12]}"
    url = local_db.create_database(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(FIXTURE_SQL.encode())
    yield name
    local_db.drop_database(name)


def test_each_kind_of_key_runs_with_its_role_in_the_database(
    local_db: LocalDatabase, dbname: str
) -> None:
    auth = LocalAuth(local_db.url(dbname), jwt_secret=LOCAL_JWT_SECRET, bcrypt_cost=4)
    user = auth.create_user(f"{uuid.uuid4().hex[:10]}@example.com", "pw-123456")
    token = auth.identity(user).token
    legacy_anon = mint_api_key(LOCAL_JWT_SECRET, "anon")
    legacy_service = mint_api_key(LOCAL_JWT_SECRET, "service_role")
    with PostgresGateway.connect(
        local_db.url(dbname, user="authenticator"), jwt_secret=LOCAL_JWT_SECRET, max_size=1
    ) as gateway:

        def role(apikey: str) -> object:
            context = gateway.as_identity(KEYS.identity(apikey)).rpc("gw_request_context")
            assert isinstance(context, dict)
            return context["current_user"], json.loads(context["claims_text"])["role"]

        assert gateway.as_identity(KEYS.identity(PUBLISHABLE)).rpc("gw_whoami") is None
        assert (
            gateway.as_identity(KEYS.identity(PUBLISHABLE, f"Bearer {token}")).rpc("gw_whoami")
            == user.id
        )
        for apikey, expected in [
            (PUBLISHABLE, "anon"),
            (legacy_anon, "anon"),
            (SECRET, "service_role"),
            (legacy_service, "service_role"),
        ]:
            assert role(apikey) == (expected, expected), apikey
