-- The database side of Supabase Storage: buckets, object metadata (RLS decides who may
-- read or write an object) and the path helpers policies use. Local emulation only.

create schema if not exists storage authorization supabase_storage_admin;
grant usage on schema storage to postgres, anon, authenticated, service_role;

create table storage.buckets (
    id text primary key,
    name text not null,
    owner uuid,
    owner_id text,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    public boolean default false,
    avif_autodetection boolean default false,
    file_size_limit bigint,
    allowed_mime_types text[]
);
create unique index bname on storage.buckets (name);

create table storage.objects (
    id uuid primary key default gen_random_uuid(),
    bucket_id text references storage.buckets (id),
    name text,
    owner uuid,
    owner_id text,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    last_accessed_at timestamptz default now(),
    metadata jsonb,
    path_tokens text[] generated always as (string_to_array(name, '/')) stored,
    version text,
    user_metadata jsonb
);
create unique index bucketid_objname on storage.objects (bucket_id, name);
create index name_prefix_search on storage.objects (name text_pattern_ops);

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;
alter table storage.buckets owner to supabase_storage_admin;
alter table storage.objects owner to supabase_storage_admin;
grant all on storage.buckets, storage.objects to postgres, anon, authenticated, service_role;

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

alter function storage.foldername(text) owner to supabase_storage_admin;
alter function storage.filename(text) owner to supabase_storage_admin;
alter function storage.extension(text) owner to supabase_storage_admin;
grant execute on all functions in schema storage to postgres, anon, authenticated, service_role;
