"""``pysync rls audit``: every lint fires on a deliberately bad object and goes quiet once the
object is fixed; the shipped schema audits clean at error and warn level."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pysync.cli.main import main
from pysync.localdb import LocalDatabase
from pysync.localdb.cluster import SUPERUSER
from pysync.rls._expr import bare_calls, is_always_true
from pysync.rls.audit import (
    LINTS,
    SPLINTER_LINTS,
    AuditConfig,
    AuditConfigError,
    Finding,
    audit_project,
    load_audit_config,
    run_audit,
)
from pysync.rls.matrix import CaseSpec, RpcSpec, load_matrix
from tests.helpers import PROJECT_ROOT

Conn = psycopg.Connection[Any]
POLICIES = PROJECT_ROOT / "policies"

NOTES = (
    "create table public.notes (id uuid primary key default gen_random_uuid(), owner uuid,"
    " body text);"
    " alter table public.notes enable row level security;"
)
NOTES_READ = (
    NOTES + ' create policy "Owners read notes" on public.notes for select to authenticated'
    " using (owner = (select auth.uid()));"
)


def keys(findings: list[Finding]) -> set[tuple[str, str, str]]:
    return {(f.level, f.lint, f.object) for f in findings}


def execute(conn: Conn, statements: str | tuple[str, ...]) -> None:
    for statement in (statements,) if isinstance(statements, str) else statements:
        conn.execute(statement)


def find(conn: Conn, lint: str, obj: str, **kwargs: Any) -> Finding | None:
    found = [f for f in run_audit(conn, **kwargs).findings if (f.lint, f.object) == (lint, obj)]
    assert len(found) <= 1
    return found[0] if found else None


# (lint, object, bad SQL, fixing SQL, words the detail must contain)
CASES = [
    pytest.param(
        "rls_disabled_in_public",
        "public.notes",
        "create table public.notes (id int primary key);",
        "alter table public.notes enable row level security;"
        ' create policy "Anyone reads notes" on public.notes for select to anon using (true);',
        "row level security is disabled",
        id="rls_disabled_in_public",
    ),
    pytest.param(
        "rls_enabled_no_policy",
        "public.notes",
        NOTES,
        'create policy "Owners read notes" on public.notes for select to authenticated'
        " using (owner = (select auth.uid()));",
        "no policy",
        id="rls_enabled_no_policy",
    ),
    pytest.param(
        "auth_rls_initplan",
        '"Owners read notes" on public.notes',
        NOTES + ' create policy "Owners read notes" on public.notes for select to authenticated'
        " using (owner = (select auth.uid()) or owner = auth.uid());",
        'alter policy "Owners read notes" on public.notes using (owner = (select auth.uid()));',
        "calls auth.uid() once per row",
        id="auth_rls_initplan",
    ),
    pytest.param(
        "auth_rls_initplan",
        '"Owners add notes" on public.notes',
        NOTES + ' create policy "Owners add notes" on public.notes for insert to authenticated'
        " with check (owner = (current_setting('request.jwt.claims', true)::json"
        " ->> 'sub')::uuid);",
        'alter policy "Owners add notes" on public.notes with check'
        " (owner = (select (current_setting('request.jwt.claims', true)::json ->> 'sub')::uuid));",
        "calls current_setting() once per row",
        id="auth_rls_initplan_current_setting",
    ),
    pytest.param(
        "multiple_permissive_policies",
        "public.notes (authenticated, select)",
        NOTES_READ + ' create policy "Everyone reads notes" on public.notes for all'
        " using (body is not null);",
        'drop policy "Everyone reads notes" on public.notes;',
        '"Everyone reads notes", "Owners read notes"',
        id="multiple_permissive_policies",
    ),
    pytest.param(
        "security_definer_search_path_mutable",
        "private.secret()",
        "create schema private;"
        " create function private.secret() returns int language sql security definer"
        " as 'select 1';",
        "alter function private.secret() set search_path = '';",
        "search_path",
        id="security_definer_search_path_mutable",
    ),
    pytest.param(
        "anon_security_definer_function_executable",
        "public.count_notes()",
        (
            NOTES_READ,
            " create function public.count_notes() returns bigint language sql"
            " security definer set search_path = '' as 'select count(*) from public.notes';",
        ),
        "revoke execute on function public.count_notes() from public, anon;",
        "anon key can call it",
        id="anon_security_definer_function_executable",
    ),
    pytest.param(
        "security_definer_view",
        "public.note_bodies",
        (NOTES_READ, " create view public.note_bodies as select body from public.notes;"),
        "alter view public.note_bodies set (security_invoker = true);",
        "reads public.notes past their row level security",
        id="security_definer_view",
    ),
    pytest.param(
        "security_definer_view",
        "public.note_bodies",
        (
            NOTES_READ,
            " create view public.inner_notes with (security_invoker = true) as"
            " select body from public.notes;"
            " create view public.note_bodies as select body from public.inner_notes;",
        ),
        "alter view public.note_bodies set (security_invoker = true);",
        "reads public.notes past their row level security",
        id="security_definer_view_over_an_invoker_view",
    ),
    pytest.param(
        "unindexed_foreign_keys",
        "replies_note_id_fkey on public.replies",
        NOTES_READ + " create table public.replies (id int primary key,"
        " note_id uuid references public.notes (id), open boolean);"
        " create index replies_open_idx on public.replies (note_id) where open;",
        "create index replies_note_id_idx on public.replies (note_id, id);",
        "no index starts with (note_id)",
        id="unindexed_foreign_keys",
    ),
    pytest.param(
        "rls_references_user_metadata",
        '"Editors update notes" on public.notes',
        NOTES_READ + ' create policy "Editors update notes" on public.notes for update'
        " to authenticated using ("
        "(select auth.jwt() -> 'user_metadata' ->> 'editor') = 'true');",
        'alter policy "Editors update notes" on public.notes using ('
        "(select auth.jwt() -> 'app_metadata' ->> 'editor') = 'true');",
        "user_metadata",
        id="rls_references_user_metadata",
    ),
    pytest.param(
        "rls_references_user_metadata",
        '"Editors update notes" on public.notes',
        (
            NOTES_READ,
            " create schema private;"
            " create function private.is_editor() returns boolean language sql stable"
            " security definer set search_path = '' as $$ select coalesce((select"
            " (u.raw_user_meta_data ->> 'editor')::boolean from auth.users as u"
            " where u.id = (select auth.uid())), false) $$;"
            ' create policy "Editors update notes" on public.notes for update'
            " to authenticated using ((select private.is_editor()));",
        ),
        "create or replace function private.is_editor() returns boolean language sql stable"
        " security definer set search_path = '' as $$ select coalesce((select"
        " (u.raw_app_meta_data ->> 'editor')::boolean from auth.users as u"
        " where u.id = (select auth.uid())), false) $$;",
        "user_metadata",
        id="rls_references_user_metadata_through_a_helper",
    ),
    pytest.param(
        "policy_helper_replanned",
        "private.my_note_ids()",
        (
            NOTES_READ,
            " create schema private;"
            " create function private.my_note_ids() returns setof uuid language sql stable"
            " security definer set search_path = '' as $$ select n.id from public.notes as n"
            " where n.owner = (select auth.uid()) $$;"
            ' create policy "Owners update notes" on public.notes for update'
            " to authenticated using (id in (select private.my_note_ids()));",
        ),
        "create or replace function private.my_note_ids() returns setof uuid language plpgsql"
        " stable security definer set search_path = '' as $$ begin return query select n.id"
        " from public.notes as n where n.owner = (select auth.uid()); end $$;",
        '"Owners update notes" on public.notes plans its body again',
        id="policy_helper_replanned",
    ),
    pytest.param(
        "rls_policy_always_true",
        '"Anyone can add notes" on public.notes',
        NOTES_READ + ' create policy "Anyone can add notes" on public.notes for insert'
        " to anon, authenticated with check (true);",
        'alter policy "Anyone can add notes" on public.notes to authenticated'
        " with check (owner = (select auth.uid()));",
        "its with check is always true, so anon, authenticated may insert any row",
        id="rls_policy_always_true",
    ),
    pytest.param(
        "rls_policy_always_true",
        '"Anyone can tidy notes" on public.notes',
        NOTES_READ + ' create policy "Anyone can tidy notes" on public.notes for delete'
        " to authenticated using (1 = 1);",
        'alter policy "Anyone can tidy notes" on public.notes using (owner = (select auth.uid()));',
        "its using is always true",
        id="rls_policy_always_true_delete",
    ),
    pytest.param(
        "public_bucket_allows_listing",
        'bucket "pics"',
        "insert into storage.buckets (id, name, public) values ('pics', 'pics', true);"
        ' create policy "Anyone can list pics" on storage.objects for select to anon, authenticated'
        " using (bucket_id = 'pics');",
        "alter policy \"Anyone can list pics\" on storage.objects using (bucket_id = 'pics'"
        " and (storage.foldername(name))[1] = (select auth.uid())::text);",
        'anon and authenticated can list every user\'s files (through "Anyone can list pics")',
        id="public_bucket_allows_listing",
    ),
    pytest.param(
        "rls_policy_always_true",
        '"Anyone can edit notes" on public.notes',
        NOTES_READ + ' create policy "Anyone can edit notes" on public.notes for update'
        " to authenticated;",
        'alter policy "Anyone can edit notes" on public.notes using (owner = (select auth.uid()));',
        "splinter counts it as open",
        id="rls_policy_always_true_without_an_expression",
    ),
    pytest.param(
        "authenticated_security_definer_function_executable",
        "public.count_notes()",
        (
            NOTES_READ,
            " create function public.count_notes() returns bigint language sql"
            " security definer set search_path = '' as 'select count(*) from public.notes';"
            " revoke execute on function public.count_notes() from public, anon;",
        ),
        "revoke execute on function public.count_notes() from authenticated;",
        "any signed-in user can call it",
        id="authenticated_security_definer_function_executable",
    ),
    pytest.param(
        "function_search_path_mutable",
        "public.add_one(integer)",
        "create function public.add_one(i int) returns int language sql as 'select i + 1';",
        "alter function public.add_one(integer) set search_path = '';",
        "depends on who calls it",
        id="function_search_path_mutable",
    ),
    pytest.param(
        "policy_exists_rls_disabled",
        "public.notes",
        "create table public.notes (id int primary key, owner uuid);"
        ' create policy "Owners read notes" on public.notes for select to authenticated'
        " using (owner = (select auth.uid()));",
        "alter table public.notes enable row level security;",
        "none of them applies",
        id="policy_exists_rls_disabled",
    ),
    pytest.param(
        "no_primary_key",
        "public.events",
        "create table public.events (at timestamptz);"
        " alter table public.events enable row level security;",
        "alter table public.events add column id bigint generated always as identity primary key;",
        "without a primary key",
        id="no_primary_key",
    ),
    pytest.param(
        "duplicate_index",
        "notes_owner_a, notes_owner_b on public.notes",
        NOTES_READ + " create index notes_owner_a on public.notes (owner);"
        " create index notes_owner_b on public.notes (owner);",
        "drop index public.notes_owner_b;",
        "identical",
        id="duplicate_index",
    ),
    pytest.param(
        "unused_index",
        "public.notes_body_idx on public.notes",
        NOTES_READ + " create index notes_body_idx on public.notes (body);",
        "drop index public.notes_body_idx;",
        "no query has used the index",
        id="unused_index",
    ),
    pytest.param(
        "materialized_view_in_api",
        "public.note_counts",
        (
            NOTES_READ,
            " create materialized view public.note_counts as"
            " select owner, count(*) from public.notes group by owner;"
            " grant select on public.note_counts to anon;",
        ),
        "revoke all on public.note_counts from anon, authenticated;",
        "a materialized view has no row level security",
        id="materialized_view_in_api",
    ),
    pytest.param(
        "auth_users_exposed",
        "public.user_emails",
        "create view public.user_emails as select id, email from auth.users;"
        " grant select on public.user_emails to authenticated;",
        "revoke all on public.user_emails from anon, authenticated;",
        "reads auth.users past any row level security",
        id="auth_users_exposed",
    ),
    pytest.param(
        "security_definer_view",
        "public.note_ids",
        "create table public.loose (id int primary key);"
        " create view public.note_ids as select id from public.loose;"
        " grant select on public.note_ids to anon;",
        "alter view public.note_ids set (security_invoker = true);",
        "past any row level security a table gets later",
        id="security_definer_view_over_a_table_without_rls",
    ),
    pytest.param(
        "sensitive_columns_exposed",
        "public.accounts",
        "create table public.accounts (id int primary key, email text, password text,"
        " api_key text); grant select on public.accounts to anon;",
        "alter table public.accounts enable row level security;",
        "sensitive: api_key, password",
        id="sensitive_columns_exposed",
    ),
    pytest.param(
        "unsupported_reg_types",
        "public.jobs.handler",
        "create table public.jobs (id int primary key, handler regproc);"
        " alter table public.jobs enable row level security;",
        "alter table public.jobs alter column handler type text using handler::text;",
        "pg_upgrade cannot carry",
        id="unsupported_reg_types",
    ),
    pytest.param(
        "extension_in_public",
        "citext",
        "create extension citext with schema public;",
        "drop extension citext; create extension citext with schema extensions;",
        "sit in public",
        id="extension_in_public",
    ),
    pytest.param(
        "extension_versions_outdated",
        "hstore",
        "create extension hstore with schema extensions version '1.7';",
        "alter extension hstore update;",
        "version 1.7 is installed, 1.8 is available",
        id="extension_versions_outdated",
    ),
]


def test_a_fresh_database_audits_clean(conn: Conn) -> None:
    assert run_audit(conn).findings == []


@pytest.mark.parametrize(("lint", "obj", "bad", "fix", "words"), CASES)
def test_lint_finds_the_bad_object_and_forgets_it_once_fixed(
    conn: Conn, lint: str, obj: str, bad: str | tuple[str, ...], fix: str, words: str
) -> None:
    execute(conn, bad)
    finding = find(conn, lint, obj)
    assert finding is not None, f"{lint} did not report {obj}: {run_audit(conn).findings}"
    assert finding.level == LINTS[lint][0]
    assert words in finding.detail
    assert finding.fix
    conn.execute(fix)
    assert find(conn, lint, obj) is None


def test_every_lint_has_a_case() -> None:
    covered = {p.values[0] for p in CASES} | {
        # tested below, each with what it needs (a configuration, a superuser, a big table)
        "table_bloat",
        "insecure_queue_exposed_in_api",
        "pg_graphql_anon_table_exposed",
        "pg_graphql_authenticated_table_exposed",
        "foreign_table_in_api",
        "fkey_to_auth_unique",
        "table_missing_from_matrix",
        "policy_missing_from_matrix",
        "function_missing_from_matrix",
    }
    assert covered == set(LINTS)


def test_every_splinter_lint_is_here_under_its_name() -> None:
    """splinter's security and performance lints (lints/00NN_<name>.sql, as of April 2026)."""
    splinter = {
        "unindexed_foreign_keys",
        "auth_users_exposed",
        "auth_rls_initplan",
        "no_primary_key",
        "unused_index",
        "multiple_permissive_policies",
        "policy_exists_rls_disabled",
        "rls_enabled_no_policy",
        "duplicate_index",
        "security_definer_view",
        "function_search_path_mutable",
        "rls_disabled_in_public",
        "extension_in_public",
        "rls_references_user_metadata",
        "materialized_view_in_api",
        "foreign_table_in_api",
        "unsupported_reg_types",
        "insecure_queue_exposed_in_api",
        "table_bloat",
        "fkey_to_auth_unique",
        "extension_versions_outdated",
        "sensitive_columns_exposed",
        "rls_policy_always_true",
        "public_bucket_allows_listing",
        "pg_graphql_anon_table_exposed",
        "pg_graphql_authenticated_table_exposed",
        "anon_security_definer_function_executable",
        "authenticated_security_definer_function_executable",
    }
    assert set(SPLINTER_LINTS) == splinter
    info = {"unindexed_foreign_keys", "no_primary_key", "unused_index", "rls_enabled_no_policy"}
    errors = {
        "auth_users_exposed",
        "policy_exists_rls_disabled",
        "security_definer_view",
        "rls_disabled_in_public",
        "rls_references_user_metadata",
        "insecure_queue_exposed_in_api",
        "fkey_to_auth_unique",
        "sensitive_columns_exposed",
    }
    assert {n for n, (level, _) in SPLINTER_LINTS.items() if level == "info"} == info | {
        "table_bloat"
    }
    assert {n for n, (level, _) in SPLINTER_LINTS.items() if level == "error"} == errors


