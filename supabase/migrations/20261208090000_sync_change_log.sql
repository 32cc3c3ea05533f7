-- Sync pulls: the change check reads one log instead of every synced table (issue 10:
-- no-change pull, apply one change, capacity).
--
-- A pull asks, for every bucket the caller holds, whether anything in it changed since the
-- bucket's cursor. private.sync_changed_buckets answered by probing each bucket's own table
-- (its (bucket, sync_xid) index) and private.sync_tombstones: one statement with a subplan per
-- synced table, two index probes per bucket, and a lock on every synced table and its index in
-- every pull, whether or not the caller held a bucket of it.
--
-- Every write to a synced table already passes through private.sync_nudge, once per bucket per
-- transaction (to broadcast the nudge). It now also appends (table, bucket, transaction) to
-- private.sync_bucket_changes. The change check becomes one index probe per bucket into that
-- one log, which covers deletes and moves too (their old buckets are nudged).
--
-- The log is an accelerator with a horizon, never the source of truth:
-- * sync_settings.change_log_pruned is the newest transaction whose log entries may be gone:
--   the transactions before this migration (which wrote no entries) and, after each
--   sync_prune(), the newest entry it deleted. A cursor whose xmin is at or below it may have
--   missed an entry, so its bucket is reported changed, and the pull serves the bucket's changes
--   since the cursor from the tables themselves (as it always has): perhaps none, with a new
--   cursor that the log can answer for. The cost of a stale cursor is one pull that reads a
--   little more, never a missed change.
-- * So the log is kept for a short while (change_log_horizon, a day), while tombstones, which
--   are the truth about deletes, keep their 30 days.
-- * The migration takes SHARE locks on every synced table before it fixes the horizon: a
--   transaction still running the old sync_nudge (which logs nothing) cannot write a synced
--   table until this migration has committed, so every transaction after the horizon logs.
--
-- private.sync_compile_pull no longer generates sync_changed_buckets (it is static now, with the
-- same signature and meaning); the rest of what it generates is unchanged.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Which buckets each transaction wrote: one row per (transaction, table, bucket), appended by
-- private.sync_nudge, read by private.sync_changed_buckets, pruned by public.sync_prune.
create table private.sync_bucket_changes (
    table_name text not null,
    bucket_key text not null,
    sync_xid xid8 not null default pg_current_xact_id(),
    created_at timestamptz not null default now()
);
comment on table private.sync_bucket_changes is
'Sync: which buckets each transaction wrote (an accelerator for the change check, kept briefly).';
create index sync_bucket_changes_bucket_idx
on private.sync_bucket_changes (table_name, bucket_key, sync_xid);
create index sync_bucket_changes_created_at_idx on private.sync_bucket_changes (created_at);
-- Out of the API's reach, like the other sync bookkeeping (see 20261201090000_sync.sql).
alter table private.sync_bucket_changes enable row level security;

alter table private.sync_settings
add column change_log_horizon interval not null default interval '1 day',
add column change_log_pruned xid8 not null default '0'::xid8;

-- As in 20261201090000_sync.sql, and each bucket nudged for the first time in the transaction
-- is logged. A rolled-back savepoint forgets its log rows with its nudges.
create or replace function private.sync_nudge(table_name text, keys text [])
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
    nudged text := coalesce(current_setting('pysync.sync_nudged', true), '');
    saved_topic text := current_setting('realtime.topic', true);
    bucket_key text;
    topic text;
    written text [] := '{}';
begin
    foreach bucket_key in array coalesce(keys, array[]::text []) loop
        continue when bucket_key is null;
        topic := 'sync:' || table_name || ':' || bucket_key;
        continue when strpos(nudged, '|' || topic || '|') > 0;
        perform realtime.send(
            jsonb_build_object('bucket', table_name || ':' || bucket_key), 'sync', topic, true
        );
        nudged := nudged || '|' || topic || '|';
        written := written || bucket_key;
    end loop;
    if cardinality(written) > 0 then
        insert into private.sync_bucket_changes (table_name, bucket_key)
        select sync_nudge.table_name, w.k from unnest(written) as w (k);
        perform set_config('pysync.sync_nudged', nudged, true);
    end if;
    perform set_config('realtime.topic', coalesce(saved_topic, ''), true);
