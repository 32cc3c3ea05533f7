-- Development seed: a small tutoring world for `make demo` and manual testing.
-- Users are created the way GoTrue creates them (auth.users + auth.identities, empty strings
-- rather than NULL for unused tokens); the sign-up trigger creates their profiles, taking the
-- application role from app_metadata.app_role. Re-runnable: fixed ids, `on conflict do
-- nothing`. Every password is "password123".

insert into auth.users (
    instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
    raw_app_meta_data, raw_user_meta_data, created_at, updated_at,
    confirmation_token, recovery_token, email_change_token_new, email_change
)
select
    '00000000-0000-0000-0000-000000000000'::uuid,
    seed.id,
    'authenticated',
    'authenticated',
    seed.email,
    extensions.crypt('password123', extensions.gen_salt('bf')),
    now(),
    jsonb_build_object('provider', 'email', 'providers', jsonb_build_array('email'), 'app_role', seed.app_role),
    jsonb_build_object('display_name', seed.display_name),
    now(),
    now(),
    '',
    '',
    '',
    ''
from (
    values
    ('a0000000-0000-4000-8000-000000000001'::uuid, 'admin@example.com', 'Ada Admin', 'admin'),
    ('b0000000-0000-4000-8000-000000000001'::uuid, 'tutor.tom@example.com', 'Tom Tutor', 'tutor'),
    ('b0000000-0000-4000-8000-000000000002'::uuid, 'tutor.tara@example.com', 'Tara Tutor', 'tutor'),
    ('c0000000-0000-4000-8000-000000000001'::uuid, 'student.sam@example.com', 'Sam Student', 'student'),
    ('c0000000-0000-4000-8000-000000000002'::uuid, 'student.sue@example.com', 'Sue Student', 'student'),
    ('c0000000-0000-4000-8000-000000000003'::uuid, 'student.sid@example.com', 'Sid Student', 'student')
) as seed (id, email, display_name, app_role)
on conflict (id) do nothing;

insert into auth.identities (
    provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at
)
select
    u.id::text,
    u.id,
    jsonb_build_object('sub', u.id::text, 'email', u.email, 'email_verified', true),
    'email',
    now(),
    now(),
    now()
from auth.users as u
where u.email like '%@example.com'
on conflict (provider_id, provider) do nothing;

insert into public.courses (id, tutor_id, title, description, status)
values
(
    'd0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000001',
    'Algebra I', 'Equations, functions and graphs from first principles.', 'published'
),
(
    'd0000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000002',
    'Physics Basics', 'Motion, forces and energy with everyday experiments.', 'published'
),
(
    'd0000000-0000-4000-8000-000000000003', 'b0000000-0000-4000-8000-000000000001',
    'Calculus (draft)', 'Limits, derivatives and integrals.', 'draft'
)
on conflict (id) do nothing;

insert into public.course_content (
    id, course_id, parent_id, kind, position, title, content_type, body, is_preview
)
values
(
    'e0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8000-000000000001', null,
    'module', 0, 'Linear equations', 'markdown', null, true
),
(
    'e0000000-0000-4000-8000-000000000002', 'd0000000-0000-4000-8000-000000000001',
    'e0000000-0000-4000-8000-000000000001', 'lesson', 0, 'What is an equation?', 'markdown',
    '# Equations\nAn equation says two expressions are equal.', true
),
(
    'e0000000-0000-4000-8000-000000000003', 'd0000000-0000-4000-8000-000000000001',
    'e0000000-0000-4000-8000-000000000001', 'lesson', 1, 'Solving for x', 'markdown',
    '# Solving for x\nDo the same thing to both sides.', false
),
(
    'e0000000-0000-4000-8000-000000000004', 'd0000000-0000-4000-8000-000000000002', null,
    'module', 0, 'Motion', 'markdown', null, false
),
(
    'e0000000-0000-4000-8000-000000000005', 'd0000000-0000-4000-8000-000000000002',
    'e0000000-0000-4000-8000-000000000004', 'lesson', 0, 'Speed and velocity', 'video',
    null, true
)
on conflict (id) do nothing;

insert into public.enrollments (id, student_id, course_id, status)
values
(
    'f0000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000001',
    'd0000000-0000-4000-8000-000000000001', 'active'
),
(
    'f0000000-0000-4000-8000-000000000002', 'c0000000-0000-4000-8000-000000000002',
    'd0000000-0000-4000-8000-000000000001', 'active'
),
(
    'f0000000-0000-4000-8000-000000000003', 'c0000000-0000-4000-8000-000000000002',
    'd0000000-0000-4000-8000-000000000002', 'completed'
),
(
    'f0000000-0000-4000-8000-000000000004', 'c0000000-0000-4000-8000-000000000003',
    'd0000000-0000-4000-8000-000000000002', 'active'
)
on conflict (id) do nothing;

