-- Sync pulls, faster (issue 10): the pull side of 20261201090000_sync.sql, redefined.
--
-- * Every held bucket's "did anything change since its cursor" is one static statement for all
--   synced tables (private.sync_changed_buckets, generated), instead of one call a table.
-- * The schema hash carries the registry's part as a constant compiled into the function
--   (regenerated when the registry changes) and reads only the synced tables' catalog rows.
-- * sync_pull returns json, built as json (no jsonb per row, no jsonb to text at the end), and
--   serves a new bucket's rows with one keyset query as the caller instead of ids first and
--   rows second. Clients that send "version": 2 get rows as arrays of values under a column
--   list per table (docs/sync-protocol.md); others get objects as before.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

-- The synced columns of a table (every column but sync_xid, in table order): the v2 column
-- list, and the column list of sync_schema().
-- PL/pgSQL, like the helpers below that a pull calls: a SQL function that is not inlined
-- plans its query again on every call.
create function private.sync_columns(table_name text)
returns text []
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return (
        select coalesce(array_agg(a.attname::text order by a.attnum), '{}')
        from pg_catalog.pg_attribute as a
        where a.attrelid = format('public.%I', table_name)::regclass
            and a.attnum > 0 and not a.attisdropped and a.attname <> 'sync_xid'
    );
end
$$;
revoke all on function private.sync_columns(text) from public;
grant execute on function private.sync_columns(text) to authenticated, service_role;

-- The SQL expression (over alias t) that serializes one row of a synced table as json: an
-- object of the synced columns (v1), or an array of their values in sync_columns' order
-- (v2). json_build_* take at most 100 arguments; wider tables go through jsonb.
create function private.sync_row_json(table_name text, columnar boolean)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return (
    select case
        when columnar and cardinality(c.cols) <= 100 then
            format('json_build_array(%s)', (
                select string_agg(format('t.%I', n), ', ' order by i)
                from unnest(c.cols) with ordinality as u (n, i)
            ))
        when columnar then
            format(
                '(select json_agg(j.value order by u.i) from jsonb_each(to_jsonb(t)) as j'
                ' join unnest(%L::text []) with ordinality as u (n, i) on u.n = j.key)',
                c.cols
            )
        when cardinality(c.cols) <= 50 then
            format('json_build_object(%s)', (
                select string_agg(format('%L, t.%I', n, n), ', ' order by i)
                from unnest(c.cols) with ordinality as u (n, i)
            ))
        else '(to_jsonb(t) - ''sync_xid'')::json'
    end
    from (select private.sync_columns(table_name) as cols) as c
    );
end
$$;
revoke all on function private.sync_row_json(text, boolean) from public;
grant execute on function private.sync_row_json(text, boolean) to authenticated, service_role;

