-- Sync push: the push ledger and the run finder in PL/pgSQL (issue 10: push, propagation).
--
-- private.sync_stored_results and private.sync_store_results (read and write the stored result
-- of every pushed op) and private.sync_push_runs (which ops of a request can be applied
-- set-based) were SQL functions with a SET clause. PostgreSQL never inlines those, and before
-- PostgreSQL 18 such a function parses and plans its statement again on every call (its plan
-- lives in the caller's executor state); PL/pgSQL keeps a function's plans for the session, as
-- 20261204100000_policy_helpers_plpgsql.sql did for the policy helpers. Every push calls the
-- first two: a one-message push, the two versions swapped in turn on one database, cost 3.27
-- ms of backend CPU before and 2.90 after (medians of five runs of 300 pushes).
-- Same signatures, volatility, security, search_path, statements and grants.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Stored push results of the caller's client for these op ids (op_id as text -> result).
create or replace function private.sync_stored_results(client_id uuid, op_ids bigint [])
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return (
        select coalesce(jsonb_object_agg(r.op_id::text, r.result), '{}')
        from private.sync_push_results as r
        where r.user_id = (select auth.uid()) and r.client_id = $1 and r.op_id = any($2)
    );
end
$$;

-- Store the results of a push's fresh ops (a replay finds them).
create or replace function private.sync_store_results(client_id uuid, results jsonb)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into private.sync_push_results (user_id, client_id, op_id, result)
    select (select auth.uid()), $1, (r ->> 'op_id')::bigint, r
    from jsonb_array_elements($2) as r
    on conflict do nothing;
end
$$;

-- As in 20261202110000_sync_push_speed.sql:
-- Which ops of a push request can be applied set-based: {"<index of a run's first op>": <index
-- of its last op>} (0-based). A run is two or more consecutive ops made of whole client
-- transactions, all inserts or all updates of one table with the same data keys, each op:
-- allowed on the table, data a non-empty object of writable columns, an update with its
-- base_version, no stored result (not a replay), its row touched by no other op of the request,
-- and no data value naming the row of any op of the request. Anything else is applied one op at
-- a time, exactly as before.
create or replace function private.sync_push_runs(ops jsonb, stored jsonb)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
    return (
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
        ),

        shaped as (
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
            left join referencing as r on o.i = r.i
        ),

        transactions as (
            select
                s.tx_group,
                min(s.i) as first_op,
                max(s.i) as last_op,
                case
                    when count(s.shape) = count(*) and count(distinct s.shape) = 1 then min(s.shape)
                end as shape
            from shaped as s
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
