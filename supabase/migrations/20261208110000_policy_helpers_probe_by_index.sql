-- The helpers RLS policies call to list the caller's rows read them by index, whatever the
-- statistics (issue 10's statistics trap, found on the push path, is not the sync engine's
-- alone).
--
-- A policy helper such as private.my_support_query_ids() lists the caller's rows with
-- `where owner_id = (select auth.uid())`. The caller's id is not known when the statement is
-- planned, so the planner costs it for an average caller: when one user owns most of a table's
-- rows (an integration account, a bulk import, an early customer), the average caller looks
-- like them and a sequential scan looks cheapest. Every request of every user that passes
-- through the policy then reads the whole table: with one user holding all 30,000 tickets,
-- another user's `select` of support replies read all of them (tests/test_rls_statistics.py).
--
-- sync_pull and sync_push already run with sequential scans off
-- (20261207110000_sync_pull_probes_by_index.sql, 20261208100000_sync_push_probes_by_index.sql);
-- PostgREST's queries did not. Every set- or array-returning function a policy calls now runs
-- with sequential scans off. Each reads by a key with an index (the caller's id, a course's id),
-- so none loses its plan; a helper that another calls (enrolled_course_ids from
-- enrolled_assignment_ids) inherits the setting. The boolean and scalar helpers
-- (private.is_admin, private.current_app_role) read one row by primary key and are left as
-- they are. A new set-returning helper named by a policy must carry the setting too: the test
-- lists the functions the policies name and checks.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter function private.completed_session_ids() set enable_seqscan = off;
alter function private.enrolled_assignment_ids() set enable_seqscan = off;
alter function private.graded_assignment_ids() set enable_seqscan = off;
alter function private.managed_organization_ids() set enable_seqscan = off;
alter function private.member_organization_id_array() set enable_seqscan = off;
alter function private.member_organization_ids() set enable_seqscan = off;
alter function private.my_conversation_ids() set enable_seqscan = off;
alter function private.my_payment_ids() set enable_seqscan = off;
alter function private.my_support_query_ids() set enable_seqscan = off;
alter function private.owned_conversation_ids() set enable_seqscan = off;
alter function private.owned_organization_ids() set enable_seqscan = off;
alter function private.studied_course_ids() set enable_seqscan = off;
alter function private.taught_assignment_ids() set enable_seqscan = off;
alter function private.taught_course_ids() set enable_seqscan = off;
