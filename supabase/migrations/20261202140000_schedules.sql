-- Scheduled housekeeping, run by pg_cron as Supabase schedules jobs (Integrations > Cron):
--   pysync-maintain-partitions  daily 03:15 UTC  public.maintain_partitions(): next months'
--                               partitions of audit_log and analytics_events, expired ones go
--   pysync-sync-prune           daily 03:45 UTC  public.sync_prune(): tombstones and stored
--                               push results older than private.sync_settings' horizons
--
-- Every Supabase project's server has pg_cron (preloaded, cron.database_name = 'postgres'), so
-- there this creates the extension in pg_catalog (Supabase's install step) and the jobs. A
-- server without it, or a database that is not pg_cron's, schedules nothing and says why:
-- the migration still applies. Enabling pg_cron later, run `select private.schedule_jobs();`
-- as postgres. cron.schedule(name, ...) replaces a job of the same name, so that is
-- re-runnable (and it resumes paused jobs). Jobs run as the role that scheduled them
-- (postgres, owner of both functions).

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

create function private.schedule_jobs()
returns text
language plpgsql
set search_path = ''
as $$
begin
    if not exists (select from pg_catalog.pg_extension where extname = 'pg_cron') then
        if not exists (select from pg_catalog.pg_available_extensions where name = 'pg_cron') then
            return 'pg_cron is not installed on this server: nothing scheduled';
        end if;
        begin
            create extension pg_cron with schema pg_catalog;
        exception
            -- How a server that has pg_cron refuses it here: a role that may not create it
            -- (42501); not preloaded, so cron.database_name is unknown (42704) or, when set
            -- anyway, the library refuses to load late (XX000); or a database other than
            -- cron.database_name (P0001). The last three are raised by pg_cron itself.
            when insufficient_privilege or undefined_object or internal_error or raise_exception then
                return 'pg_cron cannot be enabled in this database (' || sqlerrm || '): nothing scheduled';
        end;
    end if;
    perform cron.schedule(
        'pysync-maintain-partitions', '15 3 * * *', 'select public.maintain_partitions()'
    );
    perform cron.schedule('pysync-sync-prune', '45 3 * * *', 'select public.sync_prune()');
    -- cron.schedule leaves a paused job paused: this function is the one fix for them all.
    update cron.job set active = true
    where jobname in ('pysync-maintain-partitions', 'pysync-sync-prune')
        and username = current_user
        and not active;
    return 'scheduled pysync-maintain-partitions and pysync-sync-prune';
end
$$;
revoke all on function private.schedule_jobs() from public;
comment on function private.schedule_jobs() is
'Creates pg_cron (when the server has it) and schedules the housekeeping jobs; re-runnable.';

select private.schedule_jobs();
