"""PostgresGateway specifics: the exact request context it replays, the pre-request function,
role settings, read-only reads, the schema cache and connection handling."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from unittest.mock import ANY

import jwt
import psycopg
import pytest
from psycopg import sql

from pysync.auth import LocalAuth, LocalUser
from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway import (
    Identity,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PostgresGateway,
    RateLimited,
    Unauthorized,
    Unavailable,
    eq,
)
from pysync.localdb import LocalDatabase
from tests.test_gateway_contract import FIXTURE_SQL

EXTRA_SQL = """
create or replace function public.gw_pre_request() returns void
language plpgsql as $$
begin
    perform set_config('gw.pre_request', concat_ws(' ',
        current_setting('request.method', true),
        current_setting('request.path', true),
        current_user,
        auth.uid()), true);
    if current_setting('request.headers', true)::jsonb ->> 'x-gw-block' = 'yes' then
        raise exception 'blocked by the pre-request function' using errcode = 'PT429';
    end if;
end
$$;

create sequence public.gw_calls;
create view public.gw_counter as select nextval('public.gw_calls') as calls;
"""


@pytest.fixture(scope="module")
def dbname(local_db: LocalDatabase) -> Iterator[str]:
    name = f"gwp_{uuid.uuid4().hex[:12]}"
    url = local_db.create_database(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(FIXTURE_SQL.encode())
        conn.execute(EXTRA_SQL.encode())
    yield name
    local_db.drop_database(name)


@pytest.fixture(scope="module")
def auth(local_db: LocalDatabase, dbname: str) -> LocalAuth:
    return LocalAuth(local_db.url(dbname), jwt_secret=LOCAL_JWT_SECRET, bcrypt_cost=4)


@pytest.fixture
def gateway(local_db: LocalDatabase, dbname: str) -> Iterator[PostgresGateway]:
    with PostgresGateway.connect(
        local_db.url(dbname, user="authenticator"), jwt_secret=LOCAL_JWT_SECRET, max_size=1
    ) as gw:
        yield gw


@pytest.fixture
def user(auth: LocalAuth) -> LocalUser:
    return auth.create_user(f"{uuid.uuid4().hex[:10]}@example.com", "pw-123456")


def test_exact_settings_for_a_user_call(
    gateway: PostgresGateway, auth: LocalAuth, user: LocalUser
) -> None:
    session = auth.session_for(user)
    caller = gateway.as_identity(session.identity()).with_headers({"X-Gw-Test": "Exact"})
    ctx = caller.rpc("gw_request_context")
    claims = jwt.decode(session.access_token, options={"verify_signature": False})
    assert ctx["claims_text"] == json.dumps(claims, sort_keys=True, separators=(",", ":"))
    assert ctx["headers_text"] == '{"x-gw-test":"Exact"}'
    assert ctx["cookies"] == "{}"
    assert ctx["search_path"] == '"public", "public", "extensions"'
    assert ctx["isolation"] == "read committed"
    assert ctx["pre_request"] is None


def test_exact_claims_without_a_token(gateway: PostgresGateway) -> None:
    assert gateway.rpc("gw_request_context")["claims_text"] == '{"role":"anon"}'
    service = gateway.as_identity(Identity.service_role()).rpc("gw_request_context")
    assert service["claims_text"] == '{"role":"service_role"}'
    assert service["statement_timeout"] == "8s"


def test_a_token_without_role_runs_as_anon_with_role_added_to_the_claims(
    gateway: PostgresGateway,
) -> None:
    subject = str(uuid.uuid4())
    token = jwt.encode({"sub": subject, "exp": int(time.time()) + 60}, LOCAL_JWT_SECRET)
    ctx = gateway.as_identity(Identity.from_jwt(token)).rpc("gw_request_context")
    assert (ctx["current_user"], ctx["uid"]) == ("anon", subject)
    assert json.loads(ctx["claims_text"]) == {"sub": subject, "exp": ANY, "role": "anon"}


def test_nothing_leaks_between_calls_on_one_connection(
    gateway: PostgresGateway, auth: LocalAuth, user: LocalUser
) -> None:
    member = gateway.as_identity(auth.identity(user)).with_headers({"x-one": "1"})
    member.select("gw_notes")
    assert member.rpc("gw_whoami") == user.id
    after = gateway.rpc("gw_request_context")
    assert (after["uid"], after["current_user"], after["headers_text"]) == (None, "anon", "{}")
    assert after["read_only"] == "off"
    (note,) = member.insert("gw_notes", {"owner": user.id, "body": "written after a read"})
    assert note["body"] == "written after a read"


def test_the_pre_request_function_runs_with_the_request_context(
    local_db: LocalDatabase, dbname: str, auth: LocalAuth, user: LocalUser
) -> None:
    with PostgresGateway.connect(
        local_db.url(dbname, user="authenticator"),
        jwt_secret=LOCAL_JWT_SECRET,
        pre_request="public.gw_pre_request",
    ) as gateway:
        member = gateway.as_identity(auth.identity(user))
        ctx = member.rpc("gw_request_context")
        assert ctx["pre_request"] == f"POST /rpc/gw_request_context authenticated {user.id}"
        assert gateway.rpc("gw_request_context", read_only=True)["pre_request"] == (
            "GET /rpc/gw_request_context anon"
        )
        blocked = member.with_headers({"x-gw-block": "yes"})
        with pytest.raises(RateLimited):
            blocked.insert("gw_notes", {"owner": user.id, "body": "never written"})
        with pytest.raises(RateLimited):
            blocked.select("gw_notes")
        assert member.select("gw_notes", filters=[eq("body", "never written")]).rows == []


def test_an_unqualified_pre_request_function_is_looked_up_in_the_api_schema(
    local_db: LocalDatabase, dbname: str
) -> None:
    with PostgresGateway.connect(
        local_db.url(dbname, user="authenticator"),
        jwt_secret=LOCAL_JWT_SECRET,
        pre_request="gw_pre_request",
    ) as gateway:
        assert gateway.rpc("gw_request_context")["pre_request"] == (
            "POST /rpc/gw_request_context anon"
        )


@pytest.fixture
def custom_role(local_db: LocalDatabase) -> Iterator[str]:
    """An API role with its own settings, which authenticator may become; it inherits anon's
    privileges, so it needs no grants of its own (and drops cleanly)."""
    role = f"gw_role_{uuid.uuid4().hex[:8]}"
    ident = sql.Identifier(role)
    with local_db.admin_connect() as conn:
        conn.execute(sql.SQL("create role {} nologin inherit").format(ident))
        conn.execute(sql.SQL("grant anon to {}").format(ident))
        conn.execute(sql.SQL("grant {} to authenticator").format(ident))
        conn.execute(sql.SQL("alter role {} set statement_timeout = '1234ms'").format(ident))
        conn.execute(
            sql.SQL("alter role {} set default_transaction_isolation = 'repeatable read'").format(
                ident
            )
        )
    yield role
    with local_db.admin_connect() as conn:
        conn.execute(sql.SQL("drop role {}").format(ident))


def test_the_impersonated_roles_settings_and_isolation_apply(
    local_db: LocalDatabase, dbname: str, custom_role: str
) -> None:
    token = jwt.encode({"role": custom_role, "exp": int(time.time()) + 60}, LOCAL_JWT_SECRET)
    with PostgresGateway.connect(
        local_db.url(dbname, user="authenticator"), jwt_secret=LOCAL_JWT_SECRET
    ) as gateway:
        ctx = gateway.as_identity(Identity.from_jwt(token)).rpc("gw_request_context")
    assert ctx["current_user"] == custom_role
    assert ctx["statement_timeout"] == "1234ms"
    assert ctx["isolation"] == "repeatable read"


def test_roles_the_authenticator_cannot_become_are_refused(gateway: PostgresGateway) -> None:
    def as_role(role: str) -> PostgresGateway:
        token = jwt.encode({"role": role, "exp": int(time.time()) + 60}, LOCAL_JWT_SECRET)
        return gateway.as_identity(Identity.from_jwt(token))

    with pytest.raises(PermissionDenied):
        as_role("postgres").select("gw_notes")
    with pytest.raises(InvalidInput):
        as_role("no_such_role").select("gw_notes")


def test_reads_run_in_read_only_transactions(gateway: PostgresGateway) -> None:
    with pytest.raises(InvalidInput) as refused:
        gateway.select("gw_counter")
    assert refused.value.code == "25006"


def test_audience_is_checked_when_configured(
    local_db: LocalDatabase, dbname: str, auth: LocalAuth, user: LocalUser
) -> None:
    with PostgresGateway.connect(
        local_db.url(dbname, user="authenticator"),
        jwt_secret=LOCAL_JWT_SECRET,
        jwt_audience="authenticated",
    ) as gateway:
        assert gateway.as_identity(auth.identity(user)).rpc("gw_whoami") == user.id
        other = jwt.encode(
            {"sub": user.id, "role": "authenticated", "aud": "elsewhere"}, LOCAL_JWT_SECRET
        )
        with pytest.raises(Unauthorized):
            gateway.as_identity(Identity.from_jwt(other)).rpc("gw_whoami")


def test_the_schema_cache_is_reloaded_on_demand(
    gateway: PostgresGateway, local_db: LocalDatabase, dbname: str
) -> None:
    table = f"gw_late_{uuid.uuid4().hex[:8]}"
    gateway.select("gw_notes")
    with psycopg.connect(local_db.url(dbname), autocommit=True) as conn:
        conn.execute(
            sql.SQL("create table public.{} (id int primary key)").format(sql.Identifier(table))
        )
    with pytest.raises(NotFound):
        gateway.select(table)
    gateway.reload_schema_cache()
    assert gateway.as_identity(Identity.service_role()).select(table).rows == []


def test_an_unreachable_database_is_unavailable() -> None:
    with (
        PostgresGateway.connect(
            "postgresql://authenticator:postgres@127.0.0.1:1/nowhere?connect_timeout=1",
            jwt_secret=LOCAL_JWT_SECRET,
            timeout=0.5,
        ) as gateway,
        pytest.raises(Unavailable) as down,
    ):
        gateway.select("gw_notes")
    assert down.value.retryable
