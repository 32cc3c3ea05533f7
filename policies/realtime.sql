-- Realtime: which tables stream changes, and who may join which private broadcast topic.
--
-- Tables clients watch are added to the supabase_realtime publication when missing; tables
-- other domains added stay as they are. Private topics are authorized by RLS on
-- realtime.messages, which the Realtime server probes when a client joins a channel
-- (pysync.rls.realtime.probe_topic does the same probe). This file owns every policy on
-- realtime.messages: add a topic kind to private.can_access_topic(), not another policy.
--
--   conversation:<id>  participants receive and send (broadcast, presence)
--   user:<id>          that user receives (sync nudges); nobody sends, the server does

set local lock_timeout = '5s';
set local statement_timeout = '60s';

do $publication$
declare
    watched text[] := array[
        'public.conversations', 'public.conversation_participants', 'public.messages',
        'public.notifications'
    ];
    target text;
begin
    if exists (
        select 1 from pg_catalog.pg_publication
        where pubname = 'supabase_realtime' and not puballtables
    ) then
        foreach target in array watched loop
            if not exists (
                select 1 from pg_catalog.pg_publication_tables as t
                where t.pubname = 'supabase_realtime'
                    and format('%I.%I', t.schemaname, t.tablename) = target
            ) then
                execute format('alter publication supabase_realtime add table %s', target);
            end if;
        end loop;
    end if;
end
$publication$;

select private.drop_policies('realtime.messages');

create policy "Users can receive on topics they may access"
on realtime.messages for select to authenticated
using (
    extension in ('broadcast', 'presence')
    and topic = (select realtime.topic())
    and (select private.can_access_topic(realtime.topic()))
);

create policy "Participants can send on their conversation topics"
on realtime.messages for insert to authenticated
with check (
    extension in ('broadcast', 'presence')
    and topic = (select realtime.topic())
    and (select private.can_access_topic(realtime.topic(), true))
);
