-- Sync pulls: the caller's id is read once per resolution, not once per membership query
-- (issue 10: no-change pull, capacity).
--
-- Every auto stream's membership query names its caller as `(select auth.uid())`, the form
-- Supabase recommends for policies. In the one generated statement of
-- private.sync_auto_buckets that is 17 init-plans, each calling auth.uid(), which reads the
-- request's JWT claims out of a setting and parses them as JSON. The generator now reads
-- auth.uid() once into a variable of the generated function and writes that variable where a
-- query says `(select auth.uid())`: the same value (auth.uid() is stable for the statement),
-- passed as a parameter of the kept plan. The statement's 55 buckets for a student of the perf
-- world, the two generated forms in turn (500 calls, three rounds): 405-485 us -> 355-434 us.
-- A query that names auth.uid() any other way is left as it is.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- As in 20261201090000_sync.sql, with the caller's id read once.
create or replace function private.sync_compile_streams()
returns void
language plpgsql
set search_path = ''
as $$
declare
    body text;
begin
    -- Streams sharing a membership query (my courses' content, assignments and rows; my
    -- conversations' rows, members and messages) run it once, fanned out to each stream.
    select string_agg(
        format(
            'select x.stream, x.table_name, m.k::text from (%s) as m (k)
            cross join (values %s) as x (stream, table_name) where m.k is not null',
            replace(q.query, '(select auth.uid())', 'sync_caller_uid'), q.targets
        ),
        E'\nunion\n' order by q.query
    ) into body
    from (
        select
            s.query,
            string_agg(format('(%L::text, %L::text)', s.name, s.table_name), ', ' order by s.name)
            as targets
        from private.sync_streams as s
        where s.mode = 'auto'
        group by s.query
    ) as q;
    execute format(
        $ddl$
        create or replace function private.sync_auto_buckets()
        returns table (stream text, table_name text, bucket_key text)
        language plpgsql
        stable
        security definer
        set search_path = ''
        as %L
        $ddl$,
        format(
            E'declare\n    sync_caller_uid constant uuid := auth.uid();\nbegin\n    return query\n%s;\nend',
            coalesce(body, 'select null::text, null::text, null::text where false')
        )
    );
    revoke all on function private.sync_auto_buckets() from public;
    grant execute on function private.sync_auto_buckets() to authenticated, service_role;
end
$$;
revoke all on function private.sync_compile_streams() from public;

select private.sync_compile_streams();
