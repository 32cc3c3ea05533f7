-- Hosted Supabase Storage guards storage.objects with a trigger (storage.protect_delete())
-- that refuses a plain SQL DELETE, even as postgres, unless the transaction sets
-- storage.allow_delete_query = 'true' (what the Storage API itself does). Without it,
-- public.delete_user() would fail on a hosted project as soon as the user has a file. The
-- setting is transaction-local and cleared again right after the delete.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

create or replace function private.delete_storage_objects(subject uuid, course_ids uuid [])
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    removed jsonb;
begin
    perform set_config('storage.allow_delete_query', 'true', true);
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
    into removed
    from gone as g;
    perform set_config('storage.allow_delete_query', 'false', true);
    return removed;
end
$$;
