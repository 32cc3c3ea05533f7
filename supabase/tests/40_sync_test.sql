-- pgTAP: offline sync (20261201090000_sync.sql) — the registry's promises about every synced
-- table, who may call the sync RPCs, and the RPCs at work as the seed's users: buckets chosen
-- by streams and filtered by RLS, tombstones for deletes and bucket moves, exactly-once
-- pushes, pruning and realtime topics. The wire contract is docs/sync-protocol.md.
--
-- Everything runs in one transaction, so cursors are built from this transaction's id:
-- tests.cursor_before() is a snapshot that has not seen this transaction's writes,
-- tests.cursor_after() one that has (as if it had committed).
begin;
select plan(79);

-- helpers (rolled back with the rest: the tests schema never reaches a real project) ---------

create schema tests;
grant usage on schema tests to anon, authenticated, service_role;

-- Act as a signed-in user, exactly as PostgREST sets the request up.
create function tests.authenticate_as(user_id uuid)
returns void
language sql
as $$
    select
        set_config('request.jwt.claims',
            jsonb_build_object('sub', user_id, 'role', 'authenticated')::text, true),
        set_config('request.jwt.claim.sub', user_id::text, true),
        set_config('role', 'authenticated', true)
$$;

-- Back to the session's own role (postgres), with no user.
create function tests.clear_authentication()
returns void
language sql
as $$
    select
        set_config('request.jwt.claims', '', true),
        set_config('request.jwt.claim.sub', '', true),
        set_config('role', 'none', true)
$$;

create function tests.cursor_before()
returns text
language sql
as $$ select format('%1$s:%1$s:', pg_current_xact_id()) $$;

create function tests.cursor_after()
returns text
language sql
as $$ select format('%1$s:%1$s:', pg_current_xact_id()::text::bigint + 1) $$;

-- One bucket's entry of a sync_pull response (null when the response does not serve it).
create function tests.bucket(response jsonb, bucket text)
returns jsonb
language sql
immutable
as $$ select b from jsonb_array_elements(response -> 'buckets') as b where b ->> 'bucket' = bucket $$;

-- The same of the json that sync_pull returns.
create function tests.bucket(response json, bucket text)
returns jsonb
language sql
immutable
as $$ select tests.bucket(response::jsonb, bucket) $$;

-- The ids of a bucket entry's rows, sorted.
create function tests.row_ids(entry jsonb)
returns text []
language sql
immutable
as $$ select coalesce(array_agg(r ->> 'id' order by r ->> 'id'), '{}') from jsonb_array_elements(entry -> 'rows') as r $$;

grant execute on all functions in schema tests to anon, authenticated, service_role;

-- the registry: what every synced table must have ---------------------------------------------

