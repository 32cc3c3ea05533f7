"""Read what a client needs to know about the API schemas from a live catalog.

Everything comes from ``pg_catalog`` as PostgreSQL itself describes it: column types by
``format_type``, nullability and defaults, identity and generated columns, enums, foreign keys,
and the functions the API roles may execute. Two things are read from constraint text:
a single-column ``CHECK (col IN ('a', 'b'))`` (deparsed by the server as
``(col = ANY (ARRAY['a'::text, 'b'::text]))``) becomes a closed set of literals, because
this schema spells its enum-like columns that way rather than with ``CREATE TYPE``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import psycopg

from pysync.gen.model import Column, Enum, ForeignKey, Function, Parameter, Relation, Schema
from pysync.gen.payload_types import RpcPayload
from pysync.gen.sync_payloads import SYNC_PAYLOADS

__all__ = ["bind_payload", "introspect", "literals_of_check"]

#: Columns the sync engine adds for its own bookkeeping: never part of a client's model.
INTERNAL_COLUMNS = frozenset({"sync_xid"})

_RELATIONS = """
select n.nspname::text, c.relname::text, c.relkind::text,
       coalesce(obj_description(c.oid, 'pg_class'), '')
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p', 'v', 'm', 'f')
  and not c.relispartition
  and (has_table_privilege('anon', c.oid, 'select')
       or has_table_privilege('authenticated', c.oid, 'select')
       or has_table_privilege('service_role', c.oid, 'select'))
order by 1, 2
"""

_COLUMNS = """
select n.nspname::text, c.relname::text, a.attname::text, a.attnum,
       t.typname::text, tn.nspname::text, t.typtype::text,
       coalesce(et.typname, '')::text, coalesce(etn.nspname, '')::text,
       coalesce(et.typtype, '')::text,
       a.attndims > 0 or t.typcategory = 'A',
       format_type(a.atttypid, a.atttypmod),
       not a.attnotnull,
       a.atthasdef, a.attidentity <> '', a.attgenerated <> '',
       coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
       coalesce(col_description(c.oid, a.attnum), '')
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_type t on t.oid = a.atttypid
join pg_namespace tn on tn.oid = t.typnamespace
left join pg_type et on et.oid = t.typelem and t.typcategory = 'A'
left join pg_namespace etn on etn.oid = et.typnamespace
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p', 'v', 'm', 'f')
  and a.attnum > 0 and not a.attisdropped
order by 1, 2, a.attnum
"""

_CHECKS = """
select n.nspname::text, c.relname::text, a.attname::text, pg_get_expr(k.conbin, k.conrelid)
from pg_constraint k
join pg_class c on c.oid = k.conrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum = k.conkey[1]
where n.nspname = any(%(schemas)s) and k.contype = 'c' and cardinality(k.conkey) = 1
order by 1, 2, 3, k.conname
"""

_PRIMARY_KEYS = """
select n.nspname::text, c.relname::text,
       array(select a.attname::text from unnest(k.conkey) with ordinality as key(attnum, ord)
             join pg_attribute a on a.attrelid = c.oid and a.attnum = key.attnum
             order by key.ord)
from pg_constraint k
join pg_class c on c.oid = k.conrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%(schemas)s) and k.contype = 'p'
"""

_FOREIGN_KEYS = """
select k.conname::text, n.nspname::text, c.relname::text,
       array(select a.attname::text from unnest(k.conkey) with ordinality as key(attnum, ord)
             join pg_attribute a on a.attrelid = c.oid and a.attnum = key.attnum
             order by key.ord),
       rn.nspname::text, r.relname::text,
       array(select a.attname::text from unnest(k.confkey) with ordinality as key(attnum, ord)
             join pg_attribute a on a.attrelid = r.oid and a.attnum = key.attnum
             order by key.ord),
       exists (
           select from pg_constraint u
           where u.conrelid = k.conrelid and u.contype in ('p', 'u')
             and u.conkey::int2[] @> k.conkey::int2[] and u.conkey::int2[] <@ k.conkey::int2[]
       )
