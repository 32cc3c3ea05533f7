-- Sync push: an update or a delete applied alone runs a compiled statement too (issue 10:
-- push, propagation), as inserts do since 20261204110000_sync_push_compiled_inserts.sql.
--
-- private.sync_apply_op built an op's UPDATE or DELETE as text and ran it with EXECUTE:
-- parsed, analysed, rewritten with the table's policies and planned for every op. For a
-- one-message edit that planning was 0.44 ms (pg_stat_statements, track_planning) of a
-- 2.2 ms push. Now each synced table has its statements compiled into
-- private.sync_update_row and private.sync_delete_row, whose plans PL/pgSQL keeps:
--
--     update public.<table> as t
--     set <column> = case when $4 ? '<column>' then r.<column> else t.<column> end, ...
--     from jsonb_populate_record(null::public.<table>, $4) as r
--     where t.id = $2 and t.version = $3 returning t.version
--
-- A column the op does not name keeps its value, so the row ends as the EXECUTE form left
-- it. What else could tell the two apart, and how it is kept the same:
-- * UPDATE OF triggers fire for the columns in the SET list, whatever their values. So a
--   writable column that such a trigger names is assigned only when the op names it: the
--   table gets one statement per subset of those columns (at most three of them, so at most
--   eight statements; a table with more keeps EXECUTE). At run time the set of columns that
--   UPDATE OF triggers name must still be the one compiled, else the op takes EXECUTE (a
--   trigger added later needs no recompilation to stay correct).
-- * Privileges: assigning every writable column needs UPDATE on each. The caller must hold
--   UPDATE on every writable column (on the table, or column by column as for profiles),
--   else the op takes EXECUTE as before.
-- * Identity and generated columns cannot be assigned: a table with such a writable column
--   keeps EXECUTE.
-- Deletes have no column list; their statement is the EXECUTE one, compiled.
-- A one-message edit pushed alone, the two paths swapped in turn on one database (medians of
-- five blocks of 300): backend CPU 2.53 -> 2.03 ms, latency p50 2.34 -> 1.77 ms.
-- tests/test_sync_plans.py now allows no statement of a push to be planned per call.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Generate private.sync_update_row(table_name, row_id, base, data) and
-- private.sync_delete_row(table_name, row_id, base): compiled = false when the table has no
-- compiled statement (or, for an update, the caller lacks UPDATE on a writable column, or the columns
-- that UPDATE OF triggers name changed since the compilation); else the statement ran, and
-- new_version is the row's version (null for a delete), or null when no row had that id and
-- base version.
create function private.sync_compile_row_writes()
returns void
language plpgsql
set search_path = ''
as $$
declare
    branches text;
