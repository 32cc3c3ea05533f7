-- Support tickets: the owner and admins only (a tutor has no view of others' tickets).

set local lock_timeout = '5s';
set local statement_timeout = '60s';

select private.drop_policies('public.support_queries');
select private.drop_policies('public.support_replies');

-- support_queries --------------------------------------------------------------------------

create policy "Owners and admins can read tickets"
on public.support_queries for select to authenticated
using (owner_id = (select auth.uid()) or (select private.is_admin()));

create policy "Users can open tickets for themselves"
on public.support_queries for insert to authenticated
with check (owner_id = (select auth.uid()) or (select private.is_admin()));

create policy "Owners and admins can update tickets"
on public.support_queries for update to authenticated
using (owner_id = (select auth.uid()) or (select private.is_admin()))
with check (owner_id = (select auth.uid()) or (select private.is_admin()));

create policy "Owners and admins can delete tickets"
on public.support_queries for delete to authenticated
using (owner_id = (select auth.uid()) or (select private.is_admin()));

-- support_replies --------------------------------------------------------------------------

create policy "Ticket owners and admins can read replies"
on public.support_replies for select to authenticated
using (query_id in (select private.my_support_query_ids()) or (select private.is_admin()));

create policy "Ticket owners and admins can reply"
on public.support_replies for insert to authenticated
with check (
    author_id = (select auth.uid())
    and (query_id in (select private.my_support_query_ids()) or (select private.is_admin()))
);

create policy "Authors can edit their replies"
on public.support_replies for update to authenticated
using (
    (author_id = (select auth.uid()) and query_id in (select private.my_support_query_ids()))
    or (select private.is_admin())
)
with check (
    (author_id = (select auth.uid()) and query_id in (select private.my_support_query_ids()))
    or (select private.is_admin())
);

create policy "Authors can delete their replies"
on public.support_replies for delete to authenticated
using (
    (author_id = (select auth.uid()) and query_id in (select private.my_support_query_ids()))
    or (select private.is_admin())
);