select isnt_empty(
    'select 1 from private.sync_tables', 'the registry declares synced tables'
);
select is_empty(
    $$select t.table_name from private.sync_tables as t
      where to_regclass(format('public.%I', t.table_name)) is null$$,
    'every registered table exists in public'
);
select is_empty(
    $$select t.table_name from private.sync_tables as t
      join pg_class as c on c.oid = format('public.%I', t.table_name)::regclass
      where not c.relrowsecurity$$,
    'every registered table has row level security'
);
select is_empty(
    $$select t.table_name || '.' || want.col
      from private.sync_tables as t
      cross join (values ('id', 'uuid'), ('version', 'bigint'), ('sync_xid', 'xid8')) as want (col, typ)
      where not exists (
          select 1 from pg_attribute as a
          where a.attrelid = format('public.%I', t.table_name)::regclass
              and a.attname = want.col and not a.attisdropped and a.attnotnull
              and format_type(a.atttypid, a.atttypmod) = want.typ
      )$$,
    'every registered table has id uuid, version bigint and sync_xid xid8, not null'
);
select is_empty(
    $$select t.table_name from private.sync_tables as t
      where not exists (
          select 1 from pg_constraint as k
          where k.conrelid = format('public.%I', t.table_name)::regclass and k.contype = 'p'
              and k.conkey = array[(select a.attnum from pg_attribute as a
                  where a.attrelid = k.conrelid and a.attname = 'id')]
      )$$,
    'id is the primary key of every registered table'
);
select is_empty(
    $$select t.table_name || ': ' || want.tgname
      from private.sync_tables as t
      cross join (values ('sync_capture_insert'), ('sync_capture_update'), ('sync_capture_delete'))
          as want (tgname)
      where not exists (
          select 1 from pg_trigger as g
          where g.tgrelid = format('public.%I', t.table_name)::regclass and g.tgname = want.tgname
              and g.tgfoid = format('private.%I()', private.sync_capture_function(t.table_name))::regprocedure
              and g.tgenabled = 'O'
      )$$,
    'every registered table has its three enabled sync_capture_* triggers, running its generated function'
);
select is_empty(
    $$select t.table_name from private.sync_tables as t
      where not exists (
          select 1 from pg_trigger as g
          where g.tgrelid = format('public.%I', t.table_name)::regclass
              and g.tgfoid = 'private.stamp_synced_row()'::regprocedure and g.tgenabled = 'O'
      )$$,
    'every registered table stamps version and sync_xid on every write (stamp_synced_row)'
);
select is_empty(
    $$select t.table_name
      from private.sync_tables as t
      join pg_proc as p
          on p.oid = format('private.%I()', private.sync_capture_function(t.table_name))::regprocedure
      where strpos(p.prosrc, 'o.' || quote_ident(t.bucket_column) || '::text') = 0$$,
    'every generated capture function keys buckets by the bucket column the registry names'
);
select is_empty(
    $$select t.table_name from private.sync_tables as t
      where t.bucket_column <> 'id'
          and not exists (
              select 1 from pg_index as i
              where i.indrelid = format('public.%I', t.table_name)::regclass
                  and i.indpred is null and i.indnkeyatts >= 2
                  and i.indkey[0] = (select a.attnum from pg_attribute as a
                      where a.attrelid = i.indrelid and a.attname = t.bucket_column)
                  and i.indkey[1] = (select a.attnum from pg_attribute as a
                      where a.attrelid = i.indrelid and a.attname = 'sync_xid')
          )$$,
    'every table not bucketed by id has a (bucket column, sync_xid) index'
);
select is_empty(
    $$select t.table_name from private.sync_tables as t
      where t.bucket_type is distinct from (
          select format_type(a.atttypid, a.atttypmod) from pg_attribute as a
          where a.attrelid = format('public.%I', t.table_name)::regclass
              and a.attname = t.bucket_column and not a.attisdropped
      )$$,
    'every bucket column exists, with the type the registry recorded'
);
select is_empty(
    $$select t.table_name || '.' || w.col
      from private.sync_tables as t cross join unnest(t.writable || t.counters) as w (col)
      where not exists (
          select 1 from pg_attribute as a
          where a.attrelid = format('public.%I', t.table_name)::regclass
              and a.attname = w.col and a.attnum > 0 and not a.attisdropped
      )$$,
    'every writable and counter column exists'
);
select is_empty(
    $$select t.table_name || '.' || w.col from private.sync_tables as t
      cross join unnest(t.writable) as w (col)
      where w.col in ('id', 'version', 'sync_xid', 'created_at', 'updated_at')$$,
    'no server-managed column is writable through sync'
);
select is_empty(
    $$select t.table_name || '.' || w.col
      from private.sync_tables as t
      cross join unnest(t.writable) as w (col)
      inner join pg_trigger as tr on tr.tgrelid = format('public.%I', t.table_name)::regclass
      inner join pg_proc as p on p.oid = tr.tgfoid and p.proname = 'check_server_stamps'
      where w.col in (
          select m[1]
          from regexp_matches(pg_get_triggerdef(tr.oid), '''([a-z_]+)(?::[a-z]+)?''', 'g') as m
      )$$,
    'no column the server stamps (check_server_stamps) is writable through sync'
);
select is_empty(
    $$select t.table_name || ' ' || op || ' ' || w.col
      from private.sync_tables as t
      cross join unnest(t.operations) as op
      cross join unnest(t.writable) as w (col)
      where op in ('insert', 'update')
          and not has_column_privilege(
              'authenticated', format('public.%I', t.table_name), w.col, op
          )$$,
    'clients hold the column privilege for every writable column of every offered operation'
);
select is_empty(
    $$select s.name from private.sync_streams as s
      where not exists (select 1 from private.sync_tables as t where t.table_name = s.table_name)$$,
    'every stream''s table is registered'
);
select is_empty(
    $$select t.table_name from private.sync_tables as t
      where not exists (select 1 from private.sync_streams as s where s.table_name = t.table_name)$$,
    'every registered table is reachable through a stream'
);

