/*
 * A push applies interleaved ops of several tables one statement a table, when it can show
 * that their order did not matter (issue 10: push).
 *
 * 20261202110000_sync_push_speed.sql applies a run of consecutive transactions of one table,
 * kind and columns in one statement. A queue whose tables alternate (a message, a ticket, a
 * message, ...) forms no run, and each op paid for its own statement and its statement-level
 * triggers: 0.63 ms an op in the push benchmark, against 0.2 in a run.
 *
 * A window is now such a stretch of consecutive whole transactions, each op eligible for a
 * run (private.sync_push_runs's rules: its row touched by no other op of the request, no data
 * value naming another op's row, writable columns, not a retry), each table with one kind and
 * set of columns in it. Its ops are applied grouped by table, each group in one statement in
 * the order of its ops, the groups in the order of their first op. Reordering across tables
 * changes nothing exactly when no group reads a table another group writes: a group then sees
 * the same rows whichever of the others ran before it, so it takes the same path and writes
 * the same rows. Which tables a group read and wrote is not guessed from its policies,
 * guards and triggers (PL/pgSQL bodies name what they read nowhere the catalog records) but
 * measured: the transaction's own statistics counters (pg_stat_xact_user_tables: scans,
 * including a probe that finds nothing, rows read and rows written, by table) before and
 * after each group. When a group read a table another wrote, the window is rolled back and
 * its ops go by runs and one at a time, as before; so does everything after it in the request.
 *
 * Left out of the measure: the sync engine's own logs (private.sync_bucket_changes,
 * private.sync_tombstones, private.sync_push_results) and realtime's messages, which every
 * write appends to by (table, row, transaction), the same set in any order.
 *
 * What can differ from applying one op at a time: the order of serial ids and of broadcasts
 * between the groups of one window (each group's own are in order), and clock_timestamp()
 * within the transaction. now(), and so every created_at and updated_at, is the same.
 */

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- What the caller's transaction has read and written so far, by table: {"<relid>": [reads,
-- writes]}. Reads count scans (a probe that finds nothing is one); writes, rows inserted,
-- updated and deleted. Private to the push: a window's check (see above).
create function private.sync_push_footprint()
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
    -- A table's scans are counted on the table (sequential) and on its indexes (index and
    -- bitmap scans): every read starts one, whether it finds rows or not. Only tables with a
    -- count appear; a table missing from a snapshot counts zero.
    return (
        select coalesce(jsonb_object_agg(f.relid::text, jsonb_build_array(f.reads, f.writes)), '{}')
        from (
            select
                c.oid as relid,
                pg_catalog.pg_stat_get_xact_numscans(c.oid)
                + coalesce(sum(pg_catalog.pg_stat_get_xact_numscans(i.indexrelid)), 0) as reads,
                pg_catalog.pg_stat_get_xact_tuples_inserted(c.oid)
                + pg_catalog.pg_stat_get_xact_tuples_updated(c.oid)
                + pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid) as writes
            from pg_catalog.pg_class as c
            inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
            left join pg_catalog.pg_index as i on c.oid = i.indrelid
            where
                c.relkind in ('r', 'm')
                and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'realtime')
                and not (
                    n.nspname = 'private'
                    and c.relname in ('sync_bucket_changes', 'sync_tombstones', 'sync_push_results')
                )
            group by c.oid
        ) as f
        where f.reads > 0 or f.writes > 0
    );
end
$$;
revoke all on function private.sync_push_footprint() from public;
grant execute on function private.sync_push_footprint() to authenticated, service_role;

