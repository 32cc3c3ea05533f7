-- A bucket's first page could read the whole bucket (issue 10: first sync).
--
-- private.sync_serve_rows serves a page of buckets from their start with
-- `where t.<bucket> = any($1) order by t.<bucket>, t.id limit $4`, and resumes one with
-- `t.<bucket> = $2 and t.id > $3`. The (bucket, id) index returns those rows in that order and
-- the scan stops after the page: a page costs a page. But the planner had two alternatives that
-- read the whole bucket, built the JSON of every row under RLS, sorted them (on disk past
-- work_mem) and kept the first page, and it chose them in two common states of the statistics:
-- * a course that grew since the table was last analyzed (its content just imported) looks
--   like a course of a few rows: a bitmap scan and a sort look cheapest;
-- * with the course analyzed, an incremental sort over the (bucket, sync_xid) index, whose
--   heap order is cheaper to fetch, costs within a percent of the ordered scan: the planner
--   costs it as if each group of equal bucket keys were small, and a page's groups are whole
--   buckets.
-- Measured on the perf world, pages of 5,000 rows, the second state: a course of 20,000 rows,
-- its first page 195-238 ms against 80-90 ms for the pages after it (the statement alone:
-- 115 ms, 25 ms in key order), the whole first sync 33,600 rows/s; 50,000 rows: a first page of
-- 353-417 ms, 35,000-39,000 rows/s. Cost grew with the bucket instead of the page.
--
-- The function now turns sorts and incremental sorts off for its own statements (a SET clause:
-- only its statements). Every synced table has its (bucket, id) index (sync_register_table
-- makes it; a table bucketed by id has its primary key), so each page statement has its ordered
-- scan, and the group aggregate over the page needs no sort either; where no ordered path
-- exists the planner still sorts (a disabled node is costed high, never refused). After: the
-- same first syncs 50,500 and 59,300 rows/s, first pages 51-97 ms; 100,000 rows unchanged
-- (the planner already chose the ordered scan there). Same signature, same rows, same grants.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter function private.sync_serve_rows(text, text [], text, uuid, integer, boolean)
set enable_sort = off;

alter function private.sync_serve_rows(text, text [], text, uuid, integer, boolean)
set enable_incremental_sort = off;
