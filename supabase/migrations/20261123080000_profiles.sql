-- Profiles: one per auth user, created on sign-up; the application role lives here.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

-- Everything in a profile is public to signed-in users (name, avatar, role, time zone);
-- personal data such as e-mail and phone stays in auth.users, which the API cannot read.
create table public.profiles (
    id uuid primary key references auth.users (id) on delete cascade,
    display_name text not null check (char_length(display_name) between 1 and 100),
    avatar_url text check (char_length(avatar_url) <= 2048),
    timezone text not null default 'UTC' check (char_length(timezone) between 1 and 64),
    locale text not null default 'en' check (locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
    role text not null default 'student' check (role in ('student', 'tutor', 'admin')),
    onboarded boolean not null default false,
    deleted_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id()
);
comment on table public.profiles is 'Public profile of each user; role decides what they may do.';
comment on column public.profiles.role is 'Application role; only admins and service_role change it.';
comment on column public.profiles.deleted_at is 'Soft delete: hidden from others when set.';

create index profiles_role_idx on public.profiles (role) where deleted_at is null;

alter table public.profiles enable row level security;

-- Clients never insert profiles (the sign-up trigger does) and may update only these
-- columns; role and deleted_at are further guarded by a trigger (admins only).
revoke insert, update on public.profiles from anon, authenticated;
grant update (display_name, avatar_url, timezone, locale, onboarded, role, deleted_at)
on public.profiles to authenticated;

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

-- The caller's application role, or null for anon and users without an active profile.
-- Security definer: policies on profiles themselves use it without recursing into RLS.
create function private.current_app_role()
returns text
language sql
stable
security definer
set search_path = ''
as $$
    select p.role
    from public.profiles as p
    where p.id = (select auth.uid()) and p.deleted_at is null
$$;
revoke all on function private.current_app_role() from public;
grant execute on function private.current_app_role() to anon, authenticated, service_role;

create function private.is_admin()
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce((select private.current_app_role()) = 'admin', false)
$$;
revoke all on function private.is_admin() from public;
grant execute on function private.is_admin() to anon, authenticated, service_role;

-- Database roles that act for the platform itself (migrations, jobs, the service key).
create function private.is_platform()
returns boolean
language sql
stable
set search_path = ''
as $$
    select current_user in ('postgres', 'service_role', 'supabase_admin')
$$;
revoke all on function private.is_platform() from public;
grant execute on function private.is_platform() to anon, authenticated, service_role;

-- Whether a user is an active tutor (booking a session needs one).
create function private.is_active_tutor(user_id uuid)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
    select exists (
        select 1 from public.profiles as p
        where p.id = user_id and p.role = 'tutor' and p.deleted_at is null
    )
$$;
revoke all on function private.is_active_tutor(uuid) from public;
grant execute on function private.is_active_tutor(uuid) to authenticated, service_role;

-- A uniform refusal for guarded columns: SQLSTATE 42501, as RLS and grants use.
create function private.deny(message text)
returns void
language plpgsql
set search_path = ''
as $$
begin
    raise exception using errcode = '42501', message = message;
end
$$;
revoke all on function private.deny(text) from public;
grant execute on function private.deny(text) to anon, authenticated, service_role;

/*
 * ---------------------------------------------------------------------------
 * Triggers
 * ---------------------------------------------------------------------------
 */

create trigger stamp_synced_row before insert or update on public.profiles
for each row execute function private.stamp_synced_row();

-- Only admins and the platform change a role or soft-delete a profile.
create function private.guard_profile()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if (select private.is_platform()) or (select private.is_admin()) then
        return new;
    end if;
    if new.role is distinct from old.role then
        perform private.deny('only an admin can change a role');
    end if;
    if new.deleted_at is distinct from old.deleted_at then
        perform private.deny('only an admin can deactivate or restore a profile');
    end if;
    return new;
end
$$;
revoke all on function private.guard_profile() from public;

create trigger guard_profile before update on public.profiles
for each row execute function private.guard_profile();

-- Sign-up creates the profile. The application role comes from app_metadata.app_role,
-- which only the service role can set (user_metadata is user-editable and never trusted).
create function private.create_profile_for_new_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    requested_role text := new.raw_app_meta_data ->> 'app_role';
begin
    insert into public.profiles (id, display_name, avatar_url, role)
    values (
        new.id,
        coalesce(
            nullif(trim(new.raw_user_meta_data ->> 'display_name'), ''),
            nullif(split_part(coalesce(new.email, ''), '@', 1), ''),
            'New user'
        ),
        new.raw_user_meta_data ->> 'avatar_url',
        case when requested_role in ('student', 'tutor', 'admin') then requested_role else 'student' end
    );
    return new;
end
$$;
revoke all on function private.create_profile_for_new_user() from public;

create trigger on_auth_user_created after insert on auth.users
for each row execute function private.create_profile_for_new_user();
