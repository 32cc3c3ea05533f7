-- Messaging: direct and course conversations, their participants and messages, the in-app
-- notifications that triggers write, and the realtime side of all of it: message changes
-- broadcast on `conversation:<id>`, and a small "sync nudge" on `user:<id>` for every user
-- who can see a row that changed (policies/realtime.sql authorizes both topics).
--
-- Who creates what:
--   * conversations and participants are written only by the platform: the security definer
--     RPCs start_direct_conversation() and start_course_conversation(), and triggers that keep
--     course conversations' members equal to the course's tutor and active students. Clients
--     never insert either table, so "a direct conversation has exactly its two people" and
--     "a course conversation has exactly its class" cannot be broken from the API.
--   * messages are written by participants (ids may be generated offline); only the sender
--     edits or soft-deletes them, admins may remove (moderate) and hard-delete them.
--   * notifications are written only by triggers (security definer) and service_role.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

create table public.conversations (
    id uuid primary key default gen_random_uuid(),
    kind text not null check (kind in ('direct', 'course')),
    course_id uuid references public.courses (id) on delete cascade,
    title text check (char_length(title) between 1 and 200),
    created_by uuid references public.profiles (id) on delete set null,
    -- '<smaller user id>:<larger user id>': one direct conversation per pair of users.
    direct_key text unique,
    last_message_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id(),
    constraint conversations_course_check check ((kind = 'course') = (course_id is not null)),
    constraint conversations_direct_key_check check (
        direct_key is null or (kind = 'direct' and direct_key ~ '^[0-9a-f-]{36}:[0-9a-f-]{36}$')
    )
);
comment on table public.conversations is
'A direct conversation between two users, or a course''s group conversation.';
comment on column public.conversations.last_message_at is
'Time of the newest message (trigger-maintained); conversation lists sort by it.';

create index conversations_course_id_idx on public.conversations (course_id);
create index conversations_created_by_idx on public.conversations (created_by);

create table public.conversation_participants (
    id uuid primary key default gen_random_uuid(),
    conversation_id uuid not null references public.conversations (id) on delete cascade,
    user_id uuid not null references public.profiles (id) on delete cascade,
    role text not null default 'member' check (role in ('owner', 'member')),
    joined_at timestamptz not null default now(),
    last_read_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id(),
    constraint conversation_participants_conversation_user_key unique (conversation_id, user_id)
);
comment on table public.conversation_participants is
'Who is in a conversation; written by the platform only, users set their own last_read_at.';

-- "My conversations": the membership helper and the conversation list start here.
create index conversation_participants_user_idx on public.conversation_participants (
    user_id, conversation_id
);

create table public.messages (
    id uuid primary key default gen_random_uuid(),
    conversation_id uuid not null references public.conversations (id) on delete cascade,
    sender_id uuid not null references public.profiles (id) on delete cascade,
    body text not null default '' check (char_length(body) <= 4000),
    attachment_path text check (char_length(attachment_path) <= 1024),
    edited_at timestamptz,
    deleted_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id(),
    constraint messages_content_check check (
        deleted_at is not null or body <> '' or attachment_path is not null
    ),
    -- A soft-deleted message keeps its place in the history and nothing of its content.
    constraint messages_deleted_is_empty check (
        deleted_at is null or (body = '' and attachment_path is null)
    ),
    -- Attachments live in the chat-attachments bucket under the conversation's folder.
    constraint messages_attachment_in_conversation check (
        attachment_path is null or starts_with(attachment_path, conversation_id::text || '/')
    )
);
comment on table public.messages is
'A message in a conversation; the id may be generated by an offline client.';
comment on column public.messages.deleted_at is
'Soft delete by the sender (or an admin): body and attachment are cleared, the row stays.';

-- Latest 50 messages of a conversation, and keyset pages before (created_at, id).
create index messages_conversation_created_idx on public.messages (
    conversation_id, created_at desc, id desc
);
create index messages_sender_id_idx on public.messages (sender_id);

create table public.notifications (
    id uuid primary key default gen_random_uuid(),
    recipient_id uuid not null references public.profiles (id) on delete cascade,
    type text not null check (
        type in (
            'new_message', 'session_confirmed', 'session_cancelled', 'submission_graded',
            'enrollment_created', 'announcement'
        )
    ),
    -- The preference category that governs push for this type (notification_preferences).
    category text generated always as (
        case type
            when 'new_message' then 'messages'
            when 'submission_graded' then 'grades'
            when 'announcement' then 'marketing'
            else 'sessions'
        end
    ) stored,
    title text not null check (char_length(title) between 1 and 200),
    body text not null default '' check (char_length(body) <= 2000),
    data jsonb not null default '{}'::jsonb check (jsonb_typeof(data) = 'object'),
    read_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id()
);
comment on table public.notifications is
'In-app notifications; written by triggers and service_role, recipients only mark them read.';

