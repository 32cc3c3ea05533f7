-- Assignments of a course and students' submissions, graded by the course's tutor.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

create table public.assignments (
    id uuid primary key default gen_random_uuid(),
    course_id uuid not null references public.courses (id) on delete cascade,
    title text not null check (char_length(title) between 1 and 200),
    instructions text not null default '' check (char_length(instructions) <= 50000),
    rubric jsonb not null default '{}'::jsonb check (jsonb_typeof(rubric) in ('object', 'array')),
    max_points numeric(6, 2) not null default 100 check (max_points > 0),
    due_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id()
);
comment on table public.assignments is 'Work set in a course; rubric is free-form JSON.';

create index assignments_course_due_idx on public.assignments (course_id, due_at);

create table public.submissions (
    id uuid primary key default gen_random_uuid(),
    assignment_id uuid not null references public.assignments (id) on delete cascade,
    student_id uuid not null references public.profiles (id) on delete cascade,
    status text not null default 'draft' check (status in ('draft', 'submitted', 'graded', 'returned')),
    body text not null default '' check (char_length(body) <= 200000),
    storage_path text check (char_length(storage_path) <= 1024),
    submitted_at timestamptz,
    grade numeric(6, 2) check (grade >= 0),
    feedback text check (char_length(feedback) <= 20000),
    graded_by uuid references public.profiles (id) on delete set null,
    graded_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id(),
    constraint submissions_assignment_student_key unique (assignment_id, student_id),
    constraint submissions_graded_check check (status <> 'graded' or grade is not null)
);
comment on table public.submissions is 'A student''s answer to an assignment; graded by the tutor.';
comment on column public.submissions.grade is 'Written only by the course''s tutor (trigger guard).';

create index submissions_student_id_idx on public.submissions (student_id, created_at desc);
create index submissions_graded_by_idx on public.submissions (graded_by);

alter table public.assignments enable row level security;
alter table public.submissions enable row level security;

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

create function private.enrolled_assignment_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select a.id
    from public.assignments as a
    where a.course_id in (select private.enrolled_course_ids())
$$;
revoke all on function private.enrolled_assignment_ids() from public;
grant execute on function private.enrolled_assignment_ids() to authenticated, service_role;

create function private.taught_assignment_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select a.id
    from public.assignments as a
    where a.course_id in (select private.taught_course_ids())
$$;
revoke all on function private.taught_assignment_ids() from public;
grant execute on function private.taught_assignment_ids() to authenticated, service_role;

/*
 * ---------------------------------------------------------------------------
 * Triggers
 * ---------------------------------------------------------------------------
 */

create trigger stamp_synced_row before insert or update on public.assignments
for each row execute function private.stamp_synced_row();
create trigger stamp_synced_row before insert or update on public.submissions
for each row execute function private.stamp_synced_row();

-- Column rules on a row two people share:
--   the student owns the work (body, file, submit) and never the grade;
--   the course's tutor owns the grade and feedback and never the work.
create function private.guard_submission()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
    me uuid := (select auth.uid());
    is_tutor boolean := new.assignment_id in (select private.taught_assignment_ids());
begin
    if (select private.is_platform()) or (select private.is_admin()) then
        null;
    elsif tg_op = 'INSERT' then
        if new.grade is not null or new.feedback is not null or new.graded_by is not null
            or new.graded_at is not null or new.status not in ('draft', 'submitted') then
            perform private.deny('a student cannot grade a submission');
        end if;
    elsif new.assignment_id is distinct from old.assignment_id
        or new.student_id is distinct from old.student_id then
        perform private.deny('a submission cannot move to another assignment or student');
    elsif me = old.student_id and not is_tutor then
        if new.grade is distinct from old.grade or new.feedback is distinct from old.feedback
            or new.graded_by is distinct from old.graded_by
            or new.graded_at is distinct from old.graded_at then
            perform private.deny('a student cannot grade a submission');
        end if;
        if new.status not in ('draft', 'submitted') then
            perform private.deny('a student can only save or submit');
        end if;
    elsif is_tutor then
        if new.body is distinct from old.body or new.storage_path is distinct from old.storage_path
            or new.submitted_at is distinct from old.submitted_at then
            perform private.deny('a tutor cannot change a student''s work');
        end if;
        if new.status is distinct from old.status and new.status not in ('graded', 'returned') then
            perform private.deny('a tutor can only grade or return a submission');
        end if;
        if new.grade is distinct from old.grade or new.status = 'graded' and old.status <> 'graded' then
            new.graded_by := me;
            new.graded_at := now();
        end if;
    end if;
    if new.status = 'submitted' and (tg_op = 'INSERT' or old.status <> 'submitted') then
        new.submitted_at := now();
    end if;
    return new;
end
$$;
revoke all on function private.guard_submission() from public;

create trigger guard_submission before insert or update on public.submissions
for each row execute function private.guard_submission();
