/*
 * Server-stamped columns leave sync's writable lists.
 *
 * The integrity rules (20261202160100) made the columns that record when or by whom something
 * happened the server's: private.check_server_stamps() refuses a client's value other than the
 * row's. Sync still listed some of them as writable, so sync_schema() told clients they could
 * write them and a client that did got its op rejected by the trigger. Taken out of the lists,
 * sync_schema() says they are read-only and sync_push refuses such an op up front (42501, not
 * writable) with the same outcome. messages.edited_at and deleted_at stay: they are how a
 * sender edits and soft-deletes, and private.guard_message() stamps them whatever is sent.
 */

set local lock_timeout = '5s';
set local statement_timeout = '60s';

select
    private.sync_register_table(
        t.table_name,
        t.bucket_column,
        array(
            select u.col
            from unnest(t.writable) with ordinality as u (col, n)
            where u.col <> all(s.stamped)
            order by u.n
        ),
        t.operations,
        t.conflict,
        t.counters
    )
from private.sync_tables as t
inner join (
    values
    ('courses', array['published_at']),
    ('enrollments', array['enrolled_at', 'completed_at']),
    ('tutoring_sessions', array['cancelled_by']),
    ('submissions', array['submitted_at', 'graded_by', 'graded_at']),
    ('support_queries', array['resolved_at'])
) as s (table_name, stamped) on t.table_name = s.table_name
order by t.table_name;