-- privileges and definitions --------------------------------------------------------------------

select ok(
    not has_function_privilege('anon', 'public.sync_schema()', 'execute')
    and not has_function_privilege('anon', 'public.sync_pull(jsonb)', 'execute')
    and not has_function_privilege('anon', 'public.sync_checksums(jsonb)', 'execute')
    and not has_function_privilege('anon', 'public.sync_push(uuid, jsonb)', 'execute'),
    'anon cannot call sync_schema, sync_pull, sync_checksums or sync_push'
);
select ok(
    has_function_privilege('authenticated', 'public.sync_schema()', 'execute')
    and has_function_privilege('authenticated', 'public.sync_pull(jsonb)', 'execute')
    and has_function_privilege('authenticated', 'public.sync_checksums(jsonb)', 'execute')
    and has_function_privilege('authenticated', 'public.sync_push(uuid, jsonb)', 'execute'),
    'signed-in users can call sync_schema, sync_pull, sync_checksums and sync_push'
);
select ok(
    has_function_privilege('service_role', 'public.sync_prune()', 'execute')
    and not has_function_privilege('authenticated', 'public.sync_prune()', 'execute')
    and not has_function_privilege('anon', 'public.sync_prune()', 'execute')
    and not has_function_privilege('public', 'public.sync_prune()', 'execute'),
    'only service_role can call sync_prune'
);
select ok(
    not (select bool_or(p.prosecdef) from pg_proc as p where p.oid in (
        'public.sync_schema()'::regprocedure, 'public.sync_pull(jsonb)'::regprocedure,
        'public.sync_checksums(jsonb)'::regprocedure, 'public.sync_push(uuid, jsonb)'::regprocedure,
        'private.sync_apply_op(jsonb)'::regprocedure,
        'private.sync_visible_row(text, uuid)'::regprocedure
    )),
    'the client RPCs and the op applier run as the caller (security invoker)'
);
select is_definer('public', 'sync_prune', array[]::text [], 'sync_prune runs as its owner');
select is_empty(
    $$select p.oid::regprocedure::text from pg_proc as p
      where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)
          and (p.proname like 'sync\_%' or p.proname = 'can_access_topic')
          and p.prosecdef and not ('search_path=""' = any(coalesce(p.proconfig, '{}')))$$,
    'every security definer function of sync pins an empty search_path'
);
select set_eq(
    $$select p.oid::regprocedure::text from pg_proc as p
      join pg_namespace as n on n.oid = p.pronamespace
      where n.nspname in ('public', 'graphql_public') and p.proname like 'sync\_%'$$,
    array[
        'sync_schema()', 'sync_pull(jsonb)', 'sync_checksums(jsonb)', 'sync_push(uuid,jsonb)',
        'sync_prune()'
    ],
    'the exposed schemas hold only the five sync RPCs; the helpers live in private'
);
select is_empty(
    $$select c.oid::regclass::text from pg_class as c
      join pg_namespace as n on n.oid = c.relnamespace
      where c.relname like 'sync\_%' and c.relkind in ('r', 'p', 'v', 'm')
          and n.nspname in ('public', 'graphql_public')$$,
    'no sync table or view is in an exposed schema'
);
select is_empty(
    $$select c.oid::regclass::text from pg_class as c
      where c.relnamespace = 'private'::regnamespace and c.relname like 'sync\_%'
          and c.relkind = 'r'
          and (not c.relrowsecurity
              or has_table_privilege('anon', c.oid, 'select, insert, update, delete')
              or has_table_privilege('authenticated', c.oid, 'select, insert, update, delete'))$$,
    'the private sync tables have RLS on and no client privileges'
);
select ok(
    not has_function_privilege('authenticated', 'private.sync_register_table(text, text, text[], text[], text, text[])', 'execute')
    and not has_function_privilege('authenticated', 'private.sync_capture_messages()', 'execute')
    and not has_function_privilege('authenticated', 'private.sync_nudge(text, text[])', 'execute'),
    'clients cannot register tables, run the capture trigger or send nudges'
);