def test_table_bloat_is_dead_space_beyond_a_threshold(conn: Conn) -> None:
    conn.execute(
        "create table public.readings (id int primary key, reading text);"
        " alter table public.readings enable row level security;"
        " insert into public.readings select i, repeat('x', 200) from generate_series(1, 20000) i;"
        " delete from public.readings where id % 10 <> 0; analyze public.readings;"
    )
    config = AuditConfig(bloat_min_bytes=1024 * 1024)
    finding = find(conn, "table_bloat", "public.readings", config=config)
    assert finding is not None and finding.level == "info"
    assert "of its pages" in finding.detail
    # splinter's own threshold (20 MiB of waste) is not reached by a 5 MB table.
    assert find(conn, "table_bloat", "public.readings") is None
    conn.execute("vacuum full public.readings")
    conn.execute("analyze public.readings")
    assert find(conn, "table_bloat", "public.readings", config=config) is None


def test_a_queue_without_rls_is_an_error_once_pgmq_public_is_exposed(conn: Conn) -> None:
    conn.execute(
        "create schema pgmq; create table pgmq.q_emails (msg_id bigint primary key, message jsonb);"
        " grant usage on schema pgmq to authenticated;"
        " grant select on pgmq.q_emails to authenticated;"
    )
    assert find(conn, "insecure_queue_exposed_in_api", "pgmq.q_emails") is None
    config = AuditConfig(exposed_schemas=("public", "pgmq_public"))
    finding = find(conn, "insecure_queue_exposed_in_api", "pgmq.q_emails", config=config)
    assert finding is not None and finding.level == "error"
    conn.execute("alter table pgmq.q_emails enable row level security")
    assert find(conn, "insecure_queue_exposed_in_api", "pgmq.q_emails", config=config) is None