-- Generate what a pull asks on every call as static statements (PL/pgSQL keeps their plans
-- for the session, where EXECUTE would plan again each time):
-- * private.sync_changed_buckets(tables, keys, cursors): which of the given buckets have a row
--   or a tombstone that their cursor could not see, all tables in one statement. Security
--   definer: it tells the caller only that a bucket it holds changed, never an id.
-- * private.sync_schema_hash(): the registry's part of the hash as a constant, and a
--   fingerprint of the synced tables' catalog rows read on each call by the tables' oids (an
--   index scan): their count and the sum of their xmins. Adding, dropping, retyping or renaming
--   a column writes a new row version with a newer xmin, so the hash changes without any
--   registry change; so do some catalog writes that change nothing clients see (`set
--   statistics`), which cost a client one sync_schema() call. A table dropped and created again
--   must be registered again anyway (its capture triggers), which recompiles this. PL/pgSQL,
--   because a SQL function that is not inlined plans its query on every call.
-- * private.sync_changes(...): as in 20261201090000_sync.sql (same signature, same rows),
--   with a static statement per table and path instead of planning a dynamic one per call.
-- * private.sync_visible_rows(table, ids, columnar, schema_hash): the rows with these ids that
--   the caller may see (security invoker: RLS decides), each as json, by a static statement
--   whose column list is compiled in. It is used only while the schema hash is the one it was
--   compiled under; after a plain ALTER TABLE it builds its statement from the catalog instead
--   (correct, planned on every call) until the registry next changes.
-- Regenerated whenever the registry changes (trigger sync_pull_registry_changed).
create function private.sync_compile_pull()
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
        return query
        select c.k::text, c.id, c.live from (
            select distinct on (u.k, u.id) u.k, u.id, u.live from (
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
            ) as u
            order by u.k, u.id, u.live desc
        ) as c
        where $4::text is null or (c.k, c.id) > ($4::%3$s, $5)
        order by c.k, c.id
        limit $6;
        return;
    end if;$branch$,
            t.bucket_column, t.table_name, t.bucket_type
        ),
        '' order by t.table_name
    ) into branches
    from private.sync_tables as t;
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
        as %L
        $ddl$,
        format(
            E'begin%s\n    raise exception ''sync: %% is not a synced table'', $1 using errcode = ''42501'';\nend',
            coalesce(branches, '')
        )
    );

    select string_agg(
        format(
            E'\n            when %L then exists (\n'
            '                select 1 from public.%I as x\n'
            '                where x.%I = r.k::%s\n'
            '                    and x.sync_xid >= pg_catalog.pg_snapshot_xmin(r.c)\n'
            '                    and not pg_catalog.pg_visible_in_snapshot(x.sync_xid, r.c)\n'
            '            )',
            t.table_name, t.table_name, t.bucket_column, t.bucket_type
        ),
        '' order by t.table_name
    ) into branches
    from private.sync_tables as t;
    execute format(
        $ddl$
        create or replace function private.sync_changed_buckets(
            tables text [], keys text [], cursors pg_snapshot []
        )
        returns table (table_name text, bucket_key text)
        language plpgsql
        stable
        security definer
        set search_path = ''
        as %L
        $ddl$,
        format(
            E'begin\n    return query\n    select r.t, r.k\n'
            '    from unnest($1, $2, $3) as r (t, k, c)\n'
            '    where case r.t%s\n            else false\n        end\n'
            '        or exists (\n'
            '            select 1 from private.sync_tombstones as tb\n'
            '            where tb.table_name = r.t and tb.bucket_key = r.k\n'
            '                and tb.sync_xid >= pg_catalog.pg_snapshot_xmin(r.c)\n'
            '                and not pg_catalog.pg_visible_in_snapshot(tb.sync_xid, r.c)\n'
            '        );\nend',
            coalesce(branches, '')
        )
    );
    revoke all on function private.sync_changed_buckets(text [], text [], pg_snapshot [])
    from public;
    grant execute on function private.sync_changed_buckets(text [], text [], pg_snapshot [])
    to authenticated, service_role;

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

create function private.sync_pull_registry_changed()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    perform private.sync_compile_pull();
    return null;
end
$$;
revoke all on function private.sync_pull_registry_changed() from public;

create trigger sync_pull_registry_changed after insert or update or delete or truncate
on private.sync_tables
for each statement execute function private.sync_pull_registry_changed();

create trigger sync_pull_registry_changed after insert or update or delete or truncate
on private.sync_streams
for each statement execute function private.sync_pull_registry_changed();

select private.sync_compile_pull();

-- One page of a bucket group served whole (no cursor: new, reset, or a round resumed after an
-- id), as the caller: RLS skips rows the caller may not see, and there is nothing to remove.
-- Keyset pages on the (bucket, id) index: the first max_rows rows in (bucket, id) order; one
-- row per bucket of the page, in bucket order, with its rows as json, how many, the last
-- (largest) id served, the page's row count, and whether it is the page's last bucket. A page
-- of max_rows rows counts as cut (the caller resumes after its last id; a bucket that had
-- exactly that many rows left gets one more, empty, page): reading one row more to know would
-- mean ordering the page's rows once more to leave it out, which costs more than that page.
-- The rows of a bucket are aggregated as they come, without sorting them again: their order
-- in the array carries no meaning (the resume point is the largest id).
create function private.sync_serve_whole(
    table_name text,
    keys text [],
    after_key text,
    after_id uuid,
    max_rows integer,
    columnar boolean
)
returns table (
    bucket_key text, served_rows json, served bigint, last_id uuid, total numeric, is_last boolean
)
language plpgsql
stable
set search_path = ''
as $$
declare
    spec private.sync_tables := private.sync_table_spec(table_name);
    body text := private.sync_row_json(table_name, columnar);
    source text;
