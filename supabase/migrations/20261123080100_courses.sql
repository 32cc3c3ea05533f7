-- Courses, their ordered content (modules and lessons) and enrollments.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

create table public.courses (
    id uuid primary key default gen_random_uuid(),
    tutor_id uuid not null references public.profiles (id) on delete cascade,
    title text not null check (char_length(title) between 1 and 200),
    description text not null default '' check (char_length(description) <= 20000),
    status text not null default 'draft' check (status in ('draft', 'published', 'archived')),
    published_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id(),
    constraint courses_published_at_check check (status = 'draft' or published_at is not null)
);
comment on table public.courses is 'A course a tutor owns; only published courses are public.';

create index courses_tutor_id_idx on public.courses (tutor_id);
create index courses_published_idx on public.courses (published_at desc) where status = 'published';

-- Modules group lessons; both are ordered by position within their parent.
create table public.course_content (
    id uuid primary key default gen_random_uuid(),
    course_id uuid not null references public.courses (id) on delete cascade,
    parent_id uuid references public.course_content (id) on delete cascade,
    kind text not null check (kind in ('module', 'lesson')),
    position integer not null check (position >= 0),
    title text not null check (char_length(title) between 1 and 200),
    content_type text not null default 'markdown'
    check (content_type in ('markdown', 'video', 'pdf', 'link', 'quiz')),
    body text check (char_length(body) <= 200000),
    storage_path text check (char_length(storage_path) <= 1024),
    is_preview boolean not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id(),
    constraint course_content_module_is_top_level check (kind = 'lesson' or parent_id is null)
);
comment on table public.course_content is 'Ordered modules and lessons of a course.';
comment on column public.course_content.is_preview is 'Visible to anyone while the course is published.';

create index course_content_course_position_idx on public.course_content (course_id, position);
create index course_content_parent_id_idx on public.course_content (parent_id);

create table public.enrollments (
    id uuid primary key default gen_random_uuid(),
    student_id uuid not null references public.profiles (id) on delete cascade,
    course_id uuid not null references public.courses (id) on delete cascade,
    status text not null default 'active' check (status in ('active', 'completed', 'cancelled')),
    enrolled_at timestamptz not null default now(),
    completed_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id(),
    constraint enrollments_student_course_key unique (student_id, course_id),
    constraint enrollments_completed_at_check check ((status = 'completed') = (completed_at is not null))
);
comment on table public.enrollments is 'A student taking a course.';

create index enrollments_course_id_idx on public.enrollments (course_id, status);
create index enrollments_student_active_idx on public.enrollments (student_id, course_id)
where status = 'active';

alter table public.courses enable row level security;
alter table public.course_content enable row level security;
alter table public.enrollments enable row level security;

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

-- Set-returning helpers: a policy written as `course_id in (select private.x())` runs the
-- helper once per statement (a hashed subplan), not once per row, and the security definer
-- lets it read enrollments and courses without recursing into their policies.

create function private.taught_course_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select c.id from public.courses as c where c.tutor_id = (select auth.uid())
$$;
revoke all on function private.taught_course_ids() from public;
grant execute on function private.taught_course_ids() to authenticated, service_role;

create function private.enrolled_course_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select e.course_id
    from public.enrollments as e
    where e.student_id = (select auth.uid()) and e.status = 'active'
$$;
revoke all on function private.enrolled_course_ids() from public;
grant execute on function private.enrolled_course_ids() to authenticated, service_role;

create function private.published_course_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select c.id from public.courses as c where c.status = 'published'
$$;
revoke all on function private.published_course_ids() from public;
grant execute on function private.published_course_ids() to anon, authenticated, service_role;

/*
 * ---------------------------------------------------------------------------
 * Triggers
 * ---------------------------------------------------------------------------
 */

create trigger stamp_synced_row before insert or update on public.courses
for each row execute function private.stamp_synced_row();
create trigger stamp_synced_row before insert or update on public.course_content
for each row execute function private.stamp_synced_row();
create trigger stamp_synced_row before insert or update on public.enrollments
for each row execute function private.stamp_synced_row();

-- A course keeps its tutor (admins may reassign); publishing stamps published_at.
create function private.guard_course()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if tg_op = 'UPDATE'
        and new.tutor_id is distinct from old.tutor_id
        and not (select private.is_platform())
        and not (select private.is_admin()) then
        perform private.deny('only an admin can move a course to another tutor');
    end if;
    if new.status = 'published' and new.published_at is null then
        new.published_at := now();
    end if;
    return new;
end
$$;
revoke all on function private.guard_course() from public;

create trigger guard_course before insert or update on public.courses
for each row execute function private.guard_course();

-- Content stays in its course, and a lesson's module must belong to the same course.
create function private.guard_course_content()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if tg_op = 'UPDATE' and new.course_id is distinct from old.course_id then
        perform private.deny('content cannot move to another course');
    end if;
    if new.parent_id is not null and not exists (
        select 1 from public.course_content as m
        where m.id = new.parent_id and m.course_id = new.course_id and m.kind = 'module'
    ) then
        raise exception using
            errcode = '23514',
            message = 'a lesson''s parent must be a module of the same course';
    end if;
    return new;
end
$$;
revoke all on function private.guard_course_content() from public;

create trigger guard_course_content before insert or update on public.course_content
for each row execute function private.guard_course_content();

-- Who may change what in an enrollment, beyond what the policies decide on rows:
-- a student may only cancel; the course's tutor may only change the status.
create function private.guard_enrollment()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if tg_op = 'INSERT' or (select private.is_platform()) or (select private.is_admin()) then
        null;
    elsif new.student_id is distinct from old.student_id
        or new.course_id is distinct from old.course_id
        or new.enrolled_at is distinct from old.enrolled_at then
        perform private.deny('an enrollment''s student, course and date cannot change');
    elsif old.student_id = (select auth.uid()) and new.status is distinct from old.status
        and new.status <> 'cancelled' then
        perform private.deny('a student can only cancel an enrollment');
    end if;
    -- completed_at follows the status, whoever changes it.
    if new.status <> 'completed' then
        new.completed_at := null;
    elsif new.completed_at is null then
        new.completed_at := now();
    end if;
    return new;
end
$$;
revoke all on function private.guard_enrollment() from public;

create trigger guard_enrollment before insert or update on public.enrollments
for each row execute function private.guard_enrollment();