def test_graphql_lints_name_what_each_role_can_discover(conn: Conn) -> None:
    conn.execute(NOTES_READ + " grant select on public.notes to anon, authenticated;")
    # Without pg_graphql there is no /graphql/v1 to discover anything through.
    assert find(conn, "pg_graphql_anon_table_exposed", "public.notes") is None
    config = AuditConfig(graphql=True)
    for role, lint in (
        ("anon", "pg_graphql_anon_table_exposed"),
        ("authenticated", "pg_graphql_authenticated_table_exposed"),
    ):
        finding = find(conn, lint, "public.notes", config=config)
        assert finding is not None and finding.level == "warn"
        assert finding.detail.startswith(f"{role} can select the table")
        conn.execute(finding.fix.split(";")[0])
        assert find(conn, lint, "public.notes", config=config) is None


@pytest.fixture
def superuser_conn(local_db: LocalDatabase, fresh_url: str) -> Iterator[Conn]:
    """Some bad objects only a superuser can make (foreign tables, tables in auth)."""
    dbname = fresh_url.rsplit("/", 1)[1]
    with psycopg.connect(local_db.url(dbname, user=SUPERUSER), autocommit=True) as conn:
        yield conn


def test_a_foreign_table_the_api_can_read_is_reported(superuser_conn: Conn) -> None:
    superuser_conn.execute(
        "create foreign data wrapper audit_fdw; create server audit_files foreign data"
        " wrapper audit_fdw; create foreign table public.remote_notes (id int, body text)"
        " server audit_files; grant select on public.remote_notes to anon;"
    )
    finding = find(superuser_conn, "foreign_table_in_api", "public.remote_notes")
    assert finding is not None and finding.level == "warn"
    superuser_conn.execute(finding.fix.split(";")[0])
    assert find(superuser_conn, "foreign_table_in_api", "public.remote_notes") is None