begin
    -- A resumed page gets its own statement that starts the index scan at (key, id) (see
    -- private.sync_changes).
    if after_key is null then
        source := format(
            'select t.%1$I as k, t.id, %4$s as body
            from public.%2$I as t
            where t.%1$I = any($1::%3$s [])
            order by t.%1$I, t.id
            limit $4',
            spec.bucket_column, spec.table_name, spec.bucket_type, body
        );
    elsif cardinality(keys) = 1 then
        -- Resuming one bucket (sync_pull resumes a bucket alone): the rest of it, in id order,
        -- straight off the index, with nothing to merge or sort.
        source := format(
            'select t.%1$I as k, t.id, %4$s as body from public.%2$I as t
            where t.%1$I = $2::%3$s and t.id > $3
            order by t.id
            limit $4',
            spec.bucket_column, spec.table_name, spec.bucket_type, body
        );
    else
        source := format(
            'select s.* from (
                (
                    select t.%1$I as k, t.id, %4$s as body from public.%2$I as t
                    where t.%1$I = $2::%3$s and t.id > $3
                    order by t.id
                    limit $4
                )
                union all
                (
                    select t.%1$I, t.id, %4$s from public.%2$I as t
                    where t.%1$I = any($1::%3$s []) and t.%1$I > $2::%3$s
                    order by t.%1$I, t.id
                    limit $4
                )
            ) as s
            order by s.k, s.id
            limit $4',
            spec.bucket_column, spec.table_name, spec.bucket_type, body
        );
    end if;
    -- The largest id by its text in the C collation: the order of uuids (bytes compared as
    -- hex digits), where uuid itself has no max().
    return query execute format(
        'select g.k::text, g.rows, g.n, g.last_id, sum(g.n) over (),
            row_number() over (order by g.k desc) = 1
        from (
            select p.k, json_agg(p.body) as rows, count(*) as n,
                max(p.id::text collate "C")::uuid as last_id
            from (%s) as p
            group by p.k
        ) as g
        order by g.k',
        source
    ) using keys, after_key, after_id, max_rows;
end
$$;
revoke all on function private.sync_serve_whole(text, text [], text, uuid, integer, boolean)
from public;
grant execute on function private.sync_serve_whole(text, text [], text, uuid, integer, boolean)
to authenticated, service_role;