-- the schema hash (compiled from the registry) follows the synced tables' columns -------------------

select set_config('tests.hash', private.sync_schema_hash(), true);
savepoint before_alter;
alter table public.course_content add column pgtap_probe text;
select isnt(
    private.sync_schema_hash(), current_setting('tests.hash'),
    'a column added by a plain alter table changes the schema hash'
);
select ok(
    (select v.body::jsonb ? 'pgtap_probe' and v.body::jsonb ->> 'id' = 'e0000000-0000-4000-8000-000000000001'
     from private.sync_visible_rows(
         'course_content', array['e0000000-0000-4000-8000-000000000001']::uuid [], false,
         private.sync_schema_hash()
     ) as v),
    'rows served after it carry the new column (the compiled column list is not used)'
);
rollback to savepoint before_alter;
select is(
    private.sync_schema_hash(), current_setting('tests.hash'),
    'and the hash is the same again once the column is gone'
);

-- sync_schema, as a student ---------------------------------------------------------------------

select set_config(
    'tests.synced_tables', (select array_agg(t.table_name order by t.table_name)::text from private.sync_tables as t),
    true
);
select tests.authenticate_as('c0000000-0000-4000-8000-000000000001');  -- Sam, enrolled in Algebra I

select is(
    (select array_agg(t ->> 'name' order by t ->> 'name')::text
     from jsonb_array_elements(public.sync_schema() -> 'tables') as t),
    current_setting('tests.synced_tables'),
    'sync_schema lists every registered table'
);
select is(
    public.sync_schema() ->> 'hash',
    private.sync_schema_hash(),
    'sync_schema''s hash is the registry''s and columns'' hash'
);
select is(
    public.sync_pull('{}') ->> 'schema_hash',
    public.sync_schema() ->> 'hash',
    'pulls carry the schema hash'
);
select ok(
    not exists (
        select 1 from jsonb_array_elements(public.sync_schema() -> 'tables') as t
        cross join jsonb_array_elements(t -> 'columns') as c
        where c ->> 'name' = 'sync_xid'
    ),
    'sync_schema never shows sync_xid'
);

-- sync_pull: streams choose buckets, RLS filters rows ----------------------------------------------