insert into public.tutoring_sessions (
    id, tutor_id, student_id, course_id, starts_at, ends_at, status, meeting_url
)
values
(
    '10000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000001',
    'c0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8000-000000000001',
    date_trunc('hour', now()) + interval '1 day', date_trunc('hour', now()) + interval '25 hours',
    'confirmed', 'https://meet.example.com/algebra-sam'
),
(
    '10000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000001',
    'c0000000-0000-4000-8000-000000000002', 'd0000000-0000-4000-8000-000000000001',
    date_trunc('hour', now()) - interval '7 days', date_trunc('hour', now()) - interval '167 hours',
    'completed', 'https://meet.example.com/algebra-sue'
),
(
    '10000000-0000-4000-8000-000000000003', 'b0000000-0000-4000-8000-000000000002',
    'c0000000-0000-4000-8000-000000000003', null,
    date_trunc('hour', now()) + interval '7 days', date_trunc('hour', now()) + interval '169 hours',
    'requested', null
)
on conflict (id) do nothing;

insert into public.session_feedback (id, session_id, student_id, tutor_id, rating, comment)
values (
    '11000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000002',
    'c0000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000001',
    5, 'Clear explanations and lots of practice problems.'
)
on conflict (id) do nothing;

insert into public.assignments (id, course_id, title, instructions, rubric, max_points, due_at)
values
(
    '12000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8000-000000000001',
    'Homework 1: linear equations', 'Solve the ten equations on the worksheet.',
    '{"accuracy": 70, "working shown": 30}', 100, now() + interval '7 days'
),
(
    '12000000-0000-4000-8000-000000000002', 'd0000000-0000-4000-8000-000000000002',
    'Lab 1: measuring speed', 'Time a rolling ball over one metre, five times.',
    '[{"criterion": "method", "points": 50}, {"criterion": "analysis", "points": 50}]', 100,
    now() + interval '14 days'
)
on conflict (id) do nothing;

insert into public.submissions (id, assignment_id, student_id, status, body, grade, feedback)
values
(
    '13000000-0000-4000-8000-000000000001', '12000000-0000-4000-8000-000000000001',
    'c0000000-0000-4000-8000-000000000001', 'submitted', 'x = 4, x = -2, ...', null, null
),
(
    '13000000-0000-4000-8000-000000000002', '12000000-0000-4000-8000-000000000001',
    'c0000000-0000-4000-8000-000000000002', 'graded', 'x = 4, x = -3, ...', 92,
    'Great work; check question 2.'
)
on conflict (id) do nothing;

insert into public.articles (id, author_id, title, slug, summary, body, tags, status)
values
(
    '14000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000001',
    'How to study algebra', 'how-to-study-algebra', 'Five habits that make algebra stick.',
    'Practise a little every day...', array['algebra', 'study-skills'], 'published'
),
(
    '14000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000002',
    'Experiments at home', 'experiments-at-home', 'Physics with kitchen equipment.',
    'Draft...', array['physics'], 'draft'
)
on conflict (id) do nothing;

insert into public.support_queries (id, owner_id, subject, body, status, assignee_id)
values (
    '15000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000003',
    'Cannot open the lab video', 'The Speed and velocity video does not load on my phone.',
    'pending', 'a0000000-0000-4000-8000-000000000001'
)
on conflict (id) do nothing;

insert into public.support_replies (id, query_id, author_id, body)
values (
    '16000000-0000-4000-8000-000000000001', '15000000-0000-4000-8000-000000000001',
    'a0000000-0000-4000-8000-000000000001', 'Thanks, we are looking into it. Which phone do you use?'
)
on conflict (id) do nothing;

-- Messaging: a direct conversation between Sam and Tom, Algebra I's class conversation (its
-- members, Tom and the active students, are added by trigger) and a direct conversation
-- between Sid and Tara. Messages are inserted as the platform with fixed times; their
-- notifications and realtime nudges come from the triggers, on the first run only.
insert into public.conversations (id, kind, course_id, title, created_by, direct_key)
values
(
    '17000000-0000-4000-8000-000000000001', 'direct', null, null,
    'c0000000-0000-4000-8000-000000000001',
    'b0000000-0000-4000-8000-000000000001:c0000000-0000-4000-8000-000000000001'
),
(
    '17000000-0000-4000-8000-000000000002', 'course', 'd0000000-0000-4000-8000-000000000001',
    'Algebra I class chat', 'b0000000-0000-4000-8000-000000000001', null
),
(
    '17000000-0000-4000-8000-000000000003', 'direct', null, null,
    'c0000000-0000-4000-8000-000000000003',
    'b0000000-0000-4000-8000-000000000002:c0000000-0000-4000-8000-000000000003'
)
on conflict do nothing;