-- Each op of a push request: its client transaction (a number shared by the consecutive ops
-- of one tx_id; an op without one is alone) and its shape, "<table>:<kind>:<data keys>", when
-- it may be applied with other ops of its shape in one statement (null otherwise): an insert,
-- or an update with its base_version, allowed on the table, data a non-empty object of
-- writable columns, no stored result (not a replay), its row touched by no other op of the
-- request, and no data value naming the row of any op of the request. The rule that runs
-- (private.sync_push_runs) and windows (private.sync_push_windows) share.
create function private.sync_push_shapes(ops jsonb, stored jsonb)
returns table (i integer, tx_group bigint, shape text)
language plpgsql
stable
set search_path = ''
as $$
begin
    return query
    with o as (
        select
            (e.n - 1)::integer as i,
            e.value ->> 'table' as tbl,
            e.value ->> 'kind' as kind,
            lower(e.value ->> 'id') as id,
            e.value ->> 'op_id' as op_id,
            e.value ->> 'base_version' as base_version,
            case
                when jsonb_typeof(e.value -> 'data') = 'object' then e.value -> 'data'
            end as data,
            e.value ->> 'tx_id' as tx,
            lag(e.value ->> 'tx_id') over (order by e.n) as prev_tx
        from jsonb_array_elements($1) with ordinality as e (value, n)
    ),

    specs as (
        select d.tbl, s.operations, s.writable
        from (select distinct o.tbl from o) as d
        cross join lateral private.sync_table_rules(d.tbl) as s
    ),

    referencing as (
        select distinct o.i
        from o
        cross join lateral jsonb_each_text(o.data) as v
        inner join o as other on other.id = lower(v.value)
    )

    select
        o.i,
        sum(case when o.tx is not null and o.tx = o.prev_tx then 0 else 1 end)
            over (order by o.i)
        as tx_group,
        case
            when
                o.kind in ('insert', 'update')
                and o.data <> '{}'
                and (o.kind = 'insert' or o.base_version is not null)
                and o.kind = any(s.operations)
                and not coalesce($2 ? ((o.op_id)::bigint)::text, false)
                and count(*) over (partition by o.id) = 1
                and r.i is null
                and (
                    select bool_and(k = any(s.writable)) from jsonb_object_keys(o.data) as k
                )
                then o.tbl || ':' || o.kind || ':' || (
                    select string_agg(k, ',' order by k) from jsonb_object_keys(o.data) as k
                )
        end as shape
    from o
    left join specs as s on o.tbl = s.tbl
    left join referencing as r on o.i = r.i;
end
$$;
revoke all on function private.sync_push_shapes(jsonb, jsonb) from public;
grant execute on function private.sync_push_shapes(jsonb, jsonb) to authenticated, service_role;

-- As in 20261205100000_sync_push_ledger_plpgsql.sql, with the ops' shapes from
-- private.sync_push_shapes.
create or replace function private.sync_push_runs(ops jsonb, stored jsonb)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
    return (
        with transactions as (
            select
                s.tx_group,
                min(s.i) as first_op,
                max(s.i) as last_op,
                case
                    when count(s.shape) = count(*) and count(distinct s.shape) = 1 then min(s.shape)
                end as shape
            from private.sync_push_shapes($1, $2) as s
            group by s.tx_group
        ),

        islands as (
            select
                t.first_op,
                t.last_op,
                t.shape,
                t.tx_group
                - row_number() over (partition by t.shape order by t.tx_group) as island
            from transactions as t
            where t.shape is not null
        )

        select coalesce(jsonb_object_agg(r.first_op, r.last_op), '{}')
        from (
            select min(i.first_op) as first_op, max(i.last_op) as last_op
            from islands as i
            group by i.shape, i.island
            having max(i.last_op) > min(i.first_op)
        ) as r
    );
end
$$;

-- The windows of a push request: {"<index of its first op>": {"last": <index of its last op>,
-- "groups": [[<op indexes of one table, kind and columns>], ...]}} (0-based; groups in the
-- order of their first op). Only windows of two groups or more (one group is a run) and of
-- eight ops or more: checking a window reads the statistics counters three times or more,
-- about 1 ms, which a shorter stretch would not win back.
create function private.sync_push_windows(ops jsonb, stored jsonb)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    shapes text [];
    tx_groups bigint [];
    total integer := jsonb_array_length(ops);
    windows jsonb := '{}';
    -- the open window: its first and last op, and each table's shape in it
    opened integer;
    closed integer;
    window_tables jsonb;
    tx_tables jsonb;
    i integer := 0;
    last integer;
    j integer;
    shape_table text;