end
$$;
revoke all on function private.sync_nudge(text, text []) from public;

-- Whether anything in each given bucket changed since its cursor (changed buckets only). A
-- cursor the log cannot answer for (see above) counts as changed.
create or replace function private.sync_changed_buckets(
    tables text [], keys text [], cursors pg_snapshot []
)
returns table (table_name text, bucket_key text)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select r.t, r.k
    from unnest(tables, keys, cursors) as r (t, k, c)
    where pg_catalog.pg_snapshot_xmin(r.c) <= (
        select s.change_log_pruned from private.sync_settings as s
    )
    or exists (
        select 1 from private.sync_bucket_changes as l
        where l.table_name = r.t and l.bucket_key = r.k
            and l.sync_xid >= pg_catalog.pg_snapshot_xmin(r.c)
            and not pg_catalog.pg_visible_in_snapshot(l.sync_xid, r.c)
    );
end
$$;
revoke all on function private.sync_changed_buckets(text [], text [], pg_snapshot []) from public;
grant execute on function private.sync_changed_buckets(text [], text [], pg_snapshot [])
to authenticated, service_role;

-- As in 20261205090000_sync_pull_fewer_plans.sql, without sync_changed_buckets (static above).
create or replace function private.sync_compile_pull()
returns void
language plpgsql
set search_path = ''
as $$
declare
    branches text;
    registry_part text;
    tables text;
