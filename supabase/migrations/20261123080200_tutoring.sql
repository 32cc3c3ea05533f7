-- Tutoring sessions (one-to-one bookings) and the feedback students leave on them.
--
-- Sessions are the platform's appointments: a time slot between one tutor and one student,
-- optionally about a course, with a request → confirm → run → complete life cycle. A separate
-- appointments table would duplicate every column and rule here, so there is none.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Needed for the tutor's no-overlap exclusion constraint (uuid equality in a GiST index).
create extension if not exists btree_gist with schema extensions;

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

create table public.tutoring_sessions (
    id uuid primary key default gen_random_uuid(),
    tutor_id uuid not null references public.profiles (id) on delete cascade,
    student_id uuid not null references public.profiles (id) on delete cascade,
    course_id uuid references public.courses (id) on delete set null,
    starts_at timestamptz not null,
    ends_at timestamptz not null,
    status text not null default 'requested'
    check (status in ('requested', 'confirmed', 'in_progress', 'completed', 'cancelled', 'no_show')),
    meeting_url text check (meeting_url ~ '^https://' and char_length(meeting_url) <= 2048),
    notes text not null default '' check (char_length(notes) <= 5000),
    cancelled_by uuid references public.profiles (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id(),
    constraint tutoring_sessions_time_check check (ends_at > starts_at),
    constraint tutoring_sessions_length_check check (ends_at - starts_at <= interval '8 hours'),
    constraint tutoring_sessions_not_self check (tutor_id <> student_id),
    -- A tutor is never booked twice at once.
    constraint tutoring_sessions_no_overlap exclude using gist (
        tutor_id with =, tstzrange(starts_at, ends_at) with &&
    ) where (status in ('confirmed', 'in_progress'))
);
comment on table public.tutoring_sessions is 'A booked time slot between a tutor and a student.';

create index tutoring_sessions_tutor_starts_idx on public.tutoring_sessions (tutor_id, starts_at);
create index tutoring_sessions_student_starts_idx on public.tutoring_sessions (student_id, starts_at);
create index tutoring_sessions_course_id_idx on public.tutoring_sessions (course_id);
create index tutoring_sessions_cancelled_by_idx on public.tutoring_sessions (cancelled_by);

create table public.session_feedback (
    id uuid primary key default gen_random_uuid(),
    session_id uuid not null unique references public.tutoring_sessions (id) on delete cascade,
    student_id uuid not null references public.profiles (id) on delete cascade,
    tutor_id uuid not null references public.profiles (id) on delete cascade,
    rating smallint not null check (rating between 1 and 5),
    comment text not null default '' check (char_length(comment) <= 5000),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id()
);
comment on table public.session_feedback is
'A student''s rating of a completed session; comments are private to student, tutor and admins.';

create index session_feedback_student_id_idx on public.session_feedback (student_id);
create index session_feedback_tutor_id_idx on public.session_feedback (tutor_id);

alter table public.tutoring_sessions enable row level security;
alter table public.session_feedback enable row level security;

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

create function private.completed_session_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select s.id
    from public.tutoring_sessions as s
    where s.student_id = (select auth.uid()) and s.status = 'completed'
$$;
revoke all on function private.completed_session_ids() from public;
grant execute on function private.completed_session_ids() to authenticated, service_role;

/*
 * ---------------------------------------------------------------------------
 * Triggers
 * ---------------------------------------------------------------------------
 */

create trigger stamp_synced_row before insert or update on public.tutoring_sessions
for each row execute function private.stamp_synced_row();
create trigger stamp_synced_row before insert or update on public.session_feedback
for each row execute function private.stamp_synced_row();

-- The session life cycle, and who may move it:
--   requested   → confirmed (tutor) | cancelled (either)
--   confirmed   → in_progress | completed | no_show (tutor) | cancelled (either)
--   in_progress → completed (tutor)
-- Participants, times and course are fixed once requested (cancel and book again).
create function private.guard_tutoring_session()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
    me uuid := (select auth.uid());
    allowed text[];
begin
    if (select private.is_platform()) or (select private.is_admin()) then
        if tg_op = 'UPDATE' and new.status = 'cancelled' and old.status <> 'cancelled' then
            new.cancelled_by := coalesce(new.cancelled_by, me);
        end if;
        return new;
    end if;
    if tg_op = 'INSERT' then
        if new.status <> 'requested' then
            perform private.deny('a new session must be requested');
        end if;
        if not private.is_active_tutor(new.tutor_id) then
            raise exception using errcode = '23514', message = 'sessions are booked with a tutor';
        end if;
        new.cancelled_by := null;
        return new;
    end if;
    if new.tutor_id is distinct from old.tutor_id or new.student_id is distinct from old.student_id
        or new.course_id is distinct from old.course_id or new.starts_at is distinct from old.starts_at
        or new.ends_at is distinct from old.ends_at then
        perform private.deny('a session''s people, course and time cannot change');
    end if;
    if new.status is distinct from old.status then
        allowed := case old.status
            when 'requested' then array['confirmed', 'cancelled']
            when 'confirmed' then array['in_progress', 'completed', 'no_show', 'cancelled']
            when 'in_progress' then array['completed']
            else array[]::text[]
        end;
        if not new.status = any(allowed) then
            raise exception using
                errcode = '23514',
                message = format('a %s session cannot become %s', old.status, new.status);
        end if;
        if me = old.student_id and new.status <> 'cancelled' then
            perform private.deny('a student can only cancel a session');
        end if;
        if new.status = 'cancelled' then
            new.cancelled_by := me;
        end if;
    elsif me = old.student_id and (new.meeting_url is distinct from old.meeting_url) then
        perform private.deny('only the tutor sets the meeting link');
    end if;
    return new;
end
$$;
revoke all on function private.guard_tutoring_session() from public;

create trigger guard_tutoring_session before insert or update on public.tutoring_sessions
for each row execute function private.guard_tutoring_session();

-- Feedback names the session's own student and tutor, whatever the client sent.
create function private.guard_session_feedback()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    session_row public.tutoring_sessions%rowtype;
begin
    if tg_op = 'UPDATE' and new.session_id is distinct from old.session_id then
        perform private.deny('feedback cannot move to another session');
    end if;
    select * into session_row from public.tutoring_sessions as s where s.id = new.session_id;
    new.student_id := session_row.student_id;
    new.tutor_id := session_row.tutor_id;
    return new;
end
$$;
revoke all on function private.guard_session_feedback() from public;

create trigger guard_session_feedback before insert or update on public.session_feedback
for each row execute function private.guard_session_feedback();

/*
 * ---------------------------------------------------------------------------
 * Public API functions
 * ---------------------------------------------------------------------------
 */

-- A tutor's average rating for anyone deciding whom to book, without exposing who said
-- what: only aggregates leave this function.
create function public.tutor_rating(tutor uuid)
returns table (average_rating numeric, ratings bigint)
language sql
stable
security definer
set search_path = ''
as $$
    select round(avg(f.rating)::numeric, 2), count(*)
    from public.session_feedback as f
    where f.tutor_id = tutor
$$;
revoke all on function public.tutor_rating(uuid) from public;
grant execute on function public.tutor_rating(uuid) to anon, authenticated, service_role;
comment on function public.tutor_rating(uuid) is 'Average rating and number of ratings of a tutor.';
