"""The statements :class:`~pysync.gateway.PostgresGateway` runs, shaped like PostgREST's own.

Every identifier comes from the catalog and is composed with :mod:`psycopg.sql`; every value
is a query parameter. Rows come back as PostgreSQL's own JSON (``json_agg`` over the query,
as PostgREST builds its response), so both gateways return identical values. Bodies go
through ``json_populate_recordset``/``json_to_record`` as in PostgREST, so JSON values are
cast to column and argument types by the same rules.

Builders are memoised on the *shape* of a request (table, columns, operators, number of
``in`` values…), never on values, so a repeated call costs a dictionary lookup and the
server sees the same text (which psycopg prepares after a few executions).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from psycopg import sql

from pysync.gateway.catalog import Function, Table
from pysync.gateway.filters import Filter, Op, Order, wire_value

__all__ = [
    "FilterShape",
    "delete_sql",
    "filter_params",
    "filter_shape",
    "insert_sql",
    "rpc_sql",
    "select_sql",
    "set_config_sql",
    "update_sql",
]

#: (column, operator, negated, number of ``in`` values, or the members' shapes of a group)
FilterShape = tuple["ShapeItem", ...]
ShapeItem = tuple[str, Op, bool, "int | FilterShape"]
_GROUPS = (Op.OR, Op.AND)

_COMPARISON = {
    Op.EQ: "=",
    Op.NEQ: "<>",
    Op.GT: ">",
    Op.GTE: ">=",
    Op.LT: "<",
    Op.LTE: "<=",
    Op.ILIKE: "ilike",
}
_EMPTY_JSON_ARRAY = sql.SQL("coalesce(json_agg({}), '[]'::json)")


def _shape(f: Filter) -> ShapeItem:
    if f.op in _GROUPS:
        return (f.column, f.op, f.negate, filter_shape(f.value))
    return (f.column, f.op, f.negate, len(f.value) if f.op is Op.IN else 0)


def filter_shape(filters: Sequence[Filter]) -> FilterShape:
    return tuple(_shape(f) for f in filters)


def filter_params(filters: Sequence[Filter]) -> list[str]:
    """Filter values as text, as they arrive in PostgREST's query string."""
    params: list[str] = []
    for f in filters:
        if f.op in _GROUPS:
            params.extend(filter_params(f.value))
        elif f.op is Op.IN:
            params.extend(wire_value(v) for v in f.value)
        elif f.op is Op.ILIKE:
            params.append(wire_value(f.value).replace("*", "%"))
        elif f.op is not Op.IS:
            params.append(wire_value(f.value))
    return params


def _qualified(table: Table) -> sql.Identifier:
    return sql.Identifier(table.schema, table.name)


def _where(table: Table, shape: FilterShape, joiner: str = " and ") -> sql.Composable:
    if not shape:
        return sql.SQL("true")
    terms: list[sql.Composable] = []
    for column, op, negate, count in shape:
        col = sql.Identifier(table.schema, table.name, column)
        term: sql.Composable
        if isinstance(count, tuple):
            inner = _where(table, count, " or " if op is Op.OR else " and ")
            term = sql.SQL("({})").format(inner)
        elif op is Op.IS:
            term = sql.SQL("{} is null").format(col)
        elif op is Op.IN:
            term = (
                sql.SQL("{} in ({})").format(col, sql.SQL(", ").join([sql.Placeholder()] * count))
                if count
                else sql.SQL("false")
            )
        else:
            term = sql.SQL("{} {} {}").format(col, sql.SQL(_COMPARISON[op]), sql.Placeholder())
        terms.append(sql.SQL("not ({})").format(term) if negate else term)
    return sql.SQL(joiner).join(terms)


def _order(table: Table, order: tuple[Order, ...]) -> sql.Composable:
    if not order:
        return sql.SQL("")
    terms = []
    for item in order:
        term = sql.SQL("{} {}").format(
            sql.Identifier(table.schema, table.name, item.column),
            sql.SQL("desc" if item.descending else "asc"),
        )
        if item.nulls_first is not None:
            term = sql.SQL("{} {}").format(
                term, sql.SQL("nulls first" if item.nulls_first else "nulls last")
            )
        terms.append(term)
    return sql.SQL(" order by {}").format(sql.SQL(", ").join(terms))


def _columns(table: Table, columns: tuple[str, ...] | None) -> sql.Composable:
    if columns is None:
        return sql.SQL("{}.*").format(_qualified(table))
    return sql.SQL(", ").join(sql.Identifier(table.schema, table.name, c) for c in columns)


def _text(query: sql.Composable) -> str:
    return query.as_string(None)


