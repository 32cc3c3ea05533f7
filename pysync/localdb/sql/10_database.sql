-- The database side of a Supabase project: schemas, grants and default privileges.
-- Local emulation only: applied once per fresh database by pysync.localdb, never pushed.
-- Runs as the bootstrap superuser (supabase_admin), like Supabase's own image set-up.

create schema if not exists pysync_local;
comment on schema pysync_local is 'Local emulation bookkeeping; does not exist on Supabase.';
create table if not exists pysync_local.emulation (
    version text primary key,
    applied_at timestamptz not null default now()
);
comment on table pysync_local.emulation is
'The emulation version this database was built from (pysync.localdb.emulation.EMULATION_VERSION).';

-- Extensions live in their own schema, on every role's search path. postgres owns it, so a
-- migration may create extensions and objects there; what supabase_admin installs there is
-- granted to postgres with grant option, as on a hosted project.
create schema if not exists extensions;
alter schema extensions owner to postgres;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;
-- Every `supabase db dump` starts with `create extension if not exists pg_stat_statements
-- with schema extensions`: it must be there already (postgres may not create it itself).
do $pg_stat_statements$
begin
    if exists (select from pg_catalog.pg_available_extensions where name = 'pg_stat_statements') then
        create extension if not exists pg_stat_statements with schema extensions;
    end if;
end
$pg_stat_statements$;
grant all on all tables in schema extensions to postgres with grant option;
grant all on all routines in schema extensions to postgres with grant option;
grant all on all sequences in schema extensions to postgres with grant option;
alter default privileges in schema extensions grant all on tables to postgres with grant option;
alter default privileges in schema extensions grant all on routines to postgres with grant option;
alter default privileges in schema extensions grant all on sequences to postgres with grant option;

-- public: owned by the database owner (postgres); the API roles may use it, and every
-- table, function and sequence created there is granted to them, so RLS is the only guard.
grant usage on schema public to postgres, anon, authenticated, service_role;
grant all on schema public to postgres;

alter default privileges in schema public grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to anon, authenticated, service_role;

-- graphql_public exists on every project and is exposed by PostgREST's default config.
create schema if not exists graphql_public;
grant usage on schema graphql_public to postgres, anon, authenticated, service_role;
alter default privileges in schema graphql_public grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges in schema graphql_public grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges in schema graphql_public grant all on sequences to postgres, anon, authenticated, service_role;

-- The publication Realtime's postgres_changes listens to; postgres adds tables to it.
do $pub$
begin
    if not exists (select from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
        create publication supabase_realtime;
    end if;
end
$pub$;
alter publication supabase_realtime owner to postgres;