create index notifications_recipient_created_idx on public.notifications (
    recipient_id, created_at desc, id desc
);
create index notifications_unread_idx on public.notifications (recipient_id, created_at desc)
where read_at is null;
-- A soft-deleted message's text is scrubbed from the notifications that quoted it.
create index notifications_message_id_idx on public.notifications ((data ->> 'message_id'))
where type = 'new_message';

alter table public.conversations enable row level security;
alter table public.conversation_participants enable row level security;
alter table public.messages enable row level security;
alter table public.notifications enable row level security;

-- Column rules: clients rename a conversation (owners, per policy), set their own
-- last_read_at and mark notifications read; everything else in these tables is written by
-- the platform. Messages keep table grants: private.guard_message() decides per column.
revoke insert, update on public.conversations from anon, authenticated;
grant update (title) on public.conversations to authenticated;
revoke insert, update on public.conversation_participants from anon, authenticated;
grant update (last_read_at) on public.conversation_participants to authenticated;
revoke insert, update on public.notifications from anon, authenticated;
grant update (read_at) on public.notifications to authenticated;

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

create function private.my_conversation_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select p.conversation_id
    from public.conversation_participants as p
    where p.user_id = (select auth.uid())
$$;
revoke all on function private.my_conversation_ids() from public;
grant execute on function private.my_conversation_ids() to authenticated, service_role;

create function private.owned_conversation_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select p.conversation_id
    from public.conversation_participants as p
    where p.user_id = (select auth.uid()) and p.role = 'owner'
$$;
revoke all on function private.owned_conversation_ids() from public;
grant execute on function private.owned_conversation_ids() to authenticated, service_role;

-- Whether the caller may receive (or, with sending, send) on a private Realtime topic:
--   conversation:<id>  participants receive and send (broadcast and presence);
--   user:<id>          that user receives; nobody sends (only the server nudges).
-- Anything else, including malformed topics, is false; it never raises, because the
-- Realtime server would turn an error into a failed join with a confusing message.
-- plpgsql, not sql: an inlined sql function could fold the uuid cast of a constant topic
-- before the pattern check guards it.
create function private.can_access_topic(topic text, sending boolean default false)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    me uuid := (select auth.uid());
    uuid_pattern constant text :=
        '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
    prefix text := split_part(coalesce(topic, ''), ':', 1);
    target text := substr(coalesce(topic, ''), char_length(prefix) + 2);
begin
    if me is null or target !~ uuid_pattern then
        return false;
    end if;
    if prefix = 'conversation' then
        return exists (
            select 1
            from public.conversation_participants as p
            where p.conversation_id = target::uuid and p.user_id = me
        );
    elsif prefix = 'user' then
        return not coalesce(sending, false) and target::uuid = me;
    end if;
    return false;
end
$$;
revoke all on function private.can_access_topic(text, boolean) from public;
grant execute on function private.can_access_topic(text, boolean) to authenticated, service_role;

comment on function private.can_access_topic(text, boolean) is
'Realtime authorization: may the caller receive (or send) on this private topic?';