from pg_constraint k
join pg_class c on c.oid = k.conrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_class r on r.oid = k.confrelid
join pg_namespace rn on rn.oid = r.relnamespace
where n.nspname = any(%(schemas)s) and k.contype = 'f' and not c.relispartition
order by 2, 3, 1
"""

_ENUMS = """
select n.nspname::text, t.typname::text, array_agg(e.enumlabel::text order by e.enumsortorder)
from pg_type t
join pg_namespace n on n.oid = t.typnamespace
join pg_enum e on e.enumtypid = t.oid
where n.nspname = any(%(schemas)s)
group by 1, 2
order by 1, 2
"""

# Functions the API can call: callable by an API role, not trigger or aggregate functions,
# input arguments only (modes i, b, v) as PostgREST reads them.
_FUNCTIONS = """
select n.nspname::text, p.proname::text, p.proretset,
       format_type(p.prorettype, null), rt.typtype::text, rt.typname::text,
       p.pronargdefaults,
       coalesce(a.in_names, '{}'), coalesce(a.in_types, '{}'),
       coalesce(a.out_names, '{}'), coalesce(a.out_types, '{}'),
       coalesce(obj_description(p.oid, 'pg_proc'), ''),
       array(select r.rolname::text from pg_roles r
             where r.rolname in ('anon', 'authenticated', 'service_role')
               and has_function_privilege(r.oid, p.oid, 'execute')
             order by r.rolname)
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_type rt on rt.oid = p.prorettype
left join lateral (
    -- One pass over the arguments: inputs (modes i, b, v) and outputs (o, b, t).
    select array_agg(coalesce(x.name, '') order by x.ord)
               filter (where coalesce(x.mode, 'i') in ('i', 'b', 'v')) as in_names,
           array_agg(t.typname::text order by x.ord)
               filter (where coalesce(x.mode, 'i') in ('i', 'b', 'v')) as in_types,
           array_agg(coalesce(x.name, '') order by x.ord)
               filter (where x.mode in ('o', 'b', 't')) as out_names,
           array_agg(t.typname::text order by x.ord)
               filter (where x.mode in ('o', 'b', 't')) as out_types
    from unnest(
        coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargnames, p.proargmodes
    ) with ordinality as x(type, name, mode, ord)
    join pg_type t on t.oid = x.type
) a on true
where n.nspname = any(%(schemas)s) and p.prokind = 'f'
  and p.prorettype not in ('pg_catalog.trigger'::regtype, 'pg_catalog.event_trigger'::regtype)
