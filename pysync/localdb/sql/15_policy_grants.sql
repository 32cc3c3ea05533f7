-- supautils' policy grants and drop-trigger grants, emulated in plain PostgreSQL.
--
-- On a hosted project postgres owns none of auth's, storage's or realtime's tables and is no
-- member of their owners, yet it may CREATE, ALTER and DROP POLICY on the tables listed in
-- supautils.policy_grants, and DROP TRIGGER on those in supautils.drop_trigger_grants: the
-- supautils hook runs exactly those statements with the owner's rights. Everything else
-- (ENABLE ROW LEVEL SECURITY, CREATE INDEX, COMMENT, ADD COLUMN, ...) fails with "must be
-- owner".
--
-- Plain PostgreSQL has no utility hook, so event triggers do the same for those statements
-- only: before the statement, the granted role is made a member of the listed tables' owners;
-- after it, the membership is taken back and the statement's table is checked against the
-- list (a statement on any other table of those owners fails with "must be owner", as it
-- would there). The membership is transactional: a failing statement rolls it back with
-- everything else. It lives for that one statement only.

create table pysync_local.policy_grants (
    grantee name not null,
    table_name text not null,
    primary key (grantee, table_name)
);
comment on table pysync_local.policy_grants is
'supautils.policy_grants and drop_trigger_grants of a hosted project (the same list for both).';

