-- The content library.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

select private.drop_policies('public.articles');

create policy "Anyone can read published articles"
on public.articles for select to anon
using (status = 'published');

create policy "Users can read published articles and their own"
on public.articles for select to authenticated
using (status = 'published' or author_id = (select auth.uid()) or (select private.is_admin()));

create policy "Tutors and admins can write articles"
on public.articles for insert to authenticated
with check (
    (author_id = (select auth.uid()) and (select private.current_app_role()) in ('tutor', 'admin'))
    or (select private.is_admin())
);

create policy "Authors can update their articles"
on public.articles for update to authenticated
using (author_id = (select auth.uid()) or (select private.is_admin()))
with check (author_id = (select auth.uid()) or (select private.is_admin()));

create policy "Authors can delete their articles"
on public.articles for delete to authenticated
using (author_id = (select auth.uid()) or (select private.is_admin()));
