-- Deleting (or anonymising) an admin's profile sets assignee_id to null on their tickets;
-- without a full index that scans every resolved ticket. The partial index stays for the
-- open-ticket queue.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- A plain index: the table is small, and migrations run in a transaction, where CONCURRENTLY
-- is not allowed.
-- squawk-ignore require-concurrent-index-creation
create index support_queries_assignee_id_idx on public.support_queries (assignee_id);
