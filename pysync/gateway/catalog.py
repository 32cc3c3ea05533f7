"""The schema cache of :class:`~pysync.gateway.PostgresGateway`, like PostgREST's own.

Loaded once per gateway from ``pg_catalog`` (as the connecting role, ``authenticator``) and
reloaded on demand, so every table, column and function a request names is checked against
the catalog and only ever reaches SQL as a quoted identifier. It also holds what PostgREST
caches about the API roles: their ``ALTER ROLE … SET`` settings and isolation level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import psycopg
from psycopg import sql

from pysync.gateway.context import HOISTED_FUNCTION_SETTINGS

__all__ = ["Argument", "Catalog", "Function", "RoleConfig", "Table"]


@dataclass(frozen=True)
class Table:
    """A table or view of an exposed schema."""

    schema: str
    name: str
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]

    @cached_property
    def column_set(self) -> frozenset[str]:
        return frozenset(self.columns)


@dataclass(frozen=True)
class Argument:
    """An input argument: its name, its type as ``format_type`` spells it, and whether the
    caller may leave it out."""

    name: str
    type: str
    has_default: bool


@dataclass(frozen=True)
class Function:
    """A function of an exposed schema that the API can call."""

    schema: str
    name: str
    arguments: tuple[Argument, ...]
    returns_set: bool
    returns_void: bool
    #: ``provolatile``: ``v`` volatile, ``s`` stable, ``i`` immutable.
    volatility: str
    #: ``proconfig`` entries PostgREST hoists into the transaction (``statement_timeout`` …).
    hoisted_settings: tuple[tuple[str, str], ...] = ()
    isolation: str | None = None
    #: Returns one ``json`` or ``jsonb`` value: the result is already JSON, sent as it is.
    returns_json: bool = False

    def accepts(self, names: Sequence[str]) -> bool:
        """Whether a call with exactly these named arguments resolves to this function."""
        declared = {arg.name for arg in self.arguments}
        required = {arg.name for arg in self.arguments if not arg.has_default}
        given = set(names)
        return "" not in required and given <= declared and required <= given


@dataclass(frozen=True)
class RoleConfig:
    """An API role's settings as PostgREST applies them to each transaction."""

    settings: tuple[tuple[str, str], ...] = ()
    isolation: str | None = None


@dataclass(frozen=True)
class Catalog:
    tables: Mapping[tuple[str, str], Table] = field(default_factory=dict)
    functions: Mapping[tuple[str, str], tuple[Function, ...]] = field(default_factory=dict)
    roles: Mapping[str, RoleConfig] = field(default_factory=dict)

    @classmethod
    def load(cls, conn: psycopg.Connection[Any], schemas: Sequence[str]) -> Catalog:
        return cls(
            tables=_load_tables(conn, schemas),
            functions=_load_functions(conn, schemas),
            roles=_load_roles(conn),
        )


_TABLES = """
select n.nspname::text, c.relname::text,
       array(select a.attname::text from pg_attribute a
             where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
             order by a.attnum),
       array(select a.attname::text from pg_index i
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
             where i.indrelid = c.oid and i.indisprimary
             order by array_position(i.indkey::int2[], a.attnum))
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%s) and c.relkind in ('r', 'v', 'm', 'f', 'p')
"""


def _load_tables(
    conn: psycopg.Connection[Any], schemas: Sequence[str]
) -> dict[tuple[str, str], Table]:
    rows = conn.execute(_TABLES, (list(schemas),)).fetchall()
    return {
        (schema, name): Table(schema, name, tuple(columns), tuple(pkey))
        for schema, name, columns, pkey in rows
    }


