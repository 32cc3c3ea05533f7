-- pgTAP: payments, organizations, the audit log, analytics events and rate limiting — their
-- shape (tables, RLS, policies, privileges, partitions, helpers) and the behaviour a policy
-- alone cannot show (guards, triggers, the pre-request check). Uses the seed's users.
begin;
select plan(60);

-- shape ------------------------------------------------------------------------------------

select has_table('public', 'payments', 'public.payments exists');
select has_table('public', 'refunds', 'public.refunds exists');
select has_table('public', 'disputes', 'public.disputes exists');
select has_table('public', 'organizations', 'public.organizations exists');
select has_table('public', 'organization_members', 'public.organization_members exists');
select has_table('public', 'audit_log', 'public.audit_log exists');
select has_table('public', 'analytics_events', 'public.analytics_events exists');
select has_column('public', 'courses', 'organization_id', 'courses.organization_id exists');
select col_not_null('public', 'courses', 'visibility', 'courses.visibility is not null');
select col_not_null('public', 'payments', 'amount_minor', 'payments.amount_minor is not null');
select col_not_null('public', 'payments', 'provider_intent_id', 'payments.provider_intent_id is not null');
select col_not_null('public', 'refunds', 'payment_id', 'refunds.payment_id is not null');
select col_not_null('public', 'organization_members', 'role', 'organization_members.role is not null');
select col_not_null('public', 'audit_log', 'actor_role', 'audit_log.actor_role is not null');
select col_not_null('public', 'analytics_events', 'user_id', 'analytics_events.user_id is not null');
select col_is_pk('public', 'audit_log', array['id', 'at'], 'the audit log key includes its partition key');
select col_is_pk('public', 'analytics_events', array['id', 'at'], 'the analytics key includes its partition key');

select ok(
    (select bool_and(relrowsecurity) from pg_class where oid in (
        'public.payments'::regclass, 'public.refunds'::regclass, 'public.disputes'::regclass,
        'public.organizations'::regclass, 'public.organization_members'::regclass,
        'public.audit_log'::regclass, 'public.analytics_events'::regclass
    )),
    'every platform table has row level security'
);
select is(
    (select c.relkind::text from pg_class as c where c.oid = 'public.audit_log'::regclass),
    'p',
    'the audit log is partitioned'
);
select ok(
    (select bool_and(c.relnamespace = 'private'::regnamespace) from pg_inherits as i
     join pg_class as c on c.oid = i.inhrelid
     where i.inhparent in ('public.audit_log'::regclass, 'public.analytics_events'::regclass)),
    'partitions live in private, out of the API''s reach'
);
select ok(
    to_regclass('private.' || private.monthly_partition_name('public.audit_log', now())) is not null
    and to_regclass('private.' || private.monthly_partition_name('public.audit_log', now() + interval '3 months')) is not null,
    'the audit log has partitions for this month and three ahead'
);

select policies_are('public', 'payments', array['Payers and payees can read their payments']);
select policies_are('public', 'refunds', array['Payers and payees can read refunds of their payments']);
select policies_are('public', 'disputes', array['Payers and payees can read disputes of their payments']);
select policies_are('public', 'organizations', array[
    'Members can read their organizations',
    'Owners and admins can update their organization',
    'Owners can delete their organization',
    'Signed-in users can create organizations'
]);
select policies_are('public', 'organization_members', array[
    'Members can read their organization''s members',
    'Owners and admins can add members',
    'Owners and admins can change members'' roles',
    'Owners and admins remove members; members leave'
]);
select policies_are('public', 'audit_log', array['Admins can read the audit log']);
select policies_are('public', 'analytics_events', array[
    'Admins can read analytics events',
    'Users can record their own analytics events'
]);

