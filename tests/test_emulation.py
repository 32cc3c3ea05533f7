"""The Supabase database emulation behaves like a hosted project's database."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors

from pysync.config import LOCAL_JWT_SECRET
from tests.helpers import acting_as, connect

ALICE = str(uuid.UUID("11111111-1111-4111-8111-111111111111"))
BOB = str(uuid.UUID("22222222-2222-4222-8222-222222222222"))

Conn = psycopg.Connection[Any]


def _one(conn: Conn, query: str, params: Any = None) -> Any:
    row = conn.execute(query.encode(), params).fetchone()
    assert row is not None
    return row[0]


# -- roles ----------------------------------------------------------------------------------


def test_roles_have_supabase_attributes(conn: Conn) -> None:
    rows = conn.execute(
        "select rolname, rolsuper, rolinherit, rolcanlogin, rolbypassrls, rolcreaterole"
        " from pg_roles where rolname = any(%s)",
        ([
            "anon", "authenticated", "service_role", "authenticator", "postgres",
            "supabase_admin", "supabase_auth_admin", "supabase_storage_admin",
        ],),
    ).fetchall()  # fmt: skip
    roles = {name: attrs for name, *attrs in rows}
    # name: super, inherit, login, bypassrls, createrole
    assert roles["anon"] == [False, True, False, False, False]
    assert roles["authenticated"] == [False, True, False, False, False]
    assert roles["service_role"] == [False, True, False, True, False]
    assert roles["authenticator"] == [False, False, True, False, False]
    assert roles["postgres"] == [False, True, True, True, True]  # demoted, not superuser
    assert roles["supabase_admin"][0] is True
    assert roles["supabase_auth_admin"][1:3] == [False, True]
    assert roles["supabase_storage_admin"][1:3] == [False, True]


def test_authenticator_can_become_each_api_role_only(conn: Conn) -> None:
    members = {
        r[0]
        for r in conn.execute(
            "select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid"
            " join pg_roles u on u.oid = m.member where u.rolname = 'authenticator'"
        ).fetchall()
    }
    assert members == {"anon", "authenticated", "service_role"}


def test_per_role_statement_timeouts(conn: Conn) -> None:
    settings = dict(
        conn.execute(
            "select r.rolname, s.setconfig from pg_db_role_setting s"
            " join pg_roles r on r.oid = s.setrole where s.setdatabase = 0"
        ).fetchall()
    )
    assert "statement_timeout=3s" in settings["anon"]
    assert "statement_timeout=8s" in settings["authenticated"]
    assert "statement_timeout=8s" in settings["authenticator"]


def test_jwt_settings_and_extensions(conn: Conn) -> None:
    assert _one(conn, "select current_setting('app.settings.jwt_secret')") == LOCAL_JWT_SECRET
    extensions = dict(
        conn.execute(
            "select e.extname, n.nspname from pg_extension e"
            " join pg_namespace n on n.oid = e.extnamespace"
        ).fetchall()
    )
    assert extensions["pgcrypto"] == "extensions"
    assert extensions["uuid-ossp"] == "extensions"
    assert len(_one(conn, "select extensions.uuid_generate_v4()::text")) == 36


def test_publication_exists_and_postgres_owns_it(conn: Conn) -> None:
    owner = _one(
        conn,
        "select pg_get_userbyid(pubowner) from pg_publication where pubname = 'supabase_realtime'",
    )
    assert owner == "postgres"


# -- auth -----------------------------------------------------------------------------------


def test_auth_helpers_read_full_claims(conn: Conn) -> None:
    claims: dict[str, Any] = {"email": "alice@example.com", "app_metadata": {"provider": "email"}}
    with acting_as(conn, "authenticated", ALICE, **claims):
        row = conn.execute(
            "select auth.uid()::text, auth.role(), auth.email(), auth.jwt()"
        ).fetchone()
    assert row is not None
    uid, role, email, jwt = row
    assert (uid, role, email) == (ALICE, "authenticated", "alice@example.com")
    assert jwt["app_metadata"] == {"provider": "email"}


def test_auth_uid_prefers_legacy_claim_and_is_null_without_claims(conn: Conn) -> None:
    assert _one(conn, "select auth.uid()") is None
    assert _one(conn, "select auth.role()") is None
    with conn.transaction(force_rollback=True):
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": BOB}),)
        )
        assert str(_one(conn, "select auth.uid()")) == BOB
        conn.execute("select set_config('request.jwt.claim.sub', %s, true)", (ALICE,))
        assert str(_one(conn, "select auth.uid()")) == ALICE
        conn.execute("select set_config('request.jwt.claim.sub', '', true)")
        assert str(_one(conn, "select auth.uid()")) == BOB


def test_auth_users_accepts_a_gotrue_style_user(conn: Conn) -> None:
    conn.execute(
        "insert into auth.users (instance_id, id, aud, role, email, encrypted_password,"
        " email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at,"
        " confirmation_token, recovery_token, email_change_token_new, email_change)"
        " values ('00000000-0000-0000-0000-000000000000', %s, 'authenticated', 'authenticated',"
        " 'alice@example.com', extensions.crypt('pw', extensions.gen_salt('bf')), now(),"
        " '{}', '{}', now(), now(), '', '', '', '')",
        (ALICE,),
    )
    conn.execute(
        "insert into auth.identities (provider_id, user_id, identity_data, provider)"
        " values (%s, %s, %s, 'email')",
        (ALICE, ALICE, json.dumps({"sub": ALICE, "email": "Alice@Example.com"})),
    )
    assert _one(conn, "select email from auth.identities") == "alice@example.com"
    assert _one(conn, "select confirmed_at is not null from auth.users") is True
    with pytest.raises(errors.UniqueViolation):
        conn.execute("insert into auth.users (id, email) values (%s, 'alice@example.com')", (BOB,))


# -- default privileges and RLS ---------------------------------------------------------------


def _make_notes_table(conn: Conn, *, rls: bool) -> None:
    """As postgres, the way a migration creates a table."""
    conn.execute("create table public.notes (id serial primary key, owner uuid, body text)")
    conn.execute(
        "insert into public.notes (owner, body) values (%s, 'alice note'), (%s, 'bob note')",
        (ALICE, BOB),
    )
    if rls:
        conn.execute("alter table public.notes enable row level security")


def test_new_public_tables_are_granted_to_api_roles(conn: Conn) -> None:
    _make_notes_table(conn, rls=False)
    for role in ("anon", "authenticated", "service_role"):
        for privilege in ("select", "insert", "update", "delete"):
            assert _one(
                conn, "select has_table_privilege(%s, 'public.notes', %s)", (role, privilege)
            )
    assert _one(conn, "select has_sequence_privilege('anon', 'public.notes_id_seq', 'usage')")
    # Without RLS the grants are the only guard: anon reads everything.
    with acting_as(conn, "anon"):
        assert _one(conn, "select count(*) from public.notes") == 2


def test_rls_without_policy_hides_everything_but_service_role_bypasses(conn: Conn) -> None:
    _make_notes_table(conn, rls=True)
    with acting_as(conn, "anon"):
        assert _one(conn, "select count(*) from public.notes") == 0
    with acting_as(conn, "authenticated", ALICE):
        assert _one(conn, "select count(*) from public.notes") == 0
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("insert into public.notes (owner, body) values (%s, 'x')", (ALICE,))
    with acting_as(conn, "service_role"):
        assert _one(conn, "select count(*) from public.notes") == 2


def test_policy_with_auth_uid_scopes_rows_to_the_user(conn: Conn) -> None:
    _make_notes_table(conn, rls=True)
    conn.execute(
        'create policy "Users can read their own notes" on public.notes'
        " for select to authenticated using (owner = (select auth.uid()))"
    )
    with acting_as(conn, "authenticated", ALICE):
        assert _one(conn, "select array_agg(body) from public.notes") == ["alice note"]
    with acting_as(conn, "authenticated", BOB):
        assert _one(conn, "select array_agg(body) from public.notes") == ["bob note"]
    with acting_as(conn, "anon"):
        assert _one(conn, "select count(*) from public.notes") == 0


def test_functions_created_by_postgres_are_executable_by_api_roles(conn: Conn) -> None:
    conn.execute("create function public.answer() returns int language sql as 'select 42'")
    with acting_as(conn, "anon"):
        assert _one(conn, "select public.answer()") == 42


# -- storage --------------------------------------------------------------------------------


def test_storage_path_helpers(conn: Conn) -> None:
    row = conn.execute(
        "select storage.foldername('avatars/u1/me.png'), storage.filename('avatars/u1/me.png'),"
        " storage.extension('u1/archive.tar.gz'), storage.foldername('top.png')"
    ).fetchone()
    assert row == (["avatars", "u1"], "me.png", "gz", [])


def test_storage_objects_have_path_tokens_and_rls(conn: Conn) -> None:
    conn.execute("insert into storage.buckets (id, name) values ('docs', 'docs')")
    conn.execute(
        "insert into storage.objects (bucket_id, name, owner) values ('docs', %s, %s)",
        (f"{ALICE}/notes/a.txt", ALICE),
    )
    assert _one(conn, "select path_tokens from storage.objects") == [ALICE, "notes", "a.txt"]
    conn.execute(
        'create policy "Users read their own folder" on storage.objects for select'
        " to authenticated using ("
        " bucket_id = 'docs' and (storage.foldername(name))[1] = (select auth.uid())::text)"
    )
    with acting_as(conn, "authenticated", ALICE):
        assert _one(conn, "select count(*) from storage.objects") == 1
    with acting_as(conn, "authenticated", BOB):
        assert _one(conn, "select count(*) from storage.objects") == 0


# -- realtime -------------------------------------------------------------------------------


def _user_topic_policies(conn: Conn) -> None:
    conn.execute(
        'create policy "Users receive on their own topic" on realtime.messages for select'
        " to authenticated using (realtime.topic() = 'user:' || (select auth.uid())::text)"
    )
    conn.execute(
        'create policy "Users send on their own topic" on realtime.messages for insert'
        " to authenticated with check (realtime.topic() = 'user:' || (select auth.uid())::text)"
    )


def _probe(conn: Conn, user: str, topic: str) -> tuple[bool, bool]:
    """What the Realtime server does to authorize a private channel: as the user, with
    realtime.topic set, insert a broadcast row and read it back; then roll back."""
    with acting_as(conn, "authenticated", user):
        conn.execute("select set_config('realtime.topic', %s, true)", (topic,))
        try:
            with conn.transaction():
                conn.execute(
                    "insert into realtime.messages (topic, extension, event, private)"
                    " values (%s, 'broadcast', 'probe', true)",
                    (topic,),
                )
            can_write = True
        except errors.InsufficientPrivilege:
            can_write = False
        can_read = _one(
            conn,
            "select exists (select 1 from realtime.messages where topic = %s"
            " and extension = 'broadcast')",
            (topic,),
        )
    return can_read, can_write


def test_realtime_topic_authorization(conn: Conn) -> None:
    _user_topic_policies(conn)
    # Bob's topic has a message already, so a read check can see whether it is visible.
    conn.execute("select realtime.send('{}'::jsonb, 'hello', %s, true)", (f"user:{BOB}",))
    assert _probe(conn, BOB, f"user:{BOB}") == (True, True)
    assert _probe(conn, ALICE, f"user:{BOB}") == (False, False)


def test_realtime_messages_are_partitioned_by_day(conn: Conn) -> None:
    partitions = _one(
        conn,
        "select count(*) from pg_inherits where inhparent = 'realtime.messages'::regclass",
    )
    assert partitions >= 7
    today = _one(conn, "select to_regclass('realtime.messages_' || to_char(now(), 'YYYY_MM_DD'))")
    assert today is not None


def test_realtime_send_stores_and_notifies(fresh_url: str) -> None:
    topic = f"user:{ALICE}"
    with connect(fresh_url) as listener, connect(fresh_url) as sender:
        listener.execute(psycopg.sql.SQL("listen {}").format(psycopg.sql.Identifier(topic)))
        sender.execute(
            "select realtime.send(%s::jsonb, 'nudge', %s)", (json.dumps({"tables": ["x"]}), topic)
        )
        notices = list(listener.notifies(timeout=5, stop_after=1))
        stored = _one(sender, "select payload from realtime.messages where topic = %s", (topic,))
    assert len(notices) == 1
    body = json.loads(notices[0].payload)
    assert body["event"] == "nudge" and body["private"] is True
    assert body["payload"]["tables"] == ["x"]
    assert stored["tables"] == ["x"] and "id" in stored


def test_broadcast_changes_sends_row_images(conn: Conn) -> None:
    conn.execute("create table public.rooms (id int primary key, name text)")
    conn.execute(
        "create function public.rooms_broadcast() returns trigger language plpgsql as $$"
        " begin perform realtime.broadcast_changes('room:' || coalesce(new.id, old.id),"
        " tg_op, tg_op, tg_table_name, tg_table_schema, new, old); return null; end $$"
    )
    conn.execute(
        "create trigger rooms_broadcast after insert or update or delete on public.rooms"
        " for each row execute function public.rooms_broadcast()"
    )
    conn.execute("insert into public.rooms values (1, 'maths')")
    conn.execute("update public.rooms set name = 'physics' where id = 1")
    rows = conn.execute(
        "select event, payload from realtime.messages where topic = 'room:1' order by inserted_at"
    ).fetchall()
    assert [event for event, _ in rows] == ["INSERT", "UPDATE"]
    update = rows[1][1]
    assert update["record"]["name"] == "physics"
    assert update["old_record"]["name"] == "maths"
    assert update["operation"] == "UPDATE" and update["table"] == "rooms"


def test_realtime_send_stores_large_payloads_and_notifies_by_id(fresh_url: str) -> None:
    topic = f"user:{BOB}"
    big = {"body": "x" * 10_000}
    with connect(fresh_url) as listener, connect(fresh_url) as sender:
        listener.execute(psycopg.sql.SQL("listen {}").format(psycopg.sql.Identifier(topic)))
        sender.execute("select realtime.send(%s::jsonb, 'big', %s)", (json.dumps(big), topic))
        notices = list(listener.notifies(timeout=5, stop_after=1))
        stored = _one(sender, "select payload from realtime.messages where topic = %s", (topic,))
    assert stored["body"] == big["body"]
    body = json.loads(notices[0].payload)
    assert body["truncated"] is True and body["payload"]["id"] == stored["id"]
