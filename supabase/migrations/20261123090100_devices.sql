-- Devices and push: the app installs of each user (with their push tokens), per-category
-- notification preferences (on by default), and the push worker's delivery log.
--
-- In-app notifications are always written (public.notifications); preferences decide only
-- whether the push worker (service_role) sends them to devices. A category without a row
-- counts as enabled, and every profile gets a row per category anyway: new ones by trigger,
-- existing ones by the backfill below.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

create table public.devices (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references public.profiles (id) on delete cascade,
    device_id text not null check (char_length(device_id) between 1 and 200),
    platform text not null check (platform in ('ios', 'android', 'web')),
    push_token text check (char_length(push_token) between 1 and 4096),
    app_version text check (char_length(app_version) <= 50),
    last_active_at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id(),
    constraint devices_user_device_key unique (user_id, device_id)
);
comment on table public.devices is 'An app install of a user; device_id is chosen by the app.';
comment on column public.devices.push_token is
'FCM/APNs/web-push token; a token belongs to one device row at a time (trigger).';

-- One token, one row: a phone handed to another user must not receive the first one's pushes.
create unique index devices_push_token_key on public.devices (push_token)
where push_token is not null;

create table public.notification_preferences (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references public.profiles (id) on delete cascade,
    category text not null check (category in ('messages', 'sessions', 'grades', 'marketing')),
    enabled boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id(),
    constraint notification_preferences_user_category_key unique (user_id, category)
);
comment on table public.notification_preferences is
'Whether a user wants push notifications of a category; rows exist for every category.';

-- Defaults on for the profiles that exist already. Runs before any trigger on this table
-- exists, so the backfill sends no sync nudges.
insert into public.notification_preferences (user_id, category)
select
    p.id,
    c.category
from public.profiles as p
cross join unnest(array['messages', 'sessions', 'grades', 'marketing']) as c (category)
on conflict (user_id, category) do nothing;

create table public.push_deliveries (
    id uuid primary key default gen_random_uuid(),
    notification_id uuid not null references public.notifications (id) on delete cascade,
    device_id uuid not null references public.devices (id) on delete cascade,
    -- Copied from the notification by trigger, so recipients' reads need no join.
    recipient_id uuid not null references public.profiles (id) on delete cascade,
    sent_at timestamptz,
    failed_at timestamptz,
    failure_reason text check (char_length(failure_reason) <= 500),
    clicked_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id(),
    constraint push_deliveries_notification_device_key unique (notification_id, device_id),
    constraint push_deliveries_failure_check check (failure_reason is null or failed_at is not null)
);
comment on table public.push_deliveries is
'One push of a notification to a device; written by the push worker (service_role) only.';

create index push_deliveries_device_id_idx on public.push_deliveries (device_id);
create index push_deliveries_recipient_idx on public.push_deliveries (recipient_id, created_at desc);

alter table public.devices enable row level security;
alter table public.notification_preferences enable row level security;
alter table public.push_deliveries enable row level security;

-- Preferences: rows are made by the platform, users flip `enabled` only.
revoke insert, update on public.notification_preferences from anon, authenticated;
grant update (enabled) on public.notification_preferences to authenticated;
-- Deliveries: the push worker (service_role) writes, nobody else.
revoke insert, update, delete on public.push_deliveries from anon, authenticated;

/*
 * ---------------------------------------------------------------------------
 * Triggers
 * ---------------------------------------------------------------------------
 */

create trigger stamp_synced_row before insert or update on public.devices
for each row execute function private.stamp_synced_row();
create trigger stamp_synced_row before insert or update on public.notification_preferences
for each row execute function private.stamp_synced_row();
create trigger stamp_synced_row before insert or update on public.push_deliveries
for each row execute function private.stamp_synced_row();

-- A token registered by one device row leaves every other row, whoever owns it (security
-- definer: the other row may be another user's, invisible to the caller).
create function private.claim_push_token()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    update public.devices as d
    set push_token = null
    where d.push_token = new.push_token and d.id <> new.id;
    return new;
end
$$;
revoke all on function private.claim_push_token() from public;

create trigger claim_push_token before insert or update of push_token on public.devices
for each row when (new.push_token is not null)
execute function private.claim_push_token();

create function private.create_notification_preferences()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into public.notification_preferences (user_id, category)
    select new.id, c.category
    from unnest(array['messages', 'sessions', 'grades', 'marketing']) as c (category)
    on conflict (user_id, category) do nothing;
    return null;
end
$$;
revoke all on function private.create_notification_preferences() from public;

create trigger create_notification_preferences after insert on public.profiles
for each row execute function private.create_notification_preferences();

-- A user's other devices pick up a changed preference.
create function private.nudge_preference_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    changed public.notification_preferences := case when tg_op = 'DELETE' then old else new end;
begin
    perform private.send_sync_nudges(array[changed.user_id], tg_table_name, changed.id, tg_op);
    return null;
end
$$;
revoke all on function private.nudge_preference_change() from public;

create trigger nudge_sync after update or delete on public.notification_preferences
for each row execute function private.nudge_preference_change();

-- A delivery names its notification's recipient, and goes only to that recipient's device:
-- the push worker can never send one user's notification to another user's phone.
create function private.stamp_push_delivery()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    new.recipient_id := (
        select n.recipient_id from public.notifications as n where n.id = new.notification_id
    );
    if not exists (
        select 1 from public.devices as d
        where d.id = new.device_id and d.user_id = new.recipient_id
    ) then
        raise exception using
            errcode = '23514', message = 'a push goes to a device of the notification''s recipient';
    end if;
    return new;
end
$$;
revoke all on function private.stamp_push_delivery() from public;

create trigger stamp_push_delivery before insert or update on public.push_deliveries
for each row execute function private.stamp_push_delivery();
