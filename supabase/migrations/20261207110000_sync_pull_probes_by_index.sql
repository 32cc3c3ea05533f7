-- A pull in which nothing changed could read whole tables (issue 10: no-change pull, capacity).
--
-- A pull probes each held bucket for changes with
-- `exists (select 1 from <table> where <bucket> = $k and sync_xid …)` (sync_changed_buckets)
-- and finds the caller's buckets with membership queries such as
-- `select id from support_queries where owner_id = <caller>` (sync_auto_buckets), all with
-- generic plans (sync_pull forces them). A generic plan is costed for an average key. When the
-- statistics say a key holds many rows (one user with thousands of support tickets), `exists`
-- and the membership query expect their rows within a few pages of a sequential scan, and a
-- sequential scan looks cheaper than the index: every pull of every user holding such a bucket
-- then read the whole table. tests/test_sync_plans.py reproduces it with one user holding
-- 3,000 tickets: another user's pull in which nothing changed read 6,002 support_queries rows
-- (two scans); the cost of a pull grew with a table instead of with the caller's buckets.
--
-- sync_pull now runs with sequential scans disabled. The setting holds for every statement it
-- runs, nested functions included (those without a setting of their own, as
-- sync_changed_buckets and sync_auto_buckets, which sync_compile_pull and
-- sync_compile_streams regenerate), as plan_cache_mode already does. Every table a pull reads
-- has the index its probes need: each synced table its (bucket, sync_xid) and (bucket, id)
-- indexes, the membership tables the indexes of their policies' lookups. A table without a
-- usable index is still scanned: a disabled node is costed high, never refused. A later
-- `create or replace function public.sync_pull` must repeat the setting.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter function public.sync_pull(jsonb) set enable_seqscan = off;
