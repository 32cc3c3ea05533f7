-- The database side of Supabase Storage as a current project has it (supabase/storage tenant
-- migrations, 2026): buckets, object metadata (RLS decides who may read or write an object),
-- the triggers the Storage server installs (no plain SQL delete, updated_at, bucket-name
-- length) and the helpers policies and clients use. Local emulation only.
-- Not reproduced: analytics (Iceberg) and vector buckets, object versioning beyond its
-- columns, and the list/prefix functions only the Storage server calls.

create schema if not exists storage authorization supabase_admin;
grant all on schema storage to supabase_storage_admin, dashboard_user;
-- postgres may use storage but, since 2025, create nothing in it.
grant usage on schema storage to postgres, anon, authenticated, service_role;

-- What the image (as supabase_admin) and the Storage server (as its owner) create in storage
-- is granted to postgres and the API roles.
alter default privileges in schema storage grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges in schema storage grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges in schema storage grant all on sequences to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_storage_admin in schema storage
grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_storage_admin in schema storage
grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_storage_admin in schema storage
grant all on sequences to postgres, anon, authenticated, service_role;

-- The Storage server runs its migrations as supabase_storage_admin, so it owns what follows.
set role supabase_storage_admin;

create table storage.migrations (
    id integer primary key,
    name varchar(100) unique not null,
    hash varchar(40) not null,
    executed_at timestamp default current_timestamp
);

create type storage.buckettype as enum ('STANDARD', 'ANALYTICS', 'VECTOR');

create table storage.buckets (
    id text primary key,
    name text not null,
    owner uuid,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    public boolean default false,
    avif_autodetection boolean default false,
    file_size_limit bigint,
    allowed_mime_types text[],
    owner_id text,
    type storage.buckettype not null default 'STANDARD',
    versioning_status text not null default 'DISABLED',
    constraint buckets_versioning_status_check
    check (versioning_status in ('DISABLED', 'ENABLED', 'SUSPENDED')),
    constraint buckets_versioning_standard_only_check
    check (type = 'STANDARD' or versioning_status = 'DISABLED'),
    constraint buckets_versioning_dark_check check (versioning_status = 'DISABLED')
);
comment on column storage.buckets.owner is 'Field is deprecated, use owner_id instead';
create unique index bname on storage.buckets (name);

create table storage.objects (
    id uuid primary key default gen_random_uuid(),
    bucket_id text constraint "objects_bucketId_fkey" references storage.buckets (id),
    name text,
    owner uuid,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    last_accessed_at timestamptz default now(),
    metadata jsonb,
    path_tokens text[] generated always as (string_to_array(name, '/')) stored,
    version text,
    owner_id text,
    user_metadata jsonb,
    archived_at timestamptz,
    is_delete_marker boolean not null default false,
    is_versioned boolean not null default false
);
comment on column storage.objects.owner is 'Field is deprecated, use owner_id instead';
create unique index bucketid_objname on storage.objects (bucket_id, name);
create index name_prefix_search on storage.objects (name text_pattern_ops);
create index idx_objects_bucket_id_name on storage.objects (bucket_id, (name collate "C"));

create table storage.s3_multipart_uploads (
    id text primary key,
    in_progress_size bigint not null default 0,
    upload_signature text not null,
    bucket_id text not null references storage.buckets (id),
    key text collate "C" not null,
    version text not null,
    owner_id text,
    created_at timestamptz not null default now(),
    user_metadata jsonb,
    metadata jsonb
);
create index idx_multipart_uploads_list
on storage.s3_multipart_uploads (bucket_id, key, created_at);

create table storage.s3_multipart_uploads_parts (
    id uuid primary key default gen_random_uuid(),
    upload_id text not null references storage.s3_multipart_uploads (id) on delete cascade,
    size bigint not null default 0,
    part_number integer not null,
    bucket_id text not null references storage.buckets (id),
    key text collate "C" not null,
    etag text not null,
    owner_id text,
    version text not null,
    created_at timestamptz not null default now()
);

