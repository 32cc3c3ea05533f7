-- pgTAP: GDPR export and erasure — who may call them, how they are defined, and the refusals
-- and guards that keep erasure safe. The full "nothing names the user any more" scan is in
-- tests/test_gdpr.py. Uses the seed's users.
begin;
select plan(25);

-- definitions ------------------------------------------------------------------------------

select has_function('public', 'export_my_data', array[]::text [], 'public.export_my_data() exists');
select has_function('public', 'delete_user', array['uuid'], 'public.delete_user(uuid) exists');
select is_definer('private', 'delete_user', array['uuid'], 'the erasure runs as its owner, in private');
select isnt_definer('public', 'delete_user', array['uuid'], 'the API calls it through an invoker wrapper');
select isnt_definer('public', 'export_my_data', array[]::text [], 'export_my_data runs as the caller');
select ok(
    (select bool_and('search_path=""' = any(p.proconfig)) from pg_proc as p
     where p.oid in ('public.delete_user(uuid)'::regprocedure, 'public.export_my_data()'::regprocedure)),
    'both pin an empty search_path'
);
select ok(
    (select bool_and(p.prosecdef and 'search_path=""' = any(p.proconfig)) from pg_proc as p
     where p.oid in (
         'private.my_account()'::regprocedure, 'private.my_analytics_events()'::regprocedure,
         'private.my_audit_entries()'::regprocedure, 'private.my_storage_objects()'::regprocedure
     )),
    'the export''s private readers are security definer with a pinned search_path'
);
select col_is_null('public', 'messages', 'sender_id', 'an erased sender leaves a tombstone');

-- privileges -------------------------------------------------------------------------------

select ok(not has_function_privilege('anon', 'public.delete_user(uuid)', 'execute'), 'anon cannot call delete_user');
select ok(not has_function_privilege('public', 'public.delete_user(uuid)', 'execute'), 'PUBLIC cannot call delete_user');
select ok(has_function_privilege('service_role', 'public.delete_user(uuid)', 'execute'), 'service_role can call delete_user');
select ok(
    has_function_privilege('authenticated', 'public.delete_user(uuid)', 'execute'),
    'authenticated may call delete_user (the admin check is inside)'
);
select ok(not has_function_privilege('anon', 'public.export_my_data()', 'execute'), 'anon cannot export');
select ok(has_function_privilege('authenticated', 'public.export_my_data()', 'execute'), 'users can export');
select ok(
    not has_function_privilege('authenticated', 'private.redact_audit_log(uuid, uuid, text, text)', 'execute'),
    'users cannot redact the audit log'
);

-- the audit log stays append-only outside erasure ------------------------------------------

select throws_ok(
    $$update public.audit_log set old_data = '{}' where id = (select min(id) from public.audit_log)$$,
    '42501', 'the audit log is append-only', 'even the owner cannot edit the audit log without the flag'
);
select throws_ok(
    $$update public.support_replies set author_id = 'c0000000-0000-4000-8000-000000000002'$$,
    '42501', 'a reply stays on its ticket and with its author', 'a reply keeps its author'
);

-- refusals ---------------------------------------------------------------------------------

select throws_ok(
    $$select public.delete_user('b0000000-0000-4000-8000-000000000001')$$,
    '55000', 'the user is the last owner of organization(s) northside-academy',
    'the last owner of an organization is not erased'
);
select throws_ok(
    $$select public.delete_user('00000000-0000-4000-8000-0000000000ff')$$,
    'P0002', 'no user with id 00000000-0000-4000-8000-0000000000ff', 'an unknown id is an error'
);
select throws_like(
    $$select public.delete_user('b0000000-0000-4000-8000-000000000002')$$,
    'the user teaches courses other people take: %',
    'a tutor whose courses have students is not erased'
);

-- as a student -----------------------------------------------------------------------------

select set_config('request.jwt.claims', '{"sub": "c0000000-0000-4000-8000-000000000002", "role": "authenticated"}', true);
select set_config('request.jwt.claim.sub', 'c0000000-0000-4000-8000-000000000002', true);
set local role authenticated;
select throws_ok(
    $$select public.delete_user('c0000000-0000-4000-8000-000000000003')$$,
    '42501', 'only an admin or the service role can delete a user', 'a student cannot erase anyone'
);
select is(
    (public.export_my_data() ->> 'user_id'), 'c0000000-0000-4000-8000-000000000002',
    'a user exports their own data'
);
select is((public.export_my_data() ->> 'version'), '1', 'the export carries its format version');
reset role;

-- as anon ----------------------------------------------------------------------------------

select set_config('request.jwt.claims', '{"role": "anon"}', true);
select set_config('request.jwt.claim.sub', '', true);
set local role anon;
select throws_ok('select public.export_my_data()', '42501', null, 'anon cannot export');
reset role;

-- as an admin ------------------------------------------------------------------------------

select set_config('request.jwt.claims', '{"sub": "a0000000-0000-4000-8000-000000000001", "role": "authenticated"}', true);
select set_config('request.jwt.claim.sub', 'a0000000-0000-4000-8000-000000000001', true);
set local role authenticated;
select is(
    (public.delete_user('c0000000-0000-4000-8000-000000000003') -> 'deleted' ->> 'auth.users'), '1',
    'an admin erases a user'
);
reset role;

select * from finish();
rollback;
