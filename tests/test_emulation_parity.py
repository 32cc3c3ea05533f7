"""What a hosted Supabase project accepts and refuses, the emulation accepts and refuses.

Each test pins one difference issue 12 found between the first emulation and Supabase's own
sources (supabase/postgres image migrations, supabase/auth, supabase/storage and
supabase/realtime migrations, supautils' policy grants): a statement that passed here and
fails on `supabase db push`, or one a hosted project takes that failed here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict

from pysync.localdb import LocalDatabase
from tests.helpers import acting_as

ALICE = str(uuid.UUID("11111111-1111-4111-8111-111111111111"))
BOB = str(uuid.UUID("22222222-2222-4222-8222-222222222222"))

Conn = psycopg.Connection[Any]


def _one(conn: Conn, query: str, params: Any = None) -> Any:
    row = conn.execute(query.encode(), params).fetchone()
    assert row is not None
    return row[0]


def _lent_memberships(conn: Conn) -> list[str]:
    """Owner roles postgres is a member of (none, outside a policy statement)."""
    rows = conn.execute(
        "select r from unnest(array['supabase_auth_admin', 'supabase_storage_admin',"
        " 'supabase_realtime_admin']) as r where pg_has_role('postgres', r, 'USAGE')"
    ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def admin(local_db: LocalDatabase, fresh_url: str) -> Iterator[Conn]:
    """The bootstrap superuser on the test's database (what Supabase's services do)."""
    dbname = conninfo_to_dict(fresh_url)["dbname"]
    with local_db.admin_connect(str(dbname)) as connection:
        yield connection


@pytest.fixture
def custom_role(conn: Conn, admin: Conn) -> Iterator[str]:
    """A role of the project's own, created by postgres (roles are cluster-wide)."""
    name = f"custom_{uuid.uuid4().hex[:10]}"
    conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(name)))
    yield name
    # DROP OWNED leaves what another role (postgres) granted: take that back first.
    conn.execute(
        sql.SQL("revoke all on schema realtime from {0}; revoke all on auth.users from {0}").format(
            sql.Identifier(name)
        )
    )
    admin.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))
    admin.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def _add_user(conn: Conn, user_id: str, email: str) -> None:
    conn.execute(
        "insert into auth.users (id, aud, role, email, created_at, updated_at)"
        " values (%s, 'authenticated', 'authenticated', %s, now(), now())",
        (user_id, email),
    )


# -- accepted here, rejected on Supabase: ownership ----------------------------------------


def test_postgres_is_no_member_of_the_service_owners(conn: Conn) -> None:
    assert _lent_memberships(conn) == []


@pytest.mark.parametrize(
    "statement",
    [
        "alter table storage.objects enable row level security",
        "create index objects_owner_idx on storage.objects (owner)",
        "comment on table storage.objects is 'ours'",
        "alter table storage.objects add column note text",
        "alter table storage.buckets add column note text",
        "alter table realtime.messages add column note text",
        "create index messages_event_idx on realtime.messages (event)",
        "alter table auth.users add column note text",
    ],
)
def test_ddl_on_service_tables_needs_the_owner(conn: Conn, statement: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege, match="must be owner"):
        conn.execute(statement.encode())