def test_a_foreign_key_to_a_unique_key_of_auth_is_an_error(superuser_conn: Conn) -> None:
    superuser_conn.execute(
        "create table auth.audit_codes (id uuid primary key, code text unique);"
        " create table public.invites (id int primary key,"
        " code text constraint invites_code_fkey references auth.audit_codes (code));"
        " alter table public.invites enable row level security;"
    )
    obj = "invites_code_fkey on public.invites"
    finding = find(superuser_conn, "fkey_to_auth_unique", obj)
    assert finding is not None and finding.level == "error"
    superuser_conn.execute(finding.fix.split(";")[0])
    assert find(superuser_conn, "fkey_to_auth_unique", obj) is None


def test_a_stricter_level_applies_and_a_laxer_one_is_refused(conn: Conn, tmp_path: Path) -> None:
    conn.execute(
        NOTES_READ + " create table public.replies (id int primary key,"
        " note_id uuid references public.notes (id));"
        " alter table public.replies enable row level security;"
    )
    obj = "replies_note_id_fkey on public.replies"
    found = find(conn, "unindexed_foreign_keys", obj)
    assert found is not None and found.level == "info"
    strict = AuditConfig(levels={"unindexed_foreign_keys": "warn"})
    found = find(conn, "unindexed_foreign_keys", obj, config=strict)
    assert found is not None and found.level == "warn"
    path = tmp_path / "audit.toml"
    path.write_text('[levels]\nsecurity_definer_view = "warn"\n')
    with pytest.raises(AuditConfigError, match="may be made stricter than error, not laxer"):
        load_audit_config(path)


