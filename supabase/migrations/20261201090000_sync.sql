-- Offline sync: the server side of the protocol in docs/sync-protocol.md.
--
-- A registry declares the synced tables (bucket column, writable columns, operations, default
-- conflict policy) and the streams through which a caller holds buckets (auto: a membership
-- query; on_demand: an access query for the keys a client subscribes to). Statement-level
-- triggers on every synced table record tombstones (deletes and moves out of a bucket) and
-- send at most one realtime nudge per bucket per transaction. Four RPCs serve clients:
-- sync_schema(), sync_pull(), sync_checksums() and sync_push(); sync_prune() is for jobs.
--
-- Cursors are pg_snapshots: a pull returns the bucket's rows and tombstones whose sync_xid the
-- previous pull's snapshot could not see, so a transaction that commits late is never skipped
-- and an open transaction never stalls anybody.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

-- One row: how long tombstones and push results are kept, and the newest pruned tombstone's
-- transaction (a cursor whose xmin is at or below it may have missed a tombstone).
create table private.sync_settings (
    singleton boolean primary key default true check (singleton),
    tombstone_horizon interval not null default interval '30 days',
    push_horizon interval not null default interval '7 days',
    pruned_xid xid8 not null default '0'::xid8
);
insert into private.sync_settings default values;

create table private.sync_tables (
    table_name text primary key,
    bucket_column text not null,
    -- format_type() of the bucket column: keys arrive as text and are cast to it.
    bucket_type text not null,
    writable text [] not null default '{}',
    operations text [] not null default '{}' check (operations <@ array['insert', 'update', 'delete']),
    conflict text not null default 'server_wins'
    check (conflict in ('server_wins', 'client_wins', 'last_write_wins', 'field_merge')),
    counters text [] not null default '{}'
);
comment on table private.sync_tables is 'Tables clients sync, and what sync_push may write in them.';

create table private.sync_streams (
    name text primary key check (name ~ '^[a-z][a-z0-9_]*$'),
    table_name text not null references private.sync_tables (table_name) on delete cascade,
    mode text not null check (mode in ('auto', 'on_demand')),
    -- auto: a query returning the caller's bucket keys (one column).
    -- on_demand: a query returning which of the requested keys ($1, text[]) the caller may hold.
    -- Both run as the function owner and must filter by (select auth.uid()) themselves.
    query text not null,
    ttl_seconds integer check (ttl_seconds > 0),
    description text not null default '',
    constraint sync_streams_ttl_check check ((mode = 'on_demand') = (ttl_seconds is not null))
);
comment on table private.sync_streams is 'How a caller comes to hold buckets of a synced table.';
create index sync_streams_table_name_idx on private.sync_streams (table_name);

-- A deleted row, or a row that moved to another bucket: no content, only where it was.
create table private.sync_tombstones (
    table_name text not null,
    bucket_key text not null,
    row_id uuid not null,
    sync_xid xid8 not null default pg_current_xact_id(),
    created_at timestamptz not null default now()
);
create index sync_tombstones_bucket_idx on private.sync_tombstones (table_name, bucket_key, sync_xid);
create index sync_tombstones_created_at_idx on private.sync_tombstones (created_at);

-- The stored result of every pushed op: a retried batch gets these back and writes nothing.
create table private.sync_push_results (
    user_id uuid not null,
    client_id uuid not null,
    op_id bigint not null,
    result jsonb not null,
    created_at timestamptz not null default now(),
    primary key (user_id, client_id, op_id)
);
create index sync_push_results_created_at_idx on private.sync_push_results (created_at);

-- Out of the API's reach (private is not exposed) and only read through the functions below;
-- RLS without policies keeps them closed even if a grant is ever added by mistake.
alter table private.sync_settings enable row level security;
alter table private.sync_tables enable row level security;
alter table private.sync_streams enable row level security;
alter table private.sync_tombstones enable row level security;
alter table private.sync_push_results enable row level security;

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

-- Tell clients holding these buckets to pull: one broadcast per bucket per transaction on the
-- private topic sync:<table>:<key>, which only callers who may hold that bucket can join. The
-- set already nudged is a transaction-local setting, so a rolled-back savepoint forgets its
-- nudges with their realtime.messages rows.
create function private.sync_nudge(table_name text, keys text [])
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
begin
    foreach bucket_key in array coalesce(keys, array[]::text []) loop
        continue when bucket_key is null;
        topic := 'sync:' || table_name || ':' || bucket_key;
        continue when strpos(nudged, '|' || topic || '|') > 0;
        perform realtime.send(
            jsonb_build_object('bucket', table_name || ':' || bucket_key), 'sync', topic, true
        );
        nudged := nudged || '|' || topic || '|';
    end loop;
    perform set_config('pysync.sync_nudged', nudged, true);
    perform set_config('realtime.topic', coalesce(saved_topic, ''), true);
end
$$;
revoke all on function private.sync_nudge(text, text []) from public;

-- Statement-level AFTER trigger (argument: the bucket column): tombstones for deleted rows and
-- rows whose bucket column changed, then nudges for every bucket touched.
create function private.sync_capture_changes()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    bucket_column text := tg_argv[0];
    keys text [];
begin
    if tg_op = 'INSERT' then
        execute format(
            'select array_agg(distinct n.%1$I::text) from changed_new as n', bucket_column
        ) into keys;
    elsif tg_op = 'UPDATE' then
        execute format(
            'insert into private.sync_tombstones (table_name, bucket_key, row_id)
            select %2$L, o.%1$I::text, o.id
            from changed_old as o join changed_new as n on n.id = o.id
            where o.%1$I is distinct from n.%1$I',
            bucket_column, tg_table_name
        );
        execute format(
            'select array_agg(distinct k) from (
                select n.%1$I::text from changed_new as n
                union
                select o.%1$I::text from changed_old as o
            ) as touched (k)',
            bucket_column
        ) into keys;
    else
        execute format(
            'insert into private.sync_tombstones (table_name, bucket_key, row_id)
            select %2$L, o.%1$I::text, o.id from changed_old as o',
            bucket_column, tg_table_name
        );
        execute format(
            'select array_agg(distinct o.%1$I::text) from changed_old as o', bucket_column
        ) into keys;
    end if;
    perform private.sync_nudge(tg_table_name, keys);
    return null;
end
$$;
revoke all on function private.sync_capture_changes() from public;

-- Declare a synced table in one call: its registry row, the (bucket column, sync_xid) index
-- that keeps a pull proportional to the caller's changes, and its three capture triggers.
-- Idempotent, so a later migration can change a table's declaration by calling it again.
create function private.sync_register_table(
    table_name text,
    bucket_column text,
    writable text [],
    operations text [],
    conflict text default 'server_wins',
    counters text [] default '{}'
)
returns void
language plpgsql
set search_path = ''
as $$
declare
    target regclass := format('public.%I', table_name)::regclass;
    column_type text;
    event text;