@pytest.mark.parametrize(
    "statement",
    [
        "create table storage.ours (id int)",
        "create function storage.ours() returns int language sql as 'select 1'",
        "create table realtime.ours (id int)",
        "create table auth.ours (id int)",
    ],
)
def test_postgres_creates_nothing_in_service_schemas(conn: Conn, statement: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied for schema"):
        conn.execute(statement.encode())


@pytest.mark.parametrize(
    "table",
    [
        "storage.objects",
        "storage.buckets",
        "realtime.messages",
        "auth.users",
        "auth.identities",
        "auth.sessions",
        "auth.mfa_factors",
    ],
)
def test_postgres_manages_policies_on_granted_tables(conn: Conn, table: str) -> None:
    policy = f'"Everyone reads" on {table}'
    conn.execute(f"create policy {policy} for select to authenticated using (true)".encode())
    conn.execute(f"alter policy {policy} to authenticated, anon".encode())
    count = "select count(*) from pg_policy where polrelid = %s::regclass and polname = %s"
    assert _one(conn, count, (table, "Everyone reads")) == 1
    conn.execute(f"drop policy {policy}".encode())
    conn.execute(f"drop policy if exists {policy}".encode())
    assert _lent_memberships(conn) == []


def test_policy_grants_hold_in_replica_mode_and_in_one_transaction(conn: Conn) -> None:
    """Bulk loads run as replica; a policy file re-creates many policies in one transaction."""
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute(
            'create policy "A" on storage.objects for select to authenticated using (true);'
            ' create policy "B" on realtime.messages for select to authenticated using (true);'
            ' drop policy "A" on storage.objects'
        )
        # Only the statements themselves were lent the owner: DDL right after still fails.
        with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
            conn.execute("comment on table storage.objects is 'x'")
    assert _one(conn, "select array_agg(polname) from pg_policy where polname in ('A', 'B')") == [
        "B"
    ]
    assert _lent_memberships(conn) == []


def test_policy_grants_stop_at_the_listed_tables(conn: Conn, admin: Conn) -> None:
    # A table of the storage owner's that supautils does not list (the Storage server has
    # several): postgres may not put policies on it, although it may on storage.objects.
    admin.execute("create table storage.unlisted (id int)")
    admin.execute("alter table storage.unlisted owner to supabase_storage_admin")
    admin.execute('create policy "Theirs" on storage.unlisted using (true)')
    with pytest.raises(errors.InsufficientPrivilege, match="must be owner"):
        conn.execute('create policy "Ours" on storage.unlisted using (true)')
    with pytest.raises(errors.InsufficientPrivilege, match="must be owner"):
        conn.execute('drop policy "Theirs" on storage.unlisted')
    assert _lent_memberships(conn) == []
    # A policy created by another role (authenticated, say) gets nothing lent.
    with acting_as(conn, "authenticated", ALICE), pytest.raises(errors.InsufficientPrivilege):
        conn.execute('create policy "Mine" on storage.objects using (true)')


def test_postgres_drops_its_triggers_on_auth_users(conn: Conn) -> None:
    """supautils' drop-trigger grants: the sign-up trigger can be replaced by a migration."""
    conn.execute(
        "create function public.on_signup() returns trigger language plpgsql"
        " as 'begin return new; end'"
    )
    conn.execute(
        "create trigger on_signup after insert on auth.users"
        " for each row execute function public.on_signup()"
    )
    conn.execute("drop trigger on_signup on auth.users")
    assert _one(conn, "select count(*) from pg_trigger where tgname = 'on_signup'") == 0
    assert _lent_memberships(conn) == []


# -- accepted here, rejected on Supabase: storage's triggers ---------------------------------


def test_storage_refuses_plain_deletes_unless_the_transaction_allows_them(conn: Conn) -> None:
    conn.execute("insert into storage.buckets (id, name) values ('docs', 'docs')")
    conn.execute("insert into storage.objects (bucket_id, name) values ('docs', 'a.txt')")
    for statement in ("delete from storage.objects", "delete from storage.buckets"):
        with pytest.raises(errors.InsufficientPrivilege, match="Use the Storage API"):
            conn.execute(statement.encode())
    with conn.transaction():
        conn.execute("select set_config('storage.allow_delete_query', 'true', true)")
        conn.execute("delete from storage.objects")
        conn.execute("delete from storage.buckets")
    assert _one(conn, "select count(*) from storage.buckets") == 0


def test_storage_objects_stamp_updated_at(conn: Conn) -> None:
    conn.execute("insert into storage.buckets (id, name) values ('docs', 'docs')")
    conn.execute(
        "insert into storage.objects (bucket_id, name, updated_at)"
        " values ('docs', 'a.txt', '2000-01-01')"
    )
    conn.execute("update storage.objects set metadata = '{\"size\": 1}'")
    assert _one(conn, "select updated_at > now() - interval '1 hour' from storage.objects")


def test_bucket_names_stop_at_100_characters(conn: Conn) -> None:
    conn.execute("insert into storage.buckets (id, name) values ('ok', %s)", ("b" * 100,))
    with pytest.raises(errors.RaiseException, match="too long"):
        conn.execute("insert into storage.buckets (id, name) values ('long', %s)", ("b" * 101,))
    with pytest.raises(errors.RaiseException, match="too long"):
        conn.execute("update storage.buckets set name = %s where id = 'ok'", ("b" * 101,))


# -- accepted on Supabase, rejected or different here: auth ----------------------------------


def test_auth_tables_have_rls_and_postgres_may_grant_reading_them(
    conn: Conn, custom_role: str
) -> None:
    for table in ("auth.users", "auth.identities", "auth.sessions", "auth.mfa_factors"):
        assert _one(conn, "select relrowsecurity from pg_class where oid = %s::regclass", (table,))
        assert _one(
            conn, "select has_table_privilege('postgres', %s, 'SELECT WITH GRANT OPTION')", (table,)
        )
    conn.execute(sql.SQL("grant select on auth.users to {}").format(sql.Identifier(custom_role)))
    assert _one(conn, "select has_table_privilege(%s, 'auth.users', 'SELECT')", (custom_role,))
    # GoTrue's bookkeeping is not postgres's.
    assert not _one(
        conn, "select has_table_privilege('postgres', 'auth.schema_migrations', 'INSERT')"
    )


def test_gotrue_tables_and_types_exist(conn: Conn) -> None:
    tables = {
        r[0]
        for r in conn.execute(
            "select relname from pg_class where relnamespace = 'auth'::regnamespace"
            " and relkind = 'r'"
        ).fetchall()
    }
    assert {
        "users", "identities", "sessions", "refresh_tokens", "instances", "audit_log_entries",
        "schema_migrations", "mfa_factors", "mfa_challenges", "mfa_amr_claims", "flow_state",
        "one_time_tokens", "sso_providers", "sso_domains", "saml_providers", "saml_relay_states",
    } <= tables  # fmt: skip
    owners = {
        r[0]
        for r in conn.execute(
            "select pg_get_userbyid(relowner) from pg_class"
            " where relnamespace = 'auth'::regnamespace and relkind = 'r'"
        ).fetchall()
    }
    assert owners == {"supabase_auth_admin"}
    assert _one(conn, "select enum_range(null::auth.aal_level)::text") == "{aal1,aal2,aal3}"
    assert _one(conn, "select enum_range(null::auth.factor_type)::text") == "{totp,webauthn,phone}"
    assert (
        _one(conn, "select enum_range(null::auth.factor_status)::text") == "{unverified,verified}"
    )
    assert (
        _one(
            conn,
            "select atttypid::regtype::text from pg_attribute"
            " where attrelid = 'auth.sessions'::regclass and attname = 'aal'",
        )
        == "auth.aal_level"
    )


def test_documented_mfa_policy_works(conn: Conn) -> None:
    """Supabase's MFA guide: a restrictive policy on aal and the user's verified factors."""
    _add_user(conn, ALICE, "alice@example.com")
    _add_user(conn, BOB, "bob@example.com")
    conn.execute(
        "insert into auth.mfa_factors (id, user_id, factor_type, status, created_at, updated_at)"
        " values (gen_random_uuid(), %s, 'totp', 'verified', now(), now())",
        (ALICE,),
    )
    # Users must see their own factors for the guide's policy to count them.
    conn.execute("grant select on auth.mfa_factors to authenticated")
    conn.execute(
        'create policy "Users see their own factors" on auth.mfa_factors for select'
        " to authenticated using ((select auth.uid()) = user_id)"
    )
    conn.execute("create table public.secrets (id int primary key, body text)")
    conn.execute("insert into public.secrets values (1, 'x')")
    conn.execute("alter table public.secrets enable row level security")
    conn.execute(
        'create policy "Signed-in users read" on public.secrets for select to authenticated'
        " using (true)"
    )
    conn.execute(
        'create policy "MFA users need aal2" on public.secrets as restrictive to authenticated'
        " using (array[(select auth.jwt() ->> 'aal')] <@ ("
        "   select case when count(id) > 0 then array['aal2'] else array['aal1', 'aal2'] end"
        "   from auth.mfa_factors"
        "   where (select auth.uid()) = user_id and status = 'verified'))"
    )

    def visible(user: str, aal: str) -> int:
        with acting_as(conn, "authenticated", user, aal=aal):
            return int(_one(conn, "select count(*) from public.secrets"))

    assert visible(ALICE, "aal1") == 0
    assert visible(ALICE, "aal2") == 1
    assert visible(BOB, "aal1") == 1


# -- accepted on Supabase, rejected or different here: storage -------------------------------


def test_storage_operation_helpers(conn: Conn) -> None:
    with conn.transaction():
        conn.execute("select set_config('storage.operation', 'storage.object.upload', true)")
        row = conn.execute(
            "select storage.operation(), storage.allow_only_operation('object.upload'),"
            " storage.allow_only_operation('storage.object.upload'),"
            " storage.allow_only_operation('object.list'), storage.allow_only_operation(''),"
            " storage.allow_any_operation(array['object.list', 'object.upload']),"
            " storage.allow_any_operation(array['object.list'])"
        ).fetchone()
    assert row == ("storage.object.upload", True, True, False, False, True, False)
    assert _one(conn, "select storage.allow_only_operation('object.upload')") is False


def test_buckets_have_the_current_columns(conn: Conn) -> None:
    conn.execute("insert into storage.buckets (id, name) values ('docs', 'docs')")
    row = conn.execute(
        "select type::text, versioning_status, public, owner_id from storage.buckets"
    ).fetchone()
    assert row == ("STANDARD", "DISABLED", False, None)
    columns = {
        r[0]
        for r in conn.execute(
            "select attname from pg_attribute where attrelid = 'storage.objects'::regclass"
            " and attnum > 0 and not attisdropped"
        ).fetchall()
    }
    assert {"owner_id", "user_metadata", "version", "path_tokens", "is_delete_marker"} <= columns


def test_storage_search_lists_one_level_as_the_caller(conn: Conn) -> None:
    conn.execute("insert into storage.buckets (id, name) values ('docs', 'docs')")
    conn.execute(
        "insert into storage.objects (bucket_id, name, owner_id) values"
        " ('docs', %s, %s), ('docs', %s, %s), ('docs', %s, %s), ('docs', 'other/z.txt', null)",
        (
            f"{ALICE}/x.png", ALICE, f"{ALICE}/sub/y.png", ALICE, f"{ALICE}/sub/w.png", ALICE,
        ),
    )  # fmt: skip
    conn.execute(
        'create policy "Owners list" on storage.objects for select to authenticated'
        " using (owner_id = (select auth.uid())::text)"
    )
    rows = conn.execute(
        "select name, id is null from storage.search(%s, 'docs')", (f"{ALICE}/",)
    ).fetchall()
    assert rows == [("sub", True), ("x.png", False)]
    assert _one(conn, "select count(*) from storage.search('', 'docs')") == 2  # two folders
    with acting_as(conn, "authenticated", ALICE):
        assert _one(conn, "select array_agg(name) from storage.search('', 'docs')") == [ALICE]
    with acting_as(conn, "authenticated", BOB):
        assert _one(conn, "select count(*) from storage.search('', 'docs')") == 0


# -- accepted on Supabase, rejected or different here: realtime ------------------------------


def test_realtime_send_binary_stores_the_bytes(conn: Conn) -> None:
    conn.execute("select realtime.send_binary('\\x0102ff'::bytea, 'blob', 'room:1', false)")
    row = conn.execute(
        "select binary_payload, payload, private from realtime.messages where event = 'blob'"
    ).fetchone()
    assert row == (b"\x01\x02\xff", None, False)
    with pytest.raises(errors.CheckViolation):
        conn.execute(
            "insert into realtime.messages (topic, extension, payload, binary_payload)"
            " values ('t', 'broadcast', '{}', '\\x00')"
        )


def test_realtime_send_warns_with_the_current_text(conn: Conn) -> None:
    warnings: list[str] = []
    conn.add_notice_handler(lambda diag: warnings.append(diag.message_primary or ""))
    # No insert policy: the broadcast fails as the user and send() only warns.
    with acting_as(conn, "authenticated", ALICE):
        conn.execute("select realtime.send('{}'::jsonb, 'e', 'room:1', true)")
    assert any(w.startswith("WarnSendingBroadcastMessage: ") for w in warnings), warnings


def test_postgres_grants_realtime_to_custom_roles(conn: Conn, custom_role: str) -> None:
    conn.execute(
        sql.SQL("grant usage on schema realtime to {}").format(sql.Identifier(custom_role))
    )
    assert _one(conn, "select has_schema_privilege(%s, 'realtime', 'USAGE')", (custom_role,))
    assert not _one(conn, "select has_schema_privilege('postgres', 'realtime', 'CREATE')")


# -- accepted on Supabase, rejected or different here: roles and schemas -------------------


def test_roles_and_memberships_as_on_supabase(conn: Conn) -> None:
    rows = conn.execute(
        "select rolname, rolinherit, rolcanlogin from pg_roles where rolname = any(%s)",
        ([
            "anon", "authenticated", "service_role", "pgbouncer", "supabase_functions_admin",
            "supabase_read_only_user", "supabase_replication_admin", "dashboard_user",
        ],),
    ).fetchall()  # fmt: skip
    roles = {name: (inherit, login) for name, inherit, login in rows}
    assert roles["anon"] == roles["authenticated"] == roles["service_role"] == (True, False)
    assert roles["pgbouncer"][1] and roles["supabase_read_only_user"][1]
    assert roles["supabase_functions_admin"] == (False, True)
    assert {"supabase_replication_admin", "dashboard_user"} <= roles.keys()
    for predefined in ("pg_read_all_data", "pg_signal_backend", "pg_monitor"):
        assert _one(conn, "select pg_has_role('postgres', %s, 'MEMBER')", (predefined,))
    assert _one(conn, "select pg_has_role('supabase_read_only_user', 'pg_read_all_data', 'MEMBER')")


def test_schema_owners_and_default_privileges(conn: Conn) -> None:
    owners = dict(
        conn.execute(
            "select nspname, pg_get_userbyid(nspowner) from pg_namespace where nspname = any(%s)",
            (["public", "extensions", "auth", "storage", "realtime", "graphql_public"],),
        ).fetchall()
    )
    assert owners["extensions"] == "postgres"
    assert owners["auth"] == owners["storage"] == owners["realtime"] == "supabase_admin"
    # postgres owns extensions, so a migration can put objects there.
    conn.execute("create table extensions.ours (id int)")
    with_defaults = {
        r[0]
        for r in conn.execute(
            "select distinct defaclnamespace::regnamespace::text from pg_default_acl"
            " where defaclnamespace <> 0"
        ).fetchall()
    }
    wanted = {"public", "auth", "storage", "realtime", "extensions", "graphql_public"}
    assert wanted <= with_defaults


def test_defaults_grant_what_the_services_create(admin: Conn) -> None:
    """What GoTrue adds later is readable by postgres; a graphql_public function by the API."""
    admin.execute("set role supabase_auth_admin")
    admin.execute("create table auth.later (id int)")
    admin.execute("reset role")
    admin.execute("create function graphql_public.ping() returns int language sql as 'select 1'")
    assert _one(admin, "select has_table_privilege('postgres', 'auth.later', 'SELECT')")
    assert _one(admin, "select has_function_privilege('anon', 'graphql_public.ping()', 'EXECUTE')")


def test_pg_stat_statements_is_there_for_dumps(conn: Conn) -> None:
    assert (
        _one(
            conn,
            "select extnamespace::regnamespace::text from pg_extension"
            " where extname = 'pg_stat_statements'",
        )
        == "extensions"
    )
    conn.execute("create extension if not exists pg_stat_statements with schema extensions")
