"""The naive policy forms, for a scratch copy of the perf world only.

The same rules as policies/*.sql for the tables the hot queries read, written the way
Supabase's RLS performance guide starts out: bare ``auth.uid()`` (evaluated per row rather
than once per statement), membership checks as correlated subqueries on the row instead of
set-returning ``security definer`` helpers (so the subquery's own table's policies run
inside it too), and without the indexes that serve the policies' lookups.

``conversation_participants`` keeps its helper-based policy: written inline, a policy that
reads its own table recurses ("infinite recursion detected in policy"), which is the reason
the helpers exist. So does the courses arm for the courses a student takes (enrollments'
policy reads courses).
"""

from __future__ import annotations

__all__ = ["DROPPED_INDEXES", "NAIVE_POLICIES"]

NAIVE_POLICIES = """
select private.drop_policies('public.courses');
create policy "naive courses" on public.courses for select to authenticated using (
    (status = 'published' and (visibility = 'public' or exists (
        select 1 from public.organization_members as m
        where m.organization_id = courses.organization_id and m.user_id = auth.uid()
    )))
    or tutor_id = auth.uid()
    or exists (select 1 from public.profiles as a where a.id = auth.uid() and a.role = 'admin')
    or id in (select private.studied_course_ids())
);

select private.drop_policies('public.course_content');
create policy "naive content" on public.course_content for select to authenticated using (
    (is_preview and exists (
        select 1 from public.courses as c
        where c.id = course_content.course_id and c.status = 'published'
    ))
    or exists (
        select 1 from public.enrollments as e
        where e.course_id = course_content.course_id and e.student_id = auth.uid()
            and e.status in ('active', 'completed')
    )
    or exists (
        select 1 from public.courses as c
        where c.id = course_content.course_id and c.tutor_id = auth.uid()
    )
    or exists (select 1 from public.profiles as a where a.id = auth.uid() and a.role = 'admin')
);

select private.drop_policies('public.enrollments');
create policy "naive enrollments" on public.enrollments for select to authenticated using (
    student_id = auth.uid()
    or exists (
        select 1 from public.courses as c
        where c.id = enrollments.course_id and c.tutor_id = auth.uid()
    )
    or exists (select 1 from public.profiles as a where a.id = auth.uid() and a.role = 'admin')
);

select private.drop_policies('public.conversations');
create policy "naive conversations" on public.conversations for select to authenticated using (
    exists (
        select 1 from public.conversation_participants as p
        where p.conversation_id = conversations.id and p.user_id = auth.uid()
    )
    or exists (select 1 from public.profiles as a where a.id = auth.uid() and a.role = 'admin')
);

select private.drop_policies('public.messages');
create policy "naive messages" on public.messages for select to authenticated using (
    exists (
        select 1 from public.conversation_participants as p
        where p.conversation_id = messages.conversation_id and p.user_id = auth.uid()
    )
    or exists (select 1 from public.profiles as a where a.id = auth.uid() and a.role = 'admin')
);

select private.drop_policies('public.notifications');
create policy "naive notifications" on public.notifications for select to authenticated
using (recipient_id = auth.uid());

select private.drop_policies('public.tutoring_sessions');
create policy "naive sessions" on public.tutoring_sessions for select to authenticated using (
    student_id = auth.uid()
    or tutor_id = auth.uid()
    or exists (select 1 from public.profiles as a where a.id = auth.uid() and a.role = 'admin')
);

select private.drop_policies('public.submissions');
create policy "naive submissions" on public.submissions for select to authenticated using (
    student_id = auth.uid()
    or exists (
        select 1 from public.assignments as a
        join public.courses as c on c.id = a.course_id
        where a.id = submissions.assignment_id and c.tutor_id = auth.uid()
    )
    or exists (select 1 from public.profiles as a where a.id = auth.uid() and a.role = 'admin')
);
"""

#: Indexes that serve the policies' lookups (who is enrolled, who teaches, who takes part,
#: whose row it is); the naive copy goes without them.
DROPPED_INDEXES = (
    "public.conversation_participants_user_idx",
    "public.enrollments_student_active_idx",
    "public.courses_tutor_id_idx",
    "public.notifications_recipient_created_idx",
    "public.notifications_unread_idx",
    "public.tutoring_sessions_tutor_starts_idx",
    "public.tutoring_sessions_student_starts_idx",
    "public.submissions_student_id_idx",
)
