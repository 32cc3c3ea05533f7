-- Organizations and their members. private.guard_organization() keeps the e-mail domain
-- with admins; private.guard_organization_member() keeps the owner role with owners and
-- every organization with at least one owner.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

select private.drop_policies('public.organizations');
select private.drop_policies('public.organization_members');

-- organizations ----------------------------------------------------------------------------

create policy "Members can read their organizations"
on public.organizations for select to authenticated
using (id in (select private.member_organization_ids()) or (select private.is_admin()));

-- The creator becomes its owner (trigger). The creator is not a member until the statement
-- ends, so create with a client-generated id and no RETURNING, then read it.
create policy "Signed-in users can create organizations"
on public.organizations for insert to authenticated
with check ((select private.current_app_role()) is not null);

create policy "Owners and admins can update their organization"
on public.organizations for update to authenticated
using (id in (select private.managed_organization_ids()) or (select private.is_admin()))
with check (id in (select private.managed_organization_ids()) or (select private.is_admin()));

create policy "Owners can delete their organization"
on public.organizations for delete to authenticated
using (id in (select private.owned_organization_ids()) or (select private.is_admin()));

-- organization_members ---------------------------------------------------------------------

create policy "Members can read their organization's members"
on public.organization_members for select to authenticated
using (
    organization_id in (select private.member_organization_ids())
    or (select private.is_admin())
);

create policy "Owners and admins can add members"
on public.organization_members for insert to authenticated
with check (
    organization_id in (select private.managed_organization_ids())
    or (select private.is_admin())
);

create policy "Owners and admins can change members' roles"
on public.organization_members for update to authenticated
using (
    organization_id in (select private.managed_organization_ids())
    or (select private.is_admin())
)
with check (
    organization_id in (select private.managed_organization_ids())
    or (select private.is_admin())
);

create policy "Owners and admins remove members; members leave"
on public.organization_members for delete to authenticated
using (
    user_id = (select auth.uid())
    or organization_id in (select private.managed_organization_ids())
    or (select private.is_admin())
);