begin
    select string_agg(
        format(
            $branch$
    if $1 = %2$L then
        -- A whole bucket: keyset pages on the (bucket, id) index; a resumed page starts the
        -- index scan at (key, id).
        if $3 is null and $4 is null then
            return query
            select t.%1$I::text, t.id, true
            from public.%2$I as t
            where t.%1$I = any($2::%3$s [])
            order by t.%1$I, t.id
            limit $6;
            return;
        end if;
        if $3 is null then
            return query
            select u.k::text, u.id, true from (
                (
                    select t.%1$I as k, t.id from public.%2$I as t
                    where t.%1$I = $4::%3$s and t.id > $5
                    order by t.id
                    limit $6
                )
                union all
                (
                    select t.%1$I, t.id from public.%2$I as t
                    where t.%1$I = any($2::%3$s []) and t.%1$I > $4::%3$s
                    order by t.%1$I, t.id
                    limit $6
                )
            ) as u
            order by u.k, u.id
            limit $6;
            return;
        end if;
        -- Changes since a snapshot. At most a page of them (a pull after a few writes, the
        -- common case): read off the (bucket, sync_xid) indexes into a set and ordered there, by
        -- a statement whose generic plan the session keeps. More: the same statement as before,
        -- planned for the cursor it is given (one-shot EXECUTE), so that the planner can walk
        -- the (bucket, id) index in order when most of a bucket changed. No one plan is good
        -- for both, and planning on every call cost more than the rest of a small pull.
        if (
            select count(*) from (
                select 1 from public.%2$I as t
                where t.%1$I = any($2::%3$s []) and t.sync_xid >= pg_catalog.pg_snapshot_xmin($3)
                limit $6
            ) as n
        ) + (
            select count(*) from (
                select 1 from private.sync_tombstones as tb
                where tb.table_name = %2$L and tb.bucket_key = any($2)
                    and tb.sync_xid >= pg_catalog.pg_snapshot_xmin($3)
                limit $6
            ) as n
        ) < $6 then
            return query %4$s;
            return;
        end if;
        return query execute %5$L using $1, $2, $3, $4, $5, $6;
        return;
    end if;$branch$,
            t.bucket_column, t.table_name, t.bucket_type,
            format(c.statement, t.bucket_column, t.table_name, t.bucket_type, 'materialized '),
            format(c.statement, t.bucket_column, t.table_name, t.bucket_type, '')
        ),
        '' order by t.table_name
    ) into branches
    from private.sync_tables as t
    -- The statement for changes since a snapshot, kept (its set materialized, then ordered)
    -- or one-shot (the set inlined: the planner may walk the (bucket, id) index instead).
    cross join (
        select $changes$
            with u as %4$s(
                select t.%1$I as k, t.id, true as live
                from public.%2$I as t
                where t.%1$I = any($2::%3$s [])
                    and t.sync_xid >= pg_catalog.pg_snapshot_xmin($3)
                    and not pg_catalog.pg_visible_in_snapshot(t.sync_xid, $3)
                union all
                select tb.bucket_key::%3$s, tb.row_id, false
                from private.sync_tombstones as tb
                where tb.table_name = %2$L and tb.bucket_key = any($2)
                    and tb.sync_xid >= pg_catalog.pg_snapshot_xmin($3)
                    and not pg_catalog.pg_visible_in_snapshot(tb.sync_xid, $3)
            )
            select c.k::text, c.id, c.live from (
                select distinct on (u.k, u.id) u.k, u.id, u.live from u
                order by u.k, u.id, u.live desc
            ) as c
            where $4::text is null or (c.k, c.id) > ($4::%3$s, $5)
            order by c.k, c.id
            limit $6$changes$::text as statement
    ) as c;
    execute format(
        $ddl$
        create or replace function private.sync_changes(
            table_name text,
            keys text [],
            since pg_snapshot,
            after_key text,
            after_id uuid,
            max_rows integer
        )
        returns table (bucket_key text, row_id uuid, live boolean)
        language plpgsql
        stable
        security definer
        set search_path = ''
        set plan_cache_mode = force_generic_plan
        as %L
        $ddl$,
        format(
            E'begin%s\n    raise exception ''sync: %% is not a synced table'', $1 using errcode = ''42501'';\nend',
            coalesce(branches, '')
        )
    );

    select coalesce(string_agg(part, '|' order by part), '') into registry_part
    from (
        select format(
            'table:%s:%s:%s:%s:%s:%s', t.table_name, t.bucket_column, t.writable, t.operations,
            t.conflict, t.counters
        ) as part
        from private.sync_tables as t
        union all
        select format(
            'stream:%s:%s:%s:%s:%s', s.name, s.table_name, s.mode, s.ttl_seconds, s.description
        )
        from private.sync_streams as s
    ) as parts;
    select coalesce(
        string_agg(format('public.%I', t.table_name)::regclass::oid::text, ',' order by t.table_name),
        ''
    ) into tables
    from private.sync_tables as t;
    execute format(
        $ddl$
        create or replace function private.sync_schema_hash()
        returns text
        language plpgsql
        stable
        security definer
        set search_path = ''
        as %L
        $ddl$,
        format(
            E'begin\n    return (\n'
            '        select md5(%L || count(*) || '':'' || coalesce(sum(a.xmin::text::bigint), 0))\n'
            '        from pg_catalog.pg_attribute as a\n'
            '        where a.attrelid = any(%L::oid []) and a.attnum > 0\n'
            '    );\nend',
            registry_part, '{' || tables || '}'
        )
    );
    revoke all on function private.sync_schema_hash() from public;
    grant execute on function private.sync_schema_hash() to authenticated, service_role;

    select string_agg(
        format(
            E'\n    if $1 = %L then\n'
            '        if $3 then\n'
            '            return query select t.id, %s from public.%I as t where t.id = any($2);\n'
            '        else\n'
            '            return query select t.id, %s from public.%I as t where t.id = any($2);\n'
            '        end if;\n'
            '        return;\n'
            '    end if;',
            t.table_name,
            private.sync_row_json(t.table_name, true), t.table_name,
            private.sync_row_json(t.table_name, false), t.table_name
        ),
        '' order by t.table_name
    ) into branches
    from private.sync_tables as t;
    execute format(
        $ddl$
        create or replace function private.sync_visible_rows(
            table_name text, ids uuid [], columnar boolean, schema_hash text
        )
        returns table (id uuid, body json)
        language plpgsql
        stable
        set search_path = ''
        set plan_cache_mode = force_generic_plan
        as %L
        $ddl$,
        format(
            E'begin\n'
            '    if $4 is distinct from %L then\n'
            '        return query execute format(\n'
            '            ''select t.id, %%s from public.%%I as t where t.id = any($1)'',\n'
            '            private.sync_row_json($1, $3), $1\n'
            '        ) using $2;\n'
            '        return;\n'
            '    end if;%s\n'
            '    raise exception ''sync: %% is not a synced table'', $1 using errcode = ''42501'';\n'
            'end',
            private.sync_schema_hash(), coalesce(branches, '')
        )
    );
    revoke all on function private.sync_visible_rows(text, uuid [], boolean, text) from public;
    grant execute on function private.sync_visible_rows(text, uuid [], boolean, text)
    to authenticated, service_role;