order by 1, 2, 8
"""

_ANY_ARRAY = re.compile(
    r"^\(*(?P<column>\w+)\)*(?:::\w+(?: \w+)*)? = ANY \(\(?ARRAY\[(?P<items>.*?)\]\)?"
    r"(?:::[\w ]+\[\])?\)\)?$"
)
_LITERAL = re.compile(r"'((?:[^']|'')*)'::(?:text|character varying|\"char\"|bpchar)")


def literals_of_check(column: str, expression: str) -> tuple[str, ...] | None:
    """The values a ``CHECK (column IN (...))`` allows, from the server's own deparse of it,
    or ``None`` when the check is anything else (a range, a regex, several columns)."""
    found = _ANY_ARRAY.match(expression.strip())
    if found is None or found.group("column") != column:
        return None
    items = found.group("items")
    values = [m.group(1).replace("''", "'") for m in _LITERAL.finditer(items)]
    rebuilt = ", ".join(m.group(0) for m in _LITERAL.finditer(items))
    if not values or rebuilt != items:
        return None
    return tuple(values)


def bind_payload(name: str, arguments: tuple[Parameter, ...], returns: str) -> RpcPayload | None:
    """The declared payload of a function named ``name``, if its signature is exactly the
    declared one (argument names and types, a JSON result); a function that merely shares
    the name keeps plain JSON types."""
    for payload in SYNC_PAYLOADS:
        if payload.function != name or returns not in payload.returns_pg:
            continue
        declared = [(a.name, a.pg_type) for a in payload.arguments]
        if declared == [(a.name, a.type) for a in arguments] and not any(
            a.has_default for a in arguments
        ):
            return payload
    return None


def introspect(conn: psycopg.Connection[Any], schemas: Sequence[str]) -> Schema:
    """The API schemas' relations, enums and callable functions, in a stable order."""
    params = {"schemas": list(schemas)}
    checks: dict[tuple[str, str, str], tuple[str, ...]] = {}
    for schema, table, column, expression in conn.execute(_CHECKS, params).fetchall():
        literals = literals_of_check(column, expression)
        if literals is not None:
            checks.setdefault((schema, table, column), literals)
    primary_keys = {
        (schema, table): tuple(columns)
        for schema, table, columns in conn.execute(_PRIMARY_KEYS, params).fetchall()
    }
    foreign_keys: dict[tuple[str, str], list[ForeignKey]] = {}
    for row in conn.execute(_FOREIGN_KEYS, params).fetchall():
        name, schema, table, key, ref_schema, ref_table, ref_key, one_to_one = row
        foreign_keys.setdefault((schema, table), []).append(
            ForeignKey(name, tuple(key), ref_schema, ref_table, tuple(ref_key), one_to_one)
        )
    by_relation: dict[tuple[str, str], list[Column]] = {}
    for row in conn.execute(_COLUMNS, params).fetchall():
        (schema, table, name, _num, typname, typschema, typtype, elemname, elemschema,
         elemtype, is_array, formatted, nullable, has_default, identity, generated,
         default, comment) = row  # fmt: skip
        if name in INTERNAL_COLUMNS:
            continue
        base, base_schema, base_kind = (
            (elemname, elemschema, elemtype) if is_array else (typname, typschema, typtype)
        )
        by_relation.setdefault((schema, table), []).append(
            Column(
                name=name,
                type=base,
                type_schema=base_schema,
                is_enum=base_kind == "e",
                is_array=bool(is_array),
                formatted_type=formatted,
                nullable=bool(nullable),
                has_default=bool(has_default) or bool(identity) or bool(generated),
                is_identity=bool(identity),
                is_generated=bool(generated),
                default=default,
                literals=checks.get((schema, table, name)),
                comment=comment,
            )
        )
    relations = tuple(
        Relation(
            schema=schema,
            name=name,
            kind={"r": "table", "p": "table", "f": "table", "v": "view", "m": "view"}[kind],
            columns=tuple(by_relation.get((schema, name), ())),
            primary_key=primary_keys.get((schema, name), ()),
            foreign_keys=tuple(foreign_keys.get((schema, name), ())),
            comment=comment,
        )
        for schema, name, kind, comment in conn.execute(_RELATIONS, params).fetchall()
    )
    enums = tuple(
        Enum(schema, name, tuple(labels))
        for schema, name, labels in conn.execute(_ENUMS, params).fetchall()
    )
    functions = []
    for row in conn.execute(_FUNCTIONS, params).fetchall():
        (schema, name, returns_set, returns, return_kind, return_name, ndefaults, arg_names,
         arg_types, out_names, out_types, comment, callers) = row  # fmt: skip
        if not callers:
            continue
        first_default = len(arg_names) - int(ndefaults)
        arguments = tuple(
            Parameter(arg, kind, index >= first_default)
            for index, (arg, kind) in enumerate(zip(arg_names, arg_types, strict=True))
        )
        return_type = return_name if return_kind != "p" else returns
        functions.append(
            Function(
                schema=schema,
                name=name,
                arguments=arguments,
                returns=return_type,
                returns_set=bool(returns_set),
                returns_table=tuple(
                    Parameter(out, kind, False)
                    for out, kind in zip(out_names, out_types, strict=True)
                    if return_name == "record"
                ),
                comment=comment,
                callers=tuple(callers),
                payload=None if returns_set else bind_payload(name, arguments, return_type),
            )
        )
    return Schema(tuple(schemas), relations, enums, tuple(functions))
