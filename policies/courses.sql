-- Courses, course content and enrollments. A published course is visible to everyone when
-- its visibility is public, and only to its organization's members when internal; the tutor
-- and admins always see it.
--
-- "Is this one course visible to me?" is asked of that course's row, as a scalar sub-select
-- (one courses_pkey lookup per row that asks), never as `course_id in (select
-- private.visible_course_ids())`, which hashes every published course on each statement
-- (18,000 at 100k users: 60 ms to read one course's lessons, see docs/performance.md). An
-- `exists` would not do: the planner may turn it into the same hash of all courses.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

select private.drop_policies('public.courses');
select private.drop_policies('public.course_content');
select private.drop_policies('public.enrollments');

-- courses ----------------------------------------------------------------------------------

create policy "Anyone can read published courses"
on public.courses for select to anon
using (status = 'published' and visibility = 'public');

-- Written on the columns rather than through visible_course_ids(), with the caller's few
-- organizations as one array, so reading courses by id stays an index lookup (a hashed
-- subplan here made the planner scan every course).
create policy "Users can read published courses and their own"
on public.courses for select to authenticated
using (
    (
        status = 'published'
        and (
            visibility = 'public'
            or organization_id = any((select private.member_organization_id_array())::uuid [])
        )
    )
    or tutor_id = (select auth.uid())
    or (select private.is_admin())
    -- Its students (active or completed) keep the course, archived or unpublished later.
    -- Through the definer helper, not a sub-select on enrollments: the enrollments insert
    -- policy reads courses, and RLS would recurse. The caller's few enrollments hash cheaply.
    or id in (select private.studied_course_ids())
);

create policy "Tutors can create their own courses"
on public.courses for insert to authenticated
with check (
    (tutor_id = (select auth.uid()) and (select private.current_app_role()) = 'tutor')
    or (select private.is_admin())
);

create policy "Tutors can update their own courses"
on public.courses for update to authenticated
using (tutor_id = (select auth.uid()) or (select private.is_admin()))
with check (tutor_id = (select auth.uid()) or (select private.is_admin()));

create policy "Tutors can delete their own courses"
on public.courses for delete to authenticated
using (tutor_id = (select auth.uid()) or (select private.is_admin()));

-- course_content ---------------------------------------------------------------------------

create policy "Anyone can read preview content of published courses"
on public.course_content for select to anon
using (
    is_preview
    and (
        select c.status = 'published' and c.visibility = 'public'
        from public.courses as c
        where c.id = course_content.course_id
    )
);

-- No security definer helper (enrolled_course_ids() / taught_course_ids()): one costs about
-- 0.15 ms a call (role and search_path switch, its body planned on every statement), which
-- was most of this query's cost (docs/performance.md). The first arm is the caller's own
-- enrollments, under that table's policy, as an uncorrelated IN: PostgreSQL hashes that
-- small set once per statement, so each row costs a hash probe. A correlated sub-select
-- (one index probe of enrollments, and its policy, per row) cost a first sync about a fifth
-- of its server time: it reads thousands of rows of one course. The second arm reads the
-- course's own row by its key: the set of courses a preview could come from is every
-- published course, far too many to hash on every statement. For an enrolled student the
-- first arm answers and nothing else runs.
-- Students who finished the course keep reading it (docs/rls.md, "Archived courses and
-- completed enrollments").
create policy "Enrolled students and the tutor can read content"
on public.course_content for select to authenticated
using (
    course_id in (
        select e.course_id
        from public.enrollments as e
        where
            e.student_id = (select auth.uid())
            and e.status in ('active', 'completed')
    )
    or (
        select
            c.tutor_id = (select auth.uid())
            or (
                course_content.is_preview
                and c.status = 'published'
                and (
                    c.visibility = 'public'
                    or c.organization_id = any((select private.member_organization_id_array())::uuid [])
                )
            )
        from public.courses as c
        where c.id = course_content.course_id
    )
    or (select private.is_admin())
);

create policy "Tutors can add content to their courses"
on public.course_content for insert to authenticated
with check (course_id in (select private.taught_course_ids()) or (select private.is_admin()));

create policy "Tutors can update content of their courses"
on public.course_content for update to authenticated
using (course_id in (select private.taught_course_ids()) or (select private.is_admin()))
with check (course_id in (select private.taught_course_ids()) or (select private.is_admin()));

create policy "Tutors can delete content of their courses"
on public.course_content for delete to authenticated
using (course_id in (select private.taught_course_ids()) or (select private.is_admin()));

-- enrollments ------------------------------------------------------------------------------

create policy "Students and their tutors can read enrollments"
on public.enrollments for select to authenticated
using (
    student_id = (select auth.uid())
    or course_id in (select private.taught_course_ids())
    or (select private.is_admin())
);

create policy "Students can enroll themselves in published courses"
on public.enrollments for insert to authenticated
with check (
    (
        student_id = (select auth.uid())
        and status = 'active'
        and (select private.current_app_role()) = 'student'
        and (
            select
                c.status = 'published'
                and (
                    c.visibility = 'public'
                    or c.organization_id = any((select private.member_organization_id_array())::uuid [])
                )
            from public.courses as c
            where c.id = enrollments.course_id
        )
    )
    or (select private.is_admin())
);

-- What each may change is narrowed by private.guard_enrollment(): students only cancel,
-- tutors only set the status.
create policy "Students and their tutors can update enrollments"
on public.enrollments for update to authenticated
using (
    student_id = (select auth.uid())
    or course_id in (select private.taught_course_ids())
    or (select private.is_admin())
)
with check (
    student_id = (select auth.uid())
    or course_id in (select private.taught_course_ids())
    or (select private.is_admin())
);

create policy "Admins can delete enrollments"
on public.enrollments for delete to authenticated
using ((select private.is_admin()));
