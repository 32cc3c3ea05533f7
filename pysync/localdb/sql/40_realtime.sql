-- The database side of Supabase Realtime as a current project has it (supabase/realtime
-- tenant migrations, 2026): broadcast messages partitioned by day, the topic setting that
-- authorization policies read, and the send helpers, all owned by supabase_realtime_admin.
-- Local emulation only. Locally realtime.send() also NOTIFYs the topic so tests can LISTEN
-- for broadcasts. Not reproduced: postgres_changes' subscription table and WAL functions.

create schema if not exists realtime;
grant all on schema realtime to supabase_realtime_admin;
-- Since 2026 postgres creates nothing in realtime, but may grant its use on (to a custom
-- role whose users join private channels).
grant usage on schema realtime to postgres with grant option;
grant usage on schema realtime to anon, authenticated, service_role;

alter default privileges in schema realtime grant all on tables to postgres, dashboard_user;
alter default privileges in schema realtime grant all on sequences to postgres, dashboard_user;
alter default privileges in schema realtime grant all on routines to postgres, dashboard_user;

create table realtime.schema_migrations (
    version bigint primary key,
    inserted_at timestamp(0)
);

create table realtime.messages (
    topic text not null,
    extension text not null,
    payload jsonb,
    event text,
    private boolean default false,
    updated_at timestamp not null default now(),
    inserted_at timestamp not null default now(),
    id uuid not null default gen_random_uuid(),
    binary_payload bytea,
    primary key (id, inserted_at)
) partition by range (inserted_at);
alter table realtime.messages add constraint messages_payload_exclusive
check (payload is null or binary_payload is null) not valid;
create index messages_inserted_at_topic_index on realtime.messages (inserted_at desc, topic)
where (extension = 'broadcast' and private is true);

alter table realtime.messages enable row level security;
alter table realtime.messages owner to supabase_realtime_admin;
grant select, insert, update on realtime.messages to postgres, anon, authenticated, service_role;
revoke all on realtime.schema_migrations from postgres, dashboard_user, anon, authenticated, service_role;

-- The Realtime server sets realtime.topic before probing a private channel's policies.
create function realtime.topic() returns text
language sql stable
as $$
    select nullif(current_setting('realtime.topic', true), '')::text
$$;

create function realtime.send(
    payload jsonb, event text, topic text, private boolean default true
) returns void
language plpgsql
as $$
declare
    message_id uuid := gen_random_uuid();
    final_payload jsonb;
    notice text;
begin
    begin
        -- Like current Supabase: the message id is added to the payload unless present.
        final_payload := case
            when payload ? 'id' then payload
            else jsonb_set(payload, '{id}', to_jsonb(message_id))
        end;
        perform set_config('realtime.topic', topic, true);
        insert into realtime.messages (id, payload, event, topic, private, extension)
        values (message_id, final_payload, event, topic, private, 'broadcast');
    exception when others then
        raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
        return;
    end;
    -- Local only: the Realtime server would pick the row up; tests LISTEN instead. NOTIFY
    -- payloads stop at 8000 bytes, so a large message is announced by id only (the stored
    -- row keeps everything).
    notice := jsonb_build_object('event', event, 'payload', final_payload, 'private', private)::text;
    if octet_length(notice) > 7900 then
        notice := jsonb_build_object(
            'event', event, 'private', private, 'truncated', true,
            'payload', jsonb_build_object('id', final_payload -> 'id')
        )::text;
    end if;
    -- PostgreSQL's channel names stop at 63 bytes: a longer topic is announced on
    -- 'realtime:' || md5(topic) (pysync.sync.triggers.notify_channel computes the same).
    perform pg_notify(
        case when octet_length(topic) <= 63 then topic else 'realtime:' || md5(topic) end, notice
    );
end
$$;

-- Binary broadcasts (2026): the payload goes to binary_payload as it is.
create function realtime.send_binary(
    payload bytea, event text, topic text, private boolean default true
) returns void
language plpgsql
as $$
declare
    message_id uuid := gen_random_uuid();
    notice text;
begin
    begin
        perform set_config('realtime.topic', topic, true);
        insert into realtime.messages (id, binary_payload, event, topic, private, extension)
        values (message_id, payload, event, topic, private, 'broadcast');
    exception when others then
        raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
        return;
    end;
    -- Local only, as for send(): announced by id, the bytes stay in the stored row.
    notice := jsonb_build_object(
        'event', event, 'private', private, 'binary', true,
        'payload', jsonb_build_object('id', message_id)
    )::text;
    perform pg_notify(
        case when octet_length(topic) <= 63 then topic else 'realtime:' || md5(topic) end, notice
    );
end
$$;

create function realtime.broadcast_changes(
    topic_name text,
    event_name text,
    operation text,
    table_name text,
    table_schema text,
    new record,
    old record,
    level text default 'ROW'
) returns void
language plpgsql
as $$
declare
    row_data jsonb;
begin
    if level = 'STATEMENT' then
        raise exception 'function can only be triggered for each row, not for each statement';
    end if;
    if operation not in ('INSERT', 'UPDATE', 'DELETE') then
        raise exception 'Unexpected operation type: %', operation;
    end if;
    row_data := jsonb_build_object(
        'old_record', old,
        'record', new,
        'operation', operation,
        'table', table_name,
        'schema', table_schema
    );
    perform realtime.send(row_data, event_name, topic_name);
end
$$;

alter function realtime.topic() owner to supabase_realtime_admin;
alter function realtime.send(jsonb, text, text, boolean) owner to supabase_realtime_admin;
alter function realtime.send_binary(bytea, text, text, boolean) owner to supabase_realtime_admin;
alter function realtime.broadcast_changes(text, text, text, text, text, record, record, text)
owner to supabase_realtime_admin;
grant execute on all functions in schema realtime to postgres, anon, authenticated, service_role;

-- The Realtime server creates daily partitions ahead of time; locally this does it.
create function pysync_local.create_realtime_partitions(
    from_day date default current_date - 1, days integer default 8
) returns integer
language plpgsql
as $$
declare
    day date;
    created integer := 0;
    partition_name text;
begin
    for offset_days in 0 .. days - 1 loop
        day := from_day + offset_days;
        partition_name := 'messages_' || to_char(day, 'YYYY_MM_DD');
        if to_regclass(format('realtime.%I', partition_name)) is null then
            execute format(
                'create table realtime.%I partition of realtime.messages for values from (%L) to (%L)',
                partition_name, day::timestamp, (day + 1)::timestamp
            );
            execute format('alter table realtime.%I owner to supabase_realtime_admin', partition_name);
            created := created + 1;
        end if;
    end loop;
    return created;
end
$$;

revoke all on function pysync_local.create_realtime_partitions(date, integer) from public;

select pysync_local.create_realtime_partitions();
