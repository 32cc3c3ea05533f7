-- Devices, notification preferences and push deliveries: each user manages their own.
-- Preference rows are created by the platform (one per category); users flip `enabled`.
-- Push deliveries are written by the push worker (service_role); recipients and admins read.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

select private.drop_policies('public.devices');
select private.drop_policies('public.notification_preferences');
select private.drop_policies('public.push_deliveries');

-- devices ----------------------------------------------------------------------------------

create policy "Users can read their devices; admins all"
on public.devices for select to authenticated
using (user_id = (select auth.uid()) or (select private.is_admin()));

create policy "Users can register their own devices"
on public.devices for insert to authenticated
with check (user_id = (select auth.uid()));

create policy "Users can update their own devices"
on public.devices for update to authenticated
using (user_id = (select auth.uid()))
with check (user_id = (select auth.uid()));

create policy "Users and admins can remove devices"
on public.devices for delete to authenticated
using (user_id = (select auth.uid()) or (select private.is_admin()));

-- notification_preferences -----------------------------------------------------------------

create policy "Users can read their notification preferences"
on public.notification_preferences for select to authenticated
using (user_id = (select auth.uid()));

-- Column privileges limit clients to enabled.
create policy "Users can change their notification preferences"
on public.notification_preferences for update to authenticated
using (user_id = (select auth.uid()))
with check (user_id = (select auth.uid()));

-- push_deliveries --------------------------------------------------------------------------

create policy "Recipients and admins can read push deliveries"
on public.push_deliveries for select to authenticated
using (recipient_id = (select auth.uid()) or (select private.is_admin()));
