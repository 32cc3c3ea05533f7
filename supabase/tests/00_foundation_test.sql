-- pgTAP: the foundation migration's schema and the synced-row bookkeeping trigger.
-- Run with pg_prove over supabase/tests/ (the pytest suite does, against a fresh database).
begin;
select plan(11);

select has_schema('private', 'helpers live in the private schema');
select has_function('private', 'stamp_synced_row', array[]::name[], 'the stamp trigger exists');
select is(
    (
        select p.proconfig
        from pg_catalog.pg_proc as p
        where p.oid = 'private.stamp_synced_row()'::regprocedure
    ),
    array['search_path=""'],
    'stamp_synced_row pins an empty search_path'
);
select ok(
    not has_function_privilege('anon', 'private.stamp_synced_row()', 'execute'),
    'API roles cannot call the trigger function directly'
);

create table public.tap_rows (
    id integer primary key,
    body text,
    version bigint,
    created_at timestamptz,
    updated_at timestamptz,
    sync_xid xid8
);
create trigger stamp_synced_row before insert or update on public.tap_rows
for each row execute function private.stamp_synced_row();

insert into public.tap_rows (id, body, version, created_at)
values (1, 'first', 99, '2020-01-01T00:00:00Z');
select is((select version from public.tap_rows), 1::bigint, 'insert starts at version 1');
select is(
    (select created_at from public.tap_rows),
    '2020-01-01T00:00:00Z'::timestamptz,
    'a client-supplied created_at is kept on insert'
);
select is(
    (select sync_xid from public.tap_rows),
    pg_current_xact_id(),
    'sync_xid is the writing transaction'
);

update public.tap_rows set body = 'second', version = 50, created_at = now();
select is((select version from public.tap_rows), 2::bigint, 'update bumps the version by one');
select is(
    (select created_at from public.tap_rows),
    '2020-01-01T00:00:00Z'::timestamptz,
    'an update cannot move created_at'
);
select is((select updated_at from public.tap_rows), now(), 'updated_at is the write time');

update public.tap_rows set body = 'third';
select is((select version from public.tap_rows), 3::bigint, 'every update bumps again');

select * from finish();
rollback;