begin
    select array_agg(s.shape order by s.i), array_agg(s.tx_group order by s.i)
    into shapes, tx_groups
    from private.sync_push_shapes(ops, stored) as s;

    while i <= total loop
        -- The transaction starting at op i (ops i..last), and its shape by table: null when
        -- an op has none or one table two. Past the end: null, which closes the window.
        last := i;
        tx_tables := case when i < total then '{}' end;
        while last + 1 < total and tx_groups[last + 2] = tx_groups[i + 1] loop
            last := last + 1;
        end loop;
        if i < total then
            for j in i..last loop
                shape_table := split_part(shapes[j + 1], ':', 1);
                if shapes[j + 1] is null
                    or coalesce(tx_tables ->> shape_table, shapes[j + 1]) <> shapes[j + 1] then
                    tx_tables := null;
                    exit;
                end if;
                tx_tables := tx_tables || jsonb_build_object(shape_table, shapes[j + 1]);
            end loop;
        end if;
        -- The open window closes before a transaction that cannot join it.
        if opened is not null and (
            tx_tables is null
            or exists (
                select 1 from jsonb_each_text(tx_tables) as t
                where coalesce(window_tables ->> t.key, t.value) <> t.value
            )
        ) then
            if closed - opened + 1 >= 8
                and (select count(*) from jsonb_object_keys(window_tables)) > 1 then
                windows := windows || jsonb_build_object(
                    opened::text,
                    jsonb_build_object(
                        'last', closed,
                        'groups', (
                            select jsonb_agg(g.members order by g.first_op)
                            from (
                                select jsonb_agg(x.n - 1 + opened order by x.n) as members,
                                    min(x.n) as first_op
                                from unnest(shapes[opened + 1:closed + 1]) with ordinality as x (shape, n)
                                group by x.shape
                            ) as g
                        )
                    )
                );
            end if;
            opened := null;
        end if;
        if tx_tables is not null then
            if opened is null then
                opened := i;
                window_tables := '{}';
            end if;
            window_tables := window_tables || tx_tables;
            closed := last;
        end if;
        i := last + 1;
    end loop;
    return windows;
end
$$;
revoke all on function private.sync_push_windows(jsonb, jsonb) from public;
grant execute on function private.sync_push_windows(jsonb, jsonb) to authenticated, service_role;

