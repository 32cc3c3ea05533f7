-- Assignments and submissions. private.guard_submission() keeps the grade with the tutor
-- and the work with the student.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

select private.drop_policies('public.assignments');
select private.drop_policies('public.submissions');

-- assignments ------------------------------------------------------------------------------

-- Students keep reading the assignments of courses they completed; they submit only while
-- their enrollment is active (the insert policy below).
create policy "Enrolled students and the tutor can read assignments"
on public.assignments for select to authenticated
using (
    course_id in (select private.studied_course_ids())
    or course_id in (select private.taught_course_ids())
    or (select private.is_admin())
);

create policy "Tutors can set assignments in their courses"
on public.assignments for insert to authenticated
with check (course_id in (select private.taught_course_ids()) or (select private.is_admin()));

create policy "Tutors can update assignments in their courses"
on public.assignments for update to authenticated
using (course_id in (select private.taught_course_ids()) or (select private.is_admin()))
with check (course_id in (select private.taught_course_ids()) or (select private.is_admin()));

create policy "Tutors can delete assignments in their courses"
on public.assignments for delete to authenticated
using (course_id in (select private.taught_course_ids()) or (select private.is_admin()));

-- submissions ------------------------------------------------------------------------------

create policy "Students and their tutors can read submissions"
on public.submissions for select to authenticated
using (
    student_id = (select auth.uid())
    or assignment_id in (select private.taught_assignment_ids())
    or (select private.is_admin())
);

create policy "Enrolled students can submit their own work"
on public.submissions for insert to authenticated
with check (
    (student_id = (select auth.uid()) and assignment_id in (select private.enrolled_assignment_ids()))
    or (select private.is_admin())
);

create policy "Students edit ungraded work and tutors grade it"
on public.submissions for update to authenticated
using (
    (student_id = (select auth.uid()) and status <> 'graded')
    or assignment_id in (select private.taught_assignment_ids())
    or (select private.is_admin())
)
with check (
    (student_id = (select auth.uid()) and assignment_id in (select private.enrolled_assignment_ids()))
    or assignment_id in (select private.taught_assignment_ids())
    or (select private.is_admin())
);

create policy "Students can delete ungraded work"
on public.submissions for delete to authenticated
using ((student_id = (select auth.uid()) and status <> 'graded') or (select private.is_admin()));
