/*
 * Sync pull, wire version 5: a request names the buckets at one shared cursor once each, by
 * table, and the answer to a pull in which nothing changed names none of them (issue 10:
 * no-change pull against one trivial RPC round trip).
 *
 * A client that holds 55 buckets sent, in every pull, each bucket's full name and its state,
 * `{"cursor": "…"}`, though nearly every bucket holds the same cursor, and the answer to a pull
 * that found nothing named all 55 again under `unchanged`: 5 KB up and 3 KB down. Measured
 * through the gateway with a function that does nothing with them, moving those bytes cost
 * 0.18 ms of a 0.43 ms round trip, against 0.25 ms for `select 1`: more than any part of
 * sync_pull's own work.
 *
 * Version 5 (docs/sync-protocol.md) adds to the request:
 * - `cursor`: one cursor, and `held`: per table, the keys of the buckets whose state is
 *   exactly `{"cursor": <cursor>}`. Every other bucket comes in `buckets`, as before; a bucket
 *   in both is a malformed request. A client sends `held` only to a server that has answered
 *   in version 5: an older server reads only `buckets`.
 * and to the answer:
 * - `all_unchanged: true` when the pull found nothing: every bucket the request held is
 *   unchanged and its cursor becomes `snapshot`; `unchanged` is then empty. Any other answer
 *   is version 4's, `unchanged` naming the buckets as before.
 *
 * The change check and the token check read the held buckets from both parts; the general
 * path merges `held` into `buckets` first and runs as before.
 */

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- A version 5 answer to a pull in which nothing changed: every bucket held is unchanged.
-- PL/pgSQL, not SQL: a SQL function's body is planned again in every statement that calls it.
create function private.sync_pull_all_unchanged(snap pg_snapshot, schema_hash text, resolution text)
returns json
language plpgsql
stable
set search_path = ''
as $$
begin
    return json_build_object(
        'version', 5,
        'snapshot', snap::text,
        'server_time', now(),
        'schema_hash', schema_hash,
        'columns', '{}'::json,
        'buckets', '[]'::json,
        'unchanged', '[]'::json,
        'all_unchanged', true,
        'removed_buckets', '[]'::json,
        'denied', '[]'::json,
        'has_more', false,
        'resolution', resolution
    );
end
$$;
revoke all on function private.sync_pull_all_unchanged(pg_snapshot, text, text) from public;
grant execute on function private.sync_pull_all_unchanged(pg_snapshot, text, text)
to authenticated, service_role;