-- Apply a window (private.sync_push_windows) as the caller, one statement a group
-- (private.sync_apply_run: RLS, grants and guard triggers decide, row by row), and check that
-- no group read a table another group wrote. Returns {"<id>": version} of the rows written;
-- raises when a group was not written whole or the check fails, so that the caller rolls the
-- window back and applies its ops as before.
create function private.sync_apply_window(ops jsonb, groups jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    before jsonb;
    after jsonb;
    applied jsonb := '{}';
    reads jsonb := '[]';
    writes jsonb := '[]';
    members jsonb;
begin
    -- Without the counters nothing would look read or written, and every window would pass.
    if not coalesce(current_setting('track_counts', true)::boolean, false) then
        raise exception 'track_counts is off: a window cannot be checked' using errcode = 'PYS03';
    end if;
    before := private.sync_push_footprint();
    for members in select g.value from jsonb_array_elements(groups) as g loop
        applied := applied || private.sync_apply_run(
            (
                select jsonb_agg(ops -> (m.value)::integer order by m.n)
                from jsonb_array_elements_text(members) with ordinality as m (value, n)
            )
        );
        after := private.sync_push_footprint();
        select
            reads || jsonb_build_array(
                coalesce(
                    jsonb_agg(a.key) filter (
                        where (a.value ->> 0)::bigint
                        > coalesce((before -> a.key ->> 0)::bigint, 0)
                    ),
                    '[]'
                )
            ),
            writes || jsonb_build_array(
                coalesce(
                    jsonb_agg(a.key) filter (
                        where (a.value ->> 1)::bigint
                        > coalesce((before -> a.key ->> 1)::bigint, 0)
                    ),
                    '[]'
                )
            )
        into reads, writes
        from jsonb_each(after) as a;
        before := after;
    end loop;
    if exists (
        select 1
        from jsonb_array_elements(writes) with ordinality as w (tables, g)
        inner join jsonb_array_elements(reads) with ordinality as r (tables, h) on w.g <> r.h
        where w.tables ?| array(select jsonb_array_elements_text(r.tables))
    ) then
        raise exception 'the window''s tables depend on one another' using errcode = 'PYS03';
    end if;
    return applied;
end
$$;
revoke all on function private.sync_apply_window(jsonb, jsonb) from public;
grant execute on function private.sync_apply_window(jsonb, jsonb) to authenticated, service_role;

-- Apply a client's queued ops exactly once (docs/sync-protocol.md, sync_push). As in
-- 20261202110000_sync_push_speed.sql (with 20261208100000_sync_push_probes_by_index.sql's
-- setting), plus windows applied grouped by table (private.sync_push_windows).
create or replace function public.sync_push(client_id uuid, ops jsonb)
returns jsonb
language plpgsql
set search_path = ''
set enable_seqscan = off
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
    -- index of the first op of a run applied set-based -> index of its last op
    runs jsonb;
    -- index of the first op of a window -> {"last": index of its last op, "groups": [[op
    -- indexes of one table, kind and columns], ...]} (private.sync_push_windows)
    windows jsonb;
    window_last integer;
    -- false once a window was rolled back: the rest of the request goes without
    windows_ok boolean := true;
    run_last integer;
    applied jsonb;
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
    -- A bigger batch could run into the API role's statement_timeout half done and be retried
    -- for ever. Refused whole, at once.
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
    runs := case when total > 1 then private.sync_push_runs(ops, stored) else '{}' end;
    windows := case when total > 1 then private.sync_push_windows(ops, stored) else '{}' end;

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

        -- A window of whole transactions of several tables, one statement a table, while
        -- nothing of this request failed; if it is not written whole, or its tables turn out
        -- to depend on one another, it is rolled back and goes by runs and one by one below.
        window_last := (windows -> first::text ->> 'last')::integer;
        if window_last is not null and windows_ok
            and failed = '{}' and stale = '{}' and failed_inserts = '{}' then
            begin
                applied := private.sync_apply_window(ops, windows -> first::text -> 'groups');
                for j in first..window_last loop
                    result := jsonb_build_object(
                        'status', 'applied',
                        'version', applied -> ((ops -> j ->> 'id')::uuid)::text,
                        'op_id', (ops -> j ->> 'op_id')::bigint
                    );
                    results := results || result;
                    fresh := fresh || result;
                end loop;
                first := window_last + 1;
                continue;
            exception when others then
                windows_ok := false;
            end;
        end if;

        -- A run of whole transactions in one statement, while nothing of this request failed
        -- (so no dependency rule can apply to it); if it is not written whole, its
        -- transactions are applied one by one below.
        run_last := (runs ->> first::text)::integer;
        if run_last is not null and failed = '{}' and stale = '{}' and failed_inserts = '{}' then
            begin
                applied := private.sync_apply_run(
                    (select jsonb_agg(e.value order by e.n)
                        from jsonb_array_elements(ops) with ordinality as e (value, n)
                        where e.n - 1 between first and run_last)
                );
                for j in first..run_last loop
                    result := jsonb_build_object(
                        'status', 'applied',
                        'version', applied -> ((ops -> j ->> 'id')::uuid)::text,
                        'op_id', (ops -> j ->> 'op_id')::bigint
                    );
                    results := results || result;
                    fresh := fresh || result;
                end loop;
                first := run_last + 1;
                continue;
            exception when others then
                -- Rolled back whole; applied one transaction at a time below.
                null;
            end;
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
                if op ->> 'kind' = 'insert' and failed_inserts <> '{}' then
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
        -- One element at a time: PL/pgSQL appends an element in place, while array || array
        -- copies the whole array (quadratic in the request's size).
        foreach result in array tx_results loop
            results := results || result;
            fresh := fresh || result;
        end loop;
        first := last + 1;
    end loop;

    perform private.sync_store_results(client_id, to_jsonb(fresh));
    return jsonb_build_object('server_time', now(), 'results', to_jsonb(results));
end
$$;
