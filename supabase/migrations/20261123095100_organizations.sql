-- Organizations (schools, companies) as tenants: members, roles, joining by verified e-mail
-- domain, and courses that only an organization's members can see.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

create table public.organizations (
    id uuid primary key default gen_random_uuid(),
    name text not null check (char_length(name) between 1 and 200),
    slug text not null unique check (slug ~ '^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$'),
    email_domain text unique
    check (email_domain = lower(email_domain) and email_domain ~ '^([a-z0-9-]+\.)+[a-z]{2,63}$'),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id()
);
comment on table public.organizations is 'A tenant: a school or company whose members share courses.';
comment on column public.organizations.email_domain is
'Users who verify an address at this domain join as members; set by admins only.';

create table public.organization_members (
    id uuid primary key default gen_random_uuid(),
    organization_id uuid not null references public.organizations (id) on delete cascade,
    user_id uuid not null references public.profiles (id) on delete cascade,
    role text not null default 'member' check (role in ('owner', 'admin', 'member')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id(),
    constraint organization_members_organization_user_key unique (organization_id, user_id)
);
comment on table public.organization_members is 'Who belongs to an organization, and as what.';

create index organization_members_user_id_idx on public.organization_members (user_id);

alter table public.organizations enable row level security;
alter table public.organization_members enable row level security;

-- Organizations are for signed-in users only.
revoke all on public.organizations, public.organization_members from anon;

-- Courses may belong to an organization; internal ones are for its members only. An
-- organization that still has courses cannot be deleted (restrict): its courses move first.
-- courses is a live table: the constraints are added NOT VALID here (no scan under the
-- lock) and validated by the next migration.
alter table public.courses
add column organization_id uuid,
add column visibility text not null default 'public';
alter table public.courses
add constraint courses_organization_id_fkey foreign key (organization_id)
references public.organizations (id) on delete restrict not valid,
add constraint courses_visibility_check check (visibility in ('public', 'internal')) not valid,
add constraint courses_internal_needs_organization check (
    visibility = 'public' or organization_id is not null
) not valid;
comment on column public.courses.visibility is
'public: anyone once published; internal: members of the organization only.';

-- Built inside the migration's transaction (CONCURRENTLY cannot be): courses holds one row
-- per course, a few thousand at most, so the write lock lasts milliseconds.
-- squawk-ignore require-concurrent-index-creation
create index courses_organization_id_idx on public.courses (organization_id);

/*
 * ---------------------------------------------------------------------------
 * Triggers
 * ---------------------------------------------------------------------------
 */

create trigger stamp_synced_row before insert or update on public.organizations
for each row execute function private.stamp_synced_row();
create trigger stamp_synced_row before insert or update on public.organization_members
for each row execute function private.stamp_synced_row();

-- Claiming an e-mail domain pulls every verified user of that domain into the
-- organization, so only admins and the platform set it (after checking ownership).
create function private.guard_organization()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if (select private.is_platform()) or (select private.is_admin()) then
        return new;
    end if;
    if new.email_domain is distinct from (case when tg_op = 'UPDATE' then old.email_domain end) then
        perform private.deny('only an admin can set an organization''s e-mail domain');
    end if;
    return new;
end
$$;
revoke all on function private.guard_organization() from public;

create trigger guard_organization before insert or update on public.organizations
for each row execute function private.guard_organization();

-- Whoever creates an organization owns it. Security definer: the creator is not yet a
-- member, so the membership policies would refuse this insert.
create function private.add_organization_creator()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    if (select auth.uid()) is not null then
        insert into public.organization_members (organization_id, user_id, role)
        values (new.id, (select auth.uid()), 'owner');
    end if;
    return null;
end
$$;
revoke all on function private.add_organization_creator() from public;

create trigger add_organization_creator after insert on public.organizations
for each row execute function private.add_organization_creator();

-- Membership rules beyond the policies:
--   a membership stays with its organization and user (only the role changes);
--   only owners (and admins, the platform) grant or take away the owner role;
--   an organization always keeps an owner: the last one can be neither removed nor demoted,
--   by anyone, except when the organization itself or the owner's account is being deleted
--   (private.organization_keeps_an_owner()).
create function private.guard_organization_member()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
    privileged boolean := (select private.is_platform()) or (select private.is_admin());
    caller_is_owner boolean := coalesce(new.organization_id, old.organization_id)
    in (select private.owned_organization_ids());
begin
    if tg_op = 'UPDATE' and (new.organization_id is distinct from old.organization_id
        or new.user_id is distinct from old.user_id) then
        perform private.deny('a membership cannot move to another organization or user');
    end if;
    if not privileged and not caller_is_owner and (
        (tg_op <> 'DELETE' and new.role = 'owner' and (tg_op = 'INSERT' or old.role <> 'owner'))
        or (tg_op <> 'INSERT' and old.role = 'owner' and old.user_id <> (select auth.uid()))
    ) then
        perform private.deny('only an owner can grant or take away the owner role');
    end if;
    if tg_op <> 'INSERT' and old.role = 'owner' and (tg_op = 'DELETE' or new.role <> 'owner')
        and not private.organization_keeps_an_owner(old.organization_id, old.id, old.user_id) then
        perform private.deny('an organization must keep at least one owner');
    end if;
    return coalesce(new, old);
end
$$;
revoke all on function private.guard_organization_member() from public;

create trigger guard_organization_member before insert or update or delete
on public.organization_members
for each row execute function private.guard_organization_member();

-- Joining by e-mail domain, when GoTrue records a verified address: at sign-up when the
-- address is already confirmed (auto-confirm, OAuth), or later when the user confirms it.
-- Unverified addresses never join. Named after on_auth_user_created so it fires after the
-- profile exists (triggers of one event fire in name order).
create function private.join_organization_by_email_domain()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    domain text := lower(nullif(split_part(coalesce(new.email, ''), '@', 2), ''));
begin
    if domain is null or new.email_confirmed_at is null or coalesce(new.is_anonymous, false) then
        return null;
    end if;
    insert into public.organization_members (organization_id, user_id, role)
    select o.id, new.id, 'member'
    from public.organizations as o
    join public.profiles as p on p.id = new.id
    where o.email_domain = domain
    on conflict (organization_id, user_id) do nothing;
    return null;
end
$$;
revoke all on function private.join_organization_by_email_domain() from public;

create trigger on_auth_user_verified_at_sign_up after insert on auth.users
for each row when (new.email_confirmed_at is not null)
execute function private.join_organization_by_email_domain();

create trigger on_auth_user_verified_later after update of email_confirmed_at on auth.users
for each row when (old.email_confirmed_at is null and new.email_confirmed_at is not null)
execute function private.join_organization_by_email_domain();

-- A course joins only an organization its tutor belongs to (admins and the platform may
-- attach any).
create function private.guard_course_organization()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if new.organization_id is not null
        and (tg_op = 'INSERT' or new.organization_id is distinct from old.organization_id)
        and not (select private.is_platform())
        and not (select private.is_admin())
        and new.organization_id not in (select private.member_organization_ids()) then
        perform private.deny('a course can only join an organization its tutor belongs to');
    end if;
    return new;
end
$$;
revoke all on function private.guard_course_organization() from public;

create trigger guard_course_organization before insert or update on public.courses
for each row execute function private.guard_course_organization();

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

create function private.member_organization_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select m.organization_id
    from public.organization_members as m
    where m.user_id = (select auth.uid())
$$;
revoke all on function private.member_organization_ids() from public;
grant execute on function private.member_organization_ids() to anon, authenticated, service_role;

-- Organizations the caller manages (owner or admin).
create function private.managed_organization_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select m.organization_id
    from public.organization_members as m
    where m.user_id = (select auth.uid()) and m.role in ('owner', 'admin')
$$;
revoke all on function private.managed_organization_ids() from public;
grant execute on function private.managed_organization_ids() to authenticated, service_role;

create function private.owned_organization_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select m.organization_id
    from public.organization_members as m
    where m.user_id = (select auth.uid()) and m.role = 'owner'
$$;
revoke all on function private.owned_organization_ids() from public;
grant execute on function private.owned_organization_ids() to authenticated, service_role;

-- Published courses the caller may see, enroll in and preview: public ones, and internal
-- ones of the caller's organizations. (Taught courses and admins are added by the policies.)
create function private.visible_course_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select c.id
    from public.courses as c
    where c.status = 'published'
      and (
          c.visibility = 'public'
          or c.organization_id in (select private.member_organization_ids())
      )
$$;
revoke all on function private.visible_course_ids() from public;
grant execute on function private.visible_course_ids() to anon, authenticated, service_role;

-- Redefined to mean "published for everyone": internal courses are left out, so a policy
-- that still uses it fails closed (members see internal courses through
-- visible_course_ids(), never through this).
create or replace function private.published_course_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select c.id from public.courses as c where c.status = 'published' and c.visibility = 'public'
$$;

-- Whether an organization still has an owner once this owner membership goes. The
-- organization row is locked first, so two owners demoting each other at once cannot both
-- succeed. A cascade (the organization or the owner's account being deleted) always may.
-- Security definer and volatile: the lock and the count must see every membership, as of now.
create function private.organization_keeps_an_owner(
    organization_id uuid, leaving_member_id uuid, leaving_user_id uuid
)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
    perform 1 from public.organizations as o
    where o.id = organization_keeps_an_owner.organization_id
    for update;
    if not found or not exists (select 1 from public.profiles as p where p.id = leaving_user_id) then
        return true;
    end if;
    return exists (
        select 1 from public.organization_members as m
        where m.organization_id = organization_keeps_an_owner.organization_id
          and m.role = 'owner' and m.id <> leaving_member_id
    );
end
$$;
revoke all on function private.organization_keeps_an_owner(uuid, uuid, uuid) from public;
grant execute on function private.organization_keeps_an_owner(uuid, uuid, uuid)
to authenticated, service_role;