def test_fixes_are_sql_that_works(conn: Conn) -> None:
    """The fix of a finding, run as written, makes the finding go away."""
    conn.execute(
        NOTES_READ + " create table public.replies (id int primary key,"
        " note_id uuid references public.notes (id)); create table public.loose (id int);"
    )
    for lint, obj in [
        ("unindexed_foreign_keys", "replies_note_id_fkey on public.replies"),
        ("rls_disabled_in_public", "public.loose"),
    ]:
        finding = find(conn, lint, obj)
        assert finding is not None
        conn.execute(finding.fix.split("; then")[0])
        assert find(conn, lint, obj) is None


def test_wrapped_calls_in_select_lists_pass_and_bare_ones_do_not(conn: Conn) -> None:
    conn.execute(NOTES)
    conn.execute(
        'create policy "Owners read notes" on public.notes for select to authenticated'
        " using ((select auth.uid()) = owner and body <> 'auth.uid()'"
        " and (select auth.jwt() ->> 'role') = 'authenticated'"
        " and owner in (select u.id from auth.users as u where u.email = auth.email()));"
    )
    finding = find(conn, "auth_rls_initplan", '"Owners read notes" on public.notes')
    assert finding is not None
    assert finding.detail == "calls auth.email() once per row instead of once per statement"
    assert finding.fix.startswith("wrap each call in a sub-select: (select auth.email())")