begin
    with writable as (
        select
            t.table_name,
            t.writable as declared,
            a.attname::text as name,
            a.attnum,
            a.attidentity = '' and a.attgenerated = '' as plain,
            exists (
                select 1 from pg_catalog.pg_trigger as tg
                where tg.tgrelid = a.attrelid and not tg.tgisinternal
                    and (tg.tgtype & 16) <> 0 and a.attnum = any(tg.tgattr::int2 [])
            ) as triggering
        from private.sync_tables as t
        inner join pg_catalog.pg_attribute as a
            on a.attrelid = format('public.%I', t.table_name)::regclass
            and a.attname = any(t.writable) and a.attnum > 0 and not a.attisdropped
        where 'update' = any(t.operations)
    ),

    tables as (
        select
            w.table_name,
            w.declared,
            coalesce(array_agg(w.name order by w.attnum) filter (where w.triggering), '{}')
            as triggering,
            coalesce(
                array_agg(w.attnum order by w.attnum) filter (where w.triggering), '{}'
            )::int2 [] as triggering_attnums,
            string_agg(
                format('%1$I = case when $4 ? %1$L then r.%1$I else t.%1$I end', w.name),
                E',\n                ' order by w.attnum
            ) filter (where not w.triggering) as kept
        from writable as w
        group by w.table_name, w.declared
        having bool_and(w.plain) and count(*) filter (where w.triggering) <= 3
    ),

    -- One statement per subset of a table's triggering columns: bit i of the mask says
    -- whether the op names the i-th one (and so whether the statement assigns it).
    variants as (
        select
            t.table_name,
            t.declared,
            t.triggering_attnums,
            m.mask,
            concat_ws(E',\n                ', t.kept, c.assigned) as assignments,
            coalesce(c.chosen_when, 'true') as chosen_when
        from tables as t
        cross join lateral generate_series(0, (1 << cardinality(t.triggering)) - 1) as m (mask)
        cross join lateral (
            select
                string_agg(
                    format('%1$I = r.%1$I', x.name), E',\n                ' order by x.n
                ) filter (where x.named) as assigned,
                string_agg(format('($4 ? %L) = %s', x.name, x.named::text), ' and ' order by x.n)
                as chosen_when
            from (
                select c.name, c.n, (m.mask >> (c.n::integer - 1)) & 1 = 1 as named
                from unnest(t.triggering) with ordinality as c (name, n)
            ) as x
        ) as c
    )

    select string_agg(
        format(
            $branch$
    if $1 = %1$L then
        if not (
                select bool_and(pg_catalog.has_column_privilege('public.%1$I', c, 'UPDATE'))
                from unnest(%3$L::text []) as c
            )
            or array(
                select distinct a.attnum from pg_catalog.pg_trigger as tg
                inner join pg_catalog.pg_attribute as a
                    on a.attrelid = tg.tgrelid and a.attnum = any(tg.tgattr::int2 [])
                where tg.tgrelid = 'public.%1$I'::regclass and not tg.tgisinternal
                    and (tg.tgtype & 16) <> 0 and a.attname = any(%3$L::name [])
                order by a.attnum
            ) <> %2$L::int2 [] then
            return;
        end if;%4$s
        return;
    end if;$branch$,
            v.table_name, v.triggering_attnums, v.declared, v.statements
        ),
        '' order by v.table_name
    ) into branches
    from (
        select
            x.table_name,
            x.declared,
            x.triggering_attnums,
            string_agg(
                format(
                    $variant$
        if %1$s then
            update public.%2$I as t
            set %3$s
            from pg_catalog.jsonb_populate_record(null::public.%2$I, $4) as r
            where t.id = $2 and t.version = $3
            returning t.version into new_version;
            compiled := true;
            return;
        end if;$variant$,
                    x.chosen_when, x.table_name, x.assignments
                ),
                '' order by x.mask
            ) as statements
        from variants as x
        where x.assignments <> ''
        group by x.table_name, x.declared, x.triggering_attnums
    ) as v;
    execute format(
        $ddl$
        create or replace function private.sync_update_row(
            table_name text, row_id uuid, base bigint, data jsonb,
            out compiled boolean, out new_version bigint
        )
        language plpgsql
        set search_path = ''
        as %L
        $ddl$,
        format(E'begin\n    compiled := false;%s\nend', coalesce(branches, ''))
    );
    revoke all on function private.sync_update_row(text, uuid, bigint, jsonb) from public;
    grant execute on function private.sync_update_row(text, uuid, bigint, jsonb)
    to authenticated, service_role;

    select string_agg(
        format(
            $branch$
    if $1 = %1$L then
        delete from public.%1$I as t
        where t.id = $2 and ($3::bigint is null or t.version = $3)
        returning t.version into new_version;
        compiled := true;
        return;
    end if;$branch$,
            t.table_name
        ),
        '' order by t.table_name
    ) into branches
    from private.sync_tables as t
    where 'delete' = any(t.operations);
    execute format(
        $ddl$
        create or replace function private.sync_delete_row(
            table_name text, row_id uuid, base bigint, out compiled boolean, out new_version bigint
        )
        language plpgsql
        set search_path = ''
        as %L
        $ddl$,
        format(E'begin\n    compiled := false;%s\nend', coalesce(branches, ''))
    );
    revoke all on function private.sync_delete_row(text, uuid, bigint) from public;
    grant execute on function private.sync_delete_row(text, uuid, bigint)
    to authenticated, service_role;
end
$$;
revoke all on function private.sync_compile_row_writes() from public;

-- The registry changed: the push side's trigger compiles the updates and deletes too.
create or replace function private.sync_push_registry_changed()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    perform private.sync_compile_push();
    perform private.sync_compile_inserts();
    perform private.sync_compile_row_writes();
    return null;
end
$$;

select private.sync_compile_row_writes();