alter table storage.migrations enable row level security;
alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;
alter table storage.s3_multipart_uploads enable row level security;
alter table storage.s3_multipart_uploads_parts enable row level security;

-- -- Triggers the Storage server installs ---------------------------------------------------

-- Files live in the object store: a plain SQL delete would orphan them, so it is refused
-- unless the transaction says it knows (the Storage API sets storage.allow_delete_query).
create function storage.protect_delete() returns trigger
language plpgsql
as $$
begin
    if coalesce(current_setting('storage.allow_delete_query', true), 'false') <> 'true' then
        raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
        using hint = 'This prevents accidental data loss from orphaned objects.', errcode = '42501';
    end if;
    return null;
end
$$;

create trigger protect_buckets_delete before delete on storage.buckets
for each statement execute function storage.protect_delete();
create trigger protect_objects_delete before delete on storage.objects
for each statement execute function storage.protect_delete();

create function storage.update_updated_at_column() returns trigger
language plpgsql
as $$
begin
    new.updated_at := now();
    return new;
end
$$;

create trigger update_objects_updated_at before update on storage.objects
for each row execute function storage.update_updated_at_column();

create function storage.enforce_bucket_name_length() returns trigger
language plpgsql
as $$
begin
    if length(new.name) > 100 then
        raise exception 'bucket name "%" is too long (% characters). Max is 100.', new.name, length(new.name);
    end if;
    return new;
end
$$;

create trigger enforce_bucket_name_length_trigger before insert or update of name on storage.buckets
for each row execute function storage.enforce_bucket_name_length();

-- -- Helpers for policies and clients ------------------------------------------------------

-- 'a/b/c.png' -> {a,b}
create function storage.foldername(name text) returns text[]
language plpgsql immutable
as $$
declare
    parts text[] := string_to_array(name, '/');
begin
    return parts[1:array_length(parts, 1) - 1];
end
$$;

-- 'a/b/c.png' -> 'c.png'
create function storage.filename(name text) returns text
language plpgsql immutable
as $$
declare
    parts text[] := string_to_array(name, '/');
begin
    return parts[array_length(parts, 1)];
end
$$;

-- 'a/b/c.tar.gz' -> 'gz'; a name without a dot returns the whole file name, as Supabase does.
create function storage.extension(name text) returns text
language plpgsql immutable
as $$
declare
    parts text[] := string_to_array(name, '/');
    file_name text := parts[array_length(parts, 1)];
begin
    return reverse(split_part(reverse(file_name), '.', 1));
end
$$;

-- The Storage API operation of the request ('object.upload', 'storage.object.list', ...),
-- which the server sets for operation-aware policies.
create function storage.operation() returns text
language plpgsql stable
as $$
begin
    return current_setting('storage.operation', true);
end
$$;

-- 'storage.object.upload' and 'object.upload' name the same operation.
create function storage.allow_only_operation(expected_operation text) returns boolean
language sql stable
as $$
    select coalesce(
        nullif(expected_operation, '') is not null
        and regexp_replace(storage.operation(), '^storage\.', '')
        = regexp_replace(expected_operation, '^storage\.', ''),
        false
    )
$$;

create function storage.allow_any_operation(expected_operations text[]) returns boolean
language sql stable
as $$
    select exists (
        select from unnest(expected_operations) as expected
        where nullif(expected, '') is not null
            and regexp_replace(storage.operation(), '^storage\.', '')
            = regexp_replace(expected, '^storage\.', '')
    )
$$;