select is(
    tests.bucket(public.sync_pull('{}'), 'course_content:d0000000-0000-4000-8000-000000000001')
        - 'rows' - 'cursor',
    jsonb_build_object(
        'bucket', 'course_content:d0000000-0000-4000-8000-000000000001', 'table', 'course_content',
        'key', 'd0000000-0000-4000-8000-000000000001', 'streams', jsonb_build_array('my_course_content'),
        'state', 'new', 'removed', '[]'::jsonb, 'complete', true, 'round', null, 'after', null
    ),
    'an enrolled student gets her course''s content bucket, new and complete'
);
select is(
    tests.row_ids(tests.bucket(public.sync_pull('{}'), 'course_content:d0000000-0000-4000-8000-000000000001')),
    array[
        'e0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000002',
        'e0000000-0000-4000-8000-000000000003'
    ],
    'the bucket holds every row of the course, lessons that are not previews included'
);
select ok(
    (select bool_and(b -> 'cursor' = p -> 'snapshot')
     from (select public.sync_pull('{}')::jsonb as p) as pull
     cross join jsonb_array_elements(p -> 'buckets') as b),
    'a bucket served whole gets the pull''s snapshot as its cursor'
);
select is(
    (select array_agg(r ->> 0 order by r ->> 0) from jsonb_array_elements(
        tests.bucket(public.sync_pull('{"version": 2}'), 'course_content:d0000000-0000-4000-8000-000000000001')
        -> 'rows'
    ) as r),
    tests.row_ids(tests.bucket(public.sync_pull('{}'), 'course_content:d0000000-0000-4000-8000-000000000001')),
    'version 2 serves the same rows, as arrays whose first value is the id'
);
select is(
    (select jsonb_build_object('version', p -> 'version', 'columns', p -> 'columns' -> 'course_content')
     from (select public.sync_pull('{"version": 2}')::jsonb as p) as pull),
    jsonb_build_object('version', 2, 'columns', (
        select jsonb_agg(c -> 'name')
        from jsonb_array_elements(public.sync_schema() -> 'tables') as t
        cross join jsonb_array_elements(t -> 'columns') as c
        where t ->> 'name' = 'course_content'
    )),
    'a version 2 response says so, with each served table''s columns as sync_schema lists them'
);
select is(
    (select jsonb_build_object('version', p -> 'version', 'rows', b -> 'rows', 'by_column', jsonb_array_length(b -> 'by_column'))
     from (select public.sync_pull('{"version": 6}')::jsonb as p) as pull
     cross join lateral tests.bucket(pull.p, 'course_content:d0000000-0000-4000-8000-000000000001') as b),
    jsonb_build_object('version', 5, 'rows', '[]'::jsonb, 'by_column', jsonb_array_length(
        (select p -> 'columns' -> 'course_content' from (select public.sync_pull('{"version": 3}')::jsonb as p) as pull)
    )),
    'a version the server does not know gets its newest, 5: a bucket served whole comes column by column, an array per column'
);
select is(
    (select jsonb_agg(r order by r ->> 'id') from jsonb_array_elements(
        tests.bucket(public.sync_pull('{}'), 'course_content:d0000000-0000-4000-8000-000000000001') -> 'rows'
    ) as r),
    (select jsonb_agg(o order by o ->> 'id') from (
        select (select jsonb_object_agg(n.name, c.value -> (r.i - 1)::integer)
                from jsonb_array_elements_text(pull.p -> 'columns' -> 'course_content') with ordinality as n (name, i)
                join jsonb_array_elements(e.entry -> 'by_column') with ordinality as c (value, i) on c.i = n.i) as o
        from (select public.sync_pull('{"version": 3}')::jsonb as p) as pull
        cross join lateral tests.bucket(pull.p, 'course_content:d0000000-0000-4000-8000-000000000001') as e (entry)
        cross join lateral generate_series(1, jsonb_array_length(e.entry -> 'by_column' -> 0)) as r (i)
    ) as rows),
    'in version 3, row i of a bucket''s columns is version 1''s object'
);
select ok(
    tests.bucket(public.sync_pull('{}'), 'course_content:d0000000-0000-4000-8000-000000000002') is null,
    'she does not get the content of a course she is not enrolled in'
);
select is(
    (select b -> 'count' from jsonb_each(
        public.sync_checksums('{"buckets": ["course_content:d0000000-0000-4000-8000-000000000001"]}')
            -> 'buckets') as e (k, b)),
    '3'::jsonb,
    'sync_checksums counts the rows of a held bucket'
);
select is(
    (public.sync_checksums('{"buckets": ["course_content:d0000000-0000-4000-8000-000000000001"]}')
        #>> '{buckets,course_content:d0000000-0000-4000-8000-000000000001,checksum}')::bigint,
    (select sum(('x' || substr(md5(c.id::text || ':' || c.version), 1, 8))::bit (32)::bigint) % 4294967296
     from public.course_content as c where c.course_id = 'd0000000-0000-4000-8000-000000000001')::bigint,
    'the checksum is the documented sum of md5("<id>:<version>") prefixes, modulo 2^32'
);
select is(
    public.sync_checksums('{"buckets": ["course_content:d0000000-0000-4000-8000-000000000002"]}')
        -> 'removed_buckets',
    '["course_content:d0000000-0000-4000-8000-000000000002"]'::jsonb,
    'sync_checksums gives no checksum of a bucket she does not hold'
);

select tests.authenticate_as('c0000000-0000-4000-8000-000000000003');  -- Sid, in Physics only

select ok(
    tests.bucket(public.sync_pull('{}'), 'course_content:d0000000-0000-4000-8000-000000000001') is null,
    'another student does not get the course''s content bucket'
);
select is(
    public.sync_pull(
        '{"buckets": {"course_content:d0000000-0000-4000-8000-000000000001": {"cursor": null}}}'
    )::jsonb -> 'removed_buckets',
    '["course_content:d0000000-0000-4000-8000-000000000001"]'::jsonb,
    'a bucket he claims without holding it is in removed_buckets'
);
select is(
    tests.row_ids(tests.bucket(
        public.sync_pull('{"subscriptions": [{"stream": "course_preview", "key": "d0000000-0000-4000-8000-000000000001"}]}'),
        'course_content:d0000000-0000-4000-8000-000000000001'
    )),
    array['e0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000002'],
    'subscribed to its preview, he holds the bucket but RLS lets only the previews through'
);
select is(
    public.sync_pull('{"subscriptions": [
        {"stream": "course_preview", "key": "d0000000-0000-4000-8000-000000000003"},
        {"stream": "no_such_stream", "key": "x"}
    ]}')::jsonb -> 'denied',
    '[{"stream": "course_preview", "key": "d0000000-0000-4000-8000-000000000003", "reason": "not allowed"},
      {"stream": "no_such_stream", "key": "x", "reason": "unknown stream"}]'::jsonb,
    'a subscription to a draft course or an unknown stream is denied, with the reason'
);