-- As in 20261204110000_sync_push_compiled_inserts.sql, but an update or a delete runs the
-- compiled statement when its table has one.
create or replace function private.sync_apply_op(op jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    spec private.sync_tables := private.sync_table_rules(op ->> 'table');
    kind text := op ->> 'kind';
    row_id uuid := (op ->> 'id')::uuid;
    data jsonb := coalesce(op -> 'data', '{}');
    base bigint := (op ->> 'base_version')::bigint;
    columns text [];
    not_writable text [];
    targets text;
    sources text;
    assignments text;
    new_version bigint;
    current_row jsonb;
    compiled boolean;
begin
    if spec is null then
        raise exception 'table % is not synced', op ->> 'table' using errcode = '42501';
    end if;
    if not kind = any(spec.operations) then
        raise exception '% is not allowed on % through sync', kind, spec.table_name
        using errcode = '42501';
    end if;
    if jsonb_typeof(data) <> 'object' then
        raise exception 'data must be a JSON object' using errcode = '22023';
    end if;
    select
        coalesce(array_agg(c), '{}'),
        coalesce(array_agg(c) filter (where not c = any(spec.writable)), '{}'),
        coalesce(string_agg(format(', %I', c), ''), ''),
        coalesce(string_agg(format(', r.%I', c), ''), ''),
        string_agg(format('%1$I = r.%1$I', c), ', ')
    into columns, not_writable, targets, sources, assignments
    from jsonb_object_keys(data) as c;
    if cardinality(not_writable) > 0 then
        raise exception 'column(s) % of % are not writable through sync',
            array_to_string(not_writable, ', '), spec.table_name
        using errcode = '42501';
    end if;

    if kind = 'insert' then
        select s.compiled, s.new_version into compiled, new_version
        from private.sync_insert_row(spec.table_name, row_id, data) as s;
        if not compiled then
            execute format(
                'insert into public.%1$I as t (id%2$s)
                select $2%3$s from jsonb_populate_record(null::public.%1$I, $1) as r
                on conflict (id) do nothing
                returning t.version',
                spec.table_name, targets, sources
            ) into new_version using data, row_id;
        end if;
        if new_version is not null then
            return jsonb_build_object('status', 'applied', 'version', new_version);
        end if;
        current_row := private.sync_visible_row(spec.table_name, row_id);
        if current_row is null then
            raise exception 'a row with id % already exists in %', row_id, spec.table_name
            using errcode = '23505';
        end if;
        return jsonb_build_object(
            'status', 'conflict', 'version', current_row -> 'version', 'row', current_row
        );
    end if;

    if kind = 'update' then
        if base is null then
            raise exception 'an update needs base_version' using errcode = '22023';
        end if;
        if cardinality(columns) > 0 then
            select s.compiled, s.new_version into compiled, new_version
            from private.sync_update_row(spec.table_name, row_id, base, data) as s;
            if not compiled then
                execute format(
                    'update public.%1$I as t set %2$s
                    from jsonb_populate_record(null::public.%1$I, $1) as r
                    where t.id = $2 and t.version = $3
                    returning t.version',
                    spec.table_name, assignments
                ) into new_version using data, row_id, base;
            end if;
            if new_version is not null then
                return jsonb_build_object('status', 'applied', 'version', new_version);
            end if;
        end if;
        current_row := private.sync_visible_row(spec.table_name, row_id);
        if current_row is null then
            raise exception 'no visible row % in %', row_id, spec.table_name using errcode = 'P0002';
        end if;
        if (current_row ->> 'version')::bigint <> base then
            return jsonb_build_object(
                'status', 'conflict', 'version', current_row -> 'version', 'row', current_row
            );
        end if;
        if cardinality(columns) = 0 then
            return jsonb_build_object('status', 'applied', 'version', current_row -> 'version');
        end if;
        raise exception 'not allowed to update this row of %', spec.table_name
        using errcode = '42501';
    end if;

    if kind = 'delete' then
        select s.compiled, s.new_version into compiled, new_version
        from private.sync_delete_row(spec.table_name, row_id, base) as s;
        if not compiled then
            execute format(
                'delete from public.%I as t where t.id = $1 and ($2::bigint is null or t.version = $2)
                returning t.version',
                spec.table_name
            ) into new_version using row_id, base;
        end if;
        if new_version is not null then
            return jsonb_build_object('status', 'applied', 'version', null);
        end if;
        current_row := private.sync_visible_row(spec.table_name, row_id);
        if current_row is null then
            -- Already gone (or never visible): deleting it again changes nothing.
            return jsonb_build_object('status', 'applied', 'version', null);
        end if;
        if base is not null and (current_row ->> 'version')::bigint <> base then
            return jsonb_build_object(
                'status', 'conflict', 'version', current_row -> 'version', 'row', current_row
            );
        end if;
        raise exception 'not allowed to delete this row of %', spec.table_name
        using errcode = '42501';
    end if;

    raise exception 'unknown op kind %', coalesce(kind, 'null') using errcode = '22023';
end
$$;
