-- The caller's organizations as one array, for the courses select policy: `organization_id
-- = any (array)` is a cheap scalar filter, so the planner keeps reading courses by index
-- (a join from enrollments stays a nested loop on courses_pkey). With the set-returning
-- member_organization_ids() as a hashed subplan it switched to scanning all courses.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

create function private.member_organization_id_array()
returns uuid []
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce(array_agg(m.organization_id), '{}')
    from public.organization_members as m
    where m.user_id = (select auth.uid())
$$;
revoke all on function private.member_organization_id_array() from public;
grant execute on function private.member_organization_id_array() to authenticated, service_role;
