-- Sync pulls: a pull in which nothing changed no longer works out the caller's buckets again
-- (issue 10: no-change pull, capacity).
--
-- Every pull ran every auto stream's membership query (private.sync_auto_buckets: a dozen
-- index lookups in enrollments, courses, conversation_participants …) to learn which buckets
-- the caller may hold, before it asked whether anything in them changed. For a student holding
-- 55 buckets that was about half of a no-change pull on the server, to learn, nearly always,
-- what the previous pull had learned.
--
-- A pull now hands the client a resolution token with its answer, and the client sends it back
-- with its next pull (docs/sync-protocol.md, "Resolution tokens"). The token says: at snapshot
-- S, this user (auth.uid()) could hold exactly these buckets, of which these through on-demand
-- subscriptions. It is `r1/<S>/<time of the full resolution>/<mac>`, the mac an HMAC-SHA256 of
-- the user, S, that time, the schema hash, the buckets and the on-demand buckets under a key
-- only the database knows (sync_settings.resolution_key): a client can replay its own token,
-- never make one up, and a token says nothing about buckets other than the ones it names.
--
-- The next pull takes the short way when all of this holds:
-- 1. No subscription is refused, and the on-demand buckets allowed now are the ones the token
--    names. On-demand subscriptions are resolved in every pull, as before: their access rests
--    on rows no log keys by user (a course's status, an article's, the caller's role).
-- 2. The buckets the client holds are the ones the token names (the mac matches).
-- 3. Nothing changed since S that could change the caller's auto buckets. A row can change
--    them in two ways:
--    * through a bucket the caller holds. A tutor's students come from the enrollments of
--      their courses, which they hold (my_enrollments); a participant's contacts from the
--      participants of their conversations, which they hold. The change check sees those.
--    * by naming the caller in a row of a bucket they do not hold yet: an enrollment of theirs
--      in a new course, a new conversation of theirs, a course they now teach, a session with a
--      new student, a payment from a new payer. Triggers on those columns
--      (enrollments.student_id, courses.tutor_id, conversation_participants.user_id,
--      tutoring_sessions.tutor_id, payments.payee_id) log the user named, old and new, as the
--      bucket `@member:<user id>` in private.sync_bucket_changes, once per transaction.
--    So the short way also needs no `@member` entry for the caller since S, and S within the
--    log's horizon (sync_settings.change_log_pruned).
-- 4. Every held bucket has a cursor the change check can answer for, and it finds no change.
-- 5. The token's full resolution is younger than sync_settings.resolution_horizon (10 minutes):
--    however rule 3 might be broken by a future stream, a pull resolves in full that often.
-- Then the answer is every held bucket unchanged, with a new token for this pull's snapshot
-- (and the same time of full resolution).
-- Otherwise the pull resolves the caller's buckets as it always has and carries on; a token
-- that does not hold costs the pull nothing but the check. A token is optional: a client that
-- never sends one is served as before.
--
-- A new membership query must keep rule 3: whatever row it reads either lies in a bucket every
-- user it concerns holds, or names that user in a column logged here. tests/test_sync_resolution.py
-- changes each kind of row and checks the next pull with a token sees it.
--
-- Also: private.sync_resolve_buckets resolves on-demand subscriptions through
-- private.sync_resolve_subscriptions, which skips the streams no subscription names (every
-- pull paid a query per on-demand stream to learn that none was asked for).

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- One row; the key never leaves the database (sync_settings is out of the API's reach).
-- resolution_horizon bounds how long pulls go without a full resolution, whatever the tokens
-- say: a safety net for a membership query that breaks rule 3 above.
alter table private.sync_settings
add column resolution_horizon interval not null default interval '10 minutes';
-- A volatile default rewrites the table: one row.
alter table private.sync_settings
-- squawk-ignore adding-field-with-default
add column resolution_key bytea not null default extensions.gen_random_bytes(32);

-- Logs `@member:<user>` for each of `members` (user ids) not yet logged in this transaction.
create function private.sync_log_members(members text [])
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into private.sync_bucket_changes (table_name, bucket_key)
    select distinct '@member', m.k
    from unnest(members) as m (k)
    where m.k is not null
        and not exists (
            select 1 from private.sync_bucket_changes as c
            where c.table_name = '@member' and c.bucket_key = m.k
                and c.sync_xid = pg_catalog.pg_current_xact_id()
        );
end
$$;
revoke all on function private.sync_log_members(text []) from public;

-- Compiles private.sync_log_members_<table>(), a statement-level AFTER trigger function with
-- static statements (its plans are kept, as the capture triggers' are), that logs every user
-- the written rows name in `member_columns`, before and after; and its three triggers.
create function private.sync_log_members_of(table_name text, member_columns text [])
returns void
language plpgsql
set search_path = ''
as $$
declare
    function_name text := 'sync_log_members_' || table_name;
    named_new text := array_to_string(
        array(select format('select n.%I::text from changed_new as n', c) from unnest(member_columns) as c),
        ' union '
    );
    named_old text := array_to_string(
        array(select format('select o.%I::text from changed_old as o', c) from unnest(member_columns) as c),
        ' union '
    );
begin
    execute format(
        $ddl$
        create function private.%I()
        returns trigger
        language plpgsql
        security definer
        set search_path = ''
        as %L
        $ddl$,
        function_name,
        format(
            E'begin\n'
            '    if tg_op = ''INSERT'' then\n'
            '        perform private.sync_log_members(array(%s));\n'
            '    elsif tg_op = ''UPDATE'' then\n'
            '        perform private.sync_log_members(array(%s union %s));\n'
            '    else\n'
            '        perform private.sync_log_members(array(%s));\n'
            '    end if;\n'
            '    return null;\n'
            'end',
            named_new, named_new, named_old, named_old
        )
    );
    execute format('revoke all on function private.%I() from public', function_name);
    execute format(
        'create trigger sync_log_members_insert after insert on public.%I
        referencing new table as changed_new
        for each statement execute function private.%I()',
        table_name, function_name
    );
    execute format(
        'create trigger sync_log_members_update after update on public.%I
        referencing old table as changed_old new table as changed_new
        for each statement execute function private.%I()',
        table_name, function_name
    );
    execute format(
        'create trigger sync_log_members_delete after delete on public.%I
        referencing old table as changed_old
        for each statement execute function private.%I()',
        table_name, function_name
    );
end
$$;
revoke all on function private.sync_log_members_of(text, text []) from public;

select private.sync_log_members_of('enrollments', array['student_id']);
select private.sync_log_members_of('courses', array['tutor_id']);
select private.sync_log_members_of('conversation_participants', array['user_id']);
select private.sync_log_members_of('tutoring_sessions', array['tutor_id']);
select private.sync_log_members_of('payments', array['payee_id']);

-- The on-demand half of private.sync_resolve_buckets: one row per requested subscription, with
-- whether its access query allows it, and one per subscription to an unknown stream. Only the
-- streams some subscription names are asked.
create function private.sync_resolve_subscriptions(subscriptions jsonb)
returns table (stream text, table_name text, bucket_key text, allowed boolean, reason text)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    s record;
    requested text [];
    uuid_pattern constant text :=
        '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
begin
    if coalesce(jsonb_array_length(subscriptions), 0) = 0 then
        return;
    end if;
    for s in
        select st.name, st.table_name, st.query, t.bucket_type
        from private.sync_streams as st
        inner join private.sync_tables as t on t.table_name = st.table_name
        where st.mode = 'on_demand'
            and st.name in (select e ->> 'stream' from jsonb_array_elements(subscriptions) as e)
        order by st.name
    loop
        select coalesce(array_agg(distinct e ->> 'key'), '{}') into requested
        from jsonb_array_elements(subscriptions) as e
        where e ->> 'stream' = s.name and e ->> 'key' is not null;
        continue when cardinality(requested) = 0;
        if s.bucket_type = 'uuid' then
            return query
            select s.name, s.table_name, r.k, false, 'not a valid key'
            from unnest(requested) as r (k)
            where r.k !~ uuid_pattern;
            requested := array(select r.k from unnest(requested) as r (k) where r.k ~ uuid_pattern);
        end if;
        return query execute format(
            'select %L::text, %L::text, r.k, a.k is not null,
                case when a.k is null then ''not allowed'' end
            from unnest($1) as r (k)
            left join (select distinct m.k::text as k from (%s) as m (k)) as a on a.k = r.k',
            s.name, s.table_name, s.query
        ) using requested;
    end loop;
    return query
    select e ->> 'stream', null::text, e ->> 'key', false, 'unknown stream'
    from jsonb_array_elements(subscriptions) as e
    where not exists (
        select 1 from private.sync_streams as st
        where st.name = e ->> 'stream' and st.mode = 'on_demand'
    );
end
$$;
revoke all on function private.sync_resolve_subscriptions(jsonb) from public;
grant execute on function private.sync_resolve_subscriptions(jsonb) to authenticated, service_role;

-- As in 20261201090000_sync.sql: the on-demand rows, then every auto stream's buckets.
create or replace function private.sync_resolve_buckets(subscriptions jsonb)
returns table (stream text, table_name text, bucket_key text, allowed boolean, reason text)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select r.stream, r.table_name, r.bucket_key, r.allowed, r.reason
    from private.sync_resolve_subscriptions(subscriptions) as r
    union all
    select a.stream, a.table_name, a.bucket_key, true, null::text
    from private.sync_auto_buckets() as a;
end
$$;

-- The token for "at `snap`, the caller could hold exactly `buckets`, `on_demand` of them through
-- subscriptions, as resolved in full at `resolved_at` (epoch seconds)":
-- `r1/<snap>/<resolved_at>/<hex HMAC-SHA256>`. Both lists are sets in the database's sort order
-- (distinct and sorted, as sync_pull builds them): sorting them here cost more than the mac.
create function private.sync_resolution_token(
    snap text, resolved_at bigint, schema_hash text, buckets text [], on_demand text []
)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return (
        select 'r1/' || snap || '/' || resolved_at || '/' || encode(
            extensions.hmac(
                convert_to(
                    concat_ws(
                        '|',
                        auth.uid()::text,
                        snap,
                        resolved_at,
                        schema_hash,
                        array_to_string(buckets, ','),
                        array_to_string(on_demand, ',')
                    ),
                    'UTF8'
                ),
                s.resolution_key,
                'sha256'
            ),
            'hex'
        )
        from private.sync_settings as s
    );
end
$$;
revoke all on function private.sync_resolution_token(text, bigint, text, text [], text [])
from public;
grant execute on function private.sync_resolution_token(text, bigint, text, text [], text [])
to authenticated, service_role;

-- When `token` still vouches that the caller may hold exactly `held` (`on_demand` of them
-- through subscriptions, as resolved now), the time of its full resolution; else null. It
-- vouches when it was made for these sets, its full resolution is younger than
-- resolution_horizon, its snapshot is within the log's horizon, and no row naming the caller
-- as a member changed since that snapshot.
create function private.sync_resolution_holds(
    token text, schema_hash text, held text [], on_demand text []
)
returns bigint
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    since text := split_part(token, '/', 2);
    resolved_at text := split_part(token, '/', 3);
    settings record;
begin
    -- The mac is checked before anything in the token is parsed: a forged token never
    -- reaches a cast.
    if token is null or token !~ '^r1/[0-9]+:[0-9]+:[0-9,]*/[0-9]{1,12}/[0-9a-f]{64}$'
        or private.sync_resolution_token(
            since, resolved_at::bigint, schema_hash, held, on_demand
        ) <> token then
        return null;
    end if;
    select s.change_log_pruned, s.resolution_horizon into settings from private.sync_settings as s;
    if resolved_at::bigint <= extract(epoch from now() - settings.resolution_horizon)
        or pg_catalog.pg_snapshot_xmin(since::pg_snapshot) <= settings.change_log_pruned
        or exists (
            select 1 from private.sync_bucket_changes as c
            where c.table_name = '@member' and c.bucket_key = (select auth.uid())::text
                and c.sync_xid >= pg_catalog.pg_snapshot_xmin(since::pg_snapshot)
                and not pg_catalog.pg_visible_in_snapshot(c.sync_xid, since::pg_snapshot)
        ) then
        return null;
    end if;
    return resolved_at::bigint;
end
$$;
revoke all on function private.sync_resolution_holds(text, text, text [], text []) from public;
grant execute on function private.sync_resolution_holds(text, text, text [], text [])
to authenticated, service_role;

-- As in 20261207100000_sync_pull_pages_by_column.sql, with the resolution token (null: none).
create function private.sync_pull_response(
    wire_version integer,
    snap pg_snapshot,
    schema_hash text,
    served_tables text [],
    entries json [],
    unchanged text [],
    removed_buckets json,
    denied json,
    has_more boolean,
    resolution text
)
returns json
language plpgsql
stable
set search_path = ''
as $$
begin
    if wire_version < 2 then
        return json_build_object(
            'snapshot', snap::text,
            'server_time', now(),
            'schema_hash', schema_hash,
            'buckets', array_to_json(entries),
            'unchanged', array_to_json(unchanged),
            'removed_buckets', removed_buckets,
            'denied', denied,
            'has_more', has_more,
            'resolution', resolution
        );
    end if;
    return json_build_object(
        'version', wire_version,
        'snapshot', snap::text,
        'server_time', now(),
        'schema_hash', schema_hash,
        'columns', (
            select coalesce(json_object_agg(t.name, private.sync_columns(t.name)), '{}')
            from (select distinct u.name from unnest(served_tables) as u (name)) as t
        ),
        'buckets', array_to_json(entries),
        'unchanged', array_to_json(unchanged),
        'removed_buckets', removed_buckets,
        'denied', denied,
        'has_more', has_more,
        'resolution', resolution
    );
end
$$;
revoke all on function private.sync_pull_response(
    integer, pg_snapshot, text, text [], json [], text [], json, json, boolean, text
) from public;
grant execute on function private.sync_pull_response(
    integer, pg_snapshot, text, text [], json [], text [], json, json, boolean, text
) to authenticated, service_role;

-- As in 20261208090000_sync_change_log.sql, and the caller's `@member` entries go too.
create or replace function private.sync_forget_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    delete from private.sync_tombstones as t
    where t.bucket_key = old.id::text or t.row_id = old.id;
    delete from private.sync_bucket_changes as c
    where (
        c.table_name = any(array(select st.table_name from private.sync_tables as st))
        or c.table_name = '@member'
    )
    and c.bucket_key = old.id::text;
    delete from private.sync_push_results as r where r.user_id = old.id;
    return null;
end
$$;

-- As in 20261207100000_sync_pull_pages_by_column.sql (with 20261207110000's setting), and
-- the resolution token: taken from the request for the short way, handed out with every answer
-- in which no subscription was refused.
create or replace function public.sync_pull(request jsonb)
returns json
language plpgsql
stable
set search_path = ''
set jit = off
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
    snap pg_snapshot := private.sync_snapshot();
    budget integer := least(greatest(coalesce((request ->> 'limit')::numeric, 1000), 1), 10000);
    held jsonb := coalesce(request -> 'buckets', '{}');
    subscriptions jsonb := coalesce(request -> 'subscriptions', '[]');
    wire_version integer := least(greatest(coalesce((request ->> 'version')::numeric, 1), 1), 3);
    columnar boolean;
    by_column boolean;
    pruned xid8 := private.sync_pruned_xid();
    schema_hash text := private.sync_schema_hash();
    resolved jsonb;
    entries json [] := '{}';
    unchanged text [] := '{}';
    served_tables text [] := '{}';
    removed_buckets json;
    denied json;
    has_more boolean := false;
    grp record;
    key_list text [];
    id_list uuid [];
    live_list boolean [];
    served integer;
    truncated boolean;
    page_entry record;
    k text;
    seen_keys text [];
    partial_key text;
    resume_id uuid;
    all_checkable boolean := false;
    held_tables text [];
    held_keys text [];
    held_cursors pg_snapshot [];
    changed_known boolean := false;
    changed_tables text [];
    changed_keys text [];
    res_streams text [];
    res_tables text [];
    res_keys text [];
    res_allowed boolean [];
    res_reasons text [];
    allowed_buckets text [];
    any_refused boolean := false;
    token text := request ->> 'resolution';
    resolved_at bigint;
    held_list text [] := '{}';
    held_cursor_texts text [];
    held_checkable boolean := false;
    od_streams text [] := '{}';
    od_tables text [] := '{}';
    od_keys text [] := '{}';
    od_allowed_flags boolean [] := '{}';
    od_reasons text [] := '{}';
    od_allowed text [] := '{}';
begin
    if jsonb_typeof(request) <> 'object' then
        raise exception 'the request must be a JSON object' using errcode = '22023';
    end if;
    if jsonb_typeof(held) <> 'object' or jsonb_typeof(subscriptions) <> 'array' then
        raise exception 'buckets must be an object and subscriptions an array'
        using errcode = '22023';
    end if;
    columnar := wire_version >= 2;
    by_column := wire_version >= 3;

    -- The on-demand subscriptions, resolved in every pull (their access rests on rows no log
    -- keys by user), and whether any was refused.
    if jsonb_array_length(subscriptions) > 0 then
        select
            coalesce(array_agg(r.stream), '{}'),
            coalesce(array_agg(r.table_name), '{}'),
            coalesce(array_agg(r.bucket_key), '{}'),
            coalesce(array_agg(r.allowed), '{}'),
            coalesce(array_agg(r.reason), '{}'),
            coalesce(
                array_agg(
                    distinct r.table_name || ':' || r.bucket_key
                    order by r.table_name || ':' || r.bucket_key
                ) filter (where r.allowed),
                '{}'
            ),
            coalesce(bool_or(not r.allowed), false)
        into od_streams, od_tables, od_keys, od_allowed_flags, od_reasons, od_allowed, any_refused
        from private.sync_resolve_subscriptions(subscriptions) as r;
    end if;

    -- The buckets held, parsed once for the short way and the change check below: whether
    -- each has a cursor the check answers for (not reset, not mid-round). Cursors are cast
    -- once each: the buckets held nearly all share one.
    if not any_refused then
        select
            coalesce(array_agg(h.bucket order by h.bucket), '{}'),
            coalesce(
                bool_and(
                    h.state ->> 'cursor' is not null
                    and h.state ->> 'round' is null
                    and h.state ->> 'after' is null
                ),
                true
            ),
            coalesce(array_agg(split_part(h.bucket, ':', 1)), '{}'),
            coalesce(array_agg(substr(h.bucket, strpos(h.bucket, ':') + 1)), '{}'),
            coalesce(array_agg(h.state ->> 'cursor'), '{}')
        into held_list, held_checkable, held_tables, held_keys, held_cursor_texts
        from jsonb_each(held) as h (bucket, state);
        if held_checkable then
            held_cursors := held_cursor_texts::pg_snapshot [];
            held_checkable := not exists (
                select 1 from (select distinct c.c from unnest(held_cursor_texts) as c (c)) as c
                where pg_catalog.pg_snapshot_xmin(c.c::pg_snapshot) <= pruned
            );
        end if;
    end if;

    -- The short way (see 20261209090000_sync_pull_resolution_token.sql): a resolution token that
    -- still vouches for exactly the buckets held. When nothing changed, every bucket is
    -- unchanged and the auto streams are not resolved; when something did, the general path
    -- below reuses the check's answer.
    if token is not null and held_checkable and cardinality(held_list) > 0 then
        resolved_at := private.sync_resolution_holds(token, schema_hash, held_list, od_allowed);
        if resolved_at is not null then
            select
                coalesce(array_agg(c.table_name), '{}'),
                coalesce(array_agg(c.bucket_key), '{}')
            into changed_tables, changed_keys
            from private.sync_changed_buckets(held_tables, held_keys, held_cursors) as c;
            changed_known := true;
            if cardinality(changed_tables) = 0 then
                return private.sync_pull_response(
                    wire_version, snap, schema_hash, '{}', '{}', held_list, '[]', '[]', false,
                    private.sync_resolution_token(
                        snap::text, resolved_at, schema_hash, held_list, od_allowed
                    )
                );
            end if;
        end if;
    end if;

    -- Which buckets the caller may hold now (every stream's resolution, kept as arrays for the
    -- general path below).
    resolved_at := floor(extract(epoch from now()))::bigint;
    select
        coalesce(array_agg(r.stream), '{}'),
        coalesce(array_agg(r.table_name), '{}'),
        coalesce(array_agg(r.bucket_key), '{}'),
        coalesce(array_agg(r.allowed), '{}'),
        coalesce(array_agg(r.reason), '{}'),
        coalesce(
            array_agg(
                distinct r.table_name || ':' || r.bucket_key
                order by r.table_name || ':' || r.bucket_key
            ) filter (where r.allowed),
            '{}'
        ),
        coalesce(bool_or(not r.allowed), false)
    into res_streams, res_tables, res_keys, res_allowed, res_reasons, allowed_buckets, any_refused
    from (
        select o.stream, o.table_name, o.bucket_key, o.allowed, o.reason
        from unnest(od_streams, od_tables, od_keys, od_allowed_flags, od_reasons)
            as o (stream, table_name, bucket_key, allowed, reason)
        union all
        select a.stream, a.table_name, a.bucket_key, true, null::text
        from private.sync_auto_buckets() as a
    ) as r;
    -- The short way's change check answers for the buckets held, which a token that holds
    -- says are the buckets allowed; should they differ all the same, it is asked again.
    if changed_known and allowed_buckets is distinct from held_list then
        changed_known := false;
    end if;

    -- The common case, a pull in which nothing changed: no subscription refused, and the client
    -- holds exactly the buckets it may hold, each with a cursor that can be checked (not reset,
    -- not mid-round), so the one change check answers for all of them. When it finds nothing,
    -- the answer is every bucket unchanged, without the general path's grouping below; when it
    -- finds changes, the general path reuses them instead of asking again.
    all_checkable := not any_refused and not changed_known and held_checkable
        and held_list = allowed_buckets;
    if all_checkable then
        select
            coalesce(array_agg(c.table_name), '{}'),
            coalesce(array_agg(c.bucket_key), '{}')
        into changed_tables, changed_keys
        from private.sync_changed_buckets(held_tables, held_keys, held_cursors) as c;
        changed_known := true;
        if cardinality(changed_tables) = 0 then
            return private.sync_pull_response(
                wire_version, snap, schema_hash, '{}', '{}', allowed_buckets, '[]', '[]', false,
                private.sync_resolution_token(
                    snap::text, resolved_at, schema_hash, allowed_buckets, od_allowed
                )
            );
        end if;
    end if;

    if changed_known then
        -- Only the buckets that changed need serving: every other bucket held is unchanged,
        -- nothing is refused and nothing removed.
        unchanged := array(
            select b from unnest(allowed_buckets) as b
            where not b = any(
                array(
                    select u.t || ':' || u.k from unnest(changed_tables, changed_keys) as u (t, k)
                )
            )
        );
        select coalesce(jsonb_object_agg(x.bucket, x.streams), '{}') into resolved
        from (
            select
                r.table_name || ':' || r.bucket_key as bucket,
                to_jsonb(array_agg(distinct r.stream order by r.stream)) as streams
            from unnest(res_streams, res_tables, res_keys, res_allowed)
                as r (stream, table_name, bucket_key, allowed)
            inner join unnest(changed_tables, changed_keys) as c (table_name, bucket_key)
                on c.table_name = r.table_name and c.bucket_key = r.bucket_key
            where r.allowed
            group by r.table_name, r.bucket_key
        ) as x;
        denied := '[]';
        removed_buckets := '[]';
    else
        -- Through which streams the caller holds each bucket, and the refused subscriptions (a
        -- subscription refused by its stream but held through another is not refused).
        with resolution as materialized (
            select r.stream, r.table_name, r.bucket_key, r.allowed, r.reason
            from unnest(res_streams, res_tables, res_keys, res_allowed, res_reasons)
                as r (stream, table_name, bucket_key, allowed, reason)
        ),

        held_now as (
            select
                r.table_name || ':' || r.bucket_key as bucket,
                to_jsonb(array_agg(distinct r.stream order by r.stream)) as streams
            from resolution as r
            where r.allowed
            group by r.table_name, r.bucket_key
        )

        select
            (select coalesce(jsonb_object_agg(h.bucket, h.streams), '{}') from held_now as h),
            (
                select coalesce(
                    json_agg(
                        json_build_object(
                            'stream', r.stream, 'key', r.bucket_key, 'reason', r.reason
                        )
                        order by r.stream, r.bucket_key
                    ),
                    '[]'
                )
                from resolution as r
                where not r.allowed
                    and not exists (
                        select 1 from held_now as h
                        where h.bucket = r.table_name || ':' || r.bucket_key
                    )
            )
        into resolved, denied;
        select coalesce(json_agg(h.bucket order by h.bucket), '[]') into removed_buckets
        from jsonb_object_keys(held) as h (bucket)
        where not resolved ? h.bucket;
    end if;

    -- Buckets sharing a table and a state are served by one query; a bucket resumed after an
    -- id is served alone. A bucket with a cursor (not reset, not mid-round) in which nothing
    -- changed is unchanged, found for all tables by one statement.
    for grp in
        with states as (
            select
                split_part(r.bucket, ':', 1) as table_name,
                substr(r.bucket, strpos(r.bucket, ':') + 1) as bucket_key,
                held -> r.bucket as state
            from jsonb_object_keys(resolved) as r (bucket)
        ),

        parsed as (
            select
                s.table_name,
                s.bucket_key,
                s.state is null as is_new,
                (s.state ->> 'cursor')::pg_snapshot as given_cursor,
                (s.state ->> 'round')::pg_snapshot as round_snap,
                (s.state ->> 'after')::uuid as after_id
            from states as s
        ),

        effective as (
            select
                p.*,
                p.given_cursor is not null
                and pg_catalog.pg_snapshot_xmin(p.given_cursor) <= pruned as is_reset,
                p.given_cursor is not null and p.round_snap is null and p.after_id is null
                and pg_catalog.pg_snapshot_xmin(p.given_cursor) > pruned as checkable
            from parsed as p
        ),

        changed as (
            select u.table_name, u.bucket_key
            from unnest(changed_tables, changed_keys) as u (table_name, bucket_key)
            where changed_known
            union all
            select c.table_name, c.bucket_key
            from (
                select
                    array_agg(e.table_name) as tables,
                    array_agg(e.bucket_key) as keys,
                    array_agg(e.given_cursor) as cursors
                from effective as e
                where e.checkable and not changed_known
                having count(*) > 0
            ) as a
            cross join lateral private.sync_changed_buckets(a.tables, a.keys, a.cursors) as c
        ),

        classified as (
            select
                e.*,
                e.checkable and not exists (
                    select 1 from changed as c
                    where c.table_name = e.table_name and c.bucket_key = e.bucket_key
                ) as is_unchanged
            from effective as e
        )

        select
            e.table_name,
            e.is_unchanged,
            (case when e.is_reset then null else e.given_cursor::text end)::pg_snapshot as since,
            e.round_snap::text::pg_snapshot as round_snap,
            e.after_id,
            e.is_reset,
            array_agg(e.bucket_key order by e.bucket_key) as keys,
            coalesce(
                array_agg(e.bucket_key) filter (where e.is_new or e.given_cursor is null), '{}'
            ) as new_keys
        from classified as e
        group by
            e.is_unchanged, e.table_name, e.is_reset, e.given_cursor::text, e.round_snap::text,
            e.after_id, case when e.after_id is null then '' else e.bucket_key end
        order by e.is_unchanged desc, e.table_name, e.given_cursor::text nulls first,
            min(e.bucket_key)
    loop
        if grp.is_unchanged then
            unchanged := unchanged || array(
                select grp.table_name || ':' || u.k from unnest(grp.keys) as u (k)
            );
            continue;
        end if;
        if budget <= 0 then
            has_more := true;
            exit;
        end if;
        seen_keys := '{}';
        partial_key := null;
        resume_id := null;

        if grp.since is null then
            -- Served whole: the rows straight from the table, as the caller.
            truncated := false;
            served := 0;
            for page_entry in
                select *
                from private.sync_serve_rows(
                    grp.table_name, grp.keys,
                    case when grp.after_id is null then null else grp.keys[1] end,
                    grp.after_id, budget, columnar, by_column
                )
            loop
                k := page_entry.bucket_key;
                seen_keys := seen_keys || k;
                served := served + page_entry.served;
                truncated := served >= budget;
                if truncated then
                    partial_key := k;
                    resume_id := page_entry.last_id;
                end if;
                if page_entry.is_by_column then
                    entries := entries || private.sync_bucket_entry(
                        grp.table_name, k, resolved -> (grp.table_name || ':' || k),
                        grp.is_reset, k = any(grp.new_keys), '[]', '[]',
                        coalesce(grp.round_snap, snap),
                        case when k = partial_key then resume_id end,
                        page_entry.served_rows
                    );
                else
                    entries := entries || private.sync_bucket_entry(
                        grp.table_name, k, resolved -> (grp.table_name || ':' || k),
                        grp.is_reset, k = any(grp.new_keys), page_entry.served_rows, '[]',
                        coalesce(grp.round_snap, snap),
                        case when k = partial_key then resume_id end
                    );
                end if;
            end loop;
            budget := budget - served;
            has_more := has_more or truncated;
        else
            select
                coalesce(array_agg(c.bucket_key order by c.n), '{}'),
                coalesce(array_agg(c.row_id order by c.n), '{}'),
                coalesce(array_agg(c.live order by c.n), '{}')
            into key_list, id_list, live_list
            from private.sync_changes(
                grp.table_name, grp.keys, grp.since,
                case when grp.after_id is null then null else grp.keys[1] end,
                grp.after_id, budget + 1
            ) with ordinality as c (bucket_key, row_id, live, n);

            truncated := cardinality(key_list) > budget;
            served := least(cardinality(key_list), budget);
            budget := budget - served;
            partial_key := case when truncated then key_list[served] end;
            has_more := has_more or truncated;

            -- The page's rows as the caller sees them (RLS), one entry per key in (key, id)
            -- order: a live id without a visible row, and an id without a row, is a removal.
            if served > 0 then
                for page_entry in
                    with page as materialized (
                        select c.k, c.id, c.live, c.n
                        from unnest(key_list, id_list, live_list) with ordinality as c (k, id, live, n)
                        where c.n <= served
                    ),

                    visible as (
                        select v.id, v.body
                        from private.sync_visible_rows(
                            grp.table_name, array(select p.id from page as p where p.live),
                            columnar, schema_hash
                        ) as v
                    )

                    select
                        p.k,
                        coalesce(json_agg(v.body order by p.n) filter (where v.id is not null), '[]')
                        as served_rows,
                        coalesce(json_agg(p.id order by p.n) filter (where v.id is null), '[]')
                        as removed
                    from page as p
                    left join visible as v on p.live and v.id = p.id
                    group by p.k
                    order by min(p.n)
                loop
                    k := page_entry.k;
                    seen_keys := seen_keys || k;
                    entries := entries || private.sync_bucket_entry(
                        grp.table_name, k, resolved -> (grp.table_name || ':' || k),
                        grp.is_reset, false, page_entry.served_rows, page_entry.removed,
                        coalesce(grp.round_snap, snap),
                        case when k = partial_key then id_list[served] end
                    );
                end loop;
            end if;
        end if;
        if served > 0 then
            served_tables := served_tables || grp.table_name;
        end if;

        -- Keys without changes are complete too, unless the page was cut: then they wait for
        -- the next page (they may sort after the cut).
        if not truncated then
            foreach k in array grp.keys loop
                continue when k = any(seen_keys);
                if grp.is_reset or k = any(grp.new_keys) or grp.round_snap is not null then
                    entries := entries || private.sync_bucket_entry(
                        grp.table_name, k, resolved -> (grp.table_name || ':' || k),
                        grp.is_reset, k = any(grp.new_keys), '[]', '[]',
                        coalesce(grp.round_snap, snap), null
                    );
                else
                    unchanged := unchanged || (grp.table_name || ':' || k);
                end if;
            end loop;
        end if;
    end loop;

    return private.sync_pull_response(
        wire_version, snap, schema_hash, served_tables, entries, unchanged, removed_buckets, denied,
        has_more,
        case when not any_refused then
            private.sync_resolution_token(
                snap::text, resolved_at, schema_hash, allowed_buckets, od_allowed
            )
        end
    );
end
$$;

-- The version this replaces: only the old sync_pull called it (a private function, revoked from
-- public).
-- squawk-ignore ban-drop-function
drop function private.sync_pull_response(
    integer, pg_snapshot, text, text [], json [], text [], json, json, boolean
);
