-- Integrity rules that tests found missing (issue 12):
--
-- 1. Server-stamped columns are immutable to clients. The server records when and by whom
--    something happened (submitted_at, graded_by, cancelled_by, ...); a client that sends
--    another value is refused (42501), instead of rewriting the record after the fact (a
--    student blaming the tutor for a cancellation, backdating a submission). Sending the
--    value the row already holds is fine, so full-row writes (sync) keep working. Admins and
--    the platform may still correct a record. Column by column, docs/rls.md ("Server-stamped
--    columns") says which columns are the server's and which stay the client's.
-- 2. Courses and assignments that hold students' work are not deleted through the API (the
--    cascade would take enrollments, submissions and grades with them): archive the course
--    instead, as the GDPR erasure already refuses. Only the platform (service_role) deletes
--    them, on purpose.
-- 3. Helpers for the policies that follow: students keep reading the courses they completed
--    (and archived ones they take), and a graded submission's files are locked like its row.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

-- Courses the caller takes or has finished (not cancelled): they keep reading the course,
-- its content and its assignments, archived or not. Submitting stays with active
-- enrollments (private.enrolled_assignment_ids()).
create function private.studied_course_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select e.course_id
    from public.enrollments as e
    where e.student_id = (select auth.uid()) and e.status in ('active', 'completed')
$$;
revoke all on function private.studied_course_ids() from public;
grant execute on function private.studied_course_ids() to authenticated, service_role;

-- Assignments for which the caller's own submission is graded: its files are locked, as the
-- submission row is ("Students edit ungraded work and tutors grade it").
create function private.graded_assignment_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select s.assignment_id
    from public.submissions as s
    where s.student_id = (select auth.uid()) and s.status = 'graded'
$$;
revoke all on function private.graded_assignment_ids() from public;
grant execute on function private.graded_assignment_ids() to authenticated, service_role;

-- Trigger: refuses a client's value for a server-stamped column. Arguments name the columns;
-- `column:now` marks one whose insert default is now() (a client may leave it, not set it).
-- On insert a stamp must be left to the server (null, or now() for `:now`); on update it must
-- keep its value. The guard triggers that run after this one then stamp what happened.
-- Its trigger is named check_server_stamps so that it fires before guard_* and
-- stamp_synced_row (a table's triggers for one event fire in name order).
create function private.check_server_stamps()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
    arg text;
    col text;
    old_row jsonb := case when tg_op = 'UPDATE' then to_jsonb(old) end;
    new_row jsonb := to_jsonb(new);
    allowed jsonb;
begin
    if (select private.is_platform()) or (select private.is_admin()) then
        return new;
    end if;
    foreach arg in array tg_argv loop
        col := split_part(arg, ':', 1);
        allowed := case
            when tg_op = 'UPDATE' then old_row -> col
            when split_part(arg, ':', 2) = 'now' then to_jsonb(now())
            else 'null'::jsonb
        end;
        if coalesce(new_row -> col, 'null'::jsonb) is distinct from coalesce(allowed, 'null'::jsonb) then
            raise exception using
                errcode = '42501',
                message = format('%s.%s is set by the server', tg_table_name, col),
                hint = 'leave the column out of the write; the server records it';
        end if;
    end loop;
    return new;
end
$$;
revoke all on function private.check_server_stamps() from public;

-- Trigger: a course or assignment that holds students' work is archived, not deleted. The
-- check runs as the caller (under RLS: a tutor sees every enrollment and submission of the
-- courses they teach), so only API callers are refused; the platform and the cascades it
-- runs (GDPR erasure, which refuses the same cases first) are not.
create function private.refuse_deleting_coursework()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
    has_work boolean;
begin
    if (select private.is_platform()) then
        return old;
    end if;
    if tg_table_name = 'courses' then
        has_work := exists (
            select 1 from public.enrollments as e where e.course_id = old.id
        ) or exists (
            select 1 from public.submissions as s
            join public.assignments as a on a.id = s.assignment_id
            where a.course_id = old.id
        );
    else
        has_work := exists (select 1 from public.submissions as s where s.assignment_id = old.id);
    end if;
    if has_work then
        raise exception using
            errcode = '42501',
            message = case tg_table_name
                when 'courses' then 'a course that students take or took cannot be deleted'
                else 'an assignment with submissions cannot be deleted'
            end,
            hint = case tg_table_name
                when 'courses' then 'archive it instead: set status = ''archived'''
                else 'archive its course, or keep the assignment'
            end;
    end if;
    return old;
end
$$;
revoke all on function private.refuse_deleting_coursework() from public;

/*
 * ---------------------------------------------------------------------------
 * Triggers
 * ---------------------------------------------------------------------------
 */

create trigger check_server_stamps before insert or update on public.tutoring_sessions
for each row execute function private.check_server_stamps('cancelled_by');

create trigger check_server_stamps before insert or update on public.submissions
for each row execute function private.check_server_stamps('submitted_at', 'graded_by', 'graded_at');

create trigger check_server_stamps before insert or update on public.enrollments
for each row execute function private.check_server_stamps('enrolled_at:now', 'completed_at');

create trigger check_server_stamps before insert or update on public.courses
for each row execute function private.check_server_stamps('published_at');

create trigger check_server_stamps before insert or update on public.articles
for each row execute function private.check_server_stamps('published_at');

create trigger check_server_stamps before insert or update on public.support_queries
for each row execute function private.check_server_stamps('resolved_at');

create trigger refuse_deleting_coursework before delete on public.courses
for each row execute function private.refuse_deleting_coursework();

create trigger refuse_deleting_coursework before delete on public.assignments
for each row execute function private.refuse_deleting_coursework();