# Input arguments only (modes i, b, v); PostgREST's own query skips trigger functions and
# aggregates the same way.
_FUNCTIONS = """
select n.nspname::text, p.proname::text, p.proretset,
       p.prorettype = 'pg_catalog.void'::regtype, p.provolatile::text,
       p.prorettype in ('pg_catalog.json'::regtype, 'pg_catalog.jsonb'::regtype),
       coalesce(p.proconfig, '{}'), p.pronargdefaults,
       array(select coalesce(args.name, '') from unnest(
                coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargnames, p.proargmodes
             ) with ordinality as args(type, name, mode, ord)
             where coalesce(args.mode, 'i') in ('i', 'b', 'v') order by args.ord),
       array(select format_type(args.type, null) from unnest(
                coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargnames, p.proargmodes
             ) with ordinality as args(type, name, mode, ord)
             where coalesce(args.mode, 'i') in ('i', 'b', 'v') order by args.ord)
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
where n.nspname = any(%s) and p.prokind = 'f'
  and p.prorettype not in ('pg_catalog.trigger'::regtype, 'pg_catalog.event_trigger'::regtype)
"""


def _split_setting(entry: str) -> tuple[str, str]:
    name, _, value = entry.partition("=")
    return name, value


def _load_functions(
    conn: psycopg.Connection[Any], schemas: Sequence[str]
) -> dict[tuple[str, str], tuple[Function, ...]]:
    found: dict[tuple[str, str], list[Function]] = {}
    for row in conn.execute(_FUNCTIONS, (list(schemas),)).fetchall():
        schema, name, retset, void, volatility, is_json, config, ndefaults, names, types = row
        first_default = len(names) - int(ndefaults)
        arguments = tuple(
            Argument(arg_name, arg_type, index >= first_default)
            for index, (arg_name, arg_type) in enumerate(zip(names, types, strict=True))
        )
        settings = [_split_setting(entry) for entry in config]
        hoisted = tuple((k, v) for k, v in settings if k in HOISTED_FUNCTION_SETTINGS)
        isolation = next(
            (v.lower() for k, v in settings if k == "default_transaction_isolation"), None
        )
        function = Function(
            schema,
            name,
            arguments,
            bool(retset),
            bool(void),
            volatility,
            hoisted,
            isolation,
            returns_json=bool(is_json),
        )
        found.setdefault((schema, name), []).append(function)
    return {key: tuple(funcs) for key, funcs in found.items()}


# PostgREST v12's queryRoleSettings (Config/Database.hs): the settings of every role the
# connecting role may become (``pg_roles.rolconfig``, i.e. pg_db_role_setting rows for all
# databases), whose context lets a plain role set them, or, from PostgreSQL 15, that the
# connecting role was granted SET on; values lower-cased.
_ROLE_SETTINGS = """
with role_setting as (
    select r.rolname, unnest(r.rolconfig) as setting
    from pg_auth_members m
    join pg_roles r on r.oid = m.roleid
    where member = current_user::regrole::oid
),
kv_settings as (
    select rolname,
           substr(setting, 1, strpos(setting, '=') - 1) as key,
           lower(substr(setting, strpos(setting, '=') + 1)) as value
    from role_setting
)
select kv.rolname::text, kv.key, kv.value
from kv_settings kv
join pg_settings ps on ps.name = kv.key and ({settable})
order by kv.rolname, kv.key
"""
_SETTABLE_BEFORE_15 = "ps.context = 'user'"
_SETTABLE = (
    "ps.context = 'user' or has_parameter_privilege(current_user::regrole::oid, ps.name, 'set')"
)


def _load_roles(conn: psycopg.Connection[Any]) -> dict[str, RoleConfig]:
    settings: dict[str, list[tuple[str, str]]] = {}
    isolation: dict[str, str] = {}
    settable = _SETTABLE if conn.info.server_version >= 150000 else _SETTABLE_BEFORE_15
    query = sql.SQL(_ROLE_SETTINGS).format(settable=sql.SQL(settable))
    for role, key, value in conn.execute(query).fetchall():
        if key == "default_transaction_isolation":
            isolation[role] = value
        else:
            settings.setdefault(role, []).append((key, value))
    return {
        role: RoleConfig(tuple(settings.get(role, ())), isolation.get(role))
        for role in settings.keys() | isolation.keys()
    }