@lru_cache(maxsize=1024)
def select_sql(
    table: Table,
    columns: tuple[str, ...] | None,
    shape: FilterShape,
    order: tuple[Order, ...],
    limit: bool,
    offset: bool,
    count: bool,
) -> str:
    """One row: ``(count or null, json array of rows)``.

    Parameters: the filter values for the count (when counted), the filter values, then
    limit and offset when present.
    """
    where = _where(table, shape)
    count_expr = (
        sql.SQL("(select count(*) from {} where {})").format(_qualified(table), where)
        if count
        else sql.SQL("null::bigint")
    )
    inner = sql.SQL("select {} from {} where {}{}{}{}").format(
        _columns(table, columns),
        _qualified(table),
        where,
        _order(table, order),
        sql.SQL(" limit {}").format(sql.Placeholder()) if limit else sql.SQL(""),
        sql.SQL(" offset {}").format(sql.Placeholder()) if offset else sql.SQL(""),
    )
    return _text(
        sql.SQL("select {}, {} from ({}) _r").format(
            count_expr, _EMPTY_JSON_ARRAY.format(sql.Identifier("_r")), inner
        )
    )


def _returning(statement: sql.Composable, table: Table, returning: bool) -> str:
    if not returning:
        return _text(statement)
    return _text(
        sql.SQL("with _w as ({} returning {}.*) select {} from _w").format(
            statement, _qualified(table), _EMPTY_JSON_ARRAY.format(sql.Identifier("_w"))
        )
    )


@lru_cache(maxsize=1024)
def insert_sql(
    table: Table,
    columns: tuple[str, ...],
    on_conflict: tuple[str, ...] | None,
    returning: bool,
) -> str:
    """Parameter: the rows as a JSON array; ``on_conflict`` makes it a merging upsert."""
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    statement: sql.Composable = sql.SQL(
        "insert into {table} ({cols}) select {cols}"
        " from json_populate_recordset(null::{table}, {p}::json)"
    ).format(table=_qualified(table), cols=cols, p=sql.Placeholder())
    if on_conflict is not None:
        assignments = sql.SQL(", ").join(
            sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in columns
        )
        statement = sql.SQL("{} on conflict ({}) do update set {}").format(
            statement, sql.SQL(", ").join(map(sql.Identifier, on_conflict)), assignments
        )
    return _returning(statement, table, returning)


@lru_cache(maxsize=1024)
def update_sql(table: Table, columns: tuple[str, ...], shape: FilterShape, returning: bool) -> str:
    """Parameters: the new values as a JSON object, then the filter values."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = _v.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in columns
    )
    statement = sql.SQL(
        "update {table} set {set} from (select * from json_populate_record(null::{table}, "
        "{p}::json)) _v where {where}"
    ).format(
        table=_qualified(table), set=assignments, p=sql.Placeholder(), where=_where(table, shape)
    )
    return _returning(statement, table, returning)


@lru_cache(maxsize=1024)
def delete_sql(table: Table, shape: FilterShape, returning: bool) -> str:
    """Parameters: the filter values."""
    statement = sql.SQL("delete from {} where {}").format(_qualified(table), _where(table, shape))
    return _returning(statement, table, returning)


def _arguments_record(function: Function, names: tuple[str, ...]) -> sql.Composable:
    """``json_to_record(%s::json) as _args(name type, …)``: PostgREST's way of casting a JSON
    body to the argument types. The types come from ``format_type()`` in the catalog."""
    types = {arg.name: arg.type for arg in function.arguments}
    return sql.SQL("json_to_record({}::json) as _args({})").format(
        sql.Placeholder(),
        sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(types[n])) for n in names
        ),
    )


@lru_cache(maxsize=1024)
def rpc_sql(function: Function, names: tuple[str, ...]) -> str:
    """Parameter (when ``names``): the arguments as a JSON object.

    The result is the last column of the one row: a JSON array for set-returning functions,
    the JSON value otherwise, ``null`` for void functions.
    """
    call = sql.SQL("{}({})").format(
        sql.Identifier(function.schema, function.name),
        sql.SQL(", ").join(
            sql.SQL("{} => _args.{}").format(sql.Identifier(n), sql.Identifier(n)) for n in names
        ),
    )
    if function.returns_void:
        source = sql.SQL(" from {}").format(_arguments_record(function, names)) if names else None
        return _text(sql.SQL("select {}, null::json{}").format(call, source or sql.SQL("")))
    value: sql.Composable
    if function.returns_set:
        value = _EMPTY_JSON_ARRAY.format(sql.Identifier("_r"))
    elif function.returns_json:
        # Already JSON: to_json would copy it through text twice more (a sync_pull page is
        # megabytes), for the same value.
        value = sql.SQL("_r")
    else:
        value = sql.SQL("to_json(_r)")
    source = sql.SQL("{}, lateral ").format(_arguments_record(function, names)) if names else None
    return _text(sql.SQL("select {} from {}{} _r").format(value, source or sql.SQL(""), call))


@lru_cache(maxsize=64)
def set_config_sql(pairs: int) -> str:
    """``select set_config(%s, %s, true), …``: one statement, evaluated left to right."""
    one = sql.SQL("set_config({}, {}, true)").format(sql.Placeholder(), sql.Placeholder())
    return _text(sql.SQL("select {}").format(sql.SQL(", ").join([one] * pairs)))
