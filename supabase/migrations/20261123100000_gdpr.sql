-- GDPR: a user's copy of everything about them (public.export_my_data(), right of access)
-- and erasure (public.delete_user(), right to erasure), both in SQL so that the API, the CLI
-- and an edge function share one definition. docs/rls.md ("GDPR") says what each covers.
--
-- Erasure deletes what is the user's own, anonymizes what other people still need, and
-- keeps what the law keeps:
--   * deleted: the profile, the account (auth.users, identities, sessions), enrollments,
--     sessions and their feedback, submissions, courses and articles the user wrote,
--     tickets they opened, devices, preferences, notifications, analytics events,
--     memberships, rate-limit counters, storage object rows in the user's folders;
--   * anonymized: messages the user sent (tombstones: no sender, no text, so the other
--     participants' history keeps its shape), staff replies on other users' tickets (no
--     author; the text is the platform's answer to that customer), references from other
--     people's rows (direct_key, created_by, cancelled_by, graded_by, assignee), other users'
--     notifications about the user (deleted) and analytics properties naming them;
--   * retained: payments, refunds and disputes without payer and payee (accounting), and the
--     audit log with the user's id replaced by an erasure id and names and e-mail redacted.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

-- A message whose sender was erased stays in the conversation as a tombstone: no sender,
-- no content. Dropping NOT NULL is a catalog change only; the check is validated by the
-- next migration, so adding it here scans nothing under the lock. Clients must now accept a
-- null sender (shown as "deleted user"); nothing else they read or write changes.
-- squawk-ignore ban-drop-not-null
alter table public.messages alter column sender_id drop not null;
alter table public.messages
add constraint messages_anonymous_is_deleted check (
    sender_id is not null or deleted_at is not null
) not valid;
comment on column public.messages.sender_id is
'The sender; null only on the tombstones of an erased user''s messages (public.delete_user()).';

-- A staff reply on another user's ticket outlives its author's account (author null).
-- squawk-ignore ban-drop-not-null
alter table public.support_replies alter column author_id drop not null;
comment on column public.support_replies.author_id is
'The author; null when the author''s account was erased (the reply belongs to the ticket).';

/*
 * ---------------------------------------------------------------------------
 * Triggers
 * ---------------------------------------------------------------------------
 */

-- As before, a reply stays on its ticket and with its author; erasure (the platform) may
-- only take the author away.
create or replace function private.guard_support_reply()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if new.query_id is distinct from old.query_id
        or (
            new.author_id is distinct from old.author_id
            and not (new.author_id is null and (select private.is_platform()))
        ) then
        perform private.deny('a reply stays on its ticket and with its author');
    end if;
    return new;
end
$$;

-- The audit log stays append-only, with one exception: erasure redacts an erased user's
-- personal data in place. It is allowed only to the platform, only while the transaction
-- says so (private.redact_audit_log() sets and clears the flag), only as an update, and only
-- of the actor, row id and data: when, what and how stay as they were.
create or replace function private.refuse_audit_change()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if tg_op = 'UPDATE'
        and coalesce(current_setting('pysync.audit_redaction', true), '') = 'on'
        and (select private.is_platform())
        and new.id = old.id
        and new.at = old.at
        and new.action = old.action
        and new.table_name = old.table_name
        and new.actor_role = old.actor_role
        and new.actor_app_role is not distinct from old.actor_app_role then
        return new;
    end if;
    perform private.deny('the audit log is append-only');
    return null;
end
$$;

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

-- A JSON document with an erased user taken out: the user's id, anywhere in a string,
-- becomes the erasure id (so one person's entries still read as one person's), and strings
-- equal to one of `secrets` (e-mail, display name; case-insensitive) become "[redacted]".
create function private.redact_jsonb(doc jsonb, subject uuid, erasure_id uuid, secrets text [])
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
declare
    value text;
begin
    case jsonb_typeof(doc)
        when 'object' then
            return (
                select coalesce(
                    jsonb_object_agg(e.key, private.redact_jsonb(e.value, subject, erasure_id, secrets)),
                    '{}'::jsonb
                )
                from jsonb_each(doc) as e
            );
        when 'array' then
            return (
                select coalesce(
                    jsonb_agg(
                        private.redact_jsonb(e.value, subject, erasure_id, secrets) order by e.n
                    ),
                    '[]'::jsonb
                )
                from jsonb_array_elements(doc) with ordinality as e (value, n)
            );
        when 'string' then
            value := doc #>> '{}';
            if lower(value) in (select lower(s) from unnest(secrets) as s where s <> '') then
                return to_jsonb('[redacted]'::text);
            end if;
            return to_jsonb(replace(value, subject::text, erasure_id::text));
        else
            return doc;
    end case;
end
$$;
revoke all on function private.redact_jsonb(jsonb, uuid, uuid, text []) from public;

-- Redacts every audit entry that names the erased user: as actor, as the row (their
-- profile), or anywhere in the recorded data (payer_id, student_id, graded_by, ...). A
-- profile's own entries also lose its free-text columns. Reads the whole log once (the
-- search is by value inside JSON, which no index serves): erasure is rare, the log is not.
create function private.redact_audit_log(
    subject uuid, erasure_id uuid, email text, display_name text
)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    needle text := subject::text;
    secrets text [] := array[coalesce(email, ''), coalesce(display_name, '')];
    profile_text_columns constant text [] := array['display_name', 'avatar_url', 'timezone', 'locale'];
    redacted integer;
begin
    perform set_config('pysync.audit_redaction', 'on', true);
    update public.audit_log as a
    set
        actor = case when a.actor = subject then erasure_id else a.actor end,
        row_id = case when a.row_id = subject then erasure_id else a.row_id end,
        old_data = private.redact_jsonb(
            case
                when a.table_name = 'public.profiles' and a.row_id = subject
                    then a.old_data - profile_text_columns
                else a.old_data
            end,
            subject, erasure_id, secrets
        ),
        new_data = private.redact_jsonb(
            case
                when a.table_name = 'public.profiles' and a.row_id = subject
                    then a.new_data - profile_text_columns
                else a.new_data
            end,
            subject, erasure_id, secrets
        )
    where a.actor = subject
        or a.row_id = subject
        or strpos(coalesce(a.old_data::text, ''), needle) > 0
        or strpos(coalesce(a.new_data::text, ''), needle) > 0
        or (email is not null and strpos(lower(coalesce(a.old_data::text, '') || coalesce(a.new_data::text, '')), lower(email)) > 0);
    get diagnostics redacted = row_count;
    perform set_config('pysync.audit_redaction', '', true);
    return redacted;
end
$$;
revoke all on function private.redact_audit_log(uuid, uuid, text, text) from public;

-- The export's parts that RLS does not give the user (auth data, and tables only admins
-- read). Each one reads the caller's own rows only: none takes a user id.