-- tombstones: deletes, bucket moves and rows that became invisible ---------------------------------

select tests.authenticate_as('b0000000-0000-4000-8000-000000000001');  -- Tom, tutor of Algebra I
delete from public.course_content where id = 'e0000000-0000-4000-8000-000000000003';
update public.course_content set is_preview = false where id = 'e0000000-0000-4000-8000-000000000002';
select tests.clear_authentication();
-- A session moves from Sam's bucket to Sue's (no guard stops the owner from doing it).
update public.tutoring_sessions set student_id = 'c0000000-0000-4000-8000-000000000002'
where id = '10000000-0000-4000-8000-000000000001';

select results_eq(
    $$select t.table_name, t.bucket_key, t.row_id::text from private.sync_tombstones as t
      where t.sync_xid = pg_current_xact_id() order by 1$$,
    $$values
        ('course_content', 'd0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000003'),
        ('tutoring_sessions', 'c0000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000001')$$,
    'a delete and a bucket move each leave a tombstone in the old bucket, and an update in place none'
);

select tests.authenticate_as('c0000000-0000-4000-8000-000000000001');  -- Sam
select set_config('tests.pull', public.sync_pull(jsonb_build_object('buckets', jsonb_build_object(
    'course_content:d0000000-0000-4000-8000-000000000001', jsonb_build_object('cursor', tests.cursor_before()),
    'tutoring_sessions:c0000000-0000-4000-8000-000000000001', jsonb_build_object('cursor', tests.cursor_before())
)))::text, true);

select is(
    tests.bucket(current_setting('tests.pull')::jsonb, 'course_content:d0000000-0000-4000-8000-000000000001')
        -> 'removed',
    '["e0000000-0000-4000-8000-000000000003"]'::jsonb,
    'the next pull with the old cursor lists the deleted id in removed'
);
select is(
    tests.row_ids(tests.bucket(current_setting('tests.pull')::jsonb, 'course_content:d0000000-0000-4000-8000-000000000001')),
    array['e0000000-0000-4000-8000-000000000002'],
    'and serves only the row that changed since, in state changed'
);
select is(
    tests.bucket(current_setting('tests.pull')::jsonb, 'tutoring_sessions:c0000000-0000-4000-8000-000000000001')
        -> 'removed',
    '["10000000-0000-4000-8000-000000000001"]'::jsonb,
    'a row that moved to another bucket is removed from the old one'
);
select is(
    public.sync_pull(jsonb_build_object('buckets', jsonb_build_object(
        'course_content:d0000000-0000-4000-8000-000000000001', jsonb_build_object('cursor', tests.cursor_after())
    )))::jsonb -> 'unchanged',
    '["course_content:d0000000-0000-4000-8000-000000000001"]'::jsonb,
    'a cursor that has seen those writes finds the bucket unchanged'
);

select tests.authenticate_as('c0000000-0000-4000-8000-000000000002');  -- Sue
select ok(
    '10000000-0000-4000-8000-000000000001' = any(tests.row_ids(tests.bucket(
        public.sync_pull(jsonb_build_object('buckets', jsonb_build_object(
            'tutoring_sessions:c0000000-0000-4000-8000-000000000002',
            jsonb_build_object('cursor', tests.cursor_before())
        ))),
        'tutoring_sessions:c0000000-0000-4000-8000-000000000002'
    ))),
    'the moved row arrives in its new bucket'
);

