-- Supabase's cluster roles, with the attributes and settings a hosted project has.
-- Local emulation only: applied by pysync.localdb to the embedded cluster, never pushed.
-- Idempotent: roles are cluster-wide, so this runs on every start.

do $roles$
declare
    wanted text[] := array[
        'anon', 'authenticated', 'service_role', 'authenticator', 'postgres',
        'supabase_auth_admin', 'supabase_storage_admin', 'supabase_realtime_admin',
        'supabase_replication_admin', 'dashboard_user'
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

-- API roles: never log in themselves; PostgREST switches to them from authenticator.
alter role anon nosuperuser nocreatedb nocreaterole noinherit nologin noreplication nobypassrls;
alter role authenticated nosuperuser nocreatedb nocreaterole noinherit nologin noreplication nobypassrls;
alter role service_role nosuperuser nocreatedb nocreaterole noinherit nologin noreplication bypassrls;
alter role authenticator nosuperuser nocreatedb nocreaterole noinherit login noreplication nobypassrls;

alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';
alter role authenticator set lock_timeout = '8s';

grant anon, authenticated, service_role to authenticator;

-- `postgres` is demoted on Supabase: no superuser, but may create databases and roles,
-- replicate and bypass RLS; it owns the application schema and may act as the API roles.
alter role postgres nosuperuser createdb createrole login replication bypassrls;
alter role postgres set search_path = "$user", public, extensions;
grant anon, authenticated, service_role to postgres;

-- Service owners of the auth, storage and realtime schemas.
alter role supabase_auth_admin nosuperuser nocreatedb createrole noinherit login noreplication;
alter role supabase_auth_admin set search_path = auth;
alter role supabase_auth_admin set idle_in_transaction_session_timeout = 60000;
alter role supabase_storage_admin nosuperuser nocreatedb createrole noinherit login noreplication;
alter role supabase_storage_admin set search_path = storage;
alter role supabase_realtime_admin nosuperuser nocreatedb nocreaterole noinherit nologin noreplication;
alter role supabase_replication_admin nosuperuser nocreatedb nocreaterole inherit login replication;
alter role dashboard_user nosuperuser createdb createrole inherit nologin replication;

-- Migrations run as postgres create policies on storage.objects and realtime.messages, which
-- Supabase's service roles own: postgres is a member of those owners, as on hosted projects.
grant supabase_storage_admin, supabase_realtime_admin to postgres;

-- Bulk loads (`pysync seed perf`, data-only restores) run with session_replication_role =
-- replica, as `supabase db dump --data-only` output does; hosted projects let postgres set it.
grant set on parameter session_replication_role to postgres;