begin
    select pg_catalog.format_type(a.atttypid, a.atttypmod) into column_type
    from pg_catalog.pg_attribute as a
    where a.attrelid = target and a.attname = bucket_column and not a.attisdropped;
    if column_type is null then
        raise exception 'sync: public.% has no column %', table_name, bucket_column
        using errcode = '42703';
    end if;
    insert into private.sync_tables as t (
        table_name, bucket_column, bucket_type, writable, operations, conflict, counters
    )
    values (table_name, bucket_column, column_type, writable, operations, conflict, counters)
    on conflict on constraint sync_tables_pkey do update
        set bucket_column = excluded.bucket_column,
            bucket_type = excluded.bucket_type,
            writable = excluded.writable,
            operations = excluded.operations,
            conflict = excluded.conflict,
            counters = excluded.counters;
    -- A table bucketed by its primary key already has the equivalent indexes. Otherwise
    -- (bucket, sync_xid) finds a bucket's changes since a cursor, and (bucket, id) serves a
    -- new bucket in id order by keyset pages: without it every page sorts the whole bucket.
    if bucket_column <> 'id' then
        execute format(
            'create index if not exists %I on public.%I (%I, sync_xid)',
            table_name || '_sync_idx', table_name, bucket_column
        );
        execute format(
            'create index if not exists %I on public.%I (%I, id)',
            table_name || '_sync_id_idx', table_name, bucket_column
        );
    end if;
    foreach event in array array['insert', 'update', 'delete'] loop
        execute format('drop trigger if exists %I on public.%I', 'sync_capture_' || event, table_name);
    end loop;
    execute format(
        'create trigger sync_capture_insert after insert on public.%I
        referencing new table as changed_new
        for each statement execute function private.sync_capture_changes(%L)',
        table_name, bucket_column
    );
    execute format(
        'create trigger sync_capture_update after update on public.%I
        referencing old table as changed_old new table as changed_new
        for each statement execute function private.sync_capture_changes(%L)',
        table_name, bucket_column
    );
    execute format(
        'create trigger sync_capture_delete after delete on public.%I
        referencing old table as changed_old
        for each statement execute function private.sync_capture_changes(%L)',
        table_name, bucket_column
    );
end
$$;
revoke all on function private.sync_register_table(text, text, text [], text [], text, text []) from public;

-- Every auto stream's buckets for the caller, as one static query in a generated function:
-- PL/pgSQL keeps a static query's plan for the session, so a pull does not plan a dozen
-- membership queries again each time (dynamic EXECUTE would). Regenerated whenever the
-- registry changes (private.sync_registry_changed).
create function private.sync_compile_streams()
returns void
language plpgsql
set search_path = ''
as $$
declare
    body text;
begin
    -- Streams sharing a membership query (my courses' content, assignments and rows; my
    -- conversations' rows, members and messages) run it once, fanned out to each stream.
    select string_agg(
        format(
            'select x.stream, x.table_name, m.k::text from (%s) as m (k)
            cross join (values %s) as x (stream, table_name) where m.k is not null',
            q.query, q.targets
        ),
        E'\nunion\n' order by q.query
    ) into body
    from (
        select
            s.query,
            string_agg(format('(%L::text, %L::text)', s.name, s.table_name), ', ' order by s.name)
            as targets
        from private.sync_streams as s
        where s.mode = 'auto'
        group by s.query
    ) as q;
    execute format(
        $ddl$
        create or replace function private.sync_auto_buckets()
        returns table (stream text, table_name text, bucket_key text)
        language plpgsql
        stable
        security definer
        set search_path = ''
        as %L
        $ddl$,
        format(
            E'begin\n    return query\n%s;\nend',
            coalesce(body, 'select null::text, null::text, null::text where false')
        )
    );
    revoke all on function private.sync_auto_buckets() from public;
    grant execute on function private.sync_auto_buckets() to authenticated, service_role;
end
$$;
revoke all on function private.sync_compile_streams() from public;

-- Which of some buckets of one table changed since a snapshot (a row or a tombstone its
-- snapshot could not see), as one generated PL/pgSQL function with a static query per synced
-- table, so its plans are kept for the session: a pull with nothing changed asks this instead
-- of planning sync_changes' dynamic query for every table. Regenerated whenever the registry
-- changes (private.sync_registry_changed). Ids are not returned: security definer, it tells the caller
-- only that a bucket it holds changed.
create function private.sync_compile_changed()
returns void
language plpgsql
set search_path = ''
as $$
declare
    body text;
begin
    select string_agg(
        format(
            $branch$
    if $1 = %1$L then
        return query
        select t.%2$I::text from public.%3$I as t
        where t.%2$I = any($2::%4$s [])
            and t.sync_xid >= pg_catalog.pg_snapshot_xmin($3)
            and not pg_catalog.pg_visible_in_snapshot(t.sync_xid, $3)
        union
        select tb.bucket_key from private.sync_tombstones as tb
        where tb.table_name = %1$L and tb.bucket_key = any($2)
            and tb.sync_xid >= pg_catalog.pg_snapshot_xmin($3)
            and not pg_catalog.pg_visible_in_snapshot(tb.sync_xid, $3);
        return;
    end if;$branch$,
            t.table_name, t.bucket_column, t.table_name, t.bucket_type
        ),
        '' order by t.table_name
    ) into body
    from private.sync_tables as t;
    execute format(
        $ddl$
        create or replace function private.sync_changed_keys(text, text [], pg_snapshot)
        returns setof text
        language plpgsql
        stable
        security definer
        set search_path = ''
        as %L
        $ddl$,
        format(
            E'begin%s\n    raise exception ''sync: %% is not a synced table'', $1 using errcode = ''42501'';\nend',
            coalesce(body, '')
        )
    );
    revoke all on function private.sync_changed_keys(text, text [], pg_snapshot) from public;
    grant execute on function private.sync_changed_keys(text, text [], pg_snapshot)
    to authenticated, service_role;
end
$$;
revoke all on function private.sync_compile_changed() from public;

-- The registry changed: regenerate both functions compiled from it (rare, and cheap).
create function private.sync_registry_changed()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    perform private.sync_compile_streams();
    perform private.sync_compile_changed();
    return null;
end
$$;
revoke all on function private.sync_registry_changed() from public;

create trigger sync_registry_changed after insert or update or delete or truncate
on private.sync_tables
for each statement execute function private.sync_registry_changed();

create trigger sync_registry_changed after insert or update or delete or truncate
on private.sync_streams
for each statement execute function private.sync_registry_changed();

select private.sync_compile_streams();
select private.sync_compile_changed();

-- The caller's buckets: one row per (stream, key) of every auto stream's membership, and one
-- per requested subscription with whether its access query allows it. Security definer so
-- the registry's queries can read what they need; each filters by (select auth.uid()).
create function private.sync_resolve_buckets(subscriptions jsonb)
returns table (stream text, table_name text, bucket_key text, allowed boolean, reason text)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    s record;
    requested text [];
    uuid_pattern constant text :=
        '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
begin
    for s in
        select st.name, st.table_name, st.mode, st.query, t.bucket_type
        from private.sync_streams as st
        join private.sync_tables as t on t.table_name = st.table_name
        order by st.name
    loop
        continue when s.mode = 'auto';  -- all of them at once, below
        select coalesce(array_agg(distinct e ->> 'key'), '{}') into requested
        from jsonb_array_elements(coalesce(subscriptions, '[]')) as e
        where e ->> 'stream' = s.name and e ->> 'key' is not null;
        continue when cardinality(requested) = 0;
        if s.bucket_type = 'uuid' then
            return query
            select s.name, s.table_name, r.k, false, 'not a valid key'
            from unnest(requested) as r (k)
            where r.k !~ uuid_pattern;
            requested := array(select r.k from unnest(requested) as r (k) where r.k ~ uuid_pattern);
        end if;
        return query execute format(
            'select %L::text, %L::text, r.k, a.k is not null,
                case when a.k is null then ''not allowed'' end
            from unnest($1) as r (k)
            left join (select distinct m.k::text as k from (%s) as m (k)) as a on a.k = r.k',
            s.name, s.table_name, s.query
        ) using requested;
    end loop;
    return query
    select a.stream, a.table_name, a.bucket_key, true, null::text
    from private.sync_auto_buckets() as a;
    return query
    select e ->> 'stream', null::text, e ->> 'key', false, 'unknown stream'
    from jsonb_array_elements(coalesce(subscriptions, '[]')) as e
    where not exists (
        select 1 from private.sync_streams as st
        where st.name = e ->> 'stream' and st.mode = 'on_demand'
    );
end
$$;
revoke all on function private.sync_resolve_buckets(jsonb) from public;
grant execute on function private.sync_resolve_buckets(jsonb) to authenticated, service_role;

-- May the caller hold this bucket (through any stream of its table)? Realtime checks of
-- sync:<table>:<key>: the pull's own resolution, asked as if every on-demand stream of the
-- table were subscribed to the key.
create function private.sync_bucket_allowed(table_name text, bucket_key text)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
    select exists (
        select 1
        from private.sync_resolve_buckets((
            select coalesce(jsonb_agg(jsonb_build_object('stream', st.name, 'key', $2)), '[]')
            from private.sync_streams as st
            where st.table_name = $1 and st.mode = 'on_demand'
        )) as r
        where r.allowed and r.table_name = $1 and r.bucket_key = $2
    )
$$;
revoke all on function private.sync_bucket_allowed(text, text) from public;
grant execute on function private.sync_bucket_allowed(text, text) to authenticated, service_role;

-- The ids that changed in some buckets of one table since a snapshot (all ids when `since`
-- is null), with whether the row still exists; ordered by (key, id) and resumable after a
-- (key, id). Security definer because the caller must also learn about rows it can no
-- longer see (to drop them); it returns ids only, and sync_pull asks only for buckets the
-- caller holds.
create function private.sync_changes(
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
as $$
declare
    spec private.sync_tables;
begin
    select * into strict spec from private.sync_tables as t where t.table_name = $1;
    -- A whole bucket: keyset pages on the (bucket, id) index. A resumed page gets its own
    -- statement that starts the index scan at (key, id): neither `$2 is null or (key, id) >
    -- (…)` nor a row comparison next to `key = any(…)` positions the scan, so each page would
    -- read the bucket from its start.
    if since is null and after_key is null then
        return query execute format(
            'select t.%1$I::text, t.id, true
            from public.%2$I as t
            where t.%1$I = any($1::%3$s [])
            order by t.%1$I, t.id
            limit $2',
            spec.bucket_column, spec.table_name, spec.bucket_type
        ) using keys, max_rows;
        return;
    end if;
    if since is null then
        return query execute format(
            'select u.k::text, u.id, true from (
                (
                    select t.%1$I as k, t.id from public.%2$I as t
                    where t.%1$I = $2::%3$s and t.id > $3
                    order by t.id
                    limit $4
                )
                union all
                (
                    select t.%1$I, t.id from public.%2$I as t
                    where t.%1$I = any($1::%3$s []) and t.%1$I > $2::%3$s
                    order by t.%1$I, t.id
                    limit $4
                )
            ) as u
            order by u.k, u.id
            limit $4',
            spec.bucket_column, spec.table_name, spec.bucket_type
        ) using keys, after_key, after_id, max_rows;
        return;
    end if;
    return query execute format(
        'select c.k::text, c.id, c.live from (
            select distinct on (u.k, u.id) u.k, u.id, u.live from (
                select t.%1$I as k, t.id, true as live
                from public.%2$I as t
                where t.%1$I = any($1::%3$s [])
                    and t.sync_xid >= pg_catalog.pg_snapshot_xmin($5)
                    and not pg_catalog.pg_visible_in_snapshot(t.sync_xid, $5)
                union all
                select tb.bucket_key::%3$s, tb.row_id, false
                from private.sync_tombstones as tb
                where tb.table_name = %2$L and tb.bucket_key = any($1)
                    and tb.sync_xid >= pg_catalog.pg_snapshot_xmin($5)
                    and not pg_catalog.pg_visible_in_snapshot(tb.sync_xid, $5)
            ) as u
            order by u.k, u.id, u.live desc
        ) as c
        where $2::text is null or (c.k, c.id) > ($2::%3$s, $3)
        order by c.k, c.id
        limit $4',
        spec.bucket_column, spec.table_name, spec.bucket_type
    ) using keys, after_key, after_id, max_rows, since;
