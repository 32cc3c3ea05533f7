-- The audit log (who changed what on sensitive tables) and product analytics events: two
-- append-only tables partitioned by month, kept for different lengths of time, with the
-- function that creates next months' partitions and drops expired ones.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

-- Not a synced table: clients never pull it, so no version or sync_xid, and the id is the
-- server's. The primary key includes the partition key, as partitioning requires.
create table public.audit_log (
    id bigint generated always as identity,
    at timestamptz not null default now(),
    actor uuid,
    actor_role text not null check (char_length(actor_role) between 1 and 63),
    actor_app_role text check (actor_app_role in ('student', 'tutor', 'admin')),
    action text not null check (action in ('insert', 'update', 'delete')),
    table_name text not null check (char_length(table_name) between 1 and 127),
    row_id uuid,
    old_data jsonb,
    new_data jsonb,
    primary key (id, at)
) partition by range (at);
comment on table public.audit_log is
'Append-only record of changes to sensitive rows; written by triggers, read by admins.';
comment on column public.audit_log.actor is 'auth.uid() of the request, null for the platform.';
comment on column public.audit_log.actor_role is
'Database role of the request (anon, authenticated, service_role, postgres, ...).';
comment on column public.audit_log.actor_app_role is 'Application role of the actor at the time.';

create index audit_log_row_idx on public.audit_log (table_name, row_id, at);
create index audit_log_actor_idx on public.audit_log (actor, at);

