-- Development seed: a few users of each role, created the way GoTrue creates them
-- (auth.users + auth.identities, empty strings rather than NULL for unused tokens).
-- Re-runnable: fixed ids, `on conflict do nothing`. Every password is "password123".

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
    '{"provider": "email", "providers": ["email"]}'::jsonb,
    jsonb_build_object('display_name', seed.display_name),
    now(),
    now(),
    '',
    '',
    '',
    ''
from (
    values
    ('a0000000-0000-4000-8000-000000000001'::uuid, 'admin@example.com', 'Ada Admin'),
    ('b0000000-0000-4000-8000-000000000001'::uuid, 'tutor.tom@example.com', 'Tom Tutor'),
    ('b0000000-0000-4000-8000-000000000002'::uuid, 'tutor.tara@example.com', 'Tara Tutor'),
    ('c0000000-0000-4000-8000-000000000001'::uuid, 'student.sam@example.com', 'Sam Student'),
    ('c0000000-0000-4000-8000-000000000002'::uuid, 'student.sue@example.com', 'Sue Student'),
    ('c0000000-0000-4000-8000-000000000003'::uuid, 'student.sid@example.com', 'Sid Student')
) as seed (id, email, display_name)
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