-- What the Storage API's list endpoint calls: the entries right under `prefix` in a bucket,
-- as the caller (RLS applies), sub-folders as rows without an id; names are relative to the
-- prefix; `search` filters them case-insensitively. `levels` is kept for compatibility.
create function storage.search(
    prefix text,
    bucketname text,
    limits integer default 100,
    levels integer default 1,
    offsets integer default 0,
    search text default '',
    sortcolumn text default 'name',
    sortorder text default 'asc'
) returns table (
    name text,
    id uuid,
    updated_at timestamptz,
    created_at timestamptz,
    last_accessed_at timestamptz,
    metadata jsonb
)
language sql stable
as $$
    with under as (
        select
            split_part(substr(o.name, length(prefix) + 1), '/', 1) as entry,
            strpos(substr(o.name, length(prefix) + 1), '/') > 0 as is_folder,
            o.id, o.updated_at, o.created_at, o.last_accessed_at, o.metadata
        from storage.objects as o
        where o.bucket_id = bucketname
            and starts_with(o.name, prefix)
            and length(o.name) > length(prefix)
    ),
    entries as (
        select distinct on (u.entry, u.is_folder)
            u.entry as name,
            case when u.is_folder then null else u.id end as id,
            case when u.is_folder then null else u.updated_at end as updated_at,
            case when u.is_folder then null else u.created_at end as created_at,
            case when u.is_folder then null else u.last_accessed_at end as last_accessed_at,
            case when u.is_folder then null else u.metadata end as metadata,
            u.is_folder
        from under as u
        where u.entry ilike '%' || coalesce(search, '') || '%'
        order by u.entry, u.is_folder
    )
    select e.name, e.id, e.updated_at, e.created_at, e.last_accessed_at, e.metadata
    from entries as e
    order by
        not e.is_folder,
        case when lower(sortorder) = 'desc' then null else
            case lower(sortcolumn)
                when 'updated_at' then to_char(e.updated_at, 'YYYYMMDDHH24MISSUS')
                when 'created_at' then to_char(e.created_at, 'YYYYMMDDHH24MISSUS')
                when 'last_accessed_at' then to_char(e.last_accessed_at, 'YYYYMMDDHH24MISSUS')
                else e.name collate "C"
            end
        end asc,
        case when lower(sortorder) = 'desc' then
            case lower(sortcolumn)
                when 'updated_at' then to_char(e.updated_at, 'YYYYMMDDHH24MISSUS')
                when 'created_at' then to_char(e.created_at, 'YYYYMMDDHH24MISSUS')
                when 'last_accessed_at' then to_char(e.last_accessed_at, 'YYYYMMDDHH24MISSUS')
                else e.name collate "C"
            end
        end desc,
        e.name collate "C"
    limit limits offset offsets
$$;

create function storage.get_size_by_bucket() returns table (size bigint, bucket_id text)
language sql stable
as $$
    select sum((o.metadata ->> 'size')::bigint)::bigint, o.bucket_id
    from storage.objects as o
    group by o.bucket_id
$$;

reset role;

-- postgres may grant on what it may use (2025); the Storage server's bookkeeping is its own.
grant all on storage.buckets, storage.objects to postgres with grant option;
grant select on storage.s3_multipart_uploads, storage.s3_multipart_uploads_parts to anon, authenticated;
revoke insert, update, delete, truncate, references, trigger
on storage.s3_multipart_uploads, storage.s3_multipart_uploads_parts from anon, authenticated;
revoke all on storage.migrations from anon, authenticated, service_role, postgres;
grant execute on all functions in schema storage to postgres, anon, authenticated, service_role;

-- Local only: no Storage server runs here. pysync's LocalStorage does its database half
-- through a PostgREST-like gateway whose db-pre-request this is, so that, like the Storage
-- server, it lets its own deletes past storage.protect_delete(). Nothing else may use it.
create function pysync_local.storage_api_request() returns void
language sql
set search_path = ''
as $$
    select pg_catalog.set_config('storage.allow_delete_query', 'true', true)
    where pg_catalog.current_setting('request.method', true) = 'DELETE'
$$;
revoke all on all functions in schema pysync_local from public;
grant usage on schema pysync_local to anon, authenticated, service_role;
grant execute on function pysync_local.storage_api_request() to anon, authenticated, service_role;