-- As in 20261211090000_sync_pull_changes_keep_the_resolution.sql, with wire version 5.
create or replace function public.sync_pull(request jsonb)
returns json
language plpgsql
stable
set search_path = ''
set jit = off
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
    snap pg_snapshot := private.sync_snapshot();
    budget integer := least(greatest(coalesce((request ->> 'limit')::numeric, 1000), 1), 10000);
    held jsonb := coalesce(request -> 'buckets', '{}');
    subscriptions jsonb := coalesce(request -> 'subscriptions', '[]');
    wire_version integer := least(greatest(coalesce((request ->> 'version')::numeric, 1), 1), 5);
    compact jsonb := request -> 'held';
    shared_cursor text := request ->> 'cursor';
    compact_states jsonb;
    overlap boolean;
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
    any_refused boolean := false;
    token text := request ->> 'resolution';
    resolved_at bigint;
    held_list text [] := '{}';
    held_cursor_texts text [];
    held_checkable boolean := false;
    od_streams text [] := '{}';
    od_tables text [] := '{}';
    od_keys text [] := '{}';
    od_allowed_flags boolean [] := '{}';
    od_reasons text [] := '{}';
    od_allowed text [] := '{}';
    membership text [];
    kept_resolution boolean := false;
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
    -- Wire version 5: the buckets whose state is exactly the shared cursor come as key arrays
    -- by table (`held`), the cursor once (`cursor`); any other bucket as before (`buckets`).
    if compact is not null then
        if wire_version < 5 or jsonb_typeof(compact) <> 'object'
            or jsonb_typeof(request -> 'cursor') is distinct from 'string' then
            raise exception 'held (wire version 5) must be an object of key arrays by table, '
                'sent with a cursor'
            using errcode = '22023';
        end if;
    end if;

    -- The on-demand subscriptions, resolved in every pull (their access rests on rows no log
    -- keys by user), and whether any was refused.
    if jsonb_array_length(subscriptions) > 0 then
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
        into od_streams, od_tables, od_keys, od_allowed_flags, od_reasons, od_allowed, any_refused
        from private.sync_resolve_subscriptions(subscriptions) as r;
    end if;

    -- The buckets held, parsed once for the short way and the change check below: whether
    -- each has a cursor the check answers for (not reset, not mid-round). Cursors are cast
    -- once each: the buckets held nearly all share one.
    if not any_refused then
        select
            coalesce(array_agg(b.bucket order by b.bucket), '{}'),
            coalesce(bool_and(b.plain), true),
            coalesce(array_agg(b.table_name), '{}'),
            coalesce(array_agg(b.bucket_key), '{}'),
            coalesce(array_agg(b.cursor), '{}')
        into held_list, held_checkable, held_tables, held_keys, held_cursor_texts
        from (
            select
                h.bucket,
                h.state ->> 'cursor' is not null
                and h.state ->> 'round' is null
                and h.state ->> 'after' is null as plain,
                split_part(h.bucket, ':', 1) as table_name,
                substr(h.bucket, strpos(h.bucket, ':') + 1) as bucket_key,
                h.state ->> 'cursor' as cursor
            from jsonb_each(held) as h (bucket, state)
            union all
            select t.table_name || ':' || k.bucket_key, true, t.table_name, k.bucket_key, shared_cursor
            from jsonb_each(coalesce(compact, '{}')) as t (table_name, bucket_keys)
            cross join lateral jsonb_array_elements_text(t.bucket_keys) as k (bucket_key)
        ) as b;
        if held_checkable and held = '{}' and compact is not null then
            -- Version 5, every bucket at the shared cursor: one cursor to parse and check.
            held_cursors := array_fill(
                shared_cursor::pg_snapshot, array[cardinality(held_cursor_texts)]
            );
            held_checkable := pg_catalog.pg_snapshot_xmin(shared_cursor::pg_snapshot) > pruned;
        elsif held_checkable then
            held_cursors := held_cursor_texts::pg_snapshot [];
            held_checkable := not exists (
                select 1 from (select distinct c.c from unnest(held_cursor_texts) as c (c)) as c
                where pg_catalog.pg_snapshot_xmin(c.c::pg_snapshot) <= pruned
            );
        end if;
    end if;

    -- The short way (see 20261209090000_sync_pull_resolution_token.sql): a resolution token that
    -- still vouches for exactly the buckets held. When nothing changed, every bucket is
    -- unchanged and the auto streams are not resolved; when something did, the general path
    -- below reuses the check's answer.
    if token is not null and held_checkable and cardinality(held_list) > 0 then
        resolved_at := private.sync_resolution_holds(token, schema_hash, held_list, od_allowed);
        if resolved_at is not null then
            select
                coalesce(array_agg(c.table_name), '{}'),
                coalesce(array_agg(c.bucket_key), '{}')
            into changed_tables, changed_keys
            from private.sync_changed_buckets(held_tables, held_keys, held_cursors) as c;
            changed_known := true;
            if cardinality(changed_tables) = 0 then
                -- The token vouches as it stands: sent back as it came, not signed again.
                if wire_version >= 5 then
                    return private.sync_pull_all_unchanged(snap, schema_hash, token);
                end if;
                return private.sync_pull_response(
                    wire_version, snap, schema_hash, '{}', '{}', held_list, '[]', '[]', false,
                    token
                );
            end if;
            -- Changes only in tables no membership query reads cannot have changed the
            -- caller's buckets: the token's buckets stand, each through the streams the
            -- client holds it by, which version 4 lets the entries leave out.
            membership := private.sync_membership_tables();
            kept_resolution := wire_version >= 4 and membership is not null
                and not changed_tables && membership;
        end if;
    end if;

    -- Which buckets the caller may hold now (every stream's resolution, kept as arrays for the
    -- general path below), unless the token's stand.
    if kept_resolution then
        allowed_buckets := held_list;
    else
        resolved_at := floor(extract(epoch from now()))::bigint;
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
        from (
            select o.stream, o.table_name, o.bucket_key, o.allowed, o.reason
            from unnest(od_streams, od_tables, od_keys, od_allowed_flags, od_reasons)
                as o (stream, table_name, bucket_key, allowed, reason)
            union all
            select a.stream, a.table_name, a.bucket_key, true, null::text
            from private.sync_auto_buckets() as a
        ) as r;
        -- The short way's change check answers for the buckets held, which a token that holds
        -- says are the buckets allowed; should they differ all the same, it is asked again.
        if changed_known and allowed_buckets is distinct from held_list then
            changed_known := false;
        end if;
    end if;

    -- The common case, a pull in which nothing changed: no subscription refused, and the client
    -- holds exactly the buckets it may hold, each with a cursor that can be checked (not reset,
    -- not mid-round), so the one change check answers for all of them. When it finds nothing,
    -- the answer is every bucket unchanged, without the general path's grouping below; when it
    -- finds changes, the general path reuses them instead of asking again.
    all_checkable := not any_refused and not changed_known and held_checkable
        and held_list = allowed_buckets;
    if all_checkable then
        select
            coalesce(array_agg(c.table_name), '{}'),
            coalesce(array_agg(c.bucket_key), '{}')
        into changed_tables, changed_keys
        from private.sync_changed_buckets(held_tables, held_keys, held_cursors) as c;
        changed_known := true;
        if cardinality(changed_tables) = 0 then
            token := private.sync_resolution_token(
                snap::text, resolved_at, schema_hash, allowed_buckets, od_allowed
            );
            if wire_version >= 5 then
                return private.sync_pull_all_unchanged(snap, schema_hash, token);
            end if;
            return private.sync_pull_response(
                wire_version, snap, schema_hash, '{}', '{}', allowed_buckets, '[]', '[]', false,
                token
            );
        end if;
    end if;

    -- The general path reads each held bucket's state from `held`: version 5's buckets at the
    -- shared cursor join it there. A bucket sent both ways is a malformed request.
    if compact is not null and compact <> '{}' then
        select
            coalesce(jsonb_object_agg(b.bucket, jsonb_build_object('cursor', shared_cursor)), '{}'),
            coalesce(bool_or(held ? b.bucket), false)
        into compact_states, overlap
        from (
            select t.table_name || ':' || k.bucket_key as bucket
            from jsonb_each(compact) as t (table_name, bucket_keys)
            cross join lateral jsonb_array_elements_text(t.bucket_keys) as k (bucket_key)
        ) as b;
        if overlap then
            raise exception 'a bucket is both in held and in buckets' using errcode = '22023';
        end if;
        held := held || compact_states;
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
        if kept_resolution then
            -- The changed buckets, streams left out (null).
            select coalesce(jsonb_object_agg(u.t || ':' || u.k, null::jsonb), '{}') into resolved
            from unnest(changed_tables, changed_keys) as u (t, k);
        else
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
        end if;
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
        has_more,
        case when not any_refused then
            private.sync_resolution_token(
                snap::text, resolved_at, schema_hash, allowed_buckets, od_allowed
            )
        end
    );
end
$$;

