-- Foundation: the private schema for helpers, and the bookkeeping every synced table shares.
--
-- Sections, in the order every migration of this project follows:
-- schemas, types, tables, triggers, private helper functions, policies, public API functions.

-- Never queue behind a long-running query on a live project: fail fast and retry instead.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Schemas
 * ---------------------------------------------------------------------------
 */

-- Helpers that policies and triggers call live here, out of the API's reach: PostgREST
-- exposes public (and graphql_public) only.
create schema if not exists private;
revoke all on schema private from public;
grant usage on schema private to anon, authenticated, service_role;

-- New functions are no longer executable by PUBLIC: private helpers are granted next to their
-- definition. (Functions in public still reach the API roles through Supabase's default grants.)
alter default privileges for role postgres revoke execute on functions from public;

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

-- Row bookkeeping for synced tables, as a BEFORE INSERT OR UPDATE trigger:
--   version     1 on insert, +1 on every update (optimistic locking and sync),
--   created_at  kept from the insert (a client may supply it; an update cannot move it),
--   updated_at  the time of the write,
--   sync_xid    the writing transaction's id: incremental sync reads rows written since a
--               snapshot watermark, so a transaction that commits late is never skipped.
create or replace function private.stamp_synced_row()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if tg_op = 'INSERT' then
        new.version := 1;
        new.created_at := coalesce(new.created_at, now());
    else
        new.version := old.version + 1;
        new.created_at := old.created_at;
    end if;
    new.updated_at := now();
    new.sync_xid := pg_catalog.pg_current_xact_id();
    return new;
end
$$;

comment on function private.stamp_synced_row() is
'Trigger: bumps version, keeps created_at, sets updated_at and sync_xid on every write.';

-- Policy files (policies/*.sql) start with this, so each file is the whole truth about its
-- tables' policies: a policy renamed or removed there disappears here on the next push.
create or replace function private.drop_policies(target regclass)
returns void
language plpgsql
set search_path = ''
as $$
declare
    policy_name name;
begin
    for policy_name in
        select p.polname from pg_catalog.pg_policy as p where p.polrelid = target
    loop
        execute format('drop policy %I on %s', policy_name, target);
    end loop;
end
$$;

comment on function private.drop_policies(regclass) is
'Drops every policy on a table; policy files call it before re-creating their policies.';
