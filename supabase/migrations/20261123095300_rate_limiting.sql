-- Rate limiting of API writes: PostgREST calls public.check_request() before every request
-- (its db-pre-request hook); writes beyond a per-user (or per-address, for anon) budget per
-- time window fail with SQLSTATE PT429, which PostgREST answers as HTTP 429.
--
-- The hook itself is a PostgREST setting, not schema, so no migration sets it. On a
-- Supabase project run once (see docs/rls.md, "Rate limiting"):
--   alter role authenticator set pgrst.db_pre_request = 'public.check_request';
--   notify pgrst, 'reload config';

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

-- Budgets per client platform: mobile apps push queued offline writes in bursts when they
-- reconnect, so they get more than the web app; unknown clients (scripts) get the least.
create table private.rate_limit_rules (
    platform text primary key check (platform in ('web', 'mobile', 'other')),
    max_writes integer not null check (max_writes > 0),
    window_seconds integer not null check (window_seconds between 1 and 86400)
);
comment on table private.rate_limit_rules is 'Writes allowed per window, by client platform.';

insert into private.rate_limit_rules (platform, max_writes, window_seconds)
values ('web', 60, 60), ('mobile', 120, 60), ('other', 30, 60);

-- One row per caller and platform: the current fixed window and the writes counted in it.
-- Unlogged (losing counters in a crash only forgives a minute of writes) and with room on
-- each page for HOT updates, since every write request updates a row here.
create unlogged table private.rate_limit_counters (
    key text not null check (char_length(key) between 1 and 200),
    platform text not null check (platform in ('web', 'mobile', 'other')),
    window_start timestamptz not null,
    writes integer not null check (writes > 0),
    primary key (key, platform)
) with (fillfactor = 70);
comment on table private.rate_limit_counters is 'Writes per caller in the current window.';

create index rate_limit_counters_window_start_idx on private.rate_limit_counters (window_start);

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

-- The platform a request comes from: an explicit x-client-platform header, else the
-- x-client-info header the Supabase client libraries send (supabase-flutter/2.5.0,
-- supabase-js-web/2.45.0, ...). Headers are the client's word: see docs/rls.md.
create function private.request_platform(headers jsonb)
returns text
language sql
immutable
set search_path = ''
as $$
    select case
        when lower(headers ->> 'x-client-platform') = 'web' then 'web'
        when lower(headers ->> 'x-client-platform') in ('ios', 'android', 'mobile') then 'mobile'
        when lower(headers ->> 'x-client-info') like 'supabase-js-web/%' then 'web'
        when lower(headers ->> 'x-client-info') similar to
            '(supabase-flutter|supabase-dart|supabase-swift|supabase-kt|supabase-js-react-native)/%'
            then 'mobile'
        else 'other'
    end
$$;
revoke all on function private.request_platform(jsonb) from public;

-- Deletes counters whose window ended before any rule's window could still count them.
-- Rows another session holds are skipped, so pruning never waits on a request.
create function private.prune_rate_limit_counters(as_of timestamptz default clock_timestamp())
returns integer
language plpgsql
set search_path = ''
as $$
declare
    pruned integer;
begin
    delete from private.rate_limit_counters as c
    where c.ctid = any(array(
        select s.ctid from private.rate_limit_counters as s
        where s.window_start < as_of - make_interval(
            secs => (select coalesce(max(r.window_seconds), 86400) from private.rate_limit_rules as r)
        )
        limit 1000
        for update skip locked
    ));
    get diagnostics pruned = row_count;
    return pruned;
end
$$;
revoke all on function private.prune_rate_limit_counters(timestamptz) from public;

/*
 * ---------------------------------------------------------------------------
 * Public API functions
 * ---------------------------------------------------------------------------
 */

-- PostgREST's db-pre-request hook, run as the request's role in the request's transaction.
-- Reads are never counted: GET, HEAD and OPTIONS, and anything PostgREST runs read-only
-- (calls of stable functions, even by POST), where a counter write would fail anyway.
-- Only anon and authenticated are limited; service_role and other roles never are.
-- Caveat: the count is part of the request's transaction, so a write that fails (RLS,
-- constraint) un-counts itself; this limits successful writes, not attempts.
create function public.check_request()
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
    method text := upper(coalesce(current_setting('request.method', true), ''));
    api_role text := coalesce(current_setting('role', true), '');
    headers jsonb := coalesce(nullif(current_setting('request.headers', true), '')::jsonb, '{}');
    caller uuid := (select auth.uid());
    caller_key text;
    client_platform text;
    rule private.rate_limit_rules%rowtype;
    current_window timestamptz;
    counted integer;
    retry_after integer;
begin
    if method in ('', 'GET', 'HEAD', 'OPTIONS')
        or api_role not in ('anon', 'authenticated')
        or current_setting('transaction_read_only') = 'on' then
        return;
    end if;
    client_platform := private.request_platform(headers);
    select r.* into rule from private.rate_limit_rules as r where r.platform = client_platform;
    if not found then
        return;
    end if;
    caller_key := case
        when caller is not null then 'user:' || caller::text
        else 'ip:' || coalesce(nullif(trim(split_part(headers ->> 'x-forwarded-for', ',', 1)), ''), 'unknown')
    end;
    current_window := pg_catalog.to_timestamp(
        floor(extract(epoch from clock_timestamp()) / rule.window_seconds) * rule.window_seconds
    );
    insert into private.rate_limit_counters as c (key, platform, window_start, writes)
    values (caller_key, client_platform, current_window, 1)
    on conflict (key, platform) do update
    set writes = case when c.window_start = excluded.window_start then c.writes + 1 else 1 end,
        window_start = excluded.window_start
    returning c.writes into counted;
    if counted = 1 then
        -- A new window for this caller: a good moment to clear out windows long over.
        perform private.prune_rate_limit_counters();
    end if;
    if counted > rule.max_writes then
        retry_after := greatest(1, ceil(extract(epoch from
            current_window + make_interval(secs => rule.window_seconds) - clock_timestamp()
        ))::integer);
        raise exception using
            errcode = 'PT429',
            message = 'rate limit exceeded',
            detail = format('%s writes per %s seconds for %s clients', rule.max_writes,
                rule.window_seconds, client_platform),
            hint = format('retry after %s seconds', retry_after);
    end if;
end
$$;
revoke all on function public.check_request() from public;
grant execute on function public.check_request() to anon, authenticated, service_role;
comment on function public.check_request() is
'PostgREST db-pre-request hook: limits API writes per user and client platform (SQLSTATE PT429).';
