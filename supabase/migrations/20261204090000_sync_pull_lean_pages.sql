-- Sync pulls: leaner pages of whole buckets (issue 10, benchmark 1: first sync).
--
-- A page served whole (a new bucket, a reset one, a round resumed after an id) is one json
-- value of a few MB at most, and every layer it passes through copies it. Two of those layers
-- did nothing a page needs:
-- * private.sync_serve_whole numbered and summed its groups with window functions, and sorted
--   them once more, which copies every group's rows through a tuple store and a sort. Its
--   replacement, private.sync_serve_rows, returns the groups in key order straight from their
--   aggregate; sync_pull counts the rows served as they come. Only the page's last group can
--   be cut (the page's rows are the first max_rows in (key, id) order), so a group is cut
--   exactly when the rows served so far reach the budget: no total is needed beforehand.
-- * private.sync_bucket_entry was a SQL function with a SET clause, which PostgreSQL cannot
--   inline: each call planned its one statement again and copied its result out. It is the same
--   json_build_object in PL/pgSQL now (same signature, same result).
-- public.sync_pull is redefined for the first change only (same signature, same responses,
-- same grants); private.sync_serve_whole has no caller left and is dropped.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- One bucket's entry in a sync_pull response: complete (with its new cursor) unless the page
-- stopped inside it (then the round's snapshot and the id to resume after).
create or replace function private.sync_bucket_entry(
    table_name text, bucket_key text, streams jsonb, is_reset boolean, is_new boolean,
    served_rows json, removed json, served_to pg_snapshot, resume_after uuid
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
        'removed', removed,
        'complete', resume_after is null,
        'cursor', case when resume_after is null then served_to::text end,
        'round', case when resume_after is not null then served_to::text end,
        'after', resume_after
    );
end
$$;

-- One page of a bucket group served whole (no cursor: new, reset, or a round resumed after an
-- id), as the caller: RLS skips rows the caller may not see, and there is nothing to remove.
-- Keyset pages on the (bucket, id) index: the first max_rows rows in (bucket, id) order; one
-- row per bucket of the page, in bucket order, with its rows as json, how many, and the last
-- (largest) id served. A page of max_rows rows counts as cut (the caller resumes after its
-- last id; a bucket that had exactly that many rows left gets one more, empty, page).
create function private.sync_serve_rows(
    table_name text, keys text [], after_key text, after_id uuid, max_rows integer, columnar boolean
)
returns table (bucket_key text, served_rows json, served bigint, last_id uuid)
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
        -- Resuming one bucket (sync_pull resumes a bucket alone): the rest of it straight off
        -- the index, with nothing to merge or sort.
        source := format(
            'select t.%1$I as k, t.id, %4$s as body from public.%2$I as t
            where t.%1$I = $2::%3$s and t.id > $3
            order by t.%1$I, t.id
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
    -- hex digits), where uuid itself has no max(). The groups come in key order from the
    -- rows' own order (a group aggregate over them, no sort of the aggregated rows).
    return query execute format(
        'select p.k::text, json_agg(p.body), count(*), max(p.id::text collate "C")::uuid
        from (%s) as p
        group by p.k
        order by p.k',
        source
    ) using keys, after_key, after_id, max_rows;
end
$$;
revoke all on function private.sync_serve_rows(text, text [], text, uuid, integer, boolean)
from public;
grant execute on function private.sync_serve_rows(text, text [], text, uuid, integer, boolean)
to authenticated, service_role;

-- As in 20261203200000_sync_pull_no_change_fast_path.sql, but a group served whole comes from
-- private.sync_serve_rows and is counted here.
create or replace function public.sync_pull(request jsonb)
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
    all_checkable boolean := false;
    held_tables text [];
    held_keys text [];
    held_cursors pg_snapshot [];
    changed_known boolean := false;
    changed_tables text [];
    changed_keys text [];
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

    -- The common case, a pull in which nothing changed: the client holds exactly the buckets
    -- it may hold, each with a cursor that can be checked (not reset, not mid-round), so the
    -- one change check answers for all of them. When it finds nothing, the answer is every
    -- bucket unchanged, without the general path's grouping below; when it finds changes,
    -- the general path reuses them instead of asking again.
    if denied::text = '[]' and removed_buckets::text = '[]' then
        select
            coalesce(
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
            )
            and count(*) = (select count(*) from jsonb_object_keys(resolved)),
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
                columnar, snap, schema_hash, '{}', '{}',
                array(select h.bucket from jsonb_object_keys(held) as h (bucket)),
                removed_buckets, denied, false
            );
        end if;
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
                    grp.after_id, budget, columnar
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

    return private.sync_pull_response(
        columnar, snap, schema_hash, served_tables, entries, unchanged, removed_buckets, denied,
        has_more
    );
end
$$;

-- squawk-ignore ban-drop-function
drop function private.sync_serve_whole(text, text [], text, uuid, integer, boolean);
