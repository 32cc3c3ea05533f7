-- The content library (articles) and support tickets with their replies.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

create table public.articles (
    id uuid primary key default gen_random_uuid(),
    author_id uuid not null references public.profiles (id) on delete cascade,
    title text not null check (char_length(title) between 1 and 200),
    slug text not null unique check (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' and char_length(slug) <= 120),
    summary text not null default '' check (char_length(summary) <= 1000),
    body text not null default '' check (char_length(body) <= 200000),
    tags text[] not null default '{}' check (cardinality(tags) <= 20), -- noqa: LT01
    status text not null default 'draft' check (status in ('draft', 'published')),
    published_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id(),
    constraint articles_published_at_check check (status = 'draft' or published_at is not null)
);
comment on table public.articles is 'Content library written by tutors and admins.';

create index articles_author_id_idx on public.articles (author_id);
create index articles_published_idx on public.articles (published_at desc) where status = 'published';
create index articles_tags_idx on public.articles using gin (tags);

create table public.support_queries (
    id uuid primary key default gen_random_uuid(),
    owner_id uuid not null references public.profiles (id) on delete cascade,
    subject text not null check (char_length(subject) between 1 and 200),
    body text not null check (char_length(body) between 1 and 20000),
    status text not null default 'open' check (status in ('open', 'pending', 'resolved')),
    assignee_id uuid references public.profiles (id) on delete set null,
    resolved_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id()
);
comment on table public.support_queries is 'A support ticket; its owner and admins see it.';

create index support_queries_owner_id_idx on public.support_queries (owner_id, created_at desc);
create index support_queries_assignee_open_idx on public.support_queries (assignee_id, status)
where status <> 'resolved';

create table public.support_replies (
    id uuid primary key default gen_random_uuid(),
    query_id uuid not null references public.support_queries (id) on delete cascade,
    author_id uuid not null references public.profiles (id) on delete cascade,
    body text not null check (char_length(body) between 1 and 20000),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id()
);
comment on table public.support_replies is 'Messages on a support ticket.';

create index support_replies_query_id_idx on public.support_replies (query_id, created_at);
create index support_replies_author_id_idx on public.support_replies (author_id);

alter table public.articles enable row level security;
alter table public.support_queries enable row level security;
alter table public.support_replies enable row level security;

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

create function private.my_support_query_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select q.id from public.support_queries as q where q.owner_id = (select auth.uid())
$$;
revoke all on function private.my_support_query_ids() from public;
grant execute on function private.my_support_query_ids() to authenticated, service_role;

/*
 * ---------------------------------------------------------------------------
 * Triggers
 * ---------------------------------------------------------------------------
 */

create trigger stamp_synced_row before insert or update on public.articles
for each row execute function private.stamp_synced_row();
create trigger stamp_synced_row before insert or update on public.support_queries
for each row execute function private.stamp_synced_row();
create trigger stamp_synced_row before insert or update on public.support_replies
for each row execute function private.stamp_synced_row();

create function private.guard_article()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if tg_op = 'UPDATE' and new.author_id is distinct from old.author_id
        and not (select private.is_platform()) and not (select private.is_admin()) then
        perform private.deny('only an admin can change an article''s author');
    end if;
    if new.status = 'published' and new.published_at is null then
        new.published_at := now();
    end if;
    return new;
end
$$;
revoke all on function private.guard_article() from public;

create trigger guard_article before insert or update on public.articles
for each row execute function private.guard_article();

-- Owners write their ticket; only admins assign it, and only to an admin.
create function private.guard_support_query()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if not (select private.is_platform()) and not (select private.is_admin()) then
        if tg_op = 'INSERT' and (new.assignee_id is not null or new.status <> 'open') then
            perform private.deny('a new ticket is open and unassigned');
        end if;
        if tg_op = 'UPDATE' and (new.owner_id is distinct from old.owner_id
            or new.assignee_id is distinct from old.assignee_id) then
            perform private.deny('only an admin can reassign a ticket');
        end if;
    end if;
    if new.assignee_id is not null and not exists (
        select 1 from public.profiles as p where p.id = new.assignee_id and p.role = 'admin'
    ) then
        raise exception using errcode = '23514', message = 'tickets are assigned to admins';
    end if;
    if new.status = 'resolved' and new.resolved_at is null then
        new.resolved_at := now();
    elsif new.status <> 'resolved' then
        new.resolved_at := null;
    end if;
    return new;
end
$$;
revoke all on function private.guard_support_query() from public;

create trigger guard_support_query before insert or update on public.support_queries
for each row execute function private.guard_support_query();

create function private.guard_support_reply()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if new.query_id is distinct from old.query_id or new.author_id is distinct from old.author_id then
        perform private.deny('a reply stays on its ticket and with its author');
    end if;
    return new;
end
$$;
revoke all on function private.guard_support_reply() from public;

create trigger guard_support_reply before update on public.support_replies
for each row execute function private.guard_support_reply();
