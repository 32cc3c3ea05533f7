-- Three statements that PostgreSQL planned again on every call (issue 10: push, propagation),
-- found by tests/test_sync_plans.py, which now keeps every nested statement of a push and a
-- pull from being planned per call (pg_stat_statements counts calls and plans).
--
-- 1. private.sync_stored_results reads the stored results of a push's op ids with
--    `op_id = any($2)`. Once a device's ledger holds a few thousand results, PL/pgSQL's plan
--    cache compared the generic plan (estimated for an array of unknown length) with a
--    custom plan for the array at hand (one or a few ids) and kept choosing custom plans: one
--    plan per push. The generic plan is the same primary-key scan. A one-message push, the
--    two settings swapped in turn on one database with such a ledger (medians of five blocks
--    of 300): backend CPU 2.83 -> 2.33 ms.
-- 2. private.guard_course_content checks a lesson's module with
--    `new.parent_id is not null and not exists (...)`, and private.guard_support_query a
--    ticket's assignee with `new.assignee_id is not null and not exists (...)`. When the
--    column is null (a module; a ticket nobody took yet: the usual case) the custom plan folds
--    the whole test to false and costs nothing, so the plan cache never settled on the
--    generic plan, and every such write planned the test again. The generic plan evaluates
--    the subquery only when the column is set, as the custom plan does.
-- Forcing generic plans (as sync_pull's own functions do) changes no result.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter function private.sync_stored_results(uuid, bigint [])
set plan_cache_mode = force_generic_plan;

alter function private.guard_course_content()
set plan_cache_mode = force_generic_plan;

alter function private.guard_support_query()
set plan_cache_mode = force_generic_plan;
