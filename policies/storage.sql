-- Storage: buckets (with size and type limits, enforced by the Storage server) and who may
-- read and write which object paths. One policy per command covers every bucket, so the
-- permissive policies never stack up for the same role and command.
--
--   avatars/<user id>/...                          public downloads; the user writes
--   course-materials/<course id>/...               its students (active or completed) and the
--                                                  tutor read; the tutor writes
--   submissions/<user id>/<assignment id>/...      the student writes until the submission
--                                                  is graded; the course tutor reads
--   chat-attachments/<conversation id>/...         participants only, admins included
--                                                  (conversations are private): they read and
--                                                  upload; the uploader replaces and deletes
--   exports/<user id>/...                          the user's GDPR exports (export-my-data):
--                                                  the user alone reads, writes and deletes
--                                                  them (admins neither: a whole person's data)
--
-- Admins read every bucket but chat-attachments and exports, and may write into any user's
-- folder of the others (moderation, support), as they may change any row of the tables behind
-- them; the lock on graded work binds the student, as the submissions table's does
-- (docs/rls.md).

set local lock_timeout = '5s';
set local statement_timeout = '60s';

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values
(
    'avatars', 'avatars', true, 2097152,
    array['image/png', 'image/jpeg', 'image/webp', 'image/gif']
),
(
    'course-materials', 'course-materials', false, 104857600,
    array[
        'application/pdf', 'video/mp4', 'audio/mpeg', 'image/png', 'image/jpeg',
        'text/markdown', 'application/zip'
    ]
),
(
    'submissions', 'submissions', false, 26214400,
    array[
        'application/pdf', 'image/png', 'image/jpeg', 'text/plain', 'application/zip',
        'application/vnd.openxmlformats-officedocument.wordprocessingml.document'
    ]
),
(
    'chat-attachments', 'chat-attachments', false, 20971520,
    array[
        'image/png', 'image/jpeg', 'image/webp', 'image/gif', 'image/heic', 'application/pdf',
        'audio/mpeg', 'audio/mp4', 'audio/aac', 'audio/ogg', 'audio/webm', 'video/mp4',
        'text/plain'
    ]
),
('exports', 'exports', false, 104857600, array['application/json'])
on conflict (id) do update set
    name = excluded.name,
    public = excluded.public,
    file_size_limit = excluded.file_size_limit,
    allowed_mime_types = excluded.allowed_mime_types;

select private.drop_policies('storage.objects');

-- Listing a public bucket is not opened to anyone: public files are served by URL.
create policy "Users can read files their courses and work allow"
on storage.objects for select to authenticated
using (
    (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid())::text)
    or (
        bucket_id = 'course-materials'
        and (
            (storage.foldername(name))[1] in (select c::text from private.studied_course_ids() as c)
            or (storage.foldername(name))[1] in (select c::text from private.taught_course_ids() as c)
        )
    )
    or (
        bucket_id = 'submissions'
        and (
            (storage.foldername(name))[1] = (select auth.uid())::text
            or (storage.foldername(name))[2] in (
                select a::text from private.taught_assignment_ids() as a
            )
        )
    )
    or (
        bucket_id = 'chat-attachments'
        and (storage.foldername(name))[1] in (select c::text from private.my_conversation_ids() as c)
    )
    or (bucket_id = 'exports' and (storage.foldername(name))[1] = (select auth.uid())::text)
    or ((select private.is_admin()) and bucket_id not in ('chat-attachments', 'exports'))
);

create policy "Users can upload where their role allows"
on storage.objects for insert to authenticated
with check (
    (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid())::text)
    or (
        bucket_id = 'course-materials'
        and (storage.foldername(name))[1] in (select c::text from private.taught_course_ids() as c)
    )
    or (
        bucket_id = 'submissions'
        and (storage.foldername(name))[1] = (select auth.uid())::text
        and (storage.foldername(name))[2] in (
            select a::text from private.enrolled_assignment_ids() as a
        )
        and (storage.foldername(name))[2] not in (
            select a::text from private.graded_assignment_ids() as a
        )
    )
    or (
        bucket_id = 'chat-attachments'
        and (storage.foldername(name))[1] in (select c::text from private.my_conversation_ids() as c)
    )
    or (bucket_id = 'exports' and (storage.foldername(name))[1] = (select auth.uid())::text)
    or ((select private.is_admin()) and bucket_id not in ('chat-attachments', 'exports'))
);

create policy "Users replace the files they may upload"
on storage.objects for update to authenticated
using (
    (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid())::text)
    or (
        bucket_id = 'course-materials'
        and (storage.foldername(name))[1] in (select c::text from private.taught_course_ids() as c)
    )
    or (
        bucket_id = 'submissions'
        and (storage.foldername(name))[1] = (select auth.uid())::text
        and (storage.foldername(name))[2] not in (
            select a::text from private.graded_assignment_ids() as a
        )
    )
    or (
        bucket_id = 'chat-attachments'
        and coalesce(owner_id, owner::text) = (select auth.uid())::text
        and (storage.foldername(name))[1] in (select c::text from private.my_conversation_ids() as c)
    )
    or ((select private.is_admin()) and bucket_id not in ('chat-attachments', 'exports'))
)
with check (
    (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid())::text)
    or (
        bucket_id = 'course-materials'
        and (storage.foldername(name))[1] in (select c::text from private.taught_course_ids() as c)
    )
    or (
        bucket_id = 'submissions'
        and (storage.foldername(name))[1] = (select auth.uid())::text
        and (storage.foldername(name))[2] in (
            select a::text from private.enrolled_assignment_ids() as a
        )
        and (storage.foldername(name))[2] not in (
            select a::text from private.graded_assignment_ids() as a
        )
    )
    or (
        bucket_id = 'chat-attachments'
        and coalesce(owner_id, owner::text) = (select auth.uid())::text
        and (storage.foldername(name))[1] in (select c::text from private.my_conversation_ids() as c)
    )
    or ((select private.is_admin()) and bucket_id not in ('chat-attachments', 'exports'))
);

create policy "Users delete the files they may upload"
on storage.objects for delete to authenticated
using (
    (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid())::text)
    or (
        bucket_id = 'course-materials'
        and (storage.foldername(name))[1] in (select c::text from private.taught_course_ids() as c)
    )
    or (
        bucket_id = 'submissions'
        and (storage.foldername(name))[1] = (select auth.uid())::text
        and (storage.foldername(name))[2] not in (
            select a::text from private.graded_assignment_ids() as a
        )
    )
    or (
        bucket_id = 'chat-attachments'
        and coalesce(owner_id, owner::text) = (select auth.uid())::text
        and (storage.foldername(name))[1] in (select c::text from private.my_conversation_ids() as c)
    )
    or (bucket_id = 'exports' and (storage.foldername(name))[1] = (select auth.uid())::text)
    or ((select private.is_admin()) and bucket_id not in ('chat-attachments', 'exports'))
);