-- The list: supabase/postgres' supautils.conf names the five storage tables, realtime's and
-- five of auth's; current projects list 23 tables, which is those plus every GoTrue table
-- that GoTrue put row level security on and granted postgres SELECT with grant option (2024),
-- and realtime.subscription (realtime's 2026 migration checks for it).
insert into pysync_local.policy_grants (grantee, table_name)
select 'postgres', t
from unnest(array[
    'auth.audit_log_entries', 'auth.flow_state', 'auth.identities', 'auth.instances',
    'auth.mfa_amr_claims', 'auth.mfa_challenges', 'auth.mfa_factors', 'auth.one_time_tokens',
    'auth.refresh_tokens', 'auth.saml_providers', 'auth.saml_relay_states',
    'auth.schema_migrations', 'auth.sessions', 'auth.sso_domains', 'auth.sso_providers',
    'auth.users', 'realtime.messages', 'realtime.subscription', 'storage.buckets',
    'storage.migrations', 'storage.objects', 'storage.s3_multipart_uploads',
    'storage.s3_multipart_uploads_parts'
]) as t;

-- Is `relation` one the caller may manage policies or drop triggers on through the grants?
create function pysync_local.policy_granted(caller name, relation oid) returns boolean
language sql stable
set search_path = ''
as $$
    select exists (
        select from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        join pysync_local.policy_grants as g
            on g.table_name = n.nspname || '.' || c.relname and g.grantee = caller
        where c.oid = relation
    )
$$;

-- 1. Who runs the statement: an invoker function sees the caller's role, a definer cannot.
-- Event triggers fire in name order, so this one always runs right before the next.
create function pysync_local.policy_grants_note_caller() returns event_trigger
language plpgsql
set search_path = ''
as $$
begin
    perform pg_catalog.set_config('pysync_local.policy_grant_caller', current_user, true);
end
$$;

-- 2. Lend the caller the owners of the granted tables, for this statement.
create function pysync_local.policy_grants_lend() returns event_trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    caller name := nullif(pg_catalog.current_setting('pysync_local.policy_grant_caller', true), '');
    owner_role name;
    lent text[] := '{}';
begin
    if caller is null or not exists (select from pysync_local.policy_grants where grantee = caller) then
        perform pg_catalog.set_config('pysync_local.policy_grant_lent', '', true);
        return;
    end if;
    for owner_role in
        select distinct pg_catalog.pg_get_userbyid(c.relowner)
        from pysync_local.policy_grants as g
        join pg_catalog.pg_class as c on c.oid = pg_catalog.to_regclass(g.table_name)
        where g.grantee = caller
    loop
        if not pg_catalog.pg_has_role(caller, owner_role, 'USAGE') then
            execute format('grant %I to %I', owner_role, caller);
            lent := lent || owner_role::text;
        end if;
    end loop;
    perform pg_catalog.set_config('pysync_local.policy_grant_lent', pg_catalog.array_to_string(lent, ','), true);
end
$$;

-- Refuses a statement on a table the grants do not cover, when only the lent membership
-- made it pass PostgreSQL's ownership check.
create function pysync_local.policy_grants_check(relation oid) returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
    caller name := nullif(pg_catalog.current_setting('pysync_local.policy_grant_caller', true), '');
    lent text[] := pg_catalog.string_to_array(
        nullif(pg_catalog.current_setting('pysync_local.policy_grant_lent', true), ''), ','
    );
    owner_role text;
begin
    if caller is null or lent is null then
        return;
    end if;
    select pg_catalog.pg_get_userbyid(c.relowner) into owner_role
    from pg_catalog.pg_class as c where c.oid = relation;
    if owner_role = any(lent) and not pysync_local.policy_granted(caller, relation) then
        raise exception 'must be owner of table %', (select c.relname from pg_catalog.pg_class as c where c.oid = relation)
            using errcode = '42501';
    end if;
end
$$;
revoke all on function pysync_local.policy_grants_check(oid) from public;

-- 3. DROP POLICY / DROP TRIGGER: the dropped object's table must be granted.
create function pysync_local.policy_grants_check_drop() returns event_trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    dropped record;
begin
    for dropped in
        select d.address_names from pg_catalog.pg_event_trigger_dropped_objects() as d
        where d.object_type in ('policy', 'trigger') and d.original
    loop
        perform pysync_local.policy_grants_check(
            pg_catalog.to_regclass(
                pg_catalog.format('%I.%I', dropped.address_names[1], dropped.address_names[2])
            )
        );
    end loop;
end
$$;

-- 4. CREATE / ALTER POLICY: check the policy's table, then take the membership back.
create function pysync_local.policy_grants_return() returns event_trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    caller name := nullif(pg_catalog.current_setting('pysync_local.policy_grant_caller', true), '');
    lent text[] := pg_catalog.string_to_array(
        nullif(pg_catalog.current_setting('pysync_local.policy_grant_lent', true), ''), ','
    );
    relation oid;
    owner_role text;
begin
    if caller is null or lent is null then
        return;
    end if;
    for relation in
        select p.polrelid
        from pg_catalog.pg_event_trigger_ddl_commands() as cmd
        join pg_catalog.pg_policy as p on p.oid = cmd.objid
        where cmd.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass
    loop
        perform pysync_local.policy_grants_check(relation);
    end loop;
    foreach owner_role in array lent loop
        execute format('revoke %I from %I', owner_role, caller);
    end loop;
    perform pg_catalog.set_config('pysync_local.policy_grant_lent', '', true);
    perform pg_catalog.set_config('pysync_local.policy_grant_caller', '', true);
end
$$;

create event trigger pysync_local_policy_grants_1_caller on ddl_command_start
when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY', 'DROP TRIGGER')
execute function pysync_local.policy_grants_note_caller();

create event trigger pysync_local_policy_grants_2_lend on ddl_command_start
when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY', 'DROP TRIGGER')
execute function pysync_local.policy_grants_lend();

create event trigger pysync_local_policy_grants_3_check_drop on sql_drop
when tag in ('DROP POLICY', 'DROP TRIGGER')
execute function pysync_local.policy_grants_check_drop();

create event trigger pysync_local_policy_grants_4_return on ddl_command_end
when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY', 'DROP TRIGGER')
execute function pysync_local.policy_grants_return();

-- supautils acts whatever session_replication_role says (bulk loads run as replica).
alter event trigger pysync_local_policy_grants_1_caller enable always;
alter event trigger pysync_local_policy_grants_2_lend enable always;
alter event trigger pysync_local_policy_grants_3_check_drop enable always;
alter event trigger pysync_local_policy_grants_4_return enable always;