-- Tell users to sync: one small broadcast on each user's private topic, at most one per user
-- per transaction (the Realtime server only sees them at commit, so one is enough). The
-- payload names the table, row and operation that caused it, as a hint only: a client runs
-- its ordinary incremental pull.
--
-- Security definer, owned by postgres: realtime.send() is security invoker and turns any
-- error into a WARNING, so called as a client it would silently fail the RLS check on
-- realtime.messages; as postgres (which bypasses RLS) the insert goes through.
-- The set of users already nudged lives in a transaction-local setting, so a rolled-back
-- savepoint forgets its nudges exactly as it forgets their realtime.messages rows.
create function private.send_sync_nudges(
    recipients uuid [], table_name text, row_id uuid, operation text
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
    recipient uuid;
    nudged text := coalesce(current_setting('pysync.nudged_users', true), '');
    -- realtime.send() leaves realtime.topic set for the rest of the transaction.
    saved_topic text := current_setting('realtime.topic', true);
begin
    foreach recipient in array coalesce(recipients, array[]::uuid []) loop
        continue when recipient is null or strpos(nudged, recipient::text) > 0;
        perform realtime.send(
            jsonb_build_object('table', table_name, 'id', row_id, 'op', operation),
            'sync',
            'user:' || recipient::text,
            true
        );
        nudged := nudged || recipient::text || ',';
    end loop;
    perform set_config('pysync.nudged_users', nudged, true);
    perform set_config('realtime.topic', coalesce(saved_topic, ''), true);
end
$$;
revoke all on function private.send_sync_nudges(uuid [], text, uuid, text) from public;

create function private.conversation_member_ids(conversation uuid)
returns uuid []
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce(array_agg(p.user_id), array[]::uuid [])
    from public.conversation_participants as p
    where p.conversation_id = conversation
$$;
revoke all on function private.conversation_member_ids(uuid) from public;

create function private.display_name(user_id uuid)
returns text
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce((select p.display_name from public.profiles as p where p.id = user_id), 'Someone')
$$;
revoke all on function private.display_name(uuid) from public;

create function private.notify(
    recipient uuid, kind text, title text, body text, data jsonb
)
returns void
language sql
security definer
set search_path = ''
as $$
    insert into public.notifications (recipient_id, type, title, body, data)
    values (recipient, kind, left(title, 200), left(body, 2000), data)
$$;
revoke all on function private.notify(uuid, text, text, text, jsonb) from public;

/*
 * ---------------------------------------------------------------------------
 * Triggers
 * ---------------------------------------------------------------------------
 */

create trigger stamp_synced_row before insert or update on public.conversations
for each row execute function private.stamp_synced_row();
create trigger stamp_synced_row before insert or update on public.conversation_participants
for each row execute function private.stamp_synced_row();
create trigger stamp_synced_row before insert or update on public.messages
for each row execute function private.stamp_synced_row();
create trigger stamp_synced_row before insert or update on public.notifications
for each row execute function private.stamp_synced_row();

-- conversations ----------------------------------------------------------------------------

-- A course conversation's members are the course's tutor (owner) and its active students,
-- whoever created it; enrollments and course changes keep that true afterwards.
create function private.add_course_conversation_members()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into public.conversation_participants (conversation_id, user_id, role)
    select new.id, c.tutor_id, 'owner' from public.courses as c where c.id = new.course_id
    union all
    select new.id, e.student_id, 'member'
    from public.enrollments as e
    where e.course_id = new.course_id and e.status = 'active'
    on conflict (conversation_id, user_id) do nothing;
    return null;
end
$$;
revoke all on function private.add_course_conversation_members() from public;

create trigger add_course_conversation_members after insert on public.conversations
for each row when (new.kind = 'course')
execute function private.add_course_conversation_members();

create function private.nudge_conversation_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    target uuid := case when tg_op = 'DELETE' then old.id else new.id end;
begin
    perform private.send_sync_nudges(
        private.conversation_member_ids(target), tg_table_name, target, tg_op
    );
    return null;
end
$$;
revoke all on function private.nudge_conversation_change() from public;

create trigger nudge_sync after update or delete on public.conversations
for each row execute function private.nudge_conversation_change();

-- conversation_participants ----------------------------------------------------------------

-- Only the platform adds participants; this keeps its own code honest: two per direct
-- conversation (re-adding someone already in is a no-op, not an error).
create function private.guard_conversation_participant()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if exists (
        select 1 from public.conversations as c
        where c.id = new.conversation_id and c.kind = 'direct'
    ) and (
        select count(*) from public.conversation_participants as p
        where p.conversation_id = new.conversation_id and p.user_id <> new.user_id
    ) >= 2 then
        raise exception using
            errcode = '23514', message = 'a direct conversation has exactly two participants';
    end if;
    return new;
end
$$;
revoke all on function private.guard_conversation_participant() from public;

create trigger guard_conversation_participant before insert on public.conversation_participants
for each row execute function private.guard_conversation_participant();

-- Everyone in the conversation sees the member list (and read markers), and the member
-- who joined or left must sync (or reconcile) too.
create function private.nudge_participant_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    changed public.conversation_participants := case when tg_op = 'DELETE' then old else new end;
begin
    perform private.send_sync_nudges(
        array[changed.user_id] || private.conversation_member_ids(changed.conversation_id),
        tg_table_name,
        changed.id,
        tg_op
    );
    return null;
end
$$;
revoke all on function private.nudge_participant_change() from public;

create trigger nudge_sync after insert or update or delete on public.conversation_participants
for each row execute function private.nudge_participant_change();

-- messages ---------------------------------------------------------------------------------

-- Column rules, beyond the policies (participants post as themselves; senders and admins
-- update; admins hard-delete):
--   * a message never moves to another conversation or sender;
--   * only the sender edits; an admin may only remove (soft-delete) another's message;
--   * edited_at and deleted_at are stamped here, never taken from the client;
--   * a soft delete clears body and attachment, and a deleted message never changes again;
--   * created_at may come from an offline client but never lies in the future.
create function private.guard_message()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
    me uuid := (select auth.uid());
    platform boolean := (select private.is_platform());
begin
    if tg_op = 'INSERT' then
        if not platform then
            if new.deleted_at is not null then
                perform private.deny('a new message cannot be deleted');
            end if;
            new.edited_at := null;
            new.created_at := least(coalesce(new.created_at, now()), now());
        end if;
        return new;
    end if;
    if not platform then
        if new.conversation_id is distinct from old.conversation_id
            or new.sender_id is distinct from old.sender_id then
            perform private.deny('a message stays in its conversation and with its sender');
        end if;
        if old.deleted_at is not null then
            perform private.deny('a deleted message cannot change');
        end if;
        if old.sender_id is distinct from me then
            if not (select private.is_admin()) then
                perform private.deny('only the sender can change a message');
            elsif new.deleted_at is null then
                perform private.deny('an admin can only remove another''s message');
            end if;
        end if;
    end if;
    if new.deleted_at is not null and old.deleted_at is null then
        new.deleted_at := case when platform then new.deleted_at else now() end;
        new.body := '';
        new.attachment_path := null;
        new.edited_at := old.edited_at;
    elsif not platform then
        new.edited_at := case
            when new.body is distinct from old.body
                or new.attachment_path is distinct from old.attachment_path then now()
            else old.edited_at
        end;
    end if;
    return new;
end
$$;
revoke all on function private.guard_message() from public;

create trigger guard_message before insert or update on public.messages
for each row execute function private.guard_message();

-- A new message moves its conversation up the list and notifies everyone else in it.
-- (Its trigger's name sorts after publish_message_change, so the participants' sync nudge
-- names the message, not the conversation or notification this writes.)
create function private.record_message_activity()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    conversation public.conversations;
    heading text := private.display_name(new.sender_id);
begin
    update public.conversations as c
    set last_message_at = new.created_at
    where c.id = new.conversation_id
        and (c.last_message_at is null or c.last_message_at < new.created_at)
    returning * into conversation;
    if conversation.id is null then
        select * into conversation from public.conversations as c where c.id = new.conversation_id;
    end if;
    if conversation.kind = 'course' then
        heading := heading || ' in ' || coalesce(
            conversation.title,
            (select co.title from public.courses as co where co.id = conversation.course_id)
        );
    end if;
    insert into public.notifications (recipient_id, type, title, body, data)
    select
        p.user_id,
        'new_message',
        left(heading, 200),
        case when new.body <> '' then left(new.body, 140) else 'Sent an attachment' end,
        jsonb_build_object(
            'conversation_id', new.conversation_id,
            'message_id', new.id,
            'sender_id', new.sender_id
        )
    from public.conversation_participants as p
    where p.conversation_id = new.conversation_id and p.user_id <> new.sender_id;
    return null;
end
$$;
revoke all on function private.record_message_activity() from public;

create trigger record_message_activity after insert on public.messages
for each row execute function private.record_message_activity();

-- A removed message's text must not live on in the notifications that quoted it.
create function private.scrub_deleted_message()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    update public.notifications as n
    set body = ''
    where n.type = 'new_message' and n.data ->> 'message_id' = new.id::text and n.body <> '';
    return null;
end
$$;
revoke all on function private.scrub_deleted_message() from public;

create trigger scrub_deleted_message after update of deleted_at on public.messages
for each row when (old.deleted_at is null and new.deleted_at is not null)
execute function private.scrub_deleted_message();

-- Live chat: every change goes to the conversation's topic with realtime.broadcast_changes()
-- (event INSERT, UPDATE or DELETE). Only the new row travels: an update's old row would
-- re-send a soft-deleted message's text, and a hard delete sends the key fields only.
-- Then every participant gets a sync nudge.
create function private.publish_message_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    changed public.messages := case when tg_op = 'DELETE' then old else new end;
    topic text := 'conversation:' || changed.conversation_id::text;
    -- realtime.send() leaves realtime.topic set for the rest of the transaction.
    saved_topic text := current_setting('realtime.topic', true);
begin
    if tg_op = 'DELETE' then
        changed.body := '';
        changed.attachment_path := null;
        perform realtime.broadcast_changes(
            topic, tg_op, tg_op, tg_table_name, tg_table_schema, null::public.messages, changed
        );
    else
        perform realtime.broadcast_changes(
            topic, tg_op, tg_op, tg_table_name, tg_table_schema, changed, null::public.messages
        );
    end if;
    perform set_config('realtime.topic', coalesce(saved_topic, ''), true);
    perform private.send_sync_nudges(
        private.conversation_member_ids(changed.conversation_id), tg_table_name, changed.id, tg_op
    );
    return null;
end
$$;
revoke all on function private.publish_message_change() from public;

create trigger publish_message_change after insert or update or delete on public.messages
for each row execute function private.publish_message_change();

-- notifications ----------------------------------------------------------------------------

create function private.nudge_notification_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    changed public.notifications := case when tg_op = 'DELETE' then old else new end;
begin
    perform private.send_sync_nudges(
        array[changed.recipient_id], tg_table_name, changed.id, tg_op
    );
    return null;
end
$$;
revoke all on function private.nudge_notification_change() from public;

create trigger nudge_sync after insert or update or delete on public.notifications
for each row execute function private.nudge_notification_change();

-- enrollments and courses: course conversation membership ---------------------------------

create function private.sync_course_conversation_member()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    enrollment public.enrollments := case when tg_op = 'DELETE' then old else new end;
begin
    if tg_op <> 'DELETE' and enrollment.status = 'active' then
        insert into public.conversation_participants (conversation_id, user_id, role)
        select c.id, enrollment.student_id, 'member'
        from public.conversations as c
        where c.course_id = enrollment.course_id
        on conflict (conversation_id, user_id) do nothing;
    else
        delete from public.conversation_participants as p
        using public.conversations as c
        where c.id = p.conversation_id
            and c.course_id = enrollment.course_id
            and p.user_id = enrollment.student_id
            and p.role = 'member';
    end if;
    return null;
end
$$;
revoke all on function private.sync_course_conversation_member() from public;

create trigger sync_course_conversation_member
after insert or update of status or delete on public.enrollments
for each row execute function private.sync_course_conversation_member();

create function private.move_course_conversation_owner()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    delete from public.conversation_participants as p
    using public.conversations as c
    where c.id = p.conversation_id and c.course_id = new.id and p.user_id = old.tutor_id;
    insert into public.conversation_participants (conversation_id, user_id, role)
    select c.id, new.tutor_id, 'owner' from public.conversations as c where c.course_id = new.id
    on conflict (conversation_id, user_id) do update set role = 'owner';
    return null;
end
$$;
revoke all on function private.move_course_conversation_owner() from public;

create trigger move_course_conversation_owner after update of tutor_id on public.courses
for each row when (old.tutor_id is distinct from new.tutor_id)
execute function private.move_course_conversation_owner();

-- notifications from other domains ---------------------------------------------------------

create function private.notify_enrollment_created()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    course public.courses;
begin
    select * into course from public.courses as c where c.id = new.course_id;
    perform private.notify(
        course.tutor_id,
        'enrollment_created',
        'New enrollment',
        format('%s enrolled in %s.', private.display_name(new.student_id), course.title),
        jsonb_build_object(
            'enrollment_id', new.id, 'course_id', new.course_id, 'student_id', new.student_id
        )
    );
    return null;
end
$$;
revoke all on function private.notify_enrollment_created() from public;

create trigger notify_enrollment_created after insert on public.enrollments
for each row when (new.status = 'active')
execute function private.notify_enrollment_created();

-- Confirmed: the student hears. Cancelled: whoever did not cancel hears (both, when an admin
-- or the platform cancelled). Times travel in data; the client formats them in the user's
-- time zone.
create function private.notify_session_status()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    details jsonb := jsonb_build_object(
        'session_id', new.id, 'starts_at', new.starts_at, 'ends_at', new.ends_at,
        'tutor_id', new.tutor_id, 'student_id', new.student_id
    );
    recipient uuid;
begin
    if new.status = 'confirmed' then
        perform private.notify(
            new.student_id,
            'session_confirmed',
            'Session confirmed',
            format('%s confirmed your session.', private.display_name(new.tutor_id)),
            details
        );
    elsif new.status = 'cancelled' then
        foreach recipient in array array[new.student_id, new.tutor_id] loop
            continue when recipient = new.cancelled_by;
            perform private.notify(
                recipient,
                'session_cancelled',
                'Session cancelled',
                case
                    when new.cancelled_by is null then 'Your session was cancelled.'
                    else format('%s cancelled the session.', private.display_name(new.cancelled_by))
                end,
                details
            );
        end loop;
    end if;
    return null;
end
$$;
revoke all on function private.notify_session_status() from public;

create trigger notify_session_status after update of status on public.tutoring_sessions
for each row when (old.status is distinct from new.status and new.status in ('confirmed', 'cancelled'))
execute function private.notify_session_status();

create function private.notify_submission_graded()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    assignment public.assignments;
begin
    select * into assignment from public.assignments as a where a.id = new.assignment_id;
    perform private.notify(
        new.student_id,
        'submission_graded',
        'Submission graded',
        format('%s: %s / %s', assignment.title, new.grade, assignment.max_points),
        jsonb_build_object(
            'submission_id', new.id,
            'assignment_id', new.assignment_id,
            'course_id', assignment.course_id
        )
    );
    return null;
end
$$;
revoke all on function private.notify_submission_graded() from public;

create trigger notify_submission_graded_on_insert after insert on public.submissions
for each row when (new.status = 'graded')
execute function private.notify_submission_graded();
create trigger notify_submission_graded after update of status on public.submissions
for each row when (new.status = 'graded' and old.status <> 'graded')
execute function private.notify_submission_graded();

/*
 * ---------------------------------------------------------------------------
 * Public API functions
 * ---------------------------------------------------------------------------
 */

-- The one way to open a direct conversation: atomically creates it with both participants,
-- or returns the pair's existing one (concurrent calls meet on the unique direct_key).
-- Any signed-in user with an active profile may write to any other active user.
create function public.start_direct_conversation(other uuid)
returns public.conversations
language plpgsql
security definer
set search_path = ''
as $$
declare
    me uuid := (select auth.uid());
    pair text;
    conversation public.conversations;
begin
    if me is null or (select private.current_app_role()) is null then
        perform private.deny('sign in with an active profile to start a conversation');
    end if;
    if other is null or other = me or not exists (
        select 1 from public.profiles as p where p.id = other and p.deleted_at is null
    ) then
        raise exception using
            errcode = '22023', message = 'a direct conversation needs another, active user';
    end if;
    pair := least(me, other)::text || ':' || greatest(me, other)::text;
    insert into public.conversations (kind, created_by, direct_key)
    values ('direct', me, pair)
    on conflict (direct_key) do nothing
    returning * into conversation;
    if conversation.id is null then
        select * into conversation from public.conversations as c where c.direct_key = pair;
    end if;
    insert into public.conversation_participants (conversation_id, user_id, role)
    values (conversation.id, me, 'member'), (conversation.id, other, 'member')
    on conflict (conversation_id, user_id) do nothing;
    return conversation;
end
$$;
-- Supabase's default privileges grant anon execute directly, not through PUBLIC.
revoke all on function public.start_direct_conversation(uuid) from public, anon;
grant execute on function public.start_direct_conversation(uuid) to authenticated, service_role;
comment on function public.start_direct_conversation(uuid) is
'Open (or find) the direct conversation between the caller and another user.';

-- A course's tutor (or an admin) opens a group conversation for the course; the trigger adds
-- the tutor as owner and the active students as members.
create function public.start_course_conversation(course uuid, title text default null)
returns public.conversations
language plpgsql
security definer
set search_path = ''
as $$
declare
    me uuid := (select auth.uid());
    conversation public.conversations;
begin
    if me is null or not exists (
        select 1 from public.courses as c
        where c.id = course and (c.tutor_id = me or (select private.is_admin()))
    ) then
        perform private.deny('only the course''s tutor can start its conversation');
    end if;
    insert into public.conversations (kind, course_id, title, created_by)
    values ('course', course, start_course_conversation.title, me)
    returning * into conversation;
    return conversation;
end
$$;
-- Supabase's default privileges grant anon execute directly, not through PUBLIC.
revoke all on function public.start_course_conversation(uuid, text) from public, anon;
grant execute on function public.start_course_conversation(uuid, text) to authenticated, service_role;
comment on function public.start_course_conversation(uuid, text) is
'Open a group conversation for a course the caller teaches.';