def test_a_restrictive_or_owner_folder_policy_lets_a_public_bucket_be(conn: Conn) -> None:
    conn.execute(
        "insert into storage.buckets (id, name, public) values ('pics', 'pics', true);"
        ' create policy "Owners list their pics" on storage.objects for select to authenticated'
        " using (bucket_id = 'pics' and owner = (select auth.uid()));"
    )
    assert find(conn, "public_bucket_allows_listing", 'bucket "pics"') is None
    # The same policy on a private bucket is no concern of this lint.
    conn.execute(
        "insert into storage.buckets (id, name, public) values ('docs', 'docs', false);"
        ' create policy "Anyone lists docs" on storage.objects for select to anon'
        " using (bucket_id = 'docs');"
    )
    assert find(conn, "public_bucket_allows_listing", 'bucket "docs"') is None


def test_a_bucket_that_cannot_be_probed_is_a_note_not_a_verdict(conn: Conn) -> None:
    conn.execute(
        "insert into storage.buckets (id, name, public) values ('pics', 'pics', true);"
        " create function public.no_uploads() returns trigger language plpgsql as"
        " $$ begin raise exception 'uploads are closed'; end $$;"
        " create trigger no_uploads before insert on storage.objects"
        " for each row execute function public.no_uploads();"
    )
    finding = find(conn, "public_bucket_allows_listing", 'bucket "pics"')
    assert finding is not None
    assert (finding.level, finding.detail) == (
        "info",
        "could not probe the bucket: uploads are closed [P0001]",
    )