select tests.authenticate_as('c0000000-0000-4000-8000-000000000003');  -- Sid, previewing
select is(
    tests.bucket(public.sync_pull(jsonb_build_object(
        'buckets', jsonb_build_object(
            'course_content:d0000000-0000-4000-8000-000000000001', jsonb_build_object('cursor', tests.cursor_before())
        ),
        'subscriptions', '[{"stream": "course_preview", "key": "d0000000-0000-4000-8000-000000000001"}]'::jsonb
    )), 'course_content:d0000000-0000-4000-8000-000000000001') -> 'removed',
    '["e0000000-0000-4000-8000-000000000002", "e0000000-0000-4000-8000-000000000003"]'::jsonb,
    'a row that stays in the bucket but is no longer visible to him is in removed, like the deleted one'
);

-- sync_push, as the tutor ------------------------------------------------------------------------

select tests.authenticate_as('b0000000-0000-4000-8000-000000000001');  -- Tom
select set_config('tests.insert_op', '[{"op_id": 1, "tx_id": "t1", "table": "course_content", "kind": "insert",
    "id": "e0000000-0000-4000-8000-0000000000a1", "base_version": null, "priority": "normal",
    "data": {"course_id": "d0000000-0000-4000-8000-000000000001", "kind": "lesson", "position": 2,
             "title": "Pushed offline", "parent_id": "e0000000-0000-4000-8000-000000000001"}}]', true);

select is(
    public.sync_push('a0000000-0000-4000-8000-00000000c11e', current_setting('tests.insert_op')::jsonb) -> 'results',
    '[{"op_id": 1, "status": "applied", "version": 1}]'::jsonb,
    'sync_push applies an insert and returns the new version'
);
select is(
    (select c.title from public.course_content as c where c.id = 'e0000000-0000-4000-8000-0000000000a1'),
    'Pushed offline',
    'the inserted row is there'
);
select is(
    public.sync_push('a0000000-0000-4000-8000-00000000c11e', current_setting('tests.insert_op')::jsonb) -> 'results',
    '[{"op_id": 1, "status": "applied", "version": 1, "replayed": true}]'::jsonb,
    'a second delivery of the same op returns the stored result with replayed: true'
);
select is(
    (select count(*)::int from public.course_content as c where c.id = 'e0000000-0000-4000-8000-0000000000a1'),
    1,
    'and writes nothing'
);
select is(
    (public.sync_push('a0000000-0000-4000-8000-00000000c11e', '[{"op_id": 2, "table": "course_content",
        "kind": "update", "id": "e0000000-0000-4000-8000-000000000001", "base_version": 7,
        "data": {"title": "Stale edit"}}]') -> 'results' -> 0) - 'row',
    '{"op_id": 2, "status": "conflict", "version": 1}'::jsonb,
    'an update on a stale base_version is a conflict that carries the server''s version'
);
select is(
    (select c.title from public.course_content as c where c.id = 'e0000000-0000-4000-8000-000000000001'),
    'Linear equations',
    'and writes nothing'
);
select is(
    (public.sync_push('a0000000-0000-4000-8000-00000000c11e', '[{"op_id": 3, "table": "course_content",
        "kind": "update", "id": "e0000000-0000-4000-8000-000000000001", "base_version": 1,
        "data": {"title": "Linear equations", "version": 40}}]') -> 'results' -> 0)
        - 'message' - 'row',
    '{"op_id": 3, "status": "rejected", "sqlstate": "42501"}'::jsonb,
    'an op that sets a column that is not writable is rejected with 42501'
);
select is(
    (public.sync_push('a0000000-0000-4000-8000-00000000c11e', '[{"op_id": 4, "table": "messages",
        "kind": "delete", "id": "e0000000-0000-4000-8000-000000000001", "data": {}}]') -> 'results' -> 0)
        ->> 'sqlstate',
    '42501',
    'an operation the table does not offer through sync is rejected with 42501'
);

select tests.authenticate_as('c0000000-0000-4000-8000-000000000001');  -- Sam
select is(
    (public.sync_push('a0000000-0000-4000-8000-00000000c5a0', '[{"op_id": 1, "table": "course_content",
        "kind": "insert", "id": "e0000000-0000-4000-8000-0000000000a2",
        "data": {"course_id": "d0000000-0000-4000-8000-000000000001", "kind": "lesson",
                 "position": 3, "title": "Not mine to add"}}]') -> 'results' -> 0) ->> 'sqlstate',
    '42501',
    'a student''s insert into a course''s content is rejected by RLS with 42501'
);
select throws_ok(
    $$select public.sync_prune()$$,
    '42501', null, 'a signed-in user cannot prune'
);