select ok(
    not has_table_privilege('authenticated', 'public.payments', 'insert, update, delete')
    and not has_table_privilege('anon', 'public.payments', 'select, insert, update, delete'),
    'clients hold no write privilege on payments'
);
select ok(
    has_table_privilege('service_role', 'public.payments', 'insert')
    and has_table_privilege('service_role', 'public.payments', 'update')
    and not has_table_privilege('service_role', 'public.payments', 'delete'),
    'service_role inserts and updates payments, never deletes them'
);
select ok(
    not has_table_privilege('authenticated', 'public.audit_log', 'insert, update, delete, truncate')
    and not has_table_privilege('service_role', 'public.audit_log', 'insert, update, delete, truncate'),
    'no API role can write the audit log'
);
select ok(
    not has_function_privilege('authenticated', 'public.maintain_partitions()', 'execute')
    and not has_function_privilege('anon', 'public.maintain_partitions()', 'execute')
    and has_function_privilege('service_role', 'public.maintain_partitions()', 'execute'),
    'only service_role runs partition maintenance'
);
select ok(
    has_function_privilege('authenticated', 'private.check_request()', 'execute')
    and has_function_privilege('anon', 'private.check_request()', 'execute'),
    'PostgREST can call the pre-request check as any API role'
);
select ok(
    to_regprocedure('public.check_request()') is null,
    'the pre-request check is not an RPC (/rest/v1/rpc/check_request does not exist)'
);
select is(
    (select p.proconfig from pg_proc as p where p.oid = 'private.check_request()'::regprocedure),
    array['search_path=""'],
    'check_request pins an empty search_path'
);
select ok(
    (select p.prosecdef from pg_proc as p where p.oid = 'private.check_request()'::regprocedure),
    'check_request is security definer (it writes the private counters)'
);

-- behaviour: organizations ------------------------------------------------------------------

-- A new user with a verified address at Northside's domain joins it.
insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data)
values ('f1000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated',
        'nia@northside.example.edu', now(), '{}');
insert into auth.users (id, aud, role, email, raw_app_meta_data)
values ('f1000000-0000-4000-8000-000000000002', 'authenticated', 'authenticated',
        'ned@northside.example.edu', '{}');
select is(
    (select role from public.organization_members
     where user_id = 'f1000000-0000-4000-8000-000000000001'),
    'member',
    'a verified address joins its domain''s organization'
);
select is_empty(
    $$select 1 from public.organization_members
      where user_id = 'f1000000-0000-4000-8000-000000000002'$$,
    'an unverified address does not'
);
update auth.users set email_confirmed_at = now() where id = 'f1000000-0000-4000-8000-000000000002';
select isnt_empty(
    $$select 1 from public.organization_members
      where user_id = 'f1000000-0000-4000-8000-000000000002'$$,
    'confirming the address later joins it'
);