end
$$;
revoke all on function private.sync_changes(text, text [], pg_snapshot, text, uuid, integer) from public;
grant execute on function private.sync_changes(text, text [], pg_snapshot, text, uuid, integer)
to authenticated, service_role;

create function private.sync_table_spec(table_name text)
returns private.sync_tables
language sql
stable
security definer
set search_path = ''
as $$
    select t.* from private.sync_tables as t where t.table_name = $1
$$;
revoke all on function private.sync_table_spec(text) from public;
grant execute on function private.sync_table_spec(text) to authenticated, service_role;

create function private.sync_pruned_xid()
returns xid8
language sql
stable
security definer
set search_path = ''
as $$
    select s.pruned_xid from private.sync_settings as s
$$;
revoke all on function private.sync_pruned_xid() from public;
grant execute on function private.sync_pruned_xid() to authenticated, service_role;

-- The snapshot a pull hands out as a cursor. On a hot standby (a read replica)
-- pg_current_snapshot() lists no running xids: PostgreSQL keeps a standby's running xids in
-- the snapshot's subxip array, which pg_current_snapshot() does not export, so a transaction
-- still open on the primary would look committed, and its rows would be skipped once it
-- commits. There the cursor is cut back to its xmin ("xmin:xmin:"): every xid below xmin is
-- complete in the pull's snapshot, and everything from xmin on is served again by the next
-- pull (a row at worst twice, never missed; nothing extra when no transaction was open).
create function private.sync_snapshot()
returns pg_snapshot
language sql
stable
set search_path = ''
as $$
    select case
        when pg_catalog.pg_is_in_recovery() then
            format('%1$s:%1$s:', pg_catalog.pg_snapshot_xmin(s))::pg_catalog.pg_snapshot
        else s
    end
    from pg_catalog.pg_current_snapshot() as s
$$;
revoke all on function private.sync_snapshot() from public;
grant execute on function private.sync_snapshot() to authenticated, service_role;

-- A hash of everything sync_schema() describes, cheap enough for every pull to carry (a client
-- migrates its local tables when it changes): the registry rows and the synced columns.
create function private.sync_schema_hash()
returns text
language sql
stable
security definer
set search_path = ''
as $$
    select md5(string_agg(part, '|' order by part))
    from (
        select format(
            'table:%s:%s:%s:%s:%s:%s', t.table_name, t.bucket_column, t.writable, t.operations,
            t.conflict, t.counters
        ) as part
        from private.sync_tables as t
        union all
        select format(
            'column:%s:%s:%s:%s:%s', c.relname, lpad(a.attnum::text, 5, '0'), a.attname,
            pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull
        )
        from pg_catalog.pg_attribute as a
        join pg_catalog.pg_class as c on c.oid = a.attrelid
        -- an array of oids, so the catalog is read through its (attrelid, attnum) index
        where a.attrelid = any(array(
            select format('public.%I', t.table_name)::regclass from private.sync_tables as t
        ))
        and a.attnum > 0 and not a.attisdropped and a.attname <> 'sync_xid'
        union all
        select format(
            'stream:%s:%s:%s:%s:%s', s.name, s.table_name, s.mode, s.ttl_seconds, s.description
        )
        from private.sync_streams as s
    ) as parts
$$;
revoke all on function private.sync_schema_hash() from public;
grant execute on function private.sync_schema_hash() to authenticated, service_role;

