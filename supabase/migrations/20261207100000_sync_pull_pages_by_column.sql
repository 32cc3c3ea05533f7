-- Pull pages column by column: wire version 3 (issue 10: first sync).
--
-- A bucket served whole (a first sync, a reset, a resumed round) came as one JSON array per
-- row, built by json_build_array(t.c1, t.c2, …). That function works out how to write each
-- argument on every call: for every value of every row it looks up the value's type in the
-- catalog caches (base type, array element, row type, output function). A profile of a page
-- of 5,000 course_content rows (13 columns) put 55% of the server's time in json_build_array,
-- a fifth of it in those lookups. json_agg looks a type up once per aggregate and then only
-- writes values, so the same page written as one json_agg per column, over the same rows read
-- the same way under RLS, takes 50 ms instead of 133 ms (the rows alone: 21 ms).
--
-- Version 3 of sync_pull's wire format (docs/sync-protocol.md) is version 2 in which a bucket
-- entry may carry its rows column by column: `by_column` holds one array per name of the
-- table's `columns`, each with one value per row, in the page's order, and `rows` is empty.
-- Entries of buckets served whole come that way; entries of changes since a cursor (a few
-- rows, read by id) keep `rows`. A request for version 2 or 1 gets exactly what it got
-- before. A table of more than 100 columns (json_build_array's limit on arguments) keeps
-- `rows` in version 3 too.
--
-- * private.sync_page_json(table_name): the select list and the aggregate for a page by
--   column (null past 100 columns).
-- * private.sync_serve_rows gains `by_column` and says, per bucket, how it wrote the rows. It
--   keeps 20261207090000_sync_pages_in_key_order.sql's settings.
-- * private.sync_bucket_entry gains an overload with `by_column`.
-- * private.sync_pull_response takes the wire version instead of `columnar` (3 says 3).
-- * public.sync_pull: as in 20261205090000_sync_pull_fewer_plans.sql, answering versions 1 to
--   3. Same signature, same grants.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- The two parts of a page statement by column, for a table of at most 100 columns: the select
-- list over alias t (each synced column as v1, v2, … in sync_columns' order) and the one
-- aggregate over alias p that writes them as an array of per-column arrays. Null for a wider
-- table.
create function private.sync_page_json(table_name text)
returns text []
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    cols text [] := private.sync_columns(table_name);
begin
    if cardinality(cols) > 100 then
        return null;
    end if;
    return array[
        (
            select string_agg(format('t.%I as v%s', u.n, u.i), ', ' order by u.i)
            from unnest(cols) with ordinality as u (n, i)
        ),
        format(
            'json_build_array(%s)',
            (
                select string_agg(format('json_agg(p.v%s)', u.i), ', ' order by u.i)
                from unnest(cols) with ordinality as u (n, i)
            )
        )
    ];
end
$$;
revoke all on function private.sync_page_json(text) from public;
grant execute on function private.sync_page_json(text) to authenticated, service_role;

-- As in 20261204090000_sync_pull_lean_pages.sql, and by column when asked and the table allows
-- (is_by_column says which way each bucket's rows came). Every json_agg of a group sees the
-- group's rows in the same order, the order the rows come in.
create function private.sync_serve_rows(
    table_name text,
    keys text [],
    after_key text,
    after_id uuid,
    max_rows integer,
    columnar boolean,
    by_column boolean
)
returns table (
    bucket_key text, served_rows json, served bigint, last_id uuid, is_by_column boolean
)
language plpgsql
stable
set search_path = ''
set enable_sort = off
set enable_incremental_sort = off
as $$
declare
    spec private.sync_tables := private.sync_table_spec(table_name);
    page text [] := case when by_column then private.sync_page_json(table_name) end;
    listed text;
    aggregate text;
    source text;
begin
    if page is null then
        listed := format('%s as body', private.sync_row_json(table_name, columnar));
        aggregate := 'json_agg(p.body)';
    else
        listed := page[1];
        aggregate := page[2];
    end if;
    if after_key is null then
        source := format(
            'select t.%1$I as k, t.id, %4$s
            from public.%2$I as t
            where t.%1$I = any($1::%3$s [])
            order by t.%1$I, t.id
            limit $4',
            spec.bucket_column, spec.table_name, spec.bucket_type, listed
        );
    elsif cardinality(keys) = 1 then
        source := format(
            'select t.%1$I as k, t.id, %4$s from public.%2$I as t
            where t.%1$I = $2::%3$s and t.id > $3
            order by t.%1$I, t.id
            limit $4',
            spec.bucket_column, spec.table_name, spec.bucket_type, listed
        );
    else
        source := format(
            'select s.* from (
                (
                    select t.%1$I as k, t.id, %4$s from public.%2$I as t
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
            spec.bucket_column, spec.table_name, spec.bucket_type, listed
        );
    end if;
    return query execute format(
        'select p.k::text, %s, count(*), max(p.id::text collate "C")::uuid, %L::boolean
        from (%s) as p
        group by p.k
        order by p.k',
        aggregate, page is not null, source
    ) using keys, after_key, after_id, max_rows;
end
$$;
revoke all on function private.sync_serve_rows(
    text, text [], text, uuid, integer, boolean, boolean
) from public;
grant execute on function private.sync_serve_rows(
    text, text [], text, uuid, integer, boolean, boolean
) to authenticated, service_role;

-- As the entry of 20261204090000_sync_pull_lean_pages.sql, with the rows column by column.
create function private.sync_bucket_entry(
    table_name text, bucket_key text, streams jsonb, is_reset boolean, is_new boolean,
    served_rows json, removed json, served_to pg_snapshot, resume_after uuid, by_column json
)
returns json
language plpgsql
immutable
set search_path = ''
as $$
begin
    return json_build_object(
        'bucket', table_name || ':' || bucket_key,
        'table', table_name,
        'key', bucket_key,
        'streams', streams,
        'state', case when is_reset then 'reset' when is_new then 'new' else 'changed' end,
        'rows', served_rows,
        'by_column', by_column,
        'removed', removed,
        'complete', resume_after is null,
        'cursor', case when resume_after is null then served_to::text end,
        'round', case when resume_after is not null then served_to::text end,
        'after', resume_after
    );
end
$$;
revoke all on function private.sync_bucket_entry(
    text, text, jsonb, boolean, boolean, json, json, pg_snapshot, uuid, json
) from public;
grant execute on function private.sync_bucket_entry(
    text, text, jsonb, boolean, boolean, json, json, pg_snapshot, uuid, json
) to authenticated, service_role;

-- As in 20261203200000_sync_pull_no_change_fast_path.sql, by wire version: 1 without
-- `version` and `columns`, 2 and 3 with them.
create function private.sync_pull_response(
    wire_version integer,
    snap pg_snapshot,
    schema_hash text,
    served_tables text [],
    entries json [],
    unchanged text [],
    removed_buckets json,
    denied json,
    has_more boolean
)
returns json
language plpgsql
stable
set search_path = ''
as $$
begin
    if wire_version < 2 then
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
        'version', wire_version,
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
revoke all on function private.sync_pull_response(
    integer, pg_snapshot, text, text [], json [], text [], json, json, boolean
) from public;
grant execute on function private.sync_pull_response(
    integer, pg_snapshot, text, text [], json [], text [], json, json, boolean
) to authenticated, service_role;

-- As in 20261205090000_sync_pull_fewer_plans.sql, answering wire versions 1 to 3.
create or replace function public.sync_pull(request jsonb)
returns json
language plpgsql
stable
set search_path = ''
set jit = off
set plan_cache_mode = force_generic_plan
as $$
declare
    snap pg_snapshot := private.sync_snapshot();
    budget integer := least(greatest(coalesce((request ->> 'limit')::numeric, 1000), 1), 10000);
    held jsonb := coalesce(request -> 'buckets', '{}');
    subscriptions jsonb := coalesce(request -> 'subscriptions', '[]');
    wire_version integer := least(greatest(coalesce((request ->> 'version')::numeric, 1), 1), 3);
    columnar boolean;
    by_column boolean;
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
    all_checkable boolean := false;
    held_tables text [];
    held_keys text [];
    held_cursors pg_snapshot [];
    changed_known boolean := false;
    changed_tables text [];
    changed_keys text [];
    res_streams text [];
    res_tables text [];
    res_keys text [];
    res_allowed boolean [];
    res_reasons text [];
    allowed_buckets text [];
    any_refused boolean;
begin
    if jsonb_typeof(request) <> 'object' then
        raise exception 'the request must be a JSON object' using errcode = '22023';
    end if;
    if jsonb_typeof(held) <> 'object' or jsonb_typeof(subscriptions) <> 'array' then
        raise exception 'buckets must be an object and subscriptions an array'
        using errcode = '22023';
    end if;
    columnar := wire_version >= 2;
    by_column := wire_version >= 3;

    -- Which buckets the caller may hold now (every stream's resolution, kept as arrays for the
    -- general path below), and whether any subscription was refused.
    select
        coalesce(array_agg(r.stream), '{}'),
        coalesce(array_agg(r.table_name), '{}'),
        coalesce(array_agg(r.bucket_key), '{}'),
        coalesce(array_agg(r.allowed), '{}'),
        coalesce(array_agg(r.reason), '{}'),
        coalesce(
            array_agg(
                distinct r.table_name || ':' || r.bucket_key
                order by r.table_name || ':' || r.bucket_key
            ) filter (where r.allowed),
            '{}'
        ),
        coalesce(bool_or(not r.allowed), false)
    into res_streams, res_tables, res_keys, res_allowed, res_reasons, allowed_buckets, any_refused
    from private.sync_resolve_buckets(subscriptions) as r;

    -- The common case, a pull in which nothing changed: no subscription refused, and the client
    -- holds exactly the buckets it may hold, each with a cursor that can be checked (not reset,
    -- not mid-round), so the one change check answers for all of them. When it finds nothing,
    -- the answer is every bucket unchanged, without the general path's grouping below; when it
    -- finds changes, the general path reuses them instead of asking again.
    if not any_refused then
        select
            coalesce(array_agg(h.bucket order by h.bucket), '{}') = allowed_buckets
            and coalesce(
                bool_and(
                    (
                        h.state ->> 'cursor' is not null
                        and h.state ->> 'round' is null
                        and h.state ->> 'after' is null
                        and pg_catalog.pg_snapshot_xmin((h.state ->> 'cursor')::pg_snapshot)
                        > pruned
                    ) is true
                ),
                true
            ),
            coalesce(array_agg(split_part(h.bucket, ':', 1)), '{}'),
            coalesce(array_agg(substr(h.bucket, strpos(h.bucket, ':') + 1)), '{}'),
            coalesce(array_agg((h.state ->> 'cursor')::pg_snapshot), '{}')
        into all_checkable, held_tables, held_keys, held_cursors
        from jsonb_each(held) as h (bucket, state);
    end if;
    if all_checkable then
        select
            coalesce(array_agg(c.table_name), '{}'),
            coalesce(array_agg(c.bucket_key), '{}')
        into changed_tables, changed_keys
        from private.sync_changed_buckets(held_tables, held_keys, held_cursors) as c;
        changed_known := true;
        if cardinality(changed_tables) = 0 then
            return private.sync_pull_response(
                wire_version, snap, schema_hash, '{}', '{}', allowed_buckets, '[]', '[]', false
            );
        end if;
    end if;

    if changed_known then
        -- Only the buckets that changed need serving: every other bucket held is unchanged,
        -- nothing is refused and nothing removed.
        unchanged := array(
            select b from unnest(allowed_buckets) as b
            where not b = any(
                array(
                    select u.t || ':' || u.k from unnest(changed_tables, changed_keys) as u (t, k)
                )
            )
        );
        select coalesce(jsonb_object_agg(x.bucket, x.streams), '{}') into resolved
        from (
            select
                r.table_name || ':' || r.bucket_key as bucket,
                to_jsonb(array_agg(distinct r.stream order by r.stream)) as streams
            from unnest(res_streams, res_tables, res_keys, res_allowed)
                as r (stream, table_name, bucket_key, allowed)
            inner join unnest(changed_tables, changed_keys) as c (table_name, bucket_key)
                on c.table_name = r.table_name and c.bucket_key = r.bucket_key
            where r.allowed
            group by r.table_name, r.bucket_key
        ) as x;
        denied := '[]';
        removed_buckets := '[]';
    else
        -- Through which streams the caller holds each bucket, and the refused subscriptions (a
        -- subscription refused by its stream but held through another is not refused).
        with resolution as materialized (
            select r.stream, r.table_name, r.bucket_key, r.allowed, r.reason
            from unnest(res_streams, res_tables, res_keys, res_allowed, res_reasons)
                as r (stream, table_name, bucket_key, allowed, reason)
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
                        json_build_object(
                            'stream', r.stream, 'key', r.bucket_key, 'reason', r.reason
                        )
                        order by r.stream, r.bucket_key
                    ),
                    '[]'
                )
                from resolution as r
                where not r.allowed
                    and not exists (
                        select 1 from held_now as h
                        where h.bucket = r.table_name || ':' || r.bucket_key
                    )
            )
        into resolved, denied;
        select coalesce(json_agg(h.bucket order by h.bucket), '[]') into removed_buckets
        from jsonb_object_keys(held) as h (bucket)
        where not resolved ? h.bucket;
    end if;

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
            select u.table_name, u.bucket_key
            from unnest(changed_tables, changed_keys) as u (table_name, bucket_key)
            where changed_known
            union all
            select c.table_name, c.bucket_key
            from (
                select
                    array_agg(e.table_name) as tables,
                    array_agg(e.bucket_key) as keys,
                    array_agg(e.given_cursor) as cursors
                from effective as e
                where e.checkable and not changed_known
                having count(*) > 0
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
                from private.sync_serve_rows(
                    grp.table_name, grp.keys,
                    case when grp.after_id is null then null else grp.keys[1] end,
                    grp.after_id, budget, columnar, by_column
                )
            loop
                k := page_entry.bucket_key;
                seen_keys := seen_keys || k;
                served := served + page_entry.served;
                truncated := served >= budget;
                if truncated then
                    partial_key := k;
                    resume_id := page_entry.last_id;
                end if;
                if page_entry.is_by_column then
                    entries := entries || private.sync_bucket_entry(
                        grp.table_name, k, resolved -> (grp.table_name || ':' || k),
                        grp.is_reset, k = any(grp.new_keys), '[]', '[]',
                        coalesce(grp.round_snap, snap),
                        case when k = partial_key then resume_id end,
                        page_entry.served_rows
                    );
                else
                    entries := entries || private.sync_bucket_entry(
                        grp.table_name, k, resolved -> (grp.table_name || ':' || k),
                        grp.is_reset, k = any(grp.new_keys), page_entry.served_rows, '[]',
                        coalesce(grp.round_snap, snap),
                        case when k = partial_key then resume_id end
                    );
                end if;
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

    return private.sync_pull_response(
        wire_version, snap, schema_hash, served_tables, entries, unchanged, removed_buckets, denied,
        has_more
    );
end
$$;
-- The versions these replace: only the old sync_pull called them (private functions, revoked
-- from public).
-- squawk-ignore ban-drop-function
drop function private.sync_serve_rows(text, text [], text, uuid, integer, boolean);
-- squawk-ignore ban-drop-function
drop function private.sync_pull_response(
    boolean, pg_snapshot, text, text [], json [], text [], json, json, boolean
);
