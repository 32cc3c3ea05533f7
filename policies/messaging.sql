-- Conversations, participants, messages and notifications.
--
-- Nobody inserts conversations or participants through the API: the RPCs
-- public.start_direct_conversation() and public.start_course_conversation() and the
-- membership triggers do (see the messaging migration). Conversations are private to their
-- participants, admins included: only participants read or post, only the sender edits or
-- deletes a message. Moderation runs server-side with the service role, which bypasses RLS.
-- Notifications are written by triggers and service_role only.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

select private.drop_policies('public.conversations');
select private.drop_policies('public.conversation_participants');
select private.drop_policies('public.messages');
select private.drop_policies('public.notifications');

-- conversations ----------------------------------------------------------------------------

-- The membership test reads the caller's own participant rows inline (one index scan on
-- (user_id, conversation_id), hashed once per statement; under the participants policy,
-- whose first arm passes them without a helper) rather than calling my_conversation_ids():
-- a definer helper costs about 0.15 ms a call, most of a conversation list's cost
-- (docs/performance.md). Not `exists (… = conversations.id …)`: the planner may then probe
-- per row, which for a list without a filter means every conversation.
create policy "Participants can read their conversations"
on public.conversations for select to authenticated
using (
    id in (
        select p.conversation_id from public.conversation_participants as p
        where p.user_id = (select auth.uid())
    )
);

-- Column privileges limit clients to the title.
create policy "Owners can rename their conversations"
on public.conversations for update to authenticated
using (id in (select private.owned_conversation_ids()))
with check (id in (select private.owned_conversation_ids()));

create policy "Owners can delete their conversations"
on public.conversations for delete to authenticated
using (id in (select private.owned_conversation_ids()));

-- conversation_participants ----------------------------------------------------------------

-- Own rows first: they answer without the helper (and the membership tests of the other
-- messaging policies read exactly those rows).
create policy "Participants can see who is in their conversations"
on public.conversation_participants for select to authenticated
using (
    user_id = (select auth.uid())
    or conversation_id in (select private.my_conversation_ids())
);

-- Column privileges limit clients to last_read_at.
create policy "Participants can mark their conversations read"
on public.conversation_participants for update to authenticated
using (user_id = (select auth.uid()))
with check (user_id = (select auth.uid()));

-- messages ---------------------------------------------------------------------------------

create policy "Participants can read messages of their conversations"
on public.messages for select to authenticated
using (
    conversation_id in (
        select p.conversation_id from public.conversation_participants as p
        where p.user_id = (select auth.uid())
    )
);

-- A deactivated user (profiles.deleted_at: no application role) posts nothing more.
create policy "Participants can post as themselves"
on public.messages for insert to authenticated
with check (
    sender_id = (select auth.uid())
    and conversation_id in (select private.my_conversation_ids())
    and (select private.current_app_role()) is not null
);

-- private.guard_message() narrows this: senders edit or soft-delete their own messages.
create policy "Senders can edit their own messages"
on public.messages for update to authenticated
using (sender_id = (select auth.uid()) and conversation_id in (select private.my_conversation_ids()))
with check (
    sender_id = (select auth.uid()) and conversation_id in (select private.my_conversation_ids())
);

-- Clients soft-delete (deleted_at); there is no delete policy: a hard delete is for
-- service_role only (GDPR erasure, moderation tools).

-- notifications ----------------------------------------------------------------------------

create policy "Users can read their notifications"
on public.notifications for select to authenticated
using (recipient_id = (select auth.uid()));

-- Column privileges limit clients to read_at.
create policy "Users can mark their notifications read"
on public.notifications for update to authenticated
using (recipient_id = (select auth.uid()))
with check (recipient_id = (select auth.uid()));

create policy "Users can delete their notifications"
on public.notifications for delete to authenticated
using (recipient_id = (select auth.uid()));