-- One bucket's entry in a sync_pull response, as json: complete (with its new cursor) unless
-- the page stopped inside it (then the round's snapshot and the id to resume after). Dropped
-- and created again because its argument and result types change; only sync_pull calls it.
-- squawk-ignore ban-drop-function
drop function private.sync_bucket_entry(
    text, text, jsonb, boolean, boolean, jsonb, jsonb, pg_snapshot, uuid
);
create function private.sync_bucket_entry(
    table_name text,
    bucket_key text,
    streams jsonb,
    is_reset boolean,
    is_new boolean,
    served_rows json,
    removed json,
    served_to pg_snapshot,
    resume_after uuid
)
returns json
language sql
immutable
set search_path = ''
as $$
    select json_build_object(
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
    text, text, jsonb, boolean, boolean, json, json, pg_snapshot, uuid
) from public;
grant execute on function private.sync_bucket_entry(
    text, text, jsonb, boolean, boolean, json, json, pg_snapshot, uuid
) to authenticated, service_role;

/*
 * ---------------------------------------------------------------------------
 * Public API functions
 * ---------------------------------------------------------------------------
 */

-- One page of changes for every bucket the caller holds (docs/sync-protocol.md, sync_pull).
-- Stable, so every query below sees the one snapshot that becomes the new cursor, and
-- PostgREST runs it read-only (a read replica can serve it). Security invoker: the rows come
-- through the caller's RLS; only ids of rows to drop come from sync_changes(), and only
-- whether a bucket changed from sync_changed_buckets(). JIT off: the RLS subplans make a page
-- of a few thousand rows look costly enough to compile, which took longer (~0.2 s) than
-- serving the page. Dropped and created again because its
-- result type changes from jsonb to json, which every client parses the same (PostgREST sends
-- both as JSON); its grants are given again below.
-- squawk-ignore ban-drop-function
drop function public.sync_pull(jsonb);
create function public.sync_pull(request jsonb)
returns json
language plpgsql
stable
set search_path = ''
set jit = off
as $$
declare
    snap pg_snapshot := private.sync_snapshot();
    budget integer := least(greatest(coalesce((request ->> 'limit')::numeric, 1000), 1), 10000);
    held jsonb := coalesce(request -> 'buckets', '{}');
    subscriptions jsonb := coalesce(request -> 'subscriptions', '[]');
    wire_version integer := least(greatest(coalesce((request ->> 'version')::numeric, 1), 1), 2);
    columnar boolean;
    pruned xid8 := private.sync_pruned_xid();
    schema_hash text := private.sync_schema_hash();
    resolved jsonb;
    entries json [] := '{}';
    unchanged text [] := '{}';
    served_tables text [] := '{}';
    removed_buckets json;
    denied json;
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
    resume_id uuid;
begin
    if jsonb_typeof(request) <> 'object' then
        raise exception 'the request must be a JSON object' using errcode = '22023';
    end if;
    if jsonb_typeof(held) <> 'object' or jsonb_typeof(subscriptions) <> 'array' then
        raise exception 'buckets must be an object and subscriptions an array'
        using errcode = '22023';
    end if;
    columnar := wire_version >= 2;

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
                json_agg(
                    json_build_object('stream', r.stream, 'key', r.bucket_key, 'reason', r.reason)
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
    select coalesce(json_agg(h.bucket order by h.bucket), '[]') into removed_buckets
    from jsonb_object_keys(held) as h (bucket)
    where not resolved ? h.bucket;

    -- Buckets sharing a table and a state are served by one query; a bucket resumed after an
    -- id is served alone. A bucket with a cursor (not reset, not mid-round) in which nothing
    -- changed is unchanged, found for all tables by one statement.
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
                and pg_catalog.pg_snapshot_xmin(p.given_cursor) <= pruned as is_reset,
                p.given_cursor is not null and p.round_snap is null and p.after_id is null
                and pg_catalog.pg_snapshot_xmin(p.given_cursor) > pruned as checkable
            from parsed as p
        ),

        changed as (
            select c.table_name, c.bucket_key
            from (
                select
                    array_agg(e.table_name) as tables,
                    array_agg(e.bucket_key) as keys,
                    array_agg(e.given_cursor) as cursors
                from effective as e
                where e.checkable
            ) as a
            cross join lateral private.sync_changed_buckets(a.tables, a.keys, a.cursors) as c
        ),

        classified as (
            select
                e.*,
                e.checkable and not exists (
                    select 1 from changed as c
                    where c.table_name = e.table_name and c.bucket_key = e.bucket_key
                ) as is_unchanged
            from effective as e
        )

        select
            e.table_name,
            e.is_unchanged,
            (case when e.is_reset then null else e.given_cursor::text end)::pg_snapshot as since,
            e.round_snap::text::pg_snapshot as round_snap,
            e.after_id,
            e.is_reset,
            array_agg(e.bucket_key order by e.bucket_key) as keys,
            coalesce(
                array_agg(e.bucket_key) filter (where e.is_new or e.given_cursor is null), '{}'
            ) as new_keys
        from classified as e
        group by
            e.is_unchanged, e.table_name, e.is_reset, e.given_cursor::text, e.round_snap::text,
            e.after_id, case when e.after_id is null then '' else e.bucket_key end
        order by e.is_unchanged desc, e.table_name, e.given_cursor::text nulls first,
            min(e.bucket_key)
    loop
        if grp.is_unchanged then
            unchanged := unchanged || array(
                select grp.table_name || ':' || u.k from unnest(grp.keys) as u (k)
            );
            continue;
        end if;
        if budget <= 0 then
            has_more := true;
            exit;
        end if;
        seen_keys := '{}';
        partial_key := null;
        resume_id := null;

        if grp.since is null then
            -- Served whole: the rows straight from the table, as the caller.
            truncated := false;
            served := 0;
            for page_entry in
                select *
                from private.sync_serve_whole(
                    grp.table_name, grp.keys,
                    case when grp.after_id is null then null else grp.keys[1] end,
                    grp.after_id, budget, columnar
                )
            loop
                k := page_entry.bucket_key;
                seen_keys := seen_keys || k;
                served := page_entry.total;
                truncated := served >= budget;
                if truncated and page_entry.is_last then
                    partial_key := k;
                    resume_id := page_entry.last_id;
                end if;
                entries := entries || private.sync_bucket_entry(
                    grp.table_name, k, resolved -> (grp.table_name || ':' || k),
                    grp.is_reset, k = any(grp.new_keys), page_entry.served_rows, '[]',
                    coalesce(grp.round_snap, snap),
                    case when k = partial_key then resume_id end
                );
            end loop;
            budget := budget - served;
            has_more := has_more or truncated;
        else
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
            -- order: a live id without a visible row, and an id without a row, is a removal.
            if served > 0 then
                for page_entry in
                    with page as materialized (
                        select c.k, c.id, c.live, c.n
                        from unnest(key_list, id_list, live_list) with ordinality as c (k, id, live, n)
                        where c.n <= served
                    ),

                    visible as (
                        select v.id, v.body
                        from private.sync_visible_rows(
                            grp.table_name, array(select p.id from page as p where p.live),
                            columnar, schema_hash
                        ) as v
                    )

                    select
                        p.k,
                        coalesce(json_agg(v.body order by p.n) filter (where v.id is not null), '[]')
                        as served_rows,
                        coalesce(json_agg(p.id order by p.n) filter (where v.id is null), '[]')
                        as removed
                    from page as p
                    left join visible as v on p.live and v.id = p.id
                    group by p.k
                    order by min(p.n)
                loop
                    k := page_entry.k;
                    seen_keys := seen_keys || k;
                    entries := entries || private.sync_bucket_entry(
                        grp.table_name, k, resolved -> (grp.table_name || ':' || k),
                        grp.is_reset, false, page_entry.served_rows, page_entry.removed,
                        coalesce(grp.round_snap, snap),
                        case when k = partial_key then id_list[served] end
                    );
                end loop;
            end if;
        end if;
        if served > 0 then
            served_tables := served_tables || grp.table_name;
        end if;

        -- Keys without changes are complete too, unless the page was cut: then they wait for
        -- the next page (they may sort after the cut).
        if not truncated then
            foreach k in array grp.keys loop
                continue when k = any(seen_keys);
                if grp.is_reset or k = any(grp.new_keys) or grp.round_snap is not null then
                    entries := entries || private.sync_bucket_entry(
                        grp.table_name, k, resolved -> (grp.table_name || ':' || k),
                        grp.is_reset, k = any(grp.new_keys), '[]', '[]',
                        coalesce(grp.round_snap, snap), null
                    );
                else
                    unchanged := unchanged || (grp.table_name || ':' || k);
                end if;
            end loop;
        end if;
    end loop;

    if not columnar then
        return json_build_object(
            'snapshot', snap::text,
            'server_time', now(),
            'schema_hash', schema_hash,
            'buckets', array_to_json(entries),
            'unchanged', array_to_json(unchanged),
            'removed_buckets', removed_buckets,
            'denied', denied,
            'has_more', has_more
        );
    end if;
    return json_build_object(
        'version', 2,
        'snapshot', snap::text,
        'server_time', now(),
        'schema_hash', schema_hash,
        'columns', (
            select coalesce(json_object_agg(t.name, private.sync_columns(t.name)), '{}')
            from (select distinct u.name from unnest(served_tables) as u (name)) as t
        ),
        'buckets', array_to_json(entries),
        'unchanged', array_to_json(unchanged),
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