-- Act as Tom (Northside's only owner).
select set_config('request.jwt.claims', '{"sub": "b0000000-0000-4000-8000-000000000001", "role": "authenticated"}', true);
select set_config('request.jwt.claim.sub', 'b0000000-0000-4000-8000-000000000001', true);
set local role authenticated;
select throws_ok(
    $$update public.organization_members set role = 'member'
      where user_id = 'b0000000-0000-4000-8000-000000000001'$$,
    '42501',
    'an organization must keep at least one owner',
    'the last owner cannot demote themselves'
);
select throws_ok(
    $$delete from public.organization_members
      where user_id = 'b0000000-0000-4000-8000-000000000001'$$,
    '42501',
    'an organization must keep at least one owner',
    'the last owner cannot leave'
);
select throws_ok(
    $$update public.organizations set email_domain = 'gmail.com'$$,
    '42501',
    'only an admin can set an organization''s e-mail domain',
    'an owner cannot claim an e-mail domain'
);
insert into public.organizations (id, name, slug)
values ('f2000000-0000-4000-8000-000000000001', 'Tom''s lab', 'toms-lab');
select is(
    (select role from public.organization_members
     where organization_id = 'f2000000-0000-4000-8000-000000000001'),
    'owner',
    'the creator of an organization becomes its owner'
);
insert into public.courses (id, tutor_id, title, status, organization_id, visibility)
values ('f3000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000001',
        'Northside only', 'published', '20000000-0000-4000-8000-000000000001', 'internal');
select throws_ok(
    $$select * from public.payments for update$$,
    '42501',
    null,
    'a payee cannot lock (update) a payment'
);
reset role;

-- The internal course: visible to Sam (member), not to Sue or anon.
select set_config('request.jwt.claims', '{"sub": "c0000000-0000-4000-8000-000000000001", "role": "authenticated"}', true);
select set_config('request.jwt.claim.sub', 'c0000000-0000-4000-8000-000000000001', true);
set local role authenticated;
select isnt_empty(
    $$select 1 from public.courses where id = 'f3000000-0000-4000-8000-000000000001'$$,
    'a member sees the internal course'
);
select is(
    (select count(*)::integer from public.payments),
    1,
    'Sam reads his own payment only'
);
select is(
    (select count(*)::integer from public.refunds),
    1,
    'and its refund'
);
reset role;
select set_config('request.jwt.claims', '{"sub": "c0000000-0000-4000-8000-000000000002", "role": "authenticated"}', true);
select set_config('request.jwt.claim.sub', 'c0000000-0000-4000-8000-000000000002', true);
set local role authenticated;
select is_empty(
    $$select 1 from public.courses where id = 'f3000000-0000-4000-8000-000000000001'$$,
    'a non-member does not'
);
select throws_ok(
    $$insert into public.enrollments (student_id, course_id)
      values ('c0000000-0000-4000-8000-000000000002', 'f3000000-0000-4000-8000-000000000001')$$,
    '42501',
    null,
    'a non-member cannot enroll in it'
);
reset role;
select set_config('request.jwt.claims', '{"role": "anon"}', true);
select set_config('request.jwt.claim.sub', '', true);
set local role anon;
select is_empty(
    $$select 1 from public.courses where id = 'f3000000-0000-4000-8000-000000000001'$$,
    'anon does not'
);
reset role;

-- behaviour: payments and the audit log -----------------------------------------------------

select throws_ok(
    $$insert into public.refunds (payment_id, amount_minor, provider_refund_id)
      values ('22000000-0000-4000-8000-000000000001', 4001, 're_tap')$$,
    '23514',
    'refunds cannot exceed the payment',
    'a refund beyond the payment (4900 paid, 900 refunded) is refused'
);
select lives_ok(
    $$insert into public.refunds (payment_id, amount_minor, provider_refund_id)
      values ('22000000-0000-4000-8000-000000000001', 4000, 're_tap')$$,
    'a refund up to the payment is accepted'
);
select is(
    (select count(*)::integer from public.audit_log
     where table_name = 'public.refunds' and new_data ->> 'provider_refund_id' = 're_tap'),
    1,
    'the refund was audited'
);
select throws_ok(
    $$update public.audit_log set action = 'delete'$$,
    '42501',
    'the audit log is append-only',
    'not even the table owner can change the audit log'
);
select throws_ok(
    $$delete from public.audit_log$$,
    '42501',
    'the audit log is append-only',
    'nor delete from it'
);

-- behaviour: partitions and the rate limiter --------------------------------------------------

select results_eq(
    $$select action, partition_name from private.maintain_partitions('2030-05-31 23:59+00')
      where partition_name like 'private.audit_log%' order by partition_name$$,
    $$values ('created', 'private.audit_log_y2030m05'), ('created', 'private.audit_log_y2030m06'),
             ('created', 'private.audit_log_y2030m07'), ('created', 'private.audit_log_y2030m08')$$,
    'maintenance makes this month''s and the next three months'' partitions'
);
select results_eq(
    $$select action, partition_name from private.maintain_partitions('2030-06-01 00:01+00')
      order by partition_name$$,
    $$values ('created', 'private.analytics_events_y2030m09'), ('created', 'private.audit_log_y2030m09')$$,
    'one minute later, across the month boundary, one more month each'
);

update private.rate_limit_rules set max_writes = 1, window_seconds = 86400 where platform = 'mobile';
select set_config('request.jwt.claims', '{"sub": "c0000000-0000-4000-8000-000000000003", "role": "authenticated"}', true);
select set_config('request.jwt.claim.sub', 'c0000000-0000-4000-8000-000000000003', true);
select set_config('request.headers', '{"x-client-info": "supabase-flutter/2.5.0"}', true);
set local role authenticated;
select set_config('request.method', 'GET', true);
select lives_ok($$select private.check_request(); select private.check_request()$$, 'reads are not limited');
select set_config('request.method', 'POST', true);
select lives_ok($$select private.check_request()$$, 'the first write passes');
select throws_ok(
    $$select private.check_request()$$,
    'PT429',
    'rate limit exceeded',
    'the next write in the window is refused with SQLSTATE PT429'
);
reset role;

select * from finish();
rollback;
