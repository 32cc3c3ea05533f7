-- Security definer bodies out of the API's schema (Supabase's linter, lints 0028 and 0029:
-- a definer function in `public` that anon or authenticated may execute is an RPC that runs
-- past RLS).
--
-- - tutor_rating, start_direct_conversation, start_course_conversation and delete_user are
--   meant to be called through the API. Their definer bodies move to `private` unchanged
--   (with their grants and comments), and `public` keeps a security invoker wrapper of the
--   same name, arguments and grants, so every client and RPC caller keeps working.
-- - check_request is PostgREST's db-pre-request hook, never an RPC: it moves to `private`
--   with no wrapper, so /rest/v1/rpc/check_request no longer exists. PostgREST runs the hook
--   after switching to the request's role, so anon, authenticated and service_role keep
--   EXECUTE on it (and USAGE on `private`, granted in the foundation migration). A project
--   that had switched the hook on is pointed at its new name here.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

-- Clients do not break: the first four get their public wrappers in this same transaction,
-- and check_request was never meant to be called by a client.
-- squawk-ignore ban-set-schema
alter function public.tutor_rating(uuid) set schema private;
-- squawk-ignore ban-set-schema
alter function public.start_direct_conversation(uuid) set schema private;
-- squawk-ignore ban-set-schema
alter function public.start_course_conversation(uuid, text) set schema private;
-- squawk-ignore ban-set-schema
alter function public.delete_user(uuid) set schema private;
-- squawk-ignore ban-set-schema
alter function public.check_request() set schema private;

comment on function private.check_request() is
'PostgREST db-pre-request hook (private.check_request): limits writes (SQLSTATE PT429).';

-- The hook is PostgREST's setting, not schema: only a project that had switched it on by its
-- old name is moved to the new one (otherwise every request would fail on a missing function).
do $$
begin
    if exists (
        select 1
        from pg_catalog.pg_db_role_setting as s
        join pg_catalog.pg_roles as r on r.oid = s.setrole
        where r.rolname = 'authenticator'
            and s.setconfig && array[
                'pgrst.db_pre_request=public.check_request',
                'pgrst.db_pre_request=check_request'
            ]
    ) then
        alter role authenticator set pgrst.db_pre_request = 'private.check_request';
        notify pgrst, 'reload config';
    end if;
end
$$;

/*
 * ---------------------------------------------------------------------------
 * Public API functions
 * ---------------------------------------------------------------------------
 */

create function public.tutor_rating(tutor uuid)
returns table (average_rating numeric, ratings bigint)
language sql
stable
security invoker
set search_path = ''
as $$
    select r.average_rating, r.ratings from private.tutor_rating(tutor) as r
$$;
-- Supabase's default privileges grant the API roles execute directly, not through PUBLIC.
revoke all on function public.tutor_rating(uuid) from public, anon, authenticated;
grant execute on function public.tutor_rating(uuid) to anon, authenticated, service_role;
comment on function public.tutor_rating(uuid) is 'Average rating and number of ratings of a tutor.';

create function public.start_direct_conversation(other uuid)
returns public.conversations
language sql
security invoker
set search_path = ''
as $$
    select private.start_direct_conversation(other)
$$;
revoke all on function public.start_direct_conversation(uuid) from public, anon, authenticated;
grant execute on function public.start_direct_conversation(uuid) to authenticated, service_role;
comment on function public.start_direct_conversation(uuid) is
'Open (or find) the direct conversation between the caller and another user.';

create function public.start_course_conversation(course uuid, title text default null)
returns public.conversations
language sql
security invoker
set search_path = ''
as $$
    select private.start_course_conversation(course, title)
$$;
revoke all on function public.start_course_conversation(uuid, text) from public, anon, authenticated;
grant execute on function public.start_course_conversation(uuid, text) to authenticated, service_role;
comment on function public.start_course_conversation(uuid, text) is
'Open a group conversation for a course the caller teaches.';

create function public.delete_user(uid uuid)
returns jsonb
language sql
security invoker
set search_path = ''
as $$
    select private.delete_user(uid)
$$;
revoke all on function public.delete_user(uuid) from public, anon, authenticated;
grant execute on function public.delete_user(uuid) to authenticated, service_role;
comment on function public.delete_user(uuid) is
'Erases a user (GDPR right to erasure); admins and service_role only. Returns a summary.';