-- The registry as clients see it (sync_schema's body), with its hash.
create function private.sync_registry()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    with tables as (
        select jsonb_agg(
            jsonb_build_object(
                'name', t.table_name,
                'bucket_column', t.bucket_column,
                'columns', (
                    select jsonb_agg(
                        jsonb_build_object(
                            'name', a.attname,
                            'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                            'nullable', not a.attnotnull
                        ) order by a.attnum
                    )
                    from pg_catalog.pg_attribute as a
                    where a.attrelid = format('public.%I', t.table_name)::regclass
                        and a.attnum > 0 and not a.attisdropped and a.attname <> 'sync_xid'
                ),
                'writable', to_jsonb(t.writable),
                'operations', to_jsonb(t.operations),
                'conflict', t.conflict,
                'counters', to_jsonb(t.counters)
            ) order by t.table_name
        ) as body
        from private.sync_tables as t
    ),

    streams as (
        select jsonb_agg(
            jsonb_build_object(
                'name', s.name, 'table', s.table_name, 'mode', s.mode,
                'ttl_seconds', s.ttl_seconds, 'description', s.description
            ) order by s.name
        ) as body
        from private.sync_streams as s
    ),

    registry as (
        select jsonb_build_object(
            'tables', coalesce(tables.body, '[]'), 'streams', coalesce(streams.body, '[]')
        ) as body
        from tables cross join streams
    )

    select registry.body || jsonb_build_object('hash', private.sync_schema_hash())
    from registry
$$;
revoke all on function private.sync_registry() from public;
grant execute on function private.sync_registry() to authenticated, service_role;

-- Stored push results of the caller's client for these op ids (op_id as text -> result).
create function private.sync_stored_results(client_id uuid, op_ids bigint [])
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce(jsonb_object_agg(r.op_id::text, r.result), '{}')
    from private.sync_push_results as r
    where r.user_id = (select auth.uid()) and r.client_id = $1 and r.op_id = any($2)
$$;
revoke all on function private.sync_stored_results(uuid, bigint []) from public;
grant execute on function private.sync_stored_results(uuid, bigint []) to authenticated, service_role;

create function private.sync_store_results(client_id uuid, results jsonb)
returns void
language sql
security definer
set search_path = ''
as $$
    insert into private.sync_push_results (user_id, client_id, op_id, result)
    select (select auth.uid()), $1, (r ->> 'op_id')::bigint, r
    from jsonb_array_elements($2) as r
    on conflict do nothing
$$;
revoke all on function private.sync_store_results(uuid, jsonb) from public;
grant execute on function private.sync_store_results(uuid, jsonb) to authenticated, service_role;

-- The row as the caller sees it now (null when it does not exist or is not visible, and
-- for a table that is not synced: a rejected op may name any table, even none).
create function private.sync_visible_row(table_name text, row_id uuid)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    found jsonb;
begin
    if row_id is null or private.sync_table_spec(table_name) is null then
        return null;
    end if;
    execute format('select to_jsonb(t) - ''sync_xid'' from public.%I as t where t.id = $1', table_name)
    into found using row_id;
    return found;
end
$$;
revoke all on function private.sync_visible_row(text, uuid) from public;
grant execute on function private.sync_visible_row(text, uuid) to authenticated, service_role;

-- Apply one op as the caller (security invoker: RLS, grants and guard triggers decide).
-- Returns an applied or conflict result; raises on anything else, with the SQLSTATE that
-- becomes the op's rejection.
create function private.sync_apply_op(op jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    spec private.sync_tables := private.sync_table_spec(op ->> 'table');
    kind text := op ->> 'kind';
    row_id uuid := (op ->> 'id')::uuid;
    data jsonb := coalesce(op -> 'data', '{}');
    base bigint := (op ->> 'base_version')::bigint;
    columns text [];
    not_writable text [];
    new_version bigint;
    current_row jsonb;
begin
    if spec is null then
        raise exception 'table % is not synced', op ->> 'table' using errcode = '42501';
    end if;
    if not kind = any(spec.operations) then
        raise exception '% is not allowed on % through sync', kind, spec.table_name
        using errcode = '42501';
    end if;
    if jsonb_typeof(data) <> 'object' then
        raise exception 'data must be a JSON object' using errcode = '22023';
    end if;
    columns := array(select jsonb_object_keys(data));
    not_writable := array(select c from unnest(columns) as c where not c = any(spec.writable));
    if cardinality(not_writable) > 0 then
        raise exception 'column(s) % of % are not writable through sync',
            array_to_string(not_writable, ', '), spec.table_name
        using errcode = '42501';
    end if;

    if kind = 'insert' then
        execute format(
            'insert into public.%1$I as t (id%2$s)
            select $2%3$s from jsonb_populate_record(null::public.%1$I, $1) as r
            on conflict (id) do nothing
            returning t.version',
            spec.table_name,
            (select coalesce(string_agg(format(', %I', c), ''), '') from unnest(columns) as c),
            (select coalesce(string_agg(format(', r.%I', c), ''), '') from unnest(columns) as c)
        ) into new_version using data, row_id;
        if new_version is not null then
            return jsonb_build_object('status', 'applied', 'version', new_version);
        end if;
        current_row := private.sync_visible_row(spec.table_name, row_id);
        if current_row is null then
            raise exception 'a row with id % already exists in %', row_id, spec.table_name
            using errcode = '23505';
        end if;
        return jsonb_build_object(
            'status', 'conflict', 'version', current_row -> 'version', 'row', current_row
        );
    end if;

    if kind = 'update' then
        if base is null then
            raise exception 'an update needs base_version' using errcode = '22023';
        end if;
        if cardinality(columns) > 0 then
            execute format(
                'update public.%1$I as t set %2$s
                from jsonb_populate_record(null::public.%1$I, $1) as r
                where t.id = $2 and t.version = $3
                returning t.version',
                spec.table_name,
                (select string_agg(format('%1$I = r.%1$I', c), ', ') from unnest(columns) as c)
            ) into new_version using data, row_id, base;
            if new_version is not null then
                return jsonb_build_object('status', 'applied', 'version', new_version);
            end if;
        end if;
        current_row := private.sync_visible_row(spec.table_name, row_id);
        if current_row is null then
            raise exception 'no visible row % in %', row_id, spec.table_name using errcode = 'P0002';
        end if;
        if (current_row ->> 'version')::bigint <> base then
            return jsonb_build_object(
                'status', 'conflict', 'version', current_row -> 'version', 'row', current_row
            );
        end if;
        if cardinality(columns) = 0 then
            return jsonb_build_object('status', 'applied', 'version', current_row -> 'version');
        end if;
        raise exception 'not allowed to update this row of %', spec.table_name
        using errcode = '42501';
    end if;

    if kind = 'delete' then
        execute format(
            'delete from public.%I as t where t.id = $1 and ($2::bigint is null or t.version = $2)
            returning t.version',
            spec.table_name
        ) into new_version using row_id, base;
        if new_version is not null then
            return jsonb_build_object('status', 'applied', 'version', null);
        end if;
        current_row := private.sync_visible_row(spec.table_name, row_id);
        if current_row is null then
            -- Already gone (or never visible): deleting it again changes nothing.
            return jsonb_build_object('status', 'applied', 'version', null);
        end if;
        if base is not null and (current_row ->> 'version')::bigint <> base then
            return jsonb_build_object(
                'status', 'conflict', 'version', current_row -> 'version', 'row', current_row
            );
        end if;
        raise exception 'not allowed to delete this row of %', spec.table_name
        using errcode = '42501';
    end if;

    raise exception 'unknown op kind %', coalesce(kind, 'null') using errcode = '22023';
end
$$;
revoke all on function private.sync_apply_op(jsonb) from public;
grant execute on function private.sync_apply_op(jsonb) to authenticated, service_role;

-- Realtime authorization, now with sync topics: sync:<table>:<key> may be received by a caller
-- who may hold that bucket (never sent to: the server nudges). Replaces the messaging version.
create or replace function private.can_access_topic(topic text, sending boolean default false)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    me uuid := (select auth.uid());
    uuid_pattern constant text :=
        '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
    prefix text := split_part(coalesce(topic, ''), ':', 1);
    target text := substr(coalesce(topic, ''), char_length(prefix) + 2);
begin
    if me is null then
        return false;
    end if;
    if prefix = 'sync' then
        return not coalesce(sending, false) and private.sync_bucket_allowed(
            split_part(target, ':', 1), substr(target, strpos(target, ':') + 1)
        );
    end if;
    if target !~ uuid_pattern then
        return false;
    end if;
    if prefix = 'conversation' then
        return exists (
            select 1
            from public.conversation_participants as p
            where p.conversation_id = target::uuid and p.user_id = me
        );
    elsif prefix = 'user' then
        return not coalesce(sending, false) and target::uuid = me;
    end if;
    return false;
end
$$;

-- A deleted account leaves no sync bookkeeping that names it (GDPR erasure deletes the user
-- last, after every row of theirs, so this runs after the tombstones those deletes wrote).
-- Dropping the tombstones of buckets keyed by the user loses nothing: nobody else holds such a
-- bucket once the user is gone (every membership query joins through the user's own rows).
create function private.sync_forget_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    delete from private.sync_tombstones as t
    where t.bucket_key = old.id::text or t.row_id = old.id;
    delete from private.sync_push_results as r where r.user_id = old.id;
    return null;
end
$$;
revoke all on function private.sync_forget_user() from public;

create trigger sync_forget_user after delete on auth.users
for each row execute function private.sync_forget_user();

/*
 * ---------------------------------------------------------------------------
 * Registry: the synced tables and their streams
 * ---------------------------------------------------------------------------
 */

select private.sync_register_table(
    'profiles', 'id', array['display_name', 'avatar_url', 'timezone', 'locale', 'onboarded'],
    array['update'], 'field_merge'
);
select private.sync_register_table(
    'courses', 'id', array['tutor_id', 'title', 'description', 'status', 'published_at'],
    array['insert', 'update', 'delete'], 'field_merge'
);
select private.sync_register_table(
    'course_content', 'course_id',
    array[
        'course_id', 'parent_id', 'kind', 'position', 'title', 'content_type', 'body',
        'storage_path', 'is_preview'
    ],
    array['insert', 'update', 'delete'], 'field_merge'
);
select private.sync_register_table(
    'enrollments', 'course_id', array['student_id', 'course_id', 'status', 'completed_at'],
    array['insert', 'update'], 'server_wins'
);
select private.sync_register_table(
    'tutoring_sessions', 'student_id',
    array[
        'tutor_id', 'student_id', 'course_id', 'starts_at', 'ends_at', 'status', 'meeting_url',
        'notes', 'cancelled_by'
    ],
    array['insert', 'update'], 'server_wins'
);
select private.sync_register_table(
    'session_feedback', 'student_id', array['session_id', 'student_id', 'tutor_id', 'rating', 'comment'],
    array['insert', 'update'], 'client_wins'
);
select private.sync_register_table(
    'assignments', 'course_id',
    array['course_id', 'title', 'instructions', 'rubric', 'max_points', 'due_at'],
    array['insert', 'update', 'delete'], 'field_merge'
);
select private.sync_register_table(
    'submissions', 'assignment_id',
    array[
        'assignment_id', 'student_id', 'status', 'body', 'storage_path', 'submitted_at', 'grade',
        'feedback', 'graded_by', 'graded_at'
    ],
    array['insert', 'update'], 'field_merge'
);
select private.sync_register_table('conversations', 'id', array['title'], array['update'], 'last_write_wins');
select private.sync_register_table(
    'conversation_participants', 'conversation_id', array['last_read_at'], array['update'],
    'last_write_wins'
);
select private.sync_register_table(
    'messages', 'conversation_id',
    array['conversation_id', 'sender_id', 'body', 'attachment_path', 'edited_at', 'deleted_at'],
    -- Senders soft-delete (deleted_at) and keep the message's place; only admins hard-delete.
    array['insert', 'update'], 'last_write_wins'
);
select private.sync_register_table(
    'notifications', 'recipient_id', array['read_at'], array['update'], 'last_write_wins'
);
select private.sync_register_table(
    'notification_preferences', 'user_id', array['enabled'], array['update'], 'last_write_wins'
);
select private.sync_register_table(
    'devices', 'user_id',
    array['user_id', 'device_id', 'platform', 'push_token', 'app_version', 'last_active_at'],
    array['insert', 'update', 'delete'], 'client_wins'
);
select private.sync_register_table('articles', 'id', array[]::text [], array[]::text []);
select private.sync_register_table(
    'support_queries', 'owner_id', array['owner_id', 'subject', 'body', 'status'],
    array['insert', 'update'], 'field_merge'
);
select private.sync_register_table(
    'support_replies', 'query_id', array['query_id', 'author_id', 'body'], array['insert'], 'server_wins'
);
select private.sync_register_table('payments', 'payer_id', array[]::text [], array[]::text []);

-- Queries several streams share are written once: the streams' query texts are then equal,
-- so private.sync_compile_streams runs each of them once per pull.
with membership (name, query) as (
    values
    (
        'me',
        $q$ select (select auth.uid()) $q$
    ),
    (
        'my_active_or_taught_courses',
        $q$
        select e.course_id from public.enrollments as e
        where e.student_id = (select auth.uid()) and e.status = 'active'
        union
        select c.id from public.courses as c where c.tutor_id = (select auth.uid())
        $q$
    ),
    (
        'a_visible_course',
        $q$
        select c.id from public.courses as c
        where c.id = any($1::uuid [])
            and (c.status = 'published' or c.tutor_id = (select auth.uid()) or (select private.is_admin()))
        $q$
    ),
    (
        'my_conversations',
        $q$
        select p.conversation_id from public.conversation_participants as p
        where p.user_id = (select auth.uid())
        $q$
    ),
    (
        'my_students_and_me',
        $q$
        select (select auth.uid())
        union
        select s.student_id from public.tutoring_sessions as s where s.tutor_id = (select auth.uid())
        $q$
    ),
    (
        'my_profile_and_contacts',
        $q$
        select (select auth.uid())
        union
        select p.user_id
        from public.conversation_participants as mine
        join public.conversation_participants as p on p.conversation_id = mine.conversation_id
        where mine.user_id = (select auth.uid())
        union
        select c.tutor_id
        from public.enrollments as e join public.courses as c on c.id = e.course_id
        where e.student_id = (select auth.uid()) and e.status = 'active'
        union
        select e.student_id
        from public.enrollments as e join public.courses as c on c.id = e.course_id
        where c.tutor_id = (select auth.uid()) and e.status = 'active'
        $q$
    ),
    (
        'my_enrollments',
        $q$
        select e.course_id from public.enrollments as e where e.student_id = (select auth.uid())
        union
        select c.id from public.courses as c where c.tutor_id = (select auth.uid())
        $q$
    ),
    (
        'my_submissions',
        $q$
        select a.id
        from public.assignments as a
        join public.enrollments as e on e.course_id = a.course_id
        where e.student_id = (select auth.uid()) and e.status = 'active'
        union
        select a.id
        from public.assignments as a join public.courses as c on c.id = a.course_id
        where c.tutor_id = (select auth.uid())
        $q$
    ),
    (
        'a_visible_article',
        $q$
        select a.id from public.articles as a
        where a.id = any($1::uuid [])
            and (a.status = 'published' or a.author_id = (select auth.uid()) or (select private.is_admin()))
        $q$
    ),
    (
        'my_support_queries',
        $q$
        select q.id from public.support_queries as q where q.owner_id = (select auth.uid())
        $q$
    ),
    (
        'my_payers_and_me',
        $q$
        select (select auth.uid())
        union
        select p.payer_id from public.payments as p where p.payee_id = (select auth.uid())
        $q$
    )
)

insert into private.sync_streams (name, table_name, mode, query, ttl_seconds, description)
select s.name, s.table_name, s.mode, m.query, s.ttl_seconds, s.description
from (
    values
    (
        'my_profile_and_contacts', 'profiles', 'auto', 'my_profile_and_contacts', null::integer,
        'My profile, my tutors, my students and the people I talk to.'
    ),
    (
        'my_courses', 'courses', 'auto', 'my_active_or_taught_courses', null,
        'Courses I am actively enrolled in or teach.'
    ),
    ('course', 'courses', 'on_demand', 'a_visible_course', 86400, 'A course opened from the catalog.'),
    (
        'my_course_content', 'course_content', 'auto', 'my_active_or_taught_courses', null,
        'Modules and lessons of the courses I am actively enrolled in or teach.'
    ),
    (
        'course_preview', 'course_content', 'on_demand', 'a_visible_course', 86400,
        'The content of a course opened from the catalog (previews, unless enrolled).'
    ),
    (
        'my_enrollments', 'enrollments', 'auto', 'my_enrollments', null,
        'My enrollments, whatever their status; a tutor: the enrollments of my courses.'
    ),
    (
        'my_sessions', 'tutoring_sessions', 'auto', 'my_students_and_me', null,
        'Tutoring sessions I take or give.'
    ),
    (
        'my_feedback', 'session_feedback', 'auto', 'my_students_and_me', null,
        'Feedback on the sessions I take or give.'
    ),
    (
        'my_assignments', 'assignments', 'auto', 'my_active_or_taught_courses', null,
        'Assignments of the courses I am actively enrolled in or teach.'
    ),
    (
        'my_submissions', 'submissions', 'auto', 'my_submissions', null,
        'My submissions; a tutor: the submissions to grade.'
    ),
    (
        'my_conversations', 'conversations', 'auto', 'my_conversations', null,
        'Conversations I take part in.'
    ),
    (
        'my_conversation_members', 'conversation_participants', 'auto', 'my_conversations', null,
        'Who is in my conversations.'
    ),
    (
        'my_messages', 'messages', 'auto', 'my_conversations', null,
        'Messages of my conversations.'
    ),
    ('my_notifications', 'notifications', 'auto', 'me', null, 'My notifications.'),
    (
        'my_notification_preferences', 'notification_preferences', 'auto', 'me', null,
        'My notification preferences.'
    ),
    ('my_devices', 'devices', 'auto', 'me', null, 'My registered devices.'),
    ('article', 'articles', 'on_demand', 'a_visible_article', 604800, 'An article the user opened.'),
    ('my_support_queries', 'support_queries', 'auto', 'me', null, 'My support tickets.'),
    (
        'my_support_replies', 'support_replies', 'auto', 'my_support_queries', null,
        'Replies to my support tickets.'
    ),
    (
        'my_payments', 'payments', 'auto', 'my_payers_and_me', null,
        'Payments I made or received (read-only).'
    )
) as s (name, table_name, mode, membership, ttl_seconds, description)
join membership as m on m.name = s.membership;

/*
 * ---------------------------------------------------------------------------
 * Public API functions
 * ---------------------------------------------------------------------------
 */

create function public.sync_schema()
returns jsonb
language sql
stable
set search_path = ''
as $$
    select private.sync_registry()
$$;
revoke all on function public.sync_schema() from public, anon;
grant execute on function public.sync_schema() to authenticated, service_role;
comment on function public.sync_schema() is
'Synced tables (columns, types, writable columns, operations, conflict policy), streams, hash.';


-- One bucket's entry in a sync_pull response: complete (with its new cursor) unless the page
-- stopped inside it (then the round's snapshot and the id to resume after).
create function private.sync_bucket_entry(
    table_name text,
    bucket_key text,
    streams jsonb,
    is_reset boolean,
    is_new boolean,
    served_rows jsonb,
    removed jsonb,
    served_to pg_snapshot,
    resume_after uuid
)
returns jsonb
language sql
immutable
set search_path = ''
as $$
    select jsonb_build_object(
        'bucket', table_name || ':' || bucket_key,
        'table', table_name,
        'key', bucket_key,
        'streams', streams,
        'state', case when is_reset then 'reset' when is_new then 'new' else 'changed' end,
        'rows', served_rows,
        'removed', removed,
        'complete', resume_after is null,
        'cursor', case when resume_after is null then served_to::text end,
        'round', case when resume_after is not null then served_to::text end,
        'after', resume_after
    )
$$;
revoke all on function private.sync_bucket_entry(
    text, text, jsonb, boolean, boolean, jsonb, jsonb, pg_snapshot, uuid
) from public;
grant execute on function private.sync_bucket_entry(
    text, text, jsonb, boolean, boolean, jsonb, jsonb, pg_snapshot, uuid
) to authenticated, service_role;

-- One page of changes for every bucket the caller holds (docs/sync-protocol.md, sync_pull).
-- Stable, so every query below sees the one snapshot that becomes the new cursor, and
-- PostgREST runs it read-only (a read replica can serve it). Security invoker: the rows come
-- through the caller's RLS; only ids of rows to drop come from sync_changes().
create function public.sync_pull(request jsonb)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    snap pg_snapshot := private.sync_snapshot();
    budget integer := least(greatest(coalesce((request ->> 'limit')::numeric, 1000), 1), 10000);
    held jsonb := coalesce(request -> 'buckets', '{}');
    subscriptions jsonb := coalesce(request -> 'subscriptions', '[]');
    pruned xid8 := private.sync_pruned_xid();
    resolved jsonb;
    entries jsonb [] := '{}';
    unchanged text [] := '{}';
    removed_buckets jsonb;
    denied jsonb;
    has_more boolean := false;
    grp record;
    key_list text [];
    id_list uuid [];
    live_list boolean [];
    served integer;
    truncated boolean;
    page_entry record;
    k text;
    seen_keys text [];
    partial_key text;
begin
    if jsonb_typeof(request) <> 'object' then
        raise exception 'the request must be a JSON object' using errcode = '22023';
    end if;
    if jsonb_typeof(held) <> 'object' or jsonb_typeof(subscriptions) <> 'array' then
        raise exception 'buckets must be an object and subscriptions an array'
        using errcode = '22023';
    end if;

    -- Which buckets the caller holds now, through which streams; and refused subscriptions
    -- (a subscription refused by its stream but held through another is not refused).
    with resolution as materialized (
        select r.stream, r.table_name, r.bucket_key, r.allowed, r.reason
        from private.sync_resolve_buckets(subscriptions) as r
    ),

    held_now as (
        select
            r.table_name || ':' || r.bucket_key as bucket,
            to_jsonb(array_agg(distinct r.stream order by r.stream)) as streams
        from resolution as r
        where r.allowed
        group by r.table_name, r.bucket_key
    )

    select
        (select coalesce(jsonb_object_agg(h.bucket, h.streams), '{}') from held_now as h),
        (
            select coalesce(
                jsonb_agg(
                    jsonb_build_object('stream', r.stream, 'key', r.bucket_key, 'reason', r.reason)
                    order by r.stream, r.bucket_key
                ),
                '[]'
            )
            from resolution as r
            where not r.allowed
                and not exists (
                    select 1 from held_now as h where h.bucket = r.table_name || ':' || r.bucket_key
                )
        )
    into resolved, denied;
    select coalesce(jsonb_agg(h.bucket order by h.bucket), '[]') into removed_buckets
    from jsonb_object_keys(held) as h (bucket)
    where not resolved ? h.bucket;

    -- Buckets sharing a table and a state are served by one query; a bucket resumed after an
    -- id is served alone.
    for grp in
        with states as (
            select
                split_part(r.bucket, ':', 1) as table_name,
                substr(r.bucket, strpos(r.bucket, ':') + 1) as bucket_key,
                held -> r.bucket as state
            from jsonb_object_keys(resolved) as r (bucket)
        ),

        parsed as (
            select
                s.table_name,
                s.bucket_key,
                s.state is null as is_new,
                (s.state ->> 'cursor')::pg_snapshot as given_cursor,
                (s.state ->> 'round')::pg_snapshot as round_snap,
                (s.state ->> 'after')::uuid as after_id
            from states as s
        ),

        effective as (
            select
                p.*,
                p.given_cursor is not null
                and pg_catalog.pg_snapshot_xmin(p.given_cursor) <= pruned as is_reset
            from parsed as p
        )

        select
            e.table_name,
            (case when e.is_reset then null else e.given_cursor::text end)::pg_snapshot as since,
            e.round_snap::text::pg_snapshot as round_snap,
            e.after_id,
            e.is_reset,
            array_agg(e.bucket_key order by e.bucket_key) as keys,
            coalesce(
                array_agg(e.bucket_key) filter (where e.is_new or e.given_cursor is null), '{}'
            ) as new_keys
        from effective as e
        group by
            e.table_name, e.is_reset, e.given_cursor::text, e.round_snap::text, e.after_id,
            case when e.after_id is null then '' else e.bucket_key end
        order by e.table_name, e.given_cursor::text nulls first, min(e.bucket_key)
    loop
        if budget <= 0 then
            has_more := true;
            exit;
        end if;
        -- Nothing changed in any of the group's buckets since their cursor: all unchanged,
        -- without planning sync_changes' query (the common case of a periodic pull).
        if grp.since is not null and grp.round_snap is null and grp.after_id is null
            and not grp.is_reset
            and not exists (
                select 1 from private.sync_changed_keys(grp.table_name, grp.keys, grp.since)
            ) then
            -- (A group with a cursor holds no new bucket: a new one has none.)
            unchanged := unchanged || array(
                select grp.table_name || ':' || u.k from unnest(grp.keys) as u (k)
            );
            continue;
        end if;
        select
            coalesce(array_agg(c.bucket_key order by c.n), '{}'),
            coalesce(array_agg(c.row_id order by c.n), '{}'),
            coalesce(array_agg(c.live order by c.n), '{}')
        into key_list, id_list, live_list
        from private.sync_changes(
            grp.table_name, grp.keys, grp.since,
            case when grp.after_id is null then null else grp.keys[1] end,
            grp.after_id, budget + 1
        ) with ordinality as c (bucket_key, row_id, live, n);

        truncated := cardinality(key_list) > budget;
        served := least(cardinality(key_list), budget);
        budget := budget - served;
        partial_key := case when truncated then key_list[served] end;
        has_more := has_more or truncated;

        -- The page's rows as the caller sees them (RLS), one entry per key in (key, id)
        -- order, built by one query: a live id without a visible row, and an id without a
        -- row, is a removal (only for a bucket with a cursor; a new one has nothing to drop).
        seen_keys := '{}';
        if served > 0 then
            for page_entry in execute format(
                'with page as materialized (
                    select c.k, c.id, c.live, c.n
                    from unnest($1::text [], $2::uuid [], $3::boolean []) with ordinality as c (k, id, live, n)
                    where c.n <= $4
                ),
                visible as (
                    select t.id, to_jsonb(t) - ''sync_xid'' as body
                    from public.%I as t
                    where t.id = any(array(select p.id from page as p where p.live))
                )
                select
                    p.k,
                    coalesce(jsonb_agg(v.body order by p.n) filter (where v.id is not null), ''[]'') as served_rows,
                    coalesce(jsonb_agg(p.id order by p.n) filter (where v.id is null and $5), ''[]'') as removed
                from page as p
                left join visible as v on p.live and v.id = p.id
                group by p.k
                order by min(p.n)',
                grp.table_name
            ) using key_list, id_list, live_list, served, grp.since is not null
            loop
                k := page_entry.k;
                seen_keys := seen_keys || k;
                entries := entries || private.sync_bucket_entry(
                    grp.table_name, k, resolved -> (grp.table_name || ':' || k),
                    grp.is_reset, k = any(grp.new_keys), page_entry.served_rows, page_entry.removed, coalesce(grp.round_snap, snap),
                    case when k = partial_key then id_list[served] end
                );
            end loop;
        end if;

        -- Keys without changes are complete too, unless the page was cut: then they wait for
        -- the next page (they may sort after the cut).
        if not truncated then
            foreach k in array grp.keys loop
                continue when k = any(seen_keys);
                if grp.is_reset or k = any(grp.new_keys) or grp.round_snap is not null then
                    entries := entries || private.sync_bucket_entry(
                        grp.table_name, k, resolved -> (grp.table_name || ':' || k),
                        grp.is_reset, k = any(grp.new_keys), '[]', '[]', coalesce(grp.round_snap, snap), null
                    );
                else
                    unchanged := unchanged || (grp.table_name || ':' || k);
                end if;
            end loop;
        end if;
    end loop;

    return jsonb_build_object(
        'snapshot', snap::text,
        'server_time', now(),
        'schema_hash', private.sync_schema_hash(),
        'buckets', to_jsonb(entries),
        'unchanged', to_jsonb(unchanged),
        'removed_buckets', removed_buckets,
        'denied', denied,
        'has_more', has_more
    );
end
$$;
revoke all on function public.sync_pull(jsonb) from public, anon;
grant execute on function public.sync_pull(jsonb) to authenticated, service_role;
comment on function public.sync_pull(jsonb) is
'Sync: one page of rows, removals and new cursors for every bucket the caller holds.';

-- Per-bucket count and checksum of (id, version) over the rows the caller can select.
create function public.sync_checksums(request jsonb)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    wanted text [] := array(
        select jsonb_array_elements_text(coalesce(request -> 'buckets', '[]'))
    );
    held text [];
    result jsonb := '{}';
    part jsonb;
    spec record;
begin
    select coalesce(array_agg(distinct r.table_name || ':' || r.bucket_key), '{}') into held
    from private.sync_resolve_buckets(coalesce(request -> 'subscriptions', '[]')) as r
    where r.allowed;
    for spec in
        select t.table_name, t.bucket_column, t.bucket_type, w.keys
        from (
            select
                split_part(w.bucket, ':', 1) as table_name,
                array_agg(substr(w.bucket, strpos(w.bucket, ':') + 1)) as keys
            from unnest(wanted) as w (bucket)
            where w.bucket = any(held)
            group by 1
        ) as w
        cross join lateral private.sync_table_spec(w.table_name) as t
    loop
        execute format(
            'select coalesce(jsonb_object_agg(%2$L || '':'' || k.key, jsonb_build_object(
                ''count'', coalesce(s.n, 0), ''checksum'', coalesce(s.checksum, 0))), ''{}'')
            from unnest($1) as k (key)
            left join (
                select t.%1$I::text as key, count(*) as n,
                    sum((''x'' || substr(md5(t.id::text || '':'' || t.version::text), 1, 8))::bit (32)::bigint)
                    %% 4294967296 as checksum
                from public.%2$I as t
                where t.%1$I = any($1::%3$s [])
                group by 1
            ) as s on s.key = k.key',
            spec.bucket_column, spec.table_name, spec.bucket_type
        ) into part using spec.keys;
        result := result || part;
    end loop;
    return jsonb_build_object(
        'snapshot', private.sync_snapshot()::text,
        'buckets', result,
        'removed_buckets', to_jsonb(array(select w from unnest(wanted) as w where not w = any(held)))
    );