create function private.my_account()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    select jsonb_build_object(
        'id', u.id,
        'email', u.email,
        'phone', u.phone,
        'email_confirmed_at', u.email_confirmed_at,
        'phone_confirmed_at', u.phone_confirmed_at,
        'created_at', u.created_at,
        'last_sign_in_at', u.last_sign_in_at,
        'user_metadata', u.raw_user_meta_data,
        'identities', coalesce((
            select jsonb_agg(jsonb_build_object(
                'provider', i.provider, 'email', i.email, 'created_at', i.created_at,
                'last_sign_in_at', i.last_sign_in_at
            ) order by i.created_at)
            from auth.identities as i where i.user_id = u.id
        ), '[]'::jsonb)
    )
    from auth.users as u
    where u.id = (select auth.uid())
$$;
revoke all on function private.my_account() from public;
grant execute on function private.my_account() to authenticated;

create function private.my_analytics_events()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce(jsonb_agg(to_jsonb(e) order by e.at, e.id), '[]'::jsonb)
    from public.analytics_events as e
    where e.user_id = (select auth.uid())
$$;
revoke all on function private.my_analytics_events() from public;
grant execute on function private.my_analytics_events() to authenticated;

-- Audit entries about the caller: what they did, and what was done to their profile and to
-- their payments, enrollments and submissions. Other actors are not named (only whether it
-- was the caller, and the role that acted).
create function private.my_audit_entries()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    with me as (select (select auth.uid()) as id),
    my_rows (table_name, row_id) as (
        select 'public.profiles', me.id from me
        union all
        select 'public.payments', p.id from public.payments as p, me
        where p.payer_id = me.id or p.payee_id = me.id
        union all
        select 'public.refunds', r.id from public.refunds as r
        where r.payment_id in (select private.my_payment_ids())
        union all
        select 'public.disputes', d.id from public.disputes as d
        where d.payment_id in (select private.my_payment_ids())
        union all
        select 'public.enrollments', e.id from public.enrollments as e, me where e.student_id = me.id
        union all
        select 'public.submissions', s.id from public.submissions as s, me where s.student_id = me.id
    )
    select coalesce(jsonb_agg(jsonb_build_object(
        'at', a.at,
        'action', a.action,
        'table_name', a.table_name,
        'row_id', a.row_id,
        'by_me', a.actor is not distinct from (select me.id from me),
        'actor_role', a.actor_role,
        'actor_app_role', a.actor_app_role,
        'old_data', a.old_data,
        'new_data', a.new_data
    ) order by a.at, a.id), '[]'::jsonb)
    from public.audit_log as a
    where a.actor = (select me.id from me)
        or (a.table_name, a.row_id) in (select m.table_name, m.row_id from my_rows as m)
