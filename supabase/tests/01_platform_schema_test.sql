-- pgTAP: the shape of the learning, tutoring, content and support schema — tables, RLS, required columns and the exact set of
-- policies on each table (a policy added or removed without updating this file fails here).
begin;
select plan(143);

select has_table('public', 'articles', 'public.articles exists');
select has_table('public', 'assignments', 'public.assignments exists');
select has_table('public', 'course_content', 'public.course_content exists');
select has_table('public', 'courses', 'public.courses exists');
select has_table('public', 'enrollments', 'public.enrollments exists');
select has_table('public', 'profiles', 'public.profiles exists');
select has_table('public', 'session_feedback', 'public.session_feedback exists');
select has_table('public', 'submissions', 'public.submissions exists');
select has_table('public', 'support_queries', 'public.support_queries exists');
select has_table('public', 'support_replies', 'public.support_replies exists');
select has_table('public', 'tutoring_sessions', 'public.tutoring_sessions exists');
select ok((select relrowsecurity from pg_class where oid = 'public.articles'::regclass), 'articles has row level security');
select col_not_null('public', 'articles', 'id', 'articles.id is not null');
select col_not_null('public', 'articles', 'author_id', 'articles.author_id is not null');
select col_not_null('public', 'articles', 'title', 'articles.title is not null');
select col_not_null('public', 'articles', 'slug', 'articles.slug is not null');
select col_not_null('public', 'articles', 'summary', 'articles.summary is not null');
select col_not_null('public', 'articles', 'body', 'articles.body is not null');
select col_not_null('public', 'articles', 'tags', 'articles.tags is not null');
select col_not_null('public', 'articles', 'status', 'articles.status is not null');
select col_not_null('public', 'articles', 'created_at', 'articles.created_at is not null');
select col_not_null('public', 'articles', 'updated_at', 'articles.updated_at is not null');
select col_not_null('public', 'articles', 'version', 'articles.version is not null');
select col_not_null('public', 'articles', 'sync_xid', 'articles.sync_xid is not null');
select policies_are('public', 'articles', array[
    'Anyone can read published articles',
    'Authors can delete their articles',
    'Authors can update their articles',
    'Tutors and admins can write articles',
    'Users can read published articles and their own'
]);
select ok((select relrowsecurity from pg_class where oid = 'public.assignments'::regclass), 'assignments has row level security');
select col_not_null('public', 'assignments', 'id', 'assignments.id is not null');
select col_not_null('public', 'assignments', 'course_id', 'assignments.course_id is not null');
select col_not_null('public', 'assignments', 'title', 'assignments.title is not null');
select col_not_null('public', 'assignments', 'instructions', 'assignments.instructions is not null');
select col_not_null('public', 'assignments', 'rubric', 'assignments.rubric is not null');
select col_not_null('public', 'assignments', 'max_points', 'assignments.max_points is not null');
select col_not_null('public', 'assignments', 'created_at', 'assignments.created_at is not null');
select col_not_null('public', 'assignments', 'updated_at', 'assignments.updated_at is not null');
select col_not_null('public', 'assignments', 'version', 'assignments.version is not null');
select col_not_null('public', 'assignments', 'sync_xid', 'assignments.sync_xid is not null');
select policies_are('public', 'assignments', array[
    'Enrolled students and the tutor can read assignments',
    'Tutors can delete assignments in their courses',
    'Tutors can set assignments in their courses',
    'Tutors can update assignments in their courses'
]);
select ok((select relrowsecurity from pg_class where oid = 'public.course_content'::regclass), 'course_content has row level security');
select col_not_null('public', 'course_content', 'id', 'course_content.id is not null');
select col_not_null('public', 'course_content', 'course_id', 'course_content.course_id is not null');
select col_not_null('public', 'course_content', 'kind', 'course_content.kind is not null');
select col_not_null('public', 'course_content', 'position', 'course_content.position is not null');
select col_not_null('public', 'course_content', 'title', 'course_content.title is not null');
select col_not_null('public', 'course_content', 'content_type', 'course_content.content_type is not null');
select col_not_null('public', 'course_content', 'is_preview', 'course_content.is_preview is not null');
select col_not_null('public', 'course_content', 'created_at', 'course_content.created_at is not null');
select col_not_null('public', 'course_content', 'updated_at', 'course_content.updated_at is not null');
select col_not_null('public', 'course_content', 'version', 'course_content.version is not null');
select col_not_null('public', 'course_content', 'sync_xid', 'course_content.sync_xid is not null');
select policies_are('public', 'course_content', array[
    'Anyone can read preview content of published courses',
    'Enrolled students and the tutor can read content',
    'Tutors can add content to their courses',
    'Tutors can delete content of their courses',
    'Tutors can update content of their courses'
]);
select ok((select relrowsecurity from pg_class where oid = 'public.courses'::regclass), 'courses has row level security');
select col_not_null('public', 'courses', 'id', 'courses.id is not null');
select col_not_null('public', 'courses', 'tutor_id', 'courses.tutor_id is not null');
select col_not_null('public', 'courses', 'title', 'courses.title is not null');
select col_not_null('public', 'courses', 'description', 'courses.description is not null');
select col_not_null('public', 'courses', 'status', 'courses.status is not null');
select col_not_null('public', 'courses', 'created_at', 'courses.created_at is not null');
select col_not_null('public', 'courses', 'updated_at', 'courses.updated_at is not null');
select col_not_null('public', 'courses', 'version', 'courses.version is not null');
select col_not_null('public', 'courses', 'sync_xid', 'courses.sync_xid is not null');
select policies_are('public', 'courses', array[
    'Anyone can read published courses',
    'Tutors can create their own courses',
    'Tutors can delete their own courses',
    'Tutors can update their own courses',
    'Users can read published courses and their own'
]);
select ok((select relrowsecurity from pg_class where oid = 'public.enrollments'::regclass), 'enrollments has row level security');
select col_not_null('public', 'enrollments', 'id', 'enrollments.id is not null');
select col_not_null('public', 'enrollments', 'student_id', 'enrollments.student_id is not null');
select col_not_null('public', 'enrollments', 'course_id', 'enrollments.course_id is not null');
select col_not_null('public', 'enrollments', 'status', 'enrollments.status is not null');
select col_not_null('public', 'enrollments', 'enrolled_at', 'enrollments.enrolled_at is not null');
select col_not_null('public', 'enrollments', 'created_at', 'enrollments.created_at is not null');
select col_not_null('public', 'enrollments', 'updated_at', 'enrollments.updated_at is not null');
select col_not_null('public', 'enrollments', 'version', 'enrollments.version is not null');
select col_not_null('public', 'enrollments', 'sync_xid', 'enrollments.sync_xid is not null');
select policies_are('public', 'enrollments', array[
    'Admins can delete enrollments',
    'Students and their tutors can read enrollments',
    'Students and their tutors can update enrollments',
    'Students can enroll themselves in published courses'
]);
select ok((select relrowsecurity from pg_class where oid = 'public.profiles'::regclass), 'profiles has row level security');
select col_not_null('public', 'profiles', 'id', 'profiles.id is not null');
select col_not_null('public', 'profiles', 'display_name', 'profiles.display_name is not null');
select col_not_null('public', 'profiles', 'timezone', 'profiles.timezone is not null');
select col_not_null('public', 'profiles', 'locale', 'profiles.locale is not null');
select col_not_null('public', 'profiles', 'role', 'profiles.role is not null');
select col_not_null('public', 'profiles', 'onboarded', 'profiles.onboarded is not null');
select col_not_null('public', 'profiles', 'created_at', 'profiles.created_at is not null');
select col_not_null('public', 'profiles', 'updated_at', 'profiles.updated_at is not null');
select col_not_null('public', 'profiles', 'version', 'profiles.version is not null');
select col_not_null('public', 'profiles', 'sync_xid', 'profiles.sync_xid is not null');
select policies_are('public', 'profiles', array[
    'Admins can delete profiles',
    'Users can read active profiles; admins all',
    'Users can update their own profile and admins any'
]);
select ok((select relrowsecurity from pg_class where oid = 'public.session_feedback'::regclass), 'session_feedback has row level security');
select col_not_null('public', 'session_feedback', 'id', 'session_feedback.id is not null');
select col_not_null('public', 'session_feedback', 'session_id', 'session_feedback.session_id is not null');
select col_not_null('public', 'session_feedback', 'student_id', 'session_feedback.student_id is not null');
select col_not_null('public', 'session_feedback', 'tutor_id', 'session_feedback.tutor_id is not null');
select col_not_null('public', 'session_feedback', 'rating', 'session_feedback.rating is not null');
select col_not_null('public', 'session_feedback', 'comment', 'session_feedback.comment is not null');
select col_not_null('public', 'session_feedback', 'created_at', 'session_feedback.created_at is not null');
select col_not_null('public', 'session_feedback', 'updated_at', 'session_feedback.updated_at is not null');
select col_not_null('public', 'session_feedback', 'version', 'session_feedback.version is not null');
select col_not_null('public', 'session_feedback', 'sync_xid', 'session_feedback.sync_xid is not null');
select policies_are('public', 'session_feedback', array[
    'Admins can delete feedback',
    'Students and the rated tutor can read feedback',
    'Students can edit their feedback',
    'Students can rate their completed sessions'
]);
select ok((select relrowsecurity from pg_class where oid = 'public.submissions'::regclass), 'submissions has row level security');
select col_not_null('public', 'submissions', 'id', 'submissions.id is not null');
select col_not_null('public', 'submissions', 'assignment_id', 'submissions.assignment_id is not null');
select col_not_null('public', 'submissions', 'student_id', 'submissions.student_id is not null');
select col_not_null('public', 'submissions', 'status', 'submissions.status is not null');
select col_not_null('public', 'submissions', 'body', 'submissions.body is not null');
select col_not_null('public', 'submissions', 'created_at', 'submissions.created_at is not null');
select col_not_null('public', 'submissions', 'updated_at', 'submissions.updated_at is not null');
select col_not_null('public', 'submissions', 'version', 'submissions.version is not null');
select col_not_null('public', 'submissions', 'sync_xid', 'submissions.sync_xid is not null');
select policies_are('public', 'submissions', array[
    'Enrolled students can submit their own work',
    'Students and their tutors can read submissions',
    'Students can delete ungraded work',
    'Students edit ungraded work and tutors grade it'
]);
select ok((select relrowsecurity from pg_class where oid = 'public.support_queries'::regclass), 'support_queries has row level security');
select col_not_null('public', 'support_queries', 'id', 'support_queries.id is not null');
select col_not_null('public', 'support_queries', 'owner_id', 'support_queries.owner_id is not null');
select col_not_null('public', 'support_queries', 'subject', 'support_queries.subject is not null');
select col_not_null('public', 'support_queries', 'body', 'support_queries.body is not null');
select col_not_null('public', 'support_queries', 'status', 'support_queries.status is not null');
select col_not_null('public', 'support_queries', 'created_at', 'support_queries.created_at is not null');
select col_not_null('public', 'support_queries', 'updated_at', 'support_queries.updated_at is not null');
select col_not_null('public', 'support_queries', 'version', 'support_queries.version is not null');
select col_not_null('public', 'support_queries', 'sync_xid', 'support_queries.sync_xid is not null');
select policies_are('public', 'support_queries', array[
    'Owners and admins can delete tickets',
    'Owners and admins can read tickets',
    'Owners and admins can update tickets',
    'Users can open tickets for themselves'
]);
select ok((select relrowsecurity from pg_class where oid = 'public.support_replies'::regclass), 'support_replies has row level security');
select col_not_null('public', 'support_replies', 'id', 'support_replies.id is not null');
select col_not_null('public', 'support_replies', 'query_id', 'support_replies.query_id is not null');
select col_is_null('public', 'support_replies', 'author_id', 'support_replies.author_id is nullable (erased authors)');
select col_not_null('public', 'support_replies', 'body', 'support_replies.body is not null');
select col_not_null('public', 'support_replies', 'created_at', 'support_replies.created_at is not null');
select col_not_null('public', 'support_replies', 'updated_at', 'support_replies.updated_at is not null');
select col_not_null('public', 'support_replies', 'version', 'support_replies.version is not null');
select col_not_null('public', 'support_replies', 'sync_xid', 'support_replies.sync_xid is not null');
select policies_are('public', 'support_replies', array[
    'Authors can delete their replies',
    'Authors can edit their replies',
    'Ticket owners and admins can read replies',
    'Ticket owners and admins can reply'
]);
select ok((select relrowsecurity from pg_class where oid = 'public.tutoring_sessions'::regclass), 'tutoring_sessions has row level security');
select col_not_null('public', 'tutoring_sessions', 'id', 'tutoring_sessions.id is not null');
select col_not_null('public', 'tutoring_sessions', 'tutor_id', 'tutoring_sessions.tutor_id is not null');
select col_not_null('public', 'tutoring_sessions', 'student_id', 'tutoring_sessions.student_id is not null');
select col_not_null('public', 'tutoring_sessions', 'starts_at', 'tutoring_sessions.starts_at is not null');
select col_not_null('public', 'tutoring_sessions', 'ends_at', 'tutoring_sessions.ends_at is not null');
select col_not_null('public', 'tutoring_sessions', 'status', 'tutoring_sessions.status is not null');
select col_not_null('public', 'tutoring_sessions', 'notes', 'tutoring_sessions.notes is not null');
select col_not_null('public', 'tutoring_sessions', 'created_at', 'tutoring_sessions.created_at is not null');
select col_not_null('public', 'tutoring_sessions', 'updated_at', 'tutoring_sessions.updated_at is not null');
select col_not_null('public', 'tutoring_sessions', 'version', 'tutoring_sessions.version is not null');
select col_not_null('public', 'tutoring_sessions', 'sync_xid', 'tutoring_sessions.sync_xid is not null');
select policies_are('public', 'tutoring_sessions', array[
    'Admins can delete sessions',
    'Participants can read their sessions',
    'Participants can update their sessions',
    'Students can request sessions for themselves'
]);
select policies_are('storage', 'objects', array[
    'Users can read files their courses and work allow',
    'Users can upload where their role allows',
    'Users delete the files they may upload',
    'Users replace the files they may upload'
]);
select results_eq('select id from storage.buckets order by id', array['avatars', 'chat-attachments', 'course-materials', 'exports', 'submissions'], 'the platform buckets exist');

select * from finish();
rollback;
