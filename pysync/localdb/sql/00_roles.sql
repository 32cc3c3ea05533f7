-- Supabase's cluster roles, with the attributes, settings and memberships a hosted project
-- has (supabase/postgres image scripts and migrations, as of 2025-2026).
-- Local emulation only: applied by pysync.localdb to the embedded cluster, never pushed.
-- Idempotent: roles are cluster-wide, so this runs on every start, which also upgrades a
-- cluster set up by an older emulation (memberships it granted are revoked below).

do $roles$
declare
    wanted text[] := array[
        'anon', 'authenticated', 'service_role', 'authenticator', 'postgres',
        'supabase_auth_admin', 'supabase_storage_admin', 'supabase_realtime_admin',
        'supabase_replication_admin', 'supabase_read_only_user', 'supabase_functions_admin',
        'pgbouncer', 'dashboard_user'
    ];
    role_name text;
begin
    foreach role_name in array wanted loop
        if not exists (select from pg_catalog.pg_roles where rolname = role_name) then
            execute format('create role %I', role_name);
        end if;
    end loop;
end
$roles$;

-- API roles: never log in themselves; PostgREST switches to them from authenticator. Since
-- 2023 they INHERIT, so privileges granted through a custom group role reach them.
alter role anon nosuperuser nocreatedb nocreaterole inherit nologin noreplication nobypassrls;
alter role authenticated nosuperuser nocreatedb nocreaterole inherit nologin noreplication nobypassrls;
alter role service_role nosuperuser nocreatedb nocreaterole inherit nologin noreplication bypassrls;
alter role authenticator nosuperuser nocreatedb nocreaterole noinherit login noreplication nobypassrls;

alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';
alter role authenticator set lock_timeout = '8s';

grant anon, authenticated, service_role to authenticator;

-- `postgres` is demoted on Supabase: no superuser, but may create databases and roles,
-- replicate and bypass RLS; it owns the application schema, may act as the API roles, and
-- holds the predefined roles Supabase grants it (reading everything, signalling backends,
-- monitoring).
alter role postgres nosuperuser createdb createrole inherit login replication bypassrls;
alter role postgres set search_path = "$user", public, extensions;
grant anon, authenticated, service_role to postgres;
grant pg_read_all_data, pg_signal_backend, pg_monitor to postgres;

-- Service owners of the auth, storage and realtime objects.
alter role supabase_auth_admin nosuperuser nocreatedb createrole noinherit login noreplication;
alter role supabase_auth_admin set search_path = auth;
alter role supabase_auth_admin set idle_in_transaction_session_timeout = 60000;
alter role supabase_storage_admin nosuperuser nocreatedb createrole noinherit login noreplication;
alter role supabase_storage_admin set search_path = storage;
alter role supabase_realtime_admin nosuperuser nocreatedb nocreaterole noinherit nologin noreplication;
alter role supabase_replication_admin nosuperuser nocreatedb nocreaterole inherit login replication;
alter role supabase_functions_admin nosuperuser nocreatedb createrole noinherit login noreplication;
alter role supabase_read_only_user nosuperuser nocreatedb nocreaterole inherit login noreplication bypassrls;
alter role supabase_read_only_user set default_transaction_read_only = on;
alter role pgbouncer nosuperuser nocreatedb nocreaterole inherit login noreplication nobypassrls;
alter role dashboard_user nosuperuser createdb createrole inherit nologin replication;

grant pg_read_all_data to supabase_read_only_user;
-- The Storage server logs in as supabase_storage_admin and switches to the API roles
-- through authenticator.
grant authenticator to supabase_storage_admin;

-- Supabase revoked postgres's membership in the storage (2025) and realtime (2026) owners,
-- and never granted the auth owner: postgres manages policies on their tables through
-- supautils' policy grants (emulated per database, see 15_policy_grants.sql), and any
-- other DDL on them fails with "must be owner". A cluster from an older emulation had
-- these memberships; they are taken back here.
do $revoke$
declare
    owner_role text;
begin
    foreach owner_role in array array[
        'supabase_auth_admin', 'supabase_storage_admin', 'supabase_realtime_admin'
    ] loop
        if exists (
            select from pg_catalog.pg_auth_members as m
            where m.roleid = owner_role::regrole and m.member = 'postgres'::regrole
        ) then
            execute format('revoke %I from postgres', owner_role);
        end if;
    end loop;
end
$revoke$;

-- Bulk loads (`pysync seed perf`, data-only restores) run with session_replication_role =
-- replica, as `supabase db dump --data-only` output does; hosted projects let postgres set it.
grant set on parameter session_replication_role to postgres;