def test_exposed_schemas_are_configurable(conn: Conn) -> None:
    conn.execute("create schema api; create table api.notes (id int);")
    assert find(conn, "rls_disabled_in_public", "api.notes") is None
    config = AuditConfig(exposed_schemas=("public", "api"))
    assert find(conn, "rls_disabled_in_public", "api.notes", config=config) is not None


def test_an_accepted_finding_is_info_with_its_reason(conn: Conn, tmp_path: Path) -> None:
    conn.execute(NOTES)
    (tmp_path / "audit.toml").write_text(
        '[[accept]]\nlint = "rls_enabled_no_policy"\nobject = "public.notes"\n'
        'reason = "only the nightly job (service_role) reads and writes notes"\n'
    )
    report = audit_project(conn, tmp_path)
    assert report.findings == [
        Finding(
            level="info",
            lint="rls_enabled_no_policy",
            object="public.notes",
            detail="accepted in audit.toml: only the nightly job (service_role) reads and"
            " writes notes (RLS is on but the table has no policy, so the API roles see and"
            " change nothing; fine for a table only service_role uses, if that is intended)",
            fix="write its policies in policies/<domain>.sql, or accept the finding in"
            " policies/audit.toml saying who uses the table",
        )
    ]
    assert report.ok


def test_errors_cannot_be_accepted(tmp_path: Path) -> None:
    path = tmp_path / "audit.toml"
    path.write_text(
        '[[accept]]\nlint = "rls_disabled_in_public"\nobject = "public.notes"\nreason = "x"\n'
    )
    with pytest.raises(AuditConfigError, match="rls_disabled_in_public is an error"):
        load_audit_config(path)
    path.write_text('[[accept]]\nlint = "no_such_lint"\nobject = "x"\nreason = "x"\n')
    with pytest.raises(AuditConfigError, match="unknown lint 'no_such_lint'"):
        load_audit_config(path)


# -- the shipped schema and the access matrix ------------------------------------------------


def test_the_shipped_schema_audits_clean(app_conn: Conn) -> None:
    report = audit_project(app_conn, POLICIES)
    loud = [f for f in report.findings if f.level in ("error", "warn")]
    assert loud == []
    assert report.ok
    # Every exception in audit.toml still matches something (a stale entry would hide nothing
    # but mislead the reader).
    accepted = load_audit_config(POLICIES / "audit.toml").accepted
    assert {(f.lint, f.object) for f in report.findings} >= set(accepted)


def test_a_table_missing_from_the_matrix_is_an_error(app_conn: Conn) -> None:
    app_conn.execute(NOTES_READ)
    matrix = load_matrix(POLICIES / "matrix.toml")
    finding = find(app_conn, "table_missing_from_matrix", "public.notes", matrix=matrix)
    assert finding is not None and finding.level == "error"
    read_line = CaseSpec(table="notes", op="select", allow=frozenset())
    covered = dataclasses.replace(matrix, lines=[*matrix.lines, read_line])
    assert find(app_conn, "table_missing_from_matrix", "public.notes", matrix=covered) is None
    assert (
        keys(run_audit(app_conn, matrix=covered).findings)
        & {("error", "policy_missing_from_matrix", "public.notes (select)")}
        == set()
    )

    app_conn.execute(
        'create policy "Owners add notes" on public.notes for insert to authenticated'
        " with check (owner = (select auth.uid()));"
    )
    gap = find(app_conn, "policy_missing_from_matrix", "public.notes (insert)", matrix=covered)
    assert gap is not None and gap.level == "error"
    add_line = CaseSpec(table="notes", op="insert", allow=frozenset(), values={"body": "x"})
    complete = dataclasses.replace(covered, lines=[*covered.lines, add_line])
    assert (
        find(app_conn, "policy_missing_from_matrix", "public.notes (insert)", matrix=complete)
        is None
    )


