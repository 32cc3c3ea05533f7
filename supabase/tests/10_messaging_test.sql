-- pgTAP: messaging, notifications, devices and push — the tables' shape, their exact policies,
-- the realtime publication and topic policies, and the triggers and RPCs at work on the seed.
begin;
select plan(60);

-- shape ---------------------------------------------------------------------------------------

select has_table('public', 'conversations', 'public.conversations exists');
select has_table('public', 'conversation_participants', 'public.conversation_participants exists');
select has_table('public', 'messages', 'public.messages exists');
select has_table('public', 'notifications', 'public.notifications exists');
select has_table('public', 'devices', 'public.devices exists');
select has_table('public', 'notification_preferences', 'public.notification_preferences exists');
select has_table('public', 'push_deliveries', 'public.push_deliveries exists');
select is(
    (
        select count(*)::int from pg_class
        where oid = any(array[
            'public.conversations', 'public.conversation_participants', 'public.messages',
            'public.notifications', 'public.devices', 'public.notification_preferences',
            'public.push_deliveries'
        ]::regclass [])
        and relrowsecurity
    ),
    7,
    'every messaging and device table has row level security'
);
select col_not_null('public', 'conversations', 'kind', 'conversations.kind is not null');
select col_is_null('public', 'conversations', 'course_id', 'conversations.course_id is null for direct conversations');
select col_not_null('public', 'conversation_participants', 'conversation_id', 'participants name a conversation');
select col_not_null('public', 'conversation_participants', 'user_id', 'participants name a user');
select col_not_null('public', 'messages', 'conversation_id', 'messages.conversation_id is not null');
select col_is_null('public', 'messages', 'sender_id', 'messages.sender_id is nullable (tombstones of erased users)');
select col_not_null('public', 'messages', 'body', 'messages.body is not null');
select col_not_null('public', 'messages', 'sync_xid', 'messages.sync_xid is not null');
select col_not_null('public', 'notifications', 'recipient_id', 'notifications.recipient_id is not null');
select col_not_null('public', 'notifications', 'title', 'notifications.title is not null');
select col_not_null('public', 'devices', 'device_id', 'devices.device_id is not null');
select col_not_null('public', 'notification_preferences', 'enabled', 'preferences.enabled is not null');
select col_not_null('public', 'push_deliveries', 'recipient_id', 'push_deliveries.recipient_id is not null');
select has_index('public', 'messages', 'messages_conversation_created_idx', 'messages have their page index');
select has_index('public', 'notifications', 'notifications_unread_idx', 'notifications have an unread index');

-- policies ------------------------------------------------------------------------------------

select policies_are('public', 'conversations', array[
    'Owners can delete their conversations',
    'Owners can rename their conversations',
    'Participants can read their conversations'
]);
select policies_are('public', 'conversation_participants', array[
    'Participants can mark their conversations read',
    'Participants can see who is in their conversations'
]);
select policies_are('public', 'messages', array[
    'Participants can post as themselves',
    'Participants can read messages of their conversations',
    'Senders can edit their own messages'
]);
select policies_are('public', 'notifications', array[
    'Users can delete their notifications',
    'Users can mark their notifications read',
    'Users can read their notifications'
]);
select policies_are('public', 'devices', array[
    'Users and admins can remove devices',
    'Users can read their devices; admins all',
    'Users can register their own devices',
    'Users can update their own devices'
]);
select policies_are('public', 'notification_preferences', array[
    'Users can change their notification preferences',
    'Users can read their notification preferences'
]);
select policies_are('public', 'push_deliveries', array[
    'Recipients and admins can read push deliveries'
]);
select policies_are('realtime', 'messages', array[
    'Participants can send on their conversation topics',
    'Users can receive on topics they may access'
]);
select ok(
    has_column_privilege('authenticated', 'public.notifications', 'read_at', 'update')
    and not has_column_privilege('authenticated', 'public.notifications', 'title', 'update')
    and not has_table_privilege('authenticated', 'public.notifications', 'insert'),
    'clients may only set read_at on notifications'
);
select ok(
    not has_table_privilege('authenticated', 'public.push_deliveries', 'insert')
    and not has_table_privilege('authenticated', 'public.push_deliveries', 'update'),
    'clients never write push deliveries'
);
select ok(
    not has_function_privilege('anon', 'public.start_direct_conversation(uuid)', 'execute')
    and has_function_privilege('authenticated', 'public.start_direct_conversation(uuid)', 'execute'),
    'signed-in users, not anon, may start a direct conversation'
);
select ok(
    not has_function_privilege('authenticated', 'private.send_sync_nudges(uuid[], text, uuid, text)', 'execute'),
    'clients cannot send sync nudges themselves'
);

-- realtime ------------------------------------------------------------------------------------

select set_eq(
    $$select tablename::text from pg_publication_tables where pubname = 'supabase_realtime'
      and tablename in ('conversations', 'conversation_participants', 'messages', 'notifications')$$,
    array['conversations', 'conversation_participants', 'messages', 'notifications'],
    'watched tables are in the supabase_realtime publication'
);
select results_eq(
    $$select public, file_size_limit from storage.buckets where id = 'chat-attachments'$$,
    $$values (false, 20971520::bigint)$$,
    'the chat-attachments bucket is private and limited to 20 MB'
);