end
$$;
revoke all on function private.sync_compile_pull() from public;

-- As in 20261201090000_sync.sql, and the log goes with the user's other sync bookkeeping.
--
-- It now also runs at commit. A user deleted straight from auth.users (Supabase Auth's admin
-- API, the dashboard) takes their rows with them by ON DELETE CASCADE. Cascaded deletes queue
-- their triggers behind the deleting statement's own, so their capture triggers wrote
-- tombstones and log entries keyed by the user after this trigger had run, and they stayed.
-- The immediate trigger is kept for public.delete_user, whose caller sees the erasure done
-- within its transaction; the deferred one clears what the cascades wrote.
create or replace function private.sync_forget_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    delete from private.sync_tombstones as t
    where t.bucket_key = old.id::text or t.row_id = old.id;
    delete from private.sync_bucket_changes as c
    where c.table_name = any(array(select st.table_name from private.sync_tables as st))
        and c.bucket_key = old.id::text;
    delete from private.sync_push_results as r where r.user_id = old.id;
    return null;
end
$$;
revoke all on function private.sync_forget_user() from public;

create constraint trigger sync_forget_user_at_commit after delete on auth.users
deferrable initially deferred
for each row execute function private.sync_forget_user();

-- As in 20261201090000_sync.sql, and the log is pruned by its own horizon, moving the point
-- below which cursors are not answered from it.
create or replace function public.sync_prune()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    settings private.sync_settings;
    tombstones bigint;
    newest xid8;
    bucket_changes bigint;
    newest_change xid8;
    push_results bigint;
begin
    select * into strict settings from private.sync_settings;
    with gone as (
        delete from private.sync_tombstones as t
        where t.created_at < now() - settings.tombstone_horizon
        returning t.sync_xid
    )
    select count(*), max(gone.sync_xid) into tombstones, newest from gone;
    if newest is not null then
        update private.sync_settings set pruned_xid = greatest(pruned_xid, newest);
    end if;
    with gone as (
        delete from private.sync_bucket_changes as c
        where c.created_at < now() - settings.change_log_horizon
        returning c.sync_xid
    )
    select count(*), max(gone.sync_xid) into bucket_changes, newest_change from gone;
    if newest_change is not null then
        update private.sync_settings
        set change_log_pruned = greatest(change_log_pruned, newest_change);
    end if;
    with gone as (
        delete from private.sync_push_results as r
        where r.created_at < now() - settings.push_horizon
        returning 1
    )
    select count(*) into push_results from gone;
    return (
        select jsonb_build_object(
            'tombstones', tombstones,
            'bucket_changes', bucket_changes,
            'push_results', push_results,
            'pruned_xid', s.pruned_xid::text,
            'change_log_pruned_xid', s.change_log_pruned::text
        )
        from private.sync_settings as s
    );
end
$$;
revoke all on function public.sync_prune() from public, anon, authenticated;
grant execute on function public.sync_prune() to service_role;

-- The horizon: every transaction that can write a synced table after this point runs the new
-- sync_nudge. SHARE conflicts with every write and waits for the writers already running, so
-- once the locks are held no transaction that logged nothing can still write; the snapshot's
-- xmax, taken after them, bounds every transaction that did.
do $$
declare
    synced text;
begin
    for synced in select t.table_name from private.sync_tables as t order by t.table_name loop
        execute format('lock table public.%I in share mode', synced);
    end loop;
end
$$;
update private.sync_settings
set change_log_pruned = pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot());
