"""Local users are the rows GoTrue writes, and their sessions work through the gateway."""

from __future__ import annotations

import uuid
from typing import Any

import jwt
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from pysync.auth import INSTANCE_ID, AuthError, LocalAuth
from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway import Identity, PostgresGateway
from pysync.localdb import LocalDatabase

WHOAMI = """
create function public.whoami() returns jsonb language sql stable as $$
    select jsonb_build_object(
        'uid', auth.uid(), 'role', auth.role(), 'email', auth.email(),
        'providers', auth.jwt() -> 'app_metadata' -> 'providers',
        'session', auth.jwt() ->> 'session_id')
$$;
"""


@pytest.fixture
def auth(fresh_url: str) -> LocalAuth:
    return LocalAuth(fresh_url, jwt_secret=LOCAL_JWT_SECRET, bcrypt_cost=4)


def fetch(url: str, query: str, *params: Any) -> dict[str, Any]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row


def test_create_user_writes_the_rows_gotrue_writes(fresh_url: str) -> None:
    auth = LocalAuth(fresh_url, jwt_secret=LOCAL_JWT_SECRET)
    user = auth.create_user(
        " Ada@Example.COM ",
        "correct horse",
        user_metadata={"name": "Ada"},
        app_metadata={"tier": "gold"},
    )
    row = fetch(fresh_url, "select * from auth.users where id = %s", user.id)
    assert str(row["instance_id"]) == INSTANCE_ID
    assert (row["aud"], row["role"], row["email"]) == (
        "authenticated",
        "authenticated",
        "ada@example.com",
    )
    assert row["encrypted_password"].startswith("$2a$10$")
    assert row["raw_app_meta_data"] == {
        "provider": "email",
        "providers": ["email"],
        "tier": "gold",
    }
    assert row["raw_user_meta_data"] == {"name": "Ada", "email_verified": True}
    assert row["email_confirmed_at"] is not None and row["confirmed_at"] is not None
    empty = [
        "confirmation_token",
        "recovery_token",
        "email_change_token_new",
        "email_change",
        "email_change_token_current",
        "phone_change",
        "phone_change_token",
        "reauthentication_token",
    ]
    assert {column: row[column] for column in empty} == dict.fromkeys(empty, "")
    assert row["email_change_confirm_status"] == 0
    assert (row["phone"], row["is_super_admin"], row["last_sign_in_at"]) == (None, None, None)
    assert (row["is_sso_user"], row["is_anonymous"]) == (False, False)
    assert row["created_at"] is not None and row["updated_at"] is not None
    matches = fetch(
        fresh_url,
        "select encrypted_password = extensions.crypt(%s, encrypted_password) as ok"
        " from auth.users where id = %s",
        "correct horse",
        user.id,
    )
    assert matches["ok"] is True

    identity = fetch(fresh_url, "select * from auth.identities where user_id = %s", user.id)
    assert (identity["provider"], identity["provider_id"], identity["email"]) == (
        "email",
        user.id,
        "ada@example.com",
    )
    assert identity["identity_data"] == {
        "sub": user.id,
        "email": "ada@example.com",
        "email_verified": False,
        "phone_verified": False,
    }
    assert identity["last_sign_in_at"] is not None


def test_app_metadata_merges_like_gotrue(auth: LocalAuth, fresh_url: str) -> None:
    user = auth.create_user("b@example.com", "pw", app_metadata={"provider": None, "x": 1})
    assert user.app_metadata == {"providers": ["email"], "x": 1}
    row = fetch(fresh_url, "select raw_app_meta_data from auth.users where id = %s", user.id)
    assert row["raw_app_meta_data"] == {"providers": ["email"], "x": 1}
    assert auth.get_user(user.id) == user


def test_unconfirmed_users_cannot_sign_in(auth: LocalAuth, fresh_url: str) -> None:
    user = auth.create_user("c@example.com", "pw", confirmed=False)
    row = fetch(fresh_url, "select * from auth.users where id = %s", user.id)
    assert row["email_confirmed_at"] is None and row["raw_user_meta_data"] == {}
    with pytest.raises(AuthError) as refused:
        auth.sign_in_with_password("c@example.com", "pw")
    assert refused.value.code == "email_not_confirmed"


def test_duplicate_email_is_refused(auth: LocalAuth) -> None:
    auth.create_user("d@example.com", "pw")
    with pytest.raises(AuthError) as duplicate:
        auth.create_user("D@example.com", "pw")
    assert (duplicate.value.code, duplicate.value.status) == ("email_exists", 422)


def test_password_sign_in(auth: LocalAuth, fresh_url: str) -> None:
    user = auth.create_user("e@example.com", "s3cret", user_metadata={"name": "Eve"})
    with pytest.raises(AuthError) as wrong:
        auth.sign_in_with_password("e@example.com", "guess")
    assert (wrong.value.code, wrong.value.status) == ("invalid_credentials", 400)
    session = auth.sign_in_with_password("E@example.com", "s3cret")
    claims = jwt.decode(
        session.access_token, LOCAL_JWT_SECRET, audience="authenticated", algorithms=["HS256"]
    )
    assert (claims["sub"], claims["email"], claims["role"]) == (
        user.id,
        "e@example.com",
        "authenticated",
    )
    assert claims["user_metadata"] == {"name": "Eve", "email_verified": True}
    assert claims["exp"] == session.expires_at == claims["iat"] + 3600
    stored = fetch(
        fresh_url,
        "select user_id::text, aal from auth.sessions where id = %s",
        claims["session_id"],
    )
    assert stored == {"user_id": user.id, "aal": "aal1"}
    signed_in = fetch(fresh_url, "select last_sign_in_at from auth.users where id = %s", user.id)
    assert signed_in["last_sign_in_at"] is not None


def test_a_generated_password_is_set_when_none_is_given(auth: LocalAuth, fresh_url: str) -> None:
    user = auth.create_user("f@example.com")
    row = fetch(fresh_url, "select encrypted_password from auth.users where id = %s", user.id)
    assert row["encrypted_password"].startswith("$2a$04$")
    with pytest.raises(AuthError):
        auth.sign_in_with_password("f@example.com", "")


def test_sessions_act_as_the_user_through_the_gateway(
    auth: LocalAuth, fresh_url: str, local_db: LocalDatabase
) -> None:
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute(WHOAMI)
    user = auth.create_user("g@example.com", "pw")
    session = auth.sign_in_with_password("g@example.com", "pw")
    dbname = conninfo_to_dict(fresh_url)["dbname"]
    with PostgresGateway.connect(
        local_db.url(str(dbname), user="authenticator"), jwt_secret=LOCAL_JWT_SECRET
    ) as gateway:
        seen = gateway.as_identity(session.identity()).rpc("whoami")
        assert seen == {
            "uid": user.id,
            "role": "authenticated",
            "email": "g@example.com",
            "providers": ["email"],
            "session": jwt.decode(session.access_token, options={"verify_signature": False})[
                "session_id"
            ],
        }
        assert gateway.as_identity(auth.identity(user.id)).rpc("whoami")["uid"] == user.id
        assert gateway.as_identity(Identity.anon()).rpc("whoami")["uid"] is None


def test_unknown_users_have_no_session(auth: LocalAuth) -> None:
    with pytest.raises(AuthError) as missing:
        auth.session_for(str(uuid.uuid4()))
    assert missing.value.code == "user_not_found"
    with pytest.raises(AuthError):
        auth.get_user(str(uuid.uuid4()))
