-- A push could read whole tables (issue 10: push; tests/test_sync_plans.py,
-- test_a_push_probes_by_index_whatever_the_statistics), as a pull could before
-- 20261207110000_sync_pull_probes_by_index.sql.
--
-- The policy helpers that list the caller's rows (private.my_support_query_ids:
-- `where owner_id = (select auth.uid())`) are planned for an average caller, since the caller's
-- id is not known when the statement is planned. When one user owns most of a table's rows,
-- the average caller looks like them and a sequential scan looks cheapest: a support reply
-- pushed by anyone then scanned every ticket (3,001 rows read for one op in the test, where
-- one user holds 3,000 tickets). The push now runs with sequential scans off, for every
-- statement it runs: the policies, guards and triggers of its ops included. Every table a push
-- writes or checks is reached by an index.
--
-- A `create or replace function public.sync_push` must repeat the setting.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter function public.sync_push(uuid, jsonb) set enable_seqscan = off;
