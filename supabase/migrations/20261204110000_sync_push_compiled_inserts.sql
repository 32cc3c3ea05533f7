-- Sync push: an insert applied alone runs a compiled statement (issue 10, benchmarks 5 and 6).
--
-- An op that cannot join a run (private.sync_push_runs) is applied alone by
-- private.sync_apply_op, which built its INSERT, UPDATE or DELETE as text and ran it with
-- EXECUTE: parsed, analysed, rewritten (RLS) and planned on every op, a quarter of the server's
-- time in a push of two tables' inserts alternating, and most of a one-message push's own
-- statement. Inserts now run a statement compiled per synced table
-- (private.sync_insert_row), whose plan PL/pgSQL keeps for the session:
--
--     insert into public.<table> as t (id, <every writable column>)
--     select $2, case when $3 ? '<column>' then r.<column> else <its default> end, ...
--     from jsonb_populate_record(null::public.<table>, $3) as r
--     on conflict (id) do nothing returning t.version
--
-- A column the op does not name gets its default expression (pg_attrdef, printed
-- schema-qualified) or null, exactly as when the INSERT leaves it out; RLS, grants and
-- triggers apply as before, as the caller (security invoker). A table is compiled only when
-- that form is the same insert: every writable column is a plain column (not identity, not
-- generated) whose type is not a domain with a default of its own. At run time the caller
-- must hold INSERT on the whole table (a column-level grant alone would refuse the unnamed
-- columns), else the op takes the EXECUTE path as before. Updates and deletes keep it: an
-- UPDATE that assigned every writable column would fire the tables' UPDATE OF triggers for
-- columns the op never touched.
--
-- Regenerated whenever the registry changes, like the capture functions. A column dropped or
-- renamed behind the registry's back breaks these inserts as it breaks every writer naming it
-- (sync_schema() still lists it as writable); re-register the table after such a change.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Generate private.sync_insert_row(table_name, row_id, data): compiled = false when the table
-- has no compiled insert (or the caller lacks table-wide INSERT); else the insert ran, and
-- new_version is the row's version, or null when a row with that id already exists.
create function private.sync_compile_inserts()
returns void
language plpgsql
set search_path = ''
as $$
declare
    branches text;
begin
    select string_agg(
        format(
            $branch$
    if $1 = %1$L then
        if not pg_catalog.has_table_privilege('public.%2$I', 'INSERT') then
            return;
        end if;
        insert into public.%2$I as t (id%3$s)
        select $2%4$s
        from pg_catalog.jsonb_populate_record(null::public.%2$I, $3) as r
        on conflict (id) do nothing
        returning t.version into new_version;
        compiled := true;
        return;
    end if;$branch$,
            c.table_name, c.table_name, c.targets, c.sources
        ),
        '' order by c.table_name
    ) into branches
    from (
        select
            t.table_name,
            string_agg(format(', %I', a.attname), '' order by a.attnum) as targets,
            string_agg(
                format(
                    E',\n            case when $3 ? %L then r.%I else %s end',
                    a.attname, a.attname,
                    coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), 'null')
                ),
                '' order by a.attnum
            ) as sources,
            bool_and(
                a.attidentity = '' and a.attgenerated = ''
                and not (ty.typtype = 'd' and ty.typdefaultbin is not null)
            ) as plain,
            count(*) as n
        from private.sync_tables as t
        inner join pg_catalog.pg_attribute as a
            on a.attrelid = format('public.%I', t.table_name)::regclass
            and a.attname = any(t.writable) and a.attnum > 0 and not a.attisdropped
        inner join pg_catalog.pg_type as ty on ty.oid = a.atttypid
        left join pg_catalog.pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where 'insert' = any(t.operations)
        group by t.table_name
    ) as c
    where c.plain and c.n > 0;
    execute format(
        $ddl$
        create or replace function private.sync_insert_row(
            table_name text, row_id uuid, data jsonb, out compiled boolean, out new_version bigint
        )
        language plpgsql
        set search_path = ''
        as %L
        $ddl$,
        format(E'begin\n    compiled := false;%s\nend', coalesce(branches, ''))
    );
    revoke all on function private.sync_insert_row(text, uuid, jsonb) from public;
    grant execute on function private.sync_insert_row(text, uuid, jsonb)
    to authenticated, service_role;
end
$$;
revoke all on function private.sync_compile_inserts() from public;

-- The registry changed: the push side's trigger (20261202110000_sync_push_speed.sql) compiles
-- the inserts too, beside the capture functions and the op applier's registry rows.
create or replace function private.sync_push_registry_changed()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    perform private.sync_compile_push();
    perform private.sync_compile_inserts();
    return null;
end
$$;

select private.sync_compile_inserts();

-- As in 20261202110000_sync_push_speed.sql, but an insert runs the compiled statement when
-- its table has one.
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
            execute format(
                'update public.%1$I as t set %2$s
                from jsonb_populate_record(null::public.%1$I, $1) as r
                where t.id = $2 and t.version = $3
                returning t.version',
                spec.table_name, assignments
            ) into new_version using data, row_id, base;
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
        execute format(
            'delete from public.%I as t where t.id = $1 and ($2::bigint is null or t.version = $2)
            returning t.version',
            spec.table_name
        ) into new_version using row_id, base;
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