$$;
revoke all on function private.my_audit_entries() from public;
grant execute on function private.my_audit_entries() to authenticated;

-- Storage objects (metadata; the files come from the Storage API) the caller uploaded, or
-- that lie in their own folders (avatars/<id>/..., submissions/<id>/...).
create function private.my_storage_objects()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce(jsonb_agg(jsonb_build_object(
        'bucket_id', o.bucket_id,
        'name', o.name,
        'created_at', o.created_at,
        'updated_at', o.updated_at,
        'metadata', o.metadata,
        'user_metadata', o.user_metadata
    ) order by o.bucket_id, o.name), '[]'::jsonb)
    from storage.objects as o
    where o.owner = (select auth.uid())
        or o.owner_id = (select auth.uid())::text
        or (
            o.bucket_id in ('avatars', 'submissions')
            and (storage.foldername(o.name))[1] = (select auth.uid())::text
        )
$$;
revoke all on function private.my_storage_objects() from public;
grant execute on function private.my_storage_objects() to authenticated;

-- Storage object rows that erasure removes: the user's uploads, their own folders, and the
-- folders of the courses that go with them. Deletes the rows, returns {bucket, name} of each.
create function private.delete_storage_objects(subject uuid, course_ids uuid [])
returns jsonb
language sql
set search_path = ''
as $$
    with gone as (
        delete from storage.objects as o
        where o.owner = subject
            or o.owner_id = subject::text
            or (
                o.bucket_id in ('avatars', 'submissions')
                and (storage.foldername(o.name))[1] = subject::text
            )
            or (
                o.bucket_id = 'course-materials'
                and (storage.foldername(o.name))[1] = any(
                    array(select c::text from unnest(course_ids) as c)
                )
            )
        returning o.bucket_id, o.name
    )
    select coalesce(
        jsonb_agg(jsonb_build_object('bucket', g.bucket_id, 'name', g.name) order by g.bucket_id, g.name),
        '[]'::jsonb
    )
    from gone as g
$$;
revoke all on function private.delete_storage_objects(uuid, uuid []) from public;

/*
 * ---------------------------------------------------------------------------
 * Public API functions
 * ---------------------------------------------------------------------------
 */

