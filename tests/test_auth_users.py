"""The shared GoTrue-style user functions: many users in one transaction, re-runnable
creation, and one shape of user whoever creates them (LocalAuth, seeds, the RLS world)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from pysync.auth import AuthError, create_user, delete_user, find_user, list_users
from pysync.rls import load_matrix
from pysync.rls.world import build_world
from tests.helpers import PROJECT_ROOT

GOTRUE_IDENTITY_KEYS = {"sub", "email", "email_verified", "phone_verified"}


def test_many_users_share_one_transaction(app_conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(AuthError), app_conn.transaction():
        create_user(app_conn, "one@example.net", app_metadata={"app_role": "tutor"}, bcrypt_cost=4)
        create_user(app_conn, "two@example.net", bcrypt_cost=4)
        create_user(app_conn, "ONE@example.net", bcrypt_cost=4)
    assert [u.email for u in list_users(app_conn) if (u.email or "").endswith("@example.net")] == []


def test_exist_ok_returns_the_user_already_there(app_conn: psycopg.Connection[Any]) -> None:
    first = create_user(app_conn, "again@example.net", bcrypt_cost=4)
    second = create_user(app_conn, "Again@example.net", bcrypt_cost=4, exist_ok=True)
    assert second.id == first.id
    assert find_user(app_conn, "again@example.net").role == "student"
    assert delete_user(app_conn, "again@example.net").id == first.id
    with pytest.raises(AuthError) as gone:
        find_user(app_conn, "again@example.net")
    assert str(gone.value) == "no user with email again@example.net (see `pysync users list`)"


def test_the_rls_world_creates_its_users_as_gotrue_does(app_conn: psycopg.Connection[Any]) -> None:
    world = build_world(app_conn, load_matrix(PROJECT_ROOT / "policies" / "matrix.toml"))
    admin = world.ids["admin"]
    row = app_conn.execute(
        "select u.encrypted_password like '$2a$%%', u.confirmation_token, i.identity_data,"
        " p.role from auth.users u join auth.identities i on i.user_id = u.id"
        " join public.profiles p on p.id = u.id where u.id = %s",
        (admin,),
    ).fetchone()
    assert row is not None
    bcrypt, token, identity, role = row
    assert (bcrypt, token, set(identity), role) == (True, "", GOTRUE_IDENTITY_KEYS, "admin")