insert into public.conversation_participants (id, conversation_id, user_id, role)
values
(
    '18000000-0000-4000-8000-000000000001', '17000000-0000-4000-8000-000000000001',
    'c0000000-0000-4000-8000-000000000001', 'member'
),
(
    '18000000-0000-4000-8000-000000000002', '17000000-0000-4000-8000-000000000001',
    'b0000000-0000-4000-8000-000000000001', 'member'
),
(
    '18000000-0000-4000-8000-000000000003', '17000000-0000-4000-8000-000000000003',
    'c0000000-0000-4000-8000-000000000003', 'member'
),
(
    '18000000-0000-4000-8000-000000000004', '17000000-0000-4000-8000-000000000003',
    'b0000000-0000-4000-8000-000000000002', 'member'
)
on conflict do nothing;

insert into public.messages (id, conversation_id, sender_id, body, created_at)
values
(
    '19000000-0000-4000-8000-000000000001', '17000000-0000-4000-8000-000000000001',
    'c0000000-0000-4000-8000-000000000001', 'Hi Tom, can we go over question 2 before Tuesday?',
    now() - interval '2 hours'
),
(
    '19000000-0000-4000-8000-000000000002', '17000000-0000-4000-8000-000000000001',
    'b0000000-0000-4000-8000-000000000001', 'Of course, bring your working.',
    now() - interval '115 minutes'
),
(
    '19000000-0000-4000-8000-000000000003', '17000000-0000-4000-8000-000000000002',
    'b0000000-0000-4000-8000-000000000001', 'Welcome to Algebra I! Post your questions here.',
    now() - interval '1 day'
),
(
    '19000000-0000-4000-8000-000000000004', '17000000-0000-4000-8000-000000000002',
    'c0000000-0000-4000-8000-000000000002', 'Thanks! Is Homework 1 due next week?',
    now() - interval '20 hours'
),
(
    '19000000-0000-4000-8000-000000000005', '17000000-0000-4000-8000-000000000003',
    'c0000000-0000-4000-8000-000000000003', 'Hi Tara, the lab video does not load for me.',
    now() - interval '3 hours'
)
on conflict do nothing;

insert into public.notifications (id, recipient_id, type, title, body, data, read_at)
values
(
    '1a000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000001',
    'announcement', 'Welcome to pysync tutoring', 'Find a tutor, join a course, ask anything.',
    '{}', now() - interval '1 day'
),
(
    '1a000000-0000-4000-8000-000000000002', 'c0000000-0000-4000-8000-000000000003',
    'announcement', 'New: course group chats', 'Every course now has a class conversation.',
    '{}', null
)
on conflict do nothing;

insert into public.devices (id, user_id, device_id, platform, push_token, app_version)
values (
    '1b000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000001',
    'sam-pixel-8', 'android', 'seed-fcm-token-sam-pixel-8', '1.0.0'
)
on conflict do nothing;

insert into public.push_deliveries (id, notification_id, device_id, sent_at, clicked_at)
values (
    '1c000000-0000-4000-8000-000000000001', '1a000000-0000-4000-8000-000000000001',
    '1b000000-0000-4000-8000-000000000001', now() - interval '1 day',
    now() - interval '23 hours'
)
on conflict do nothing;

-- Platform: an organization with an e-mail domain (Tom owns it, Sam is a member), Sam's
-- payment for Algebra I with a partial refund, and Sue's payment for her completed session.
insert into public.organizations (id, name, slug, email_domain)
values (
    '20000000-0000-4000-8000-000000000001', 'Northside Academy', 'northside-academy',
    'northside.example.edu'
)
on conflict (id) do nothing;

insert into public.organization_members (id, organization_id, user_id, role)
values
(
    '21000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000001',
    'b0000000-0000-4000-8000-000000000001', 'owner'
),
(
    '21000000-0000-4000-8000-000000000002', '20000000-0000-4000-8000-000000000001',
    'c0000000-0000-4000-8000-000000000001', 'member'
)
on conflict (id) do nothing;

insert into public.payments (
    id, payer_id, payee_id, session_id, course_id, amount_minor, currency, status, provider,
    provider_intent_id
)
values
(
    '22000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000001',
    'b0000000-0000-4000-8000-000000000001', null, 'd0000000-0000-4000-8000-000000000001',
    4900, 'EUR', 'succeeded', 'stripe', 'pi_seed_sam_algebra'
),
(
    '22000000-0000-4000-8000-000000000002', 'c0000000-0000-4000-8000-000000000002',
    'b0000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000002', null,
    3500, 'EUR', 'succeeded', 'stripe', 'pi_seed_sue_session'
)
on conflict (id) do nothing;

insert into public.refunds (id, payment_id, amount_minor, reason, status, provider_refund_id)
values (
    '23000000-0000-4000-8000-000000000001', '22000000-0000-4000-8000-000000000001', 900,
    'Goodwill: the first lesson video was unavailable', 'succeeded', 're_seed_sam_algebra'
)
on conflict (id) do nothing;
