-- Profiles: everything in a profile is meant to be seen by signed-in users (personal data
-- stays in auth.users). Column grants and private.guard_profile() keep role and deleted_at
-- for admins.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

select private.drop_policies('public.profiles');

create policy "Users can read active profiles; admins all"
on public.profiles for select to authenticated
using (deleted_at is null or id = (select auth.uid()) or (select private.is_admin()));

create policy "Users can update their own profile and admins any"
on public.profiles for update to authenticated
using (id = (select auth.uid()) or (select private.is_admin()))
with check (id = (select auth.uid()) or (select private.is_admin()));

create policy "Admins can delete profiles"
on public.profiles for delete to authenticated
using ((select private.is_admin()));