-- Everything about the caller, as one document (right of access). Security invoker: each
-- part is read through the caller's own policies, filtered to rows that name the caller;
-- the few parts RLS does not give a user come from the private.my_*() helpers above.
-- Messages: the ones the caller sent, and the conversations they belong to (id, kind,
-- title, the caller's membership), never other people's messages (their data, not the
-- caller's; the app still shows them).
create function public.export_my_data()
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    me uuid := (select auth.uid());
begin
    if me is null then
        perform private.deny('sign in to export your data');
    end if;
    return jsonb_build_object(
        'version', 1,
        'generated_at', now(),
        'user_id', me,
        'account', private.my_account(),
        'profile', (select to_jsonb(p) from public.profiles as p where p.id = me),
        'enrollments', (
            select coalesce(jsonb_agg(to_jsonb(e) order by e.created_at, e.id), '[]'::jsonb)
            from public.enrollments as e where e.student_id = me
        ),
        'tutoring_sessions', (
            select coalesce(jsonb_agg(to_jsonb(s) order by s.starts_at, s.id), '[]'::jsonb)
            from public.tutoring_sessions as s where s.student_id = me or s.tutor_id = me
        ),
        'feedback_given', (
            select coalesce(jsonb_agg(to_jsonb(f) order by f.created_at, f.id), '[]'::jsonb)
            from public.session_feedback as f where f.student_id = me
        ),
        'feedback_received', (
            select coalesce(jsonb_agg(to_jsonb(f) order by f.created_at, f.id), '[]'::jsonb)
            from public.session_feedback as f where f.tutor_id = me
        ),
        'submissions', (
            select coalesce(jsonb_agg(to_jsonb(s) order by s.created_at, s.id), '[]'::jsonb)
            from public.submissions as s where s.student_id = me
        ),
        'grades_given', (
            select coalesce(jsonb_agg(jsonb_build_object(
                'submission_id', s.id, 'assignment_id', s.assignment_id, 'grade', s.grade,
                'feedback', s.feedback, 'graded_at', s.graded_at
            ) order by s.graded_at, s.id), '[]'::jsonb)
            from public.submissions as s where s.graded_by = me and s.student_id <> me
        ),
        'courses', (
            select coalesce(jsonb_agg(to_jsonb(c) || jsonb_build_object(
                'content', (
                    select coalesce(jsonb_agg(to_jsonb(cc) order by cc.position, cc.id), '[]'::jsonb)
                    from public.course_content as cc where cc.course_id = c.id
                ),
                'assignments', (
                    select coalesce(jsonb_agg(to_jsonb(a) order by a.created_at, a.id), '[]'::jsonb)
                    from public.assignments as a where a.course_id = c.id
                )
            ) order by c.created_at, c.id), '[]'::jsonb)
            from public.courses as c where c.tutor_id = me
        ),
        'articles', (
            select coalesce(jsonb_agg(to_jsonb(a) order by a.created_at, a.id), '[]'::jsonb)
            from public.articles as a where a.author_id = me
        ),
        'conversations', (
            select coalesce(jsonb_agg(jsonb_build_object(
                'id', c.id, 'kind', c.kind, 'course_id', c.course_id, 'title', c.title,
                'created_by_me', c.created_by is not distinct from me, 'created_at', c.created_at,
                'role', p.role, 'joined_at', p.joined_at, 'last_read_at', p.last_read_at
            ) order by c.created_at, c.id), '[]'::jsonb)
            from public.conversation_participants as p
            join public.conversations as c on c.id = p.conversation_id
            where p.user_id = me
        ),
        'messages_sent', (
            select coalesce(jsonb_agg(to_jsonb(m) order by m.created_at, m.id), '[]'::jsonb)
            from public.messages as m where m.sender_id = me
        ),
        'notifications', (
            select coalesce(jsonb_agg(to_jsonb(n) order by n.created_at, n.id), '[]'::jsonb)
            from public.notifications as n where n.recipient_id = me
        ),
        'devices', (
            select coalesce(jsonb_agg(to_jsonb(d) order by d.created_at, d.id), '[]'::jsonb)
            from public.devices as d where d.user_id = me
        ),
        'notification_preferences', (
            select coalesce(jsonb_agg(to_jsonb(np) order by np.category), '[]'::jsonb)
            from public.notification_preferences as np where np.user_id = me
        ),
        'push_deliveries', (
            select coalesce(jsonb_agg(to_jsonb(pd) order by pd.created_at, pd.id), '[]'::jsonb)
            from public.push_deliveries as pd where pd.recipient_id = me
        ),
        'payments', (
            select coalesce(jsonb_agg(to_jsonb(pay) || jsonb_build_object(
                'refunds', (
                    select coalesce(jsonb_agg(to_jsonb(r) order by r.created_at, r.id), '[]'::jsonb)
                    from public.refunds as r where r.payment_id = pay.id
                ),
                'disputes', (
                    select coalesce(jsonb_agg(to_jsonb(d) order by d.created_at, d.id), '[]'::jsonb)
                    from public.disputes as d where d.payment_id = pay.id
                )
            ) order by pay.created_at, pay.id), '[]'::jsonb)
            from public.payments as pay where pay.payer_id = me or pay.payee_id = me
        ),
        'organization_memberships', (
            select coalesce(jsonb_agg(jsonb_build_object(
                'organization_id', o.id, 'name', o.name, 'slug', o.slug, 'role', m.role,
                'joined_at', m.created_at
            ) order by m.created_at, m.id), '[]'::jsonb)
            from public.organization_members as m
            join public.organizations as o on o.id = m.organization_id
            where m.user_id = me
        ),
        'support_tickets', (
            select coalesce(jsonb_agg(to_jsonb(q) || jsonb_build_object(
                'replies', (
                    select coalesce(jsonb_agg(jsonb_build_object(
                        'id', r.id, 'by_me', r.author_id is not distinct from me, 'body', r.body,
                        'created_at', r.created_at, 'updated_at', r.updated_at
                    ) order by r.created_at, r.id), '[]'::jsonb)
                    from public.support_replies as r where r.query_id = q.id
                )
            ) order by q.created_at, q.id), '[]'::jsonb)
            from public.support_queries as q where q.owner_id = me
        ),
        'support_replies_on_other_tickets', (
            select coalesce(jsonb_agg(to_jsonb(r) order by r.created_at, r.id), '[]'::jsonb)
            from public.support_replies as r
            where r.author_id = me
                and not exists (
                    select 1 from public.support_queries as q where q.id = r.query_id and q.owner_id = me
                )
        ),
        'analytics_events', private.my_analytics_events(),
        'audit_entries', private.my_audit_entries(),
        'storage_objects', private.my_storage_objects()
    );
end
$$;
-- Supabase's default privileges grant anon execute directly, not through PUBLIC.
revoke all on function public.export_my_data() from public, anon;
grant execute on function public.export_my_data() to authenticated;
comment on function public.export_my_data() is
'Everything the platform holds about the caller, as one JSON document (GDPR right of access).';

-- Erases a user (right to erasure), in the caller's transaction: any failure leaves
-- everything as it was. For service_role (and postgres), and for admins through the API.
-- Refuses, changing nothing, when the user is the last owner of an organization (ownership
-- moves first, as private.guard_organization_member() demands of every other way out) or
-- teaches a course other people are enrolled in or submitted to (an admin moves the course
-- to another tutor first: erasure never takes other people's coursework with it).
-- Returns a summary: rows deleted and anonymized per table, rows retained, the erasure id
-- that stands for the user in the audit log, and the storage objects whose files the caller
-- must now delete through the Storage API.
create function public.delete_user(uid uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    -- Inside a security definer function current_user is the owner: the caller's role is
    -- the `role` setting (PostgREST's, or SET ROLE's), as private.audit_row_change() reads it.
    caller_role text := coalesce(nullif(current_setting('role', true), 'none'), session_user);
    user_email text;
    user_name text;
    erasure_id uuid := gen_random_uuid();
    blocking text;
    course_ids uuid [];
    storage_paths jsonb;
    deleted jsonb := '{}'::jsonb;
    anonymized jsonb := '{}'::jsonb;
    retained jsonb := '{}'::jsonb;
    n integer;
begin
    if caller_role not in ('service_role', 'postgres', 'supabase_admin')
        and not coalesce((select private.is_admin()), false) then
        perform private.deny('only an admin or the service role can delete a user');
    end if;

    select u.email into user_email from auth.users as u where u.id = uid for update;
    select p.display_name into user_name from public.profiles as p where p.id = uid for update;
    if user_email is null and user_name is null and not exists (
        select 1 from auth.users as u where u.id = uid
    ) then
        raise exception using errcode = 'P0002', message = format('no user with id %s', uid);
    end if;

    select string_agg(o.slug, ', ' order by o.slug) into blocking
    from public.organization_members as m
    join public.organizations as o on o.id = m.organization_id
    where m.user_id = uid and m.role = 'owner'
        and not exists (
            select 1 from public.organization_members as other
            where other.organization_id = m.organization_id and other.role = 'owner'
                and other.user_id <> uid
        );
    if blocking is not null then
        raise exception using
            errcode = '55000',
            message = format('the user is the last owner of organization(s) %s', blocking),
            hint = 'make another member an owner (or delete the organization) first';
    end if;

    select string_agg(c.title || ' (' || c.id || ')', ', ' order by c.title) into blocking
    from public.courses as c
    where c.tutor_id = uid and (
        exists (select 1 from public.enrollments as e where e.course_id = c.id and e.student_id <> uid)
        or exists (
            select 1 from public.submissions as s
            join public.assignments as a on a.id = s.assignment_id
            where a.course_id = c.id and s.student_id <> uid
        )
    );
    if blocking is not null then
        raise exception using
            errcode = '55000',
            message = format('the user teaches courses other people take: %s', blocking),
            hint = 'an admin moves these courses to another tutor (courses.tutor_id) first';
    end if;

    course_ids := array(select c.id from public.courses as c where c.tutor_id = uid);

    -- Files: object rows go now, the files themselves through the Storage API afterwards.
    storage_paths := private.delete_storage_objects(uid, course_ids);
    deleted := deleted || jsonb_build_object('storage.objects', jsonb_array_length(storage_paths));

    -- What other people keep, without the user in it.
    update public.messages as m
    set sender_id = null, deleted_at = coalesce(m.deleted_at, now()), body = '', attachment_path = null
    where m.sender_id = uid;
    get diagnostics n = row_count;
    anonymized := anonymized || jsonb_build_object('messages', n);

    update public.support_replies as r
    set author_id = null
    where r.author_id = uid
        and not exists (
            select 1 from public.support_queries as q where q.id = r.query_id and q.owner_id = uid
        );
    get diagnostics n = row_count;
    anonymized := anonymized || jsonb_build_object('support_replies', n);

    update public.conversations as c
    set
        created_by = case when c.created_by = uid then null else c.created_by end,
        direct_key = case when strpos(c.direct_key, uid::text) > 0 then null else c.direct_key end
    where c.created_by = uid or strpos(c.direct_key, uid::text) > 0;
    get diagnostics n = row_count;
    anonymized := anonymized || jsonb_build_object('conversations', n);

    update public.tutoring_sessions as s set cancelled_by = null
    where s.cancelled_by = uid and uid not in (s.student_id, s.tutor_id);
    get diagnostics n = row_count;
    anonymized := anonymized || jsonb_build_object('tutoring_sessions', n);

    update public.submissions as s set graded_by = null
    where s.graded_by = uid and s.student_id <> uid;
    get diagnostics n = row_count;
    anonymized := anonymized || jsonb_build_object('submissions', n);

    update public.support_queries as q set assignee_id = null
    where q.assignee_id = uid and q.owner_id <> uid;
    get diagnostics n = row_count;
    anonymized := anonymized || jsonb_build_object('support_queries', n);

    -- Other people's notifications about the user ("Sam sent you a message") name them in
    -- their text: they go.
    delete from public.notifications as nt
    where nt.recipient_id <> uid and strpos(nt.data::text, uid::text) > 0;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('notifications_of_others', n);

    update public.analytics_events as e
    set properties = private.redact_jsonb(e.properties, uid, erasure_id, array[user_email, user_name])
    where e.user_id <> uid and strpos(e.properties::text, uid::text) > 0;
    get diagnostics n = row_count;
    anonymized := anonymized || jsonb_build_object('analytics_events', n);

    -- Money: kept for accounting, without payer and payee.
    select count(*) into n from public.refunds as r
    join public.payments as p on p.id = r.payment_id
    where uid in (p.payer_id, p.payee_id);
    retained := retained || jsonb_build_object('refunds', n);
    select count(*) into n from public.disputes as d
    join public.payments as p on p.id = d.payment_id
    where uid in (p.payer_id, p.payee_id);
    retained := retained || jsonb_build_object('disputes', n);
    update public.payments as p
    set
        payer_id = case when p.payer_id = uid then null else p.payer_id end,
        payee_id = case when p.payee_id = uid then null else p.payee_id end
    where uid in (p.payer_id, p.payee_id);
    get diagnostics n = row_count;
    anonymized := anonymized || jsonb_build_object('payments', n);
    retained := retained || jsonb_build_object('payments', n);

    -- The user's own rows.
    delete from public.organization_members as m where m.user_id = uid;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('organization_members', n);
    delete from public.push_deliveries as pd where pd.recipient_id = uid;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('push_deliveries', n);
    delete from public.devices as d where d.user_id = uid;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('devices', n);
    delete from public.notification_preferences as np where np.user_id = uid;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('notification_preferences', n);
    delete from public.notifications as nt where nt.recipient_id = uid;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('notifications', n);
    delete from public.analytics_events as e where e.user_id = uid;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('analytics_events', n);
    delete from public.support_replies as r
    using public.support_queries as q
    where q.id = r.query_id and q.owner_id = uid;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('support_replies', n);
    delete from public.support_queries as q where q.owner_id = uid;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('support_queries', n);
    delete from public.session_feedback as f where uid in (f.student_id, f.tutor_id);
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('session_feedback', n);
    delete from public.tutoring_sessions as s where uid in (s.student_id, s.tutor_id);
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('tutoring_sessions', n);
    delete from public.submissions as s where s.student_id = uid;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('submissions', n);
    delete from public.enrollments as e where e.student_id = uid;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('enrollments', n);
    delete from public.conversation_participants as p where p.user_id = uid;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('conversation_participants', n);
    select count(*) into n from public.course_content as cc where cc.course_id = any(course_ids);
    deleted := deleted || jsonb_build_object('course_content', n);
    select count(*) into n from public.assignments as a where a.course_id = any(course_ids);
    deleted := deleted || jsonb_build_object('assignments', n);
    delete from public.courses as c where c.id = any(course_ids);
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('courses', n);
    delete from public.articles as a where a.author_id = uid;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('articles', n);
    delete from private.rate_limit_counters as rl where rl.key = 'user:' || uid::text;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('rate_limit_counters', n);
    delete from public.profiles as p where p.id = uid;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('profiles', n);

    -- The account last; identities and sessions go with it (on delete cascade).
    select count(*) into n from auth.identities as i where i.user_id = uid;
    deleted := deleted || jsonb_build_object('auth.identities', n);
    select count(*) into n from auth.sessions as s where s.user_id = uid;
    deleted := deleted || jsonb_build_object('auth.sessions', n);
    delete from auth.users as u where u.id = uid;
    get diagnostics n = row_count;
    deleted := deleted || jsonb_build_object('auth.users', n);

    -- The audit log keeps its entries, including the ones this erasure just wrote.
    n := private.redact_audit_log(uid, erasure_id, user_email, user_name);
    retained := retained || jsonb_build_object('audit_log', n);

    return jsonb_build_object(
        'user_id', uid,
        'erasure_id', erasure_id,
        'deleted', deleted,
        'anonymized', anonymized,
        'retained', retained,
        'storage_objects', storage_paths
    );
end
$$;
-- Supabase's default privileges grant anon execute directly, not through PUBLIC.
revoke all on function public.delete_user(uuid) from public, anon, authenticated;
grant execute on function public.delete_user(uuid) to authenticated, service_role;
comment on function public.delete_user(uuid) is
'Erases a user (GDPR right to erasure); admins and service_role only. Returns a summary.';
