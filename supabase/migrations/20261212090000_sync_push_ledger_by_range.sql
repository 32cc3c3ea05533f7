-- A push read its client's whole ledger (issue 10: push; tests/test_sync_plans.py,
-- test_a_push_reads_the_ledger_by_the_requests_op_ids).
--
-- private.sync_stored_results finds the stored results of a request's op ids, so that a retried
-- request is answered from the ledger instead of applied twice. Its generic plan (forced in
-- 20261206090000_sync_generic_plans.sql) reaches the client's rows through the primary key
-- (user_id, client_id, op_id) but tests `op_id = any($2)` as a filter, on every stored result
-- of the client: a request of 1,000 ops compared each of them with each of the client's stored
-- results. With 9,000 results stored, that took 42 ms of every request; draining a long
-- offline queue grew with its square, and 18% of the push benchmark's server time was here.
--
-- Op ids grow with the client's queue, so a request's ids lie between its smallest and its
-- largest: the index is now scanned over that range only, and `= any` filters what the range
-- holds (0.5 ms for the same request). The same results, security and settings.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

create or replace function private.sync_stored_results(client_id uuid, op_ids bigint [])
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
    lowest bigint := (select min(i) from unnest($2) as i);
    highest bigint := (select max(i) from unnest($2) as i);
begin
    return (
        select coalesce(jsonb_object_agg(r.op_id::text, r.result), '{}')
        from private.sync_push_results as r
        where
            r.user_id = (select auth.uid())
            and r.client_id = $1
            and r.op_id between lowest and highest
            -- `+ 0`: a filter on the range's rows, never 1,000 descents of the index.
            and r.op_id + 0 = any($2)
    );
end
$$;
