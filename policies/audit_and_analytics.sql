-- The audit log and analytics events: admins read them. The audit log has no write
-- policies at all (its triggers write as the table owner); analytics events are inserted by
-- signed-in users for themselves only. Neither can be updated or deleted through the API:
-- no policies, and the privileges are revoked in the migration.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

select private.drop_policies('public.audit_log');
select private.drop_policies('public.analytics_events');

create policy "Admins can read the audit log"
on public.audit_log for select to authenticated
using ((select private.is_admin()));

create policy "Admins can read analytics events"
on public.analytics_events for select to authenticated
using ((select private.is_admin()));

-- Anon sends nothing: events from before sign-in wait in the client's queue and go out as
-- the user, so an unauthenticated caller cannot fill the table.
create policy "Users can record their own analytics events"
on public.analytics_events for insert to authenticated
with check (user_id = (select auth.uid()));