-- Client-generated ids let an offline client retry an upload without double counting.
create table public.analytics_events (
    id uuid not null default gen_random_uuid(),
    user_id uuid not null references public.profiles (id) on delete cascade,
    platform text not null check (platform in ('web', 'ios', 'android')),
    app_version text not null check (app_version ~ '^[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}$'),
    name text not null check (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    properties jsonb not null default '{}'::jsonb
    check (jsonb_typeof(properties) = 'object' and pg_column_size(properties) <= 8192),
    at timestamptz not null default now(),
    primary key (id, at)
) partition by range (at);
comment on table public.analytics_events is
'Product analytics: users insert their own events; admins read them.';

create index analytics_events_user_id_idx on public.analytics_events (user_id, at);
create index analytics_events_name_idx on public.analytics_events (name, at);

alter table public.audit_log enable row level security;
alter table public.analytics_events enable row level security;

-- The audit log is written by triggers only and changed by nobody; analytics events are
-- only inserted (by users, and by server jobs as service_role). service_role may read both
-- (exports, jobs), never change them.
revoke all on public.audit_log, public.analytics_events from anon, authenticated, service_role;
grant select on public.audit_log to authenticated, service_role;
grant select on public.analytics_events to authenticated, service_role;
grant insert (id, user_id, platform, app_version, name, properties, at)
on public.analytics_events to authenticated, service_role;

-- How long each partitioned table keeps its data and how far ahead partitions are made.
-- The audit log is evidence (payments, grades, roles): years. Analytics: a bit over a year,
-- for year-on-year comparison.
create table private.partition_settings (
    table_name text primary key check (table_name in ('public.audit_log', 'public.analytics_events')),
    retention_months integer not null check (retention_months between 1 and 1200),
    premake_months integer not null check (premake_months between 1 and 24)
);
comment on table private.partition_settings is 'Retention and look-ahead of monthly partitions.';

insert into private.partition_settings (table_name, retention_months, premake_months)
values ('public.audit_log', 84, 3), ('public.analytics_events', 13, 3);

-- A default partition catches rows no monthly partition covers, so a write never fails
-- because maintenance did not run (an audit insert failing would fail the payment or the
-- grade it records). private.maintain_partitions() moves such rows into their monthly
-- partitions and keeps the default empty.
create table private.audit_log_default partition of public.audit_log default;
create table private.analytics_events_default partition of public.analytics_events default;

/*
 * ---------------------------------------------------------------------------
 * Triggers
 * ---------------------------------------------------------------------------
 */

-- One audit writer for every audited table. Trigger arguments, when given, name the columns
-- worth keeping (a submission's grade, not its 200 kB answer); the id is always kept.
-- Security definer: the API roles cannot insert into the log themselves. The actor's
-- database role is read from the `role` setting, which the definer switch leaves alone.
create function private.audit_row_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    old_row jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
    new_row jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
begin
    if tg_nargs > 0 then
        old_row := (
            select jsonb_object_agg(e.key, e.value) from jsonb_each(old_row) as e
            where e.key = 'id' or e.key = any(tg_argv)
        );
        new_row := (
            select jsonb_object_agg(e.key, e.value) from jsonb_each(new_row) as e
            where e.key = 'id' or e.key = any(tg_argv)
        );
    end if;
    insert into public.audit_log (
        actor, actor_role, actor_app_role, action, table_name, row_id, old_data, new_data
    )
    values (
        (select auth.uid()),
        coalesce(nullif(current_setting('role', true), 'none'), session_user),
        (select private.current_app_role()),
        lower(tg_op),
        tg_table_schema || '.' || tg_table_name,
        coalesce(new_row ->> 'id', old_row ->> 'id')::uuid,
        old_row,
        new_row
    );
    return null;
end
$$;
revoke all on function private.audit_row_change() from public;

create trigger audit_role_change after update of role, deleted_at on public.profiles
for each row
when (old.role is distinct from new.role or old.deleted_at is distinct from new.deleted_at)
execute function private.audit_row_change();
create trigger audit_delete after delete on public.profiles
for each row execute function private.audit_row_change();

create trigger audit_change after insert or update or delete on public.payments
for each row execute function private.audit_row_change();
create trigger audit_change after insert or update or delete on public.refunds
for each row execute function private.audit_row_change();
create trigger audit_change after insert or update or delete on public.disputes
for each row execute function private.audit_row_change();

create trigger audit_change after insert or update or delete on public.enrollments
for each row execute function private.audit_row_change();

create trigger audit_grade after insert on public.submissions
for each row when (new.grade is not null or new.status = 'graded')
execute function private.audit_row_change(
    'assignment_id', 'student_id', 'status', 'grade', 'graded_by', 'graded_at'
);
create trigger audit_grade_change after update of grade, status on public.submissions
for each row when (
    old.grade is distinct from new.grade
    or (new.status = 'graded' and old.status is distinct from 'graded')
)
execute function private.audit_row_change(
    'assignment_id', 'student_id', 'status', 'grade', 'graded_by', 'graded_at'
);

-- The log is append-only for everyone, the table owner included; old months leave only by
-- dropping their partition (private.maintain_partitions()).
create function private.refuse_audit_change()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    perform private.deny('the audit log is append-only');
    return null;
end
$$;
revoke all on function private.refuse_audit_change() from public;

create trigger refuse_audit_change before update or delete on public.audit_log
for each row execute function private.refuse_audit_change();

-- Clients send the time an event happened (offline events arrive late), within reason: not
-- in the future beyond clock skew, not older than the table keeps.
create function private.guard_analytics_event()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if (select private.is_platform()) then
        return new;
    end if;
    if new.at > now() + interval '1 hour' or new.at < now() - interval '90 days' then
        raise exception using
            errcode = '23514',
            message = 'an event''s time must lie within the last 90 days';
    end if;
    return new;
end
$$;
revoke all on function private.guard_analytics_event() from public;

create trigger guard_analytics_event before insert on public.analytics_events
for each row execute function private.guard_analytics_event();

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

-- Monthly partitions live in `private`, outside the API: clients reach rows only through
-- the parent table and its policies. Months are UTC months.
create function private.monthly_partition_name(parent text, month_start timestamptz)
returns text
language sql
immutable
set search_path = ''
as $$
    select split_part(parent, '.', 2) || to_char(month_start at time zone 'UTC', '"_y"YYYY"m"MM')
$$;
revoke all on function private.monthly_partition_name(text, timestamptz) from public;

-- Makes sure each table has partitions for the month of `as_of` and the next
-- premake_months; moves rows out of the default partition into monthly ones; drops monthly
-- partitions whose whole month is older than retention_months (rows in the default
-- partition that old are dropped with them). Returns what it did. Re-runnable.
-- Takes `as_of` so tests can cross month boundaries; only the table owner can run it with
-- another time (the API's public.maintain_partitions() always uses now()).
create function private.maintain_partitions(as_of timestamptz default now())
returns table (action text, partition_name text)
language plpgsql
set search_path = ''
as $$
declare
    setting record;
    this_month timestamptz := date_trunc('month', as_of, 'UTC');
    cutoff timestamptz;
    month_start timestamptz;
    default_name text;
    default_has_rows boolean;
    part record;
begin
    for setting in select s.* from private.partition_settings as s order by s.table_name loop
        cutoff := this_month - make_interval(months => setting.retention_months);
        default_name := split_part(setting.table_name, '.', 2) || '_default';

        -- 1. Rows that landed in the default partition: detach it, give their months
        --    partitions, move them there, drop the expired rest, attach it again (empty).
        execute format('select exists (select 1 from private.%I)', default_name)
        into default_has_rows;
        if default_has_rows then
            execute format('alter table %s detach partition private.%I', setting.table_name, default_name);
            for month_start in execute format(
                'select distinct date_trunc(''month'', at, ''UTC'') from private.%I where at >= $1',
                default_name
            ) using cutoff loop
                if private.create_monthly_partition(setting.table_name, month_start) then
                    action := 'created';
                    partition_name := 'private.'
                    || private.monthly_partition_name(setting.table_name, month_start);
                    return next;
                end if;
            end loop;
            execute format(
                'insert into %s overriding system value select * from private.%I where at >= $1',
                setting.table_name, default_name
            ) using cutoff;
            execute format('truncate private.%I', default_name);
            execute format('alter table %s attach partition private.%I default', setting.table_name, default_name);
            action := 'emptied';
            partition_name := 'private.' || default_name;
            return next;
        end if;

        -- 2. This month and the next ones.
        for month_start in
            select this_month + make_interval(months => g)
            from generate_series(0, setting.premake_months) as g
        loop
            if private.create_monthly_partition(setting.table_name, month_start) then
                action := 'created';
                partition_name := 'private.'
                || private.monthly_partition_name(setting.table_name, month_start);
                return next;
            end if;
        end loop;

        -- 3. Expired months. Only partitions this function names are ever dropped.
        for part in
            select c.relname,
                to_timestamp(substring(c.relname from '_y([0-9]{4})m[0-9]{2}$') || '-'
                    || substring(c.relname from '_y[0-9]{4}m([0-9]{2})$') || '-01 00:00:00+00',
                    'YYYY-MM-DD HH24:MI:SS') as month_start
            from pg_catalog.pg_inherits as i
            join pg_catalog.pg_class as c on c.oid = i.inhrelid
            join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
            where i.inhparent = setting.table_name::regclass
              and n.nspname = 'private'
              and c.relname ~ ('^' || split_part(setting.table_name, '.', 2) || '_y[0-9]{4}m[0-9]{2}$')
        loop
            if part.month_start + interval '1 month' <= cutoff then
                execute format('drop table private.%I', part.relname);
                action := 'dropped';
                partition_name := 'private.' || part.relname;
                return next;
            end if;
        end loop;
    end loop;
end
$$;
revoke all on function private.maintain_partitions(timestamptz) from public;

-- Creates the month's partition unless it exists; true when it created one.
create function private.create_monthly_partition(parent text, month_start timestamptz)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
    partition_table text := private.monthly_partition_name(parent, month_start);
begin
    if to_regclass('private.' || partition_table) is not null then
        return false;
    end if;
    execute format(
        'create table private.%I partition of %s for values from (%L) to (%L)',
        partition_table, parent, month_start, month_start + interval '1 month'
    );
    return true;
end
$$;
revoke all on function private.create_monthly_partition(text, timestamptz) from public;

/*
 * ---------------------------------------------------------------------------
 * Public API functions
 * ---------------------------------------------------------------------------
 */

-- For the platform's scheduler (pg_cron or a service_role job), daily: never with a time
-- of the caller's choosing, so a leaked service key cannot drop months of data early.
create function public.maintain_partitions()
returns table (action text, partition_name text)
language sql
security definer
set search_path = ''
as $$
    select m.action, m.partition_name from private.maintain_partitions(now()) as m
$$;
revoke all on function public.maintain_partitions() from public, anon, authenticated;
grant execute on function public.maintain_partitions() to service_role;
comment on function public.maintain_partitions() is
'Creates next months'' partitions of audit_log and analytics_events and drops expired ones.';

-- The current month and the next ones exist from the start.
select private.maintain_partitions();
