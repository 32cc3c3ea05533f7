/*
 * Messages' side effects run once per statement, not once per row.
 *
 * A push applies a run of queued message inserts or updates as one statement
 * (docs/sync-protocol.md, sync_push). Two row-level triggers still made every row of such a
 * run pay for itself:
 *   - record_message_activity: an update of the conversation, a lookup of it and of the
 *     sender's name, and one INSERT into notifications per message, each INSERT with its own
 *     statement-level triggers (the sync change log and its nudges);
 *   - publish_message_change: the realtime broadcast and, per row, the conversation's members
 *     looked up again for the sync nudge (sent once per member and transaction anyway).
 * Both now run once per statement over its transition tables: one UPDATE of each
 * conversation, one INSERT of every notification, the sender's name once per sender, the
 * members once per conversation. Each changed row is still broadcast on its own, as
 * realtime.broadcast_changes() sends one row (a live chat shows each message).
 *
 * What a client sees is unchanged: the same conversation order, the same notifications, the
 * same broadcasts, a nudge per member. The trigger names keep their order: publish_message_*
 * fires before record_message_activity, so a participant's nudge still names the message, not
 * the notification written for it.
 */

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- A new message moves its conversation up the list and notifies everyone else in it.
create or replace function private.record_message_activity()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    update public.conversations as c
    set last_message_at = latest.created_at
    from (
        select
            m.conversation_id,
            max(m.created_at) as created_at
        from changed_new as m
        group by m.conversation_id
    ) as latest
    where
        c.id = latest.conversation_id
        and (c.last_message_at is null or c.last_message_at < latest.created_at);

    -- Materialized, so the name is looked up once per sender, not once per notification.
    with sender as materialized (
        select
            distinct_sender.sender_id,
            private.display_name(distinct_sender.sender_id) as display_name
        from (select distinct n.sender_id from changed_new as n) as distinct_sender
    )

    insert into public.notifications (recipient_id, type, title, body, data)
    select
        p.user_id,
        'new_message',
        left(
            case
                when c.kind = 'course'
                    then s.display_name || ' in ' || coalesce(c.title, co.title)
                else s.display_name
            end,
            200
        ),
        case when m.body <> '' then left(m.body, 140) else 'Sent an attachment' end,
        jsonb_build_object(
            'conversation_id', m.conversation_id,
            'message_id', m.id,
            'sender_id', m.sender_id
        )
    from changed_new as m
    inner join sender as s on m.sender_id = s.sender_id
    inner join public.conversations as c on m.conversation_id = c.id
    left join public.courses as co on c.course_id = co.id
    inner join public.conversation_participants as p
        on m.conversation_id = p.conversation_id and m.sender_id <> p.user_id;
    return null;
end
$$;
revoke all on function private.record_message_activity() from public;

drop trigger record_message_activity on public.messages;
create trigger record_message_activity after insert on public.messages
referencing new table as changed_new
for each statement execute function private.record_message_activity();

-- Live chat: every changed row goes to its conversation's topic with
-- realtime.broadcast_changes() (event INSERT, UPDATE or DELETE). Only the new row travels: an
-- update's old row would re-send a soft-deleted message's text, and a hard delete sends the
-- key fields only. Then every participant of a conversation the statement touched gets a sync
-- nudge naming one of its rows (private.send_sync_nudges sends one per member and
-- transaction).
create function private.publish_message_changes()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    changed public.messages;
    nudged uuid [] := array[]::uuid [];
    -- realtime.send() leaves realtime.topic set for the rest of the transaction.
    saved_topic text := current_setting('realtime.topic', true);
begin
    for changed in select * from changed_rows loop
        if tg_op = 'DELETE' then
            changed.body := '';
            changed.attachment_path := null;
            perform realtime.broadcast_changes(
                'conversation:' || changed.conversation_id::text,
                tg_op, tg_op, tg_table_name, tg_table_schema, null::public.messages, changed
            );
        else
            perform realtime.broadcast_changes(
                'conversation:' || changed.conversation_id::text,
                tg_op, tg_op, tg_table_name, tg_table_schema, changed, null::public.messages
            );
        end if;
        continue when changed.conversation_id = any(nudged);
        nudged := nudged || changed.conversation_id;
        perform private.send_sync_nudges(
            private.conversation_member_ids(changed.conversation_id),
            tg_table_name, changed.id, tg_op
        );
    end loop;
    perform set_config('realtime.topic', coalesce(saved_topic, ''), true);
    return null;
end
$$;
revoke all on function private.publish_message_changes() from public;

-- The row-level function goes with its trigger; nothing else calls it.
drop trigger publish_message_change on public.messages;
-- squawk-ignore ban-drop-function
drop function private.publish_message_change();

-- changed_rows: the rows as inserted, as updated, or as they were before a delete.
create trigger publish_message_changes_insert after insert on public.messages
referencing new table as changed_rows
for each statement execute function private.publish_message_changes();
create trigger publish_message_changes_update after update on public.messages
referencing new table as changed_rows
for each statement execute function private.publish_message_changes();
create trigger publish_message_changes_delete after delete on public.messages
referencing old table as changed_rows
for each statement execute function private.publish_message_changes();
