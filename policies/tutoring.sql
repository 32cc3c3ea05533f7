-- Tutoring sessions and session feedback.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

select private.drop_policies('public.tutoring_sessions');
select private.drop_policies('public.session_feedback');

-- tutoring_sessions ------------------------------------------------------------------------

create policy "Participants can read their sessions"
on public.tutoring_sessions for select to authenticated
using (
    student_id = (select auth.uid())
    or tutor_id = (select auth.uid())
    or (select private.is_admin())
);

-- private.guard_tutoring_session() makes a new session 'requested' with an active tutor.
create policy "Students can request sessions for themselves"
on public.tutoring_sessions for insert to authenticated
with check (
    (student_id = (select auth.uid()) and (select private.current_app_role()) = 'student')
    or (select private.is_admin())
);

-- The guard decides which status changes each participant may make.
create policy "Participants can update their sessions"
on public.tutoring_sessions for update to authenticated
using (
    student_id = (select auth.uid())
    or tutor_id = (select auth.uid())
    or (select private.is_admin())
)
with check (
    student_id = (select auth.uid())
    or tutor_id = (select auth.uid())
    or (select private.is_admin())
);

create policy "Admins can delete sessions"
on public.tutoring_sessions for delete to authenticated
using ((select private.is_admin()));

-- session_feedback -------------------------------------------------------------------------

create policy "Students and the rated tutor can read feedback"
on public.session_feedback for select to authenticated
using (
    student_id = (select auth.uid())
    or tutor_id = (select auth.uid())
    or (select private.is_admin())
);

create policy "Students can rate their completed sessions"
on public.session_feedback for insert to authenticated
with check (
    (
        student_id = (select auth.uid())
        and session_id in (select private.completed_session_ids())
        -- a deactivated student (no application role) rates no one any more
        and (select private.current_app_role()) is not null
    )
    or (select private.is_admin())
);

create policy "Students can edit their feedback"
on public.session_feedback for update to authenticated
using (student_id = (select auth.uid()) or (select private.is_admin()))
with check (
    (student_id = (select auth.uid()) and session_id in (select private.completed_session_ids()))
    or (select private.is_admin())
);

create policy "Admins can delete feedback"
on public.session_feedback for delete to authenticated
using ((select private.is_admin()));