end
$$;
revoke all on function public.sync_checksums(jsonb) from public, anon;
grant execute on function public.sync_checksums(jsonb) to authenticated, service_role;
comment on function public.sync_checksums(jsonb) is
'Sync: per-bucket row count and checksum of (id, version), as the caller sees them.';

-- Apply a client's queued ops exactly once (docs/sync-protocol.md, sync_push).
create function public.sync_push(client_id uuid, ops jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    me uuid := (select auth.uid());
    stored jsonb;
    results jsonb [] := '{}';
    fresh jsonb [] := '{}';
    -- row id -> the result of the op that failed to write it (later ops on the row follow it)
    failed jsonb := '{}';
    -- row id -> the result of an update or delete of it that was not applied: a later op
    -- on the row was made on top of it (its base_version counts on it), so it follows too
    stale jsonb := '{}';
    -- id of an insert that was not applied -> its result (inserts referring to it follow it;
    -- a failed update or delete does not hold back inserts that merely name the row)
    failed_inserts jsonb := '{}';
    total integer;
    first integer := 0;
    last integer;
    op jsonb;
    tx_results jsonb [];
    failure jsonb;
    failed_at integer;
    result jsonb;
    state text;
    message text;
    j integer;
begin
    if me is null then
        raise exception 'sync_push needs a signed-in user' using errcode = '42501';
    end if;
    if client_id is null or jsonb_typeof(ops) is distinct from 'array' then
        raise exception 'sync_push needs a client_id and an array of ops' using errcode = '22023';
    end if;
    -- Each op costs a savepoint and its write (about 3 ms here): a bigger batch would run into
    -- the API role's statement_timeout half done and be retried for ever. Refused whole, at once.
    if jsonb_array_length(ops) > 1000 then
        raise exception 'at most 1000 ops per sync_push request (got %); send them in batches',
            jsonb_array_length(ops)
        using errcode = '22023';
    end if;
    if exists (
        select 1 from jsonb_array_elements(ops) as o
        where jsonb_typeof(o) <> 'object'
            or coalesce(o ->> 'op_id', '') !~ '^[0-9]{1,18}$'
            or coalesce(o ->> 'id', '') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
            or coalesce(o ->> 'base_version', '0') !~ '^[0-9]{1,18}$'
    ) then
        raise exception 'every op needs an integer op_id, a uuid id and an integer base_version or null'
        using errcode = '22023';
    end if;
    -- Results are stored per op_id: one id twice in a request would apply two ops under one
    -- stored result (and "7" and "007" are the same op).
    if (select count(distinct (o ->> 'op_id')::bigint) from jsonb_array_elements(ops) as o)
        <> jsonb_array_length(ops) then
        raise exception 'op_id must be unique within a request' using errcode = '22023';
    end if;

    -- One push per client at a time, so a retry racing the original waits and then replays.
    perform pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtextextended('sync_push:' || me::text || ':' || client_id::text, 0)
    );
    stored := private.sync_stored_results(
        client_id, array(select (o ->> 'op_id')::bigint from jsonb_array_elements(ops) as o)
    );

    total := jsonb_array_length(ops);
    while first < total loop
        -- The client transaction: consecutive ops with the same tx_id (no tx_id: the op alone).
        last := first;
        while last + 1 < total
            and ops -> first ->> 'tx_id' is not null
            and ops -> (last + 1) ->> 'tx_id' = ops -> first ->> 'tx_id'
        loop
            last := last + 1;
        end loop;

        if stored ? ((ops -> first ->> 'op_id')::bigint)::text then
            for j in first..last loop
                results := results || (
                    coalesce(stored -> ((ops -> j ->> 'op_id')::bigint)::text, jsonb_build_object(
                        'op_id', (ops -> j ->> 'op_id')::bigint, 'status', 'rejected',
                        'sqlstate', '22023', 'message', 'op was not part of the stored transaction'
                    )) || '{"replayed": true}'
                );
            end loop;
            first := last + 1;
            continue;
        end if;

        tx_results := '{}';
        failure := null;
        failed_at := null;
        begin
            for j in first..last loop
                op := ops -> j;
                failed_at := j;
                -- An op on a row an earlier op failed to write, or an insert referring to it.
                if failed ? (op ->> 'id') or stale ? (op ->> 'id') then
                    failure := coalesce(failed -> (op ->> 'id'), stale -> (op ->> 'id'));
                    raise exception using errcode = 'PYS01';
                end if;
                if op ->> 'kind' = 'insert' then
                    select failed_inserts -> v.value into failure
                    from jsonb_each_text(
                        case when jsonb_typeof(op -> 'data') = 'object' then op -> 'data' else '{}' end
                    ) as v
                    where failed_inserts ? v.value
                    limit 1;
                    if failure is not null then
                        raise exception using errcode = 'PYS01';
                    end if;
                end if;
                result := private.sync_apply_op(op);
                if result ->> 'status' <> 'applied' then
                    failure := result || jsonb_build_object('op_id', (op ->> 'op_id')::bigint);
                    raise exception using errcode = 'PYS01';
                end if;
                tx_results := tx_results || (result || jsonb_build_object('op_id', (op ->> 'op_id')::bigint));
            end loop;
        exception when others then
            get stacked diagnostics state = returned_sqlstate, message = message_text;
            op := ops -> failed_at;
            if state <> 'PYS01' then
                failure := jsonb_build_object(
                    'op_id', (op ->> 'op_id')::bigint, 'status', 'rejected',
                    'sqlstate', state, 'message', message,
                    'row', private.sync_visible_row(op ->> 'table', (op ->> 'id')::uuid)
                );
            elsif (failure ->> 'op_id')::bigint <> (op ->> 'op_id')::bigint then
                -- Followed an op of an earlier transaction.
                failure := jsonb_build_object(
                    'op_id', (op ->> 'op_id')::bigint, 'status', failure ->> 'status',
                    'sqlstate', failure -> 'sqlstate',
                    'message', 'depends on op ' || (failure ->> 'op_id') || ', which was not applied',
                    'depends_on', coalesce(failure -> 'depends_on', failure -> 'op_id'),
                    'row', private.sync_visible_row(op ->> 'table', (op ->> 'id')::uuid)
                );
            end if;
            tx_results := '{}';
            for j in first..last loop
                op := ops -> j;
                if j = failed_at then
                    result := failure;
                else
                    result := jsonb_build_object(
                        'op_id', (op ->> 'op_id')::bigint, 'status', failure ->> 'status',
                        'sqlstate', failure -> 'sqlstate',
                        'message', 'rolled back with op ' || (failure ->> 'op_id'),
                        'depends_on', coalesce(failure -> 'depends_on', failure -> 'op_id'),
                        'row', private.sync_visible_row(op ->> 'table', (op ->> 'id')::uuid)
                    );
                end if;
                result := jsonb_strip_nulls(result) || jsonb_build_object('row', result -> 'row');
                tx_results := tx_results || result;
                if op ->> 'kind' = 'insert' or result ->> 'status' = 'rejected' then
                    failed := failed || jsonb_build_object(op ->> 'id', result);
                else
                    stale := stale || jsonb_build_object(op ->> 'id', result);
                end if;
                if op ->> 'kind' = 'insert' then
                    failed_inserts := failed_inserts || jsonb_build_object(op ->> 'id', result);
                end if;
            end loop;
        end;
        results := results || tx_results;
        fresh := fresh || tx_results;
        first := last + 1;
    end loop;

    perform private.sync_store_results(client_id, to_jsonb(fresh));
    return jsonb_build_object('server_time', now(), 'results', to_jsonb(results));
end
$$;
revoke all on function public.sync_push(uuid, jsonb) from public, anon;
grant execute on function public.sync_push(uuid, jsonb) to authenticated;
comment on function public.sync_push(uuid, jsonb) is
'Sync: apply a client''s queued ops exactly once; a result per op (applied, conflict, rejected).';

-- Housekeeping for a scheduled job: drop old tombstones and push results, and remember the
-- newest pruned tombstone so that older cursors are re-served whole.
create function public.sync_prune()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    settings private.sync_settings;
    tombstones bigint;
    newest xid8;
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
        delete from private.sync_push_results as r
        where r.created_at < now() - settings.push_horizon
        returning 1
    )
    select count(*) into push_results from gone;
    return jsonb_build_object(
        'tombstones', tombstones,
        'push_results', push_results,
        'pruned_xid', (select s.pruned_xid::text from private.sync_settings as s)
    );
end
$$;
revoke all on function public.sync_prune() from public, anon, authenticated;
grant execute on function public.sync_prune() to service_role;
comment on function public.sync_prune() is
'Sync housekeeping (service role): prune old tombstones and push results.';