def test_a_public_function_missing_from_the_matrix_is_an_error(app_conn: Conn) -> None:
    app_conn.execute(
        "create function public.count_my_notes() returns bigint language sql"
        " set search_path = '' as 'select 1::bigint';"
        " revoke execute on function public.count_my_notes() from public, anon;"
    )
    matrix = load_matrix(POLICIES / "matrix.toml")
    finding = find(
        app_conn, "function_missing_from_matrix", "public.count_my_notes()", matrix=matrix
    )
    assert finding is not None and finding.level == "error"
    assert "[[rpc]]" in finding.fix
    line = RpcSpec("public.count_my_notes()", frozenset({"authenticated", "service_role"}))
    covered = dataclasses.replace(matrix, rpcs=[*matrix.rpcs, line])
    assert (
        find(app_conn, "function_missing_from_matrix", "public.count_my_notes()", matrix=covered)
        is None
    )


# -- the command -----------------------------------------------------------------------------


@pytest.fixture
def in_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.delenv("SUPABASE_DB_URL", raising=False)
    monkeypatch.delenv("PYSYNC_DEBUG", raising=False)


def test_audit_command_passes_on_the_shipped_schema(
    in_project: None, app_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["rls", "audit", "--db-url", app_url, "--json"])
    out = capsys.readouterr().out
    assert code == 0
    findings = json.loads(out)["findings"]
    assert {f["level"] for f in findings} <= {"info"}
    assert all(set(f) == {"level", "lint", "object", "detail", "fix"} for f in findings)


def test_audit_command_fails_and_groups_by_level(
    in_project: None, fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute(
            NOTES + " create table public.loose (id int);"
            " create schema app;"
            " create function app.touch(i int) returns int language sql as 'select i';"
        )
    code = main(["rls", "audit", "--db-url", fresh_url, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [(f["level"], f["lint"], f["object"]) for f in data["findings"]] == [
        ("error", "rls_disabled_in_public", "public.loose"),
        ("error", "table_missing_from_matrix", "public.loose"),
        ("error", "table_missing_from_matrix", "public.notes"),
        ("warn", "function_search_path_mutable", "app.touch(integer)"),
        ("info", "no_primary_key", "public.loose"),
        ("info", "rls_enabled_no_policy", "public.notes"),
    ]
    code = main(["rls", "audit", "--db-url", fresh_url])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[0] == "errors (3)"
    assert lines[1].startswith("  rls_disabled_in_public public.loose: row level security")
    assert "warnings (1)" in lines
    assert lines[-1] == "audit: 3 errors, 1 warning, 2 info"


# -- reading deparsed expressions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "bare"),
    [
        ("(owner = ( SELECT auth.uid() AS uid))", []),
        ("(owner = auth.uid())", ["auth.uid()"]),
        ("((( SELECT auth.uid() AS uid))::text = 'auth.uid()'::text)", []),
        ('("auth.uid()" = ( SELECT auth.uid() AS uid))', []),
        ("(( SELECT (auth.jwt() ->> 'role'::text)) = 'admin'::text)", []),
        ("((auth.jwt() ->> 'role'::text) = 'admin'::text)", ["auth.jwt()"]),
        (
            "(owner IN ( SELECT u.id FROM auth.users u WHERE (u.email = auth.email())))",
            ["auth.email()"],
        ),
        ("(auth.role() = 'anon'::text)", ["auth.role()"]),
        ("(x = current_setting('app.x'::text, true))", ["current_setting()"]),
        ("(( SELECT private.is_admin() AS is_admin) OR (uid = 1))", []),
        (None, []),
    ],
)
def test_bare_calls_are_judged_one_by_one(expression: str | None, bare: list[str]) -> None:
    assert bare_calls(expression) == bare


@pytest.mark.parametrize(
    ("expression", "always"),
    [("true", True), ("(1 = 1)", True), ("(owner = 1)", False), (None, False), ("false", False)],
)
def test_always_true_expressions(expression: str | None, always: bool) -> None:
    assert is_always_true(expression) is always
