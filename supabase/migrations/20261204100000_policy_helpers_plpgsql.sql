-- The policy and trigger helpers, in PL/pgSQL (issue 10: push, propagation, pulls with changes).
--
-- These helpers are SQL functions with `set search_path = ''` (and most are security definer).
-- PostgreSQL never inlines such a function, and before PostgreSQL 18 a SQL function that is
-- not inlined parses and plans its statement again in every statement that calls it: its plan
-- lives in the caller's executor state, which every execution builds anew, even the execution
-- of a cached plan. Every row a client pushes is one or more statements (one op applied alone
-- is one dynamic statement), and each of them reaches several helpers through its policies and
-- triggers: `private.current_app_role()` alone was called three times per op and cost 0.14 ms a
-- call, about as much as the insert it guarded. PL/pgSQL keeps a function's plans for the
-- session, so a call costs only its execution.
--
-- Each function keeps its signature, volatility, security and search_path, and returns the
-- same result from the same statement; `create or replace` keeps its grants. A parameter is
-- named through its function (`display_name.user_id`), so no column can ever shadow it.
-- Measured on the perf world, the SQL and PL/pgSQL versions swapped in turn: a push of 1000
-- ops of two tables alternating (applied one at a time) 1,750 -> 1,120 ms; a push of one
-- message 4.9 -> 4.0 ms (p50).
--
-- The same holds for the two helpers every sync_pull calls first (its snapshot and the prune
-- point): 0.1 ms of a no-change pull's 3 ms. A STABLE PL/pgSQL function runs its statements
-- with its caller's snapshot, as a STABLE SQL function does, so private.sync_snapshot()
-- returns the same snapshot as before. Left in SQL: functions called once per request or
-- rarely (data export, registry, ratings, the push ledger).

set local lock_timeout = '5s';
set local statement_timeout = '60s';

create or replace function private.current_app_role()
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return (
        select p.role
        from public.profiles as p
        where p.id = (select auth.uid()) and p.deleted_at is null
    );
end
$$;

create or replace function private.is_admin()
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return (
        select coalesce((select private.current_app_role()) = 'admin', false)
    );
end
$$;

create or replace function private.is_platform()
returns boolean
language plpgsql
stable
set search_path = ''
as $$
begin
    return (
        select current_user in ('postgres', 'service_role', 'supabase_admin')
    );
end
$$;

create or replace function private.display_name(user_id uuid)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return (
        select coalesce(
            (select p.display_name from public.profiles as p where p.id = display_name.user_id),
            'Someone'
        )
    );
end
$$;

create or replace function private.conversation_member_ids(conversation uuid)
returns uuid []
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return (
        select coalesce(array_agg(p.user_id), array[]::uuid [])
        from public.conversation_participants as p
        where p.conversation_id = conversation_member_ids.conversation
    );
end
$$;

create or replace function private.my_conversation_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select p.conversation_id
    from public.conversation_participants as p
    where p.user_id = (select auth.uid());
end
$$;

create or replace function private.owned_conversation_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select p.conversation_id
    from public.conversation_participants as p
    where p.user_id = (select auth.uid()) and p.role = 'owner';
end
$$;

create or replace function private.enrolled_course_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select e.course_id
    from public.enrollments as e
    where e.student_id = (select auth.uid()) and e.status = 'active';
end
$$;

create or replace function private.studied_course_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select e.course_id
    from public.enrollments as e
    where e.student_id = (select auth.uid()) and e.status in ('active', 'completed');
end
$$;

create or replace function private.taught_course_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select c.id from public.courses as c where c.tutor_id = (select auth.uid());
end
$$;

create or replace function private.published_course_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select c.id from public.courses as c where c.status = 'published' and c.visibility = 'public';
end
$$;

create or replace function private.visible_course_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select c.id
    from public.courses as c
    where c.status = 'published'
      and (
          c.visibility = 'public'
          or c.organization_id in (select private.member_organization_ids())
      );
end
$$;

create or replace function private.member_organization_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select m.organization_id
    from public.organization_members as m
    where m.user_id = (select auth.uid());
end
$$;

create or replace function private.member_organization_id_array()
returns uuid []
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return (
        select coalesce(array_agg(m.organization_id), '{}')
        from public.organization_members as m
        where m.user_id = (select auth.uid())
    );
end
$$;

create or replace function private.managed_organization_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select m.organization_id
    from public.organization_members as m
    where m.user_id = (select auth.uid()) and m.role in ('owner', 'admin');
end
$$;

create or replace function private.owned_organization_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select m.organization_id
    from public.organization_members as m
    where m.user_id = (select auth.uid()) and m.role = 'owner';
end
$$;

create or replace function private.my_support_query_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select q.id from public.support_queries as q where q.owner_id = (select auth.uid());
end
$$;

create or replace function private.my_payment_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select p.id
    from public.payments as p
    where p.payer_id = (select auth.uid()) or p.payee_id = (select auth.uid());
end
$$;

create or replace function private.completed_session_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select s.id
    from public.tutoring_sessions as s
    where s.student_id = (select auth.uid()) and s.status = 'completed';
end
$$;

create or replace function private.graded_assignment_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select s.assignment_id
    from public.submissions as s
    where s.student_id = (select auth.uid()) and s.status = 'graded';
end
$$;

create or replace function private.enrolled_assignment_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select a.id
    from public.assignments as a
    where a.course_id in (select private.enrolled_course_ids());
end
$$;

create or replace function private.taught_assignment_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select a.id
    from public.assignments as a
    where a.course_id in (select private.taught_course_ids());
end
$$;

create or replace function private.is_active_tutor(user_id uuid)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return (
        select exists (
            select 1 from public.profiles as p
            where p.id = is_active_tutor.user_id and p.role = 'tutor' and p.deleted_at is null
        )
    );
end
$$;

create or replace function private.sync_table_spec(table_name text)
returns private.sync_tables
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    spec private.sync_tables;
begin
    select t.* into spec from private.sync_tables as t where t.table_name = sync_table_spec.table_name;
    return spec;
end
$$;

create or replace function private.sync_snapshot()
returns pg_snapshot
language plpgsql
stable
set search_path = ''
as $$
begin
    return (
        select case
            when pg_catalog.pg_is_in_recovery() then
                format('%1$s:%1$s:', pg_catalog.pg_snapshot_xmin(s))::pg_catalog.pg_snapshot
            else s
        end
        from pg_catalog.pg_current_snapshot() as s
    );
end
$$;

create or replace function private.sync_pruned_xid()
returns xid8
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return (select s.pruned_xid from private.sync_settings as s);
end
$$;