-- the seed, as built by the triggers --------------------------------------------------------------

select set_eq(
    $$select user_id::text || ':' || role from public.conversation_participants
      where conversation_id = '17000000-0000-4000-8000-000000000002'$$,
    array[
        'b0000000-0000-4000-8000-000000000001:owner',
        'c0000000-0000-4000-8000-000000000001:member',
        'c0000000-0000-4000-8000-000000000002:member'
    ],
    'Algebra I''s class chat holds its tutor and its active students'
);
select is(
    (select count(*)::int from public.notification_preferences
     where user_id = 'c0000000-0000-4000-8000-000000000003' and enabled),
    4,
    'every seeded user has every notification category enabled'
);

-- as Sam --------------------------------------------------------------------------------------

select set_config('request.jwt.claims',
    '{"sub": "c0000000-0000-4000-8000-000000000001", "role": "authenticated"}', true);
set local role authenticated;

select ok(private.can_access_topic('conversation:17000000-0000-4000-8000-000000000001'), 'Sam may join his conversation topic');
select ok(private.can_access_topic('conversation:17000000-0000-4000-8000-000000000001', true), 'Sam may send on it');
select ok(not private.can_access_topic('conversation:17000000-0000-4000-8000-000000000003'), 'Sam may not join Sid''s conversation');
select ok(private.can_access_topic('user:c0000000-0000-4000-8000-000000000001'), 'Sam may receive on his user topic');
select ok(not private.can_access_topic('user:c0000000-0000-4000-8000-000000000001', true), 'nobody sends on a user topic');
select ok(not private.can_access_topic('user:b0000000-0000-4000-8000-000000000001'), 'Sam may not receive Tom''s nudges');
select ok(not private.can_access_topic('conversation:12345'), 'a malformed topic is refused');
select ok(not private.can_access_topic(null), 'no topic is refused');
select is((select count(*)::int from public.conversations), 2, 'Sam sees his two conversations');
select is((select count(*)::int from public.messages where conversation_id = '17000000-0000-4000-8000-000000000003'), 0, 'Sam reads no one else''s messages');

insert into public.messages (id, conversation_id, sender_id, body)
values ('19000000-0000-4000-8000-0000000000aa', '17000000-0000-4000-8000-000000000001',
    'c0000000-0000-4000-8000-000000000001', 'pgTAP says hi');
select is(
    (select last_message_at from public.conversations where id = '17000000-0000-4000-8000-000000000001'),
    (select created_at from public.messages where id = '19000000-0000-4000-8000-0000000000aa'),
    'a new message sets its conversation''s last_message_at'
);
select throws_ok(
    $$update public.messages set sender_id = 'b0000000-0000-4000-8000-000000000001'
      where id = '19000000-0000-4000-8000-0000000000aa'$$,
    '42501', 'a message stays in its conversation and with its sender',
    'a message cannot change sender'
);
update public.messages set deleted_at = now() where id = '19000000-0000-4000-8000-0000000000aa';
select is(
    (select body from public.messages where id = '19000000-0000-4000-8000-0000000000aa'),
    '',
    'a soft delete clears the body'
);
select throws_ok(
    $$insert into public.messages (conversation_id, sender_id, body)
      values ('17000000-0000-4000-8000-000000000003', 'c0000000-0000-4000-8000-000000000001', 'hi')$$,
    '42501', null, 'Sam cannot post in a conversation he is not in'
);
select lives_ok(
    $$select public.start_direct_conversation('c0000000-0000-4000-8000-000000000003')$$,
    'Sam can start a direct conversation with Sid'
);
select is((select count(*)::int from public.conversations), 3, 'and then sees it');

-- as Tom --------------------------------------------------------------------------------------

select set_config('request.jwt.claims',
    '{"sub": "b0000000-0000-4000-8000-000000000001", "role": "authenticated"}', true);
select is(
    (select body from public.notifications where data ->> 'message_id' = '19000000-0000-4000-8000-0000000000aa'),
    '',
    'Tom was notified, and the deleted text left his notification'
);
select throws_ok(
    $$update public.notifications set title = 'x'$$,
    '42501', null, 'Tom cannot rewrite a notification'
);
select throws_ok(
    $$select public.start_course_conversation('d0000000-0000-4000-8000-000000000002')$$,
    '42501', 'only the course''s tutor can start its conversation',
    'Tom cannot open a conversation for Tara''s course'
);
select lives_ok(
    $$select public.start_course_conversation('d0000000-0000-4000-8000-000000000001', 'Exam prep')$$,
    'Tom can open another conversation for Algebra I'
);
select set_eq(
    $$select p.user_id::text from public.conversation_participants as p
      join public.conversations as c on c.id = p.conversation_id where c.title = 'Exam prep'$$,
    array[
        'b0000000-0000-4000-8000-000000000001',
        'c0000000-0000-4000-8000-000000000001',
        'c0000000-0000-4000-8000-000000000002'
    ],
    'it starts with Tom, Sam and Sue'
);

reset role;

select * from finish();
rollback;
