-- Sync pulls: fewer plans and less glue per pull (issue 10: apply one change, no-change pull,
-- capacity, propagation).
--
-- A pull in which one bucket changed cost about two and a half times a pull in which nothing
-- did. Most of the difference was planning, not work:
-- * private.sync_changes' statement for changes since a cursor was planned on every call (a
--   custom plan): its generic plan walked the (bucket, id) index in order and filtered, reading
--   a whole bucket to find one change. It is now two statements. When at most a page of changes
--   is there (two bounded probes of the (bucket, sync_xid) indexes say so), they are read off
--   those indexes into a set and ordered there, a plan that is good whatever the parameters and
--   is kept for the session (the function forces generic plans). When more changed, the old
--   statement runs as a one-shot EXECUTE, planned for the cursor it is given, as before.
-- * private.sync_visible_rows' statements (id = any($2), under RLS) forced generic plans too:
--   their custom plans were the same plan, made again on every call.
-- * public.sync_pull forces generic plans for its own statements: none of them depends on its
--   parameters' values for a good plan (the values-dependent reads are in the functions above,
--   and in sync_serve_rows, whose dynamic statements are planned per call).
-- And sync_pull itself did more than it needed:
-- * The caller's buckets were resolved into jsonb (every bucket with its streams) before the
--   no-change check, which needs only the set of bucket names. The resolution is now kept as
--   arrays; the no-change check compares the held names with the allowed ones, and the jsonb
--   with streams is built only for buckets that are served.
-- * When the no-change check found changes, the general path still parsed, grouped and sorted
--   every held bucket's state. Now only the changed buckets go through it; every other bucket
--   is unchanged at once.
-- * The general path's change check ran again (with nothing to check) after the fast path had
--   already answered it.
-- Same signatures, same responses (docs/sync-protocol.md), same grants.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- As in 20261202100000_sync_pull_speed.sql, but sync_changes serves changes since a cursor by a
-- kept plan when they fit a page, and sync_changes and sync_visible_rows force generic plans.
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

select private.sync_compile_pull();

-- As in 20261204090000_sync_pull_lean_pages.sql, with the changes above.
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
                columnar, snap, schema_hash, '{}', '{}', allowed_buckets, '[]', '[]', false
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