-- sync_prune, as the service role ------------------------------------------------------------------

select tests.clear_authentication();
select is(
    (select count(*)::int from private.sync_push_results as r
     where r.client_id = 'a0000000-0000-4000-8000-00000000c11e'),
    4,
    'every fresh result is stored once for replay'
);
insert into private.sync_tombstones (table_name, bucket_key, row_id, created_at)
values (
    'course_content', 'd0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-0000000000ff',
    now() - interval '31 days'
);
insert into private.sync_push_results (user_id, client_id, op_id, result, created_at)
values (
    'c0000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-0000000000de', 1, '{}',
    now() - interval '8 days'
);
select ok(
    (
        select count(*) > 1 and count(*) = count(distinct (c.table_name, c.bucket_key))
        from private.sync_bucket_changes as c where c.sync_xid = pg_current_xact_id()
    ),
    'the buckets this transaction wrote are in the change log, each once whatever its writes'
);
insert into private.sync_bucket_changes (table_name, bucket_key, created_at)
values ('course_content', 'd0000000-0000-4000-8000-000000000001', now() - interval '2 days');
set local role service_role;
select is(
    public.sync_prune() - 'pruned_xid' - 'change_log_pruned_xid',
    '{"tombstones": 1, "bucket_changes": 1, "push_results": 1}'::jsonb,
    'sync_prune deletes the tombstones, change log entries and push results past their horizons'
);
reset role;
select is(
    (select s.change_log_pruned from private.sync_settings as s),
    pg_current_xact_id(),
    'the change log''s horizon advances to the newest pruned entry'
);
select is(
    (select s.pruned_xid from private.sync_settings as s),
    pg_current_xact_id(),
    'the horizon advances to the newest pruned tombstone'
);
select is(
    (select count(*)::int from private.sync_tombstones as t where t.sync_xid = pg_current_xact_id()),
    2,
    'recent tombstones are kept'
);

select tests.authenticate_as('c0000000-0000-4000-8000-000000000001');  -- Sam
select is(
    tests.bucket(public.sync_pull(jsonb_build_object('buckets', jsonb_build_object(
        'course_content:d0000000-0000-4000-8000-000000000001', jsonb_build_object('cursor', tests.cursor_before())
    ))), 'course_content:d0000000-0000-4000-8000-000000000001') ->> 'state',
    'reset',
    'a cursor older than the horizon is served as reset'
);

-- realtime: sync:<table>:<key> topics ---------------------------------------------------------------------

select ok(
    private.can_access_topic('sync:messages:17000000-0000-4000-8000-000000000001'),
    'a participant may receive on the sync topic of her conversation'
);
select ok(
    private.can_access_topic('sync:course_content:d0000000-0000-4000-8000-000000000001'),
    'an enrolled student may receive on the sync topic of her course'
);
select ok(
    not private.can_access_topic('sync:messages:17000000-0000-4000-8000-000000000001', true),
    'nobody may send on a sync topic, not even a holder'
);
select ok(
    private.can_access_topic('sync:profiles:b0000000-0000-4000-8000-000000000001')
    and not private.can_access_topic('sync:notifications:b0000000-0000-4000-8000-000000000001'),
    'seeing the tutor''s profile does not open the tutor''s notifications topic'
);
select tests.authenticate_as('c0000000-0000-4000-8000-000000000003');  -- Sid
select ok(
    not private.can_access_topic('sync:messages:17000000-0000-4000-8000-000000000001'),
    'a stranger may not receive on the sync topic of a conversation'
);
select ok(
    not private.can_access_topic('sync:course_content:d0000000-0000-4000-8000-000000000003'),
    'a stranger may not receive on the sync topic of a draft course'
);
select tests.clear_authentication();
select ok(
    not has_function_privilege('anon', 'private.can_access_topic(text, boolean)', 'execute'),
    'anon cannot even ask'
);

select * from finish();
rollback;
