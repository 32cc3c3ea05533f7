"""Row filters and ordering: small frozen values that both gateways translate.

They mirror PostgREST's horizontal filtering operators, with PostgREST's semantics: every
value travels as text and the database casts it to the column's type (``rank=eq.5`` and
``eq("rank", 5)`` mean the same), so a filter behaves identically through either gateway.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

__all__ = [
    "Filter",
    "Op",
    "Order",
    "and_",
    "asc",
    "desc",
    "eq",
    "gt",
    "gte",
    "ilike",
    "in_",
    "is_not_null",
    "is_null",
    "leaf_columns",
    "lt",
    "lte",
    "neq",
    "or_",
    "wire_value",
]


class Op(StrEnum):
    """Operators, named as in PostgREST's query string (``?rank=gte.3``)."""

    EQ = "eq"
    NEQ = "neq"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    IN = "in"
    IS = "is"
    ILIKE = "ilike"
    #: Groups: ``value`` is a tuple of filters (PostgREST's ``or=(…)`` / ``and=(…)``).
    OR = "or"
    AND = "and"


def wire_value(value: Any) -> str:
    """A filter value as PostgREST receives it in the query string.

    ``None`` is ``null`` and booleans are ``true``/``false`` (what PostgreSQL's boolean input
    accepts); everything else is ``str(value)`` (uuid, dates via ``isoformat``, numbers).
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


@dataclass(frozen=True)
class Filter:
    """``column op value``; ``negate`` puts PostgREST's ``not.`` in front."""

    column: str
    op: Op
    value: Any = None
    negate: bool = False

    def __post_init__(self) -> None:
        if self.op in (Op.OR, Op.AND):
            members = tuple(self.value)
            if not members or not all(isinstance(m, Filter) for m in members):
                raise ValueError(f"{self.op.value}_() needs at least one filter")
            if any(m.op is Op.IN and not m.value for m in members):
                # PostgREST's logic-tree grammar has no empty list: refuse it everywhere.
                raise ValueError(f"an empty in_() cannot be part of {self.op.value}_()")
            object.__setattr__(self, "value", members)
        elif self.op is Op.IN:
            object.__setattr__(self, "value", tuple(self.value))
        if self.op is Op.IS and self.value is not None:
            raise ValueError("only `is null` is supported: use is_null() or is_not_null()")

    def negated(self) -> Filter:
        return replace(self, negate=not self.negate)


def eq(column: str, value: Any) -> Filter:
    return Filter(column, Op.EQ, value)


def neq(column: str, value: Any) -> Filter:
    return Filter(column, Op.NEQ, value)


def gt(column: str, value: Any) -> Filter:
    return Filter(column, Op.GT, value)


def gte(column: str, value: Any) -> Filter:
    return Filter(column, Op.GTE, value)


def lt(column: str, value: Any) -> Filter:
    return Filter(column, Op.LT, value)


def lte(column: str, value: Any) -> Filter:
    return Filter(column, Op.LTE, value)


def or_(*filters: Filter) -> Filter:
    """Any of ``filters`` holds (PostgREST's ``or=(…)``); members may be groups themselves."""
    return Filter("or", Op.OR, filters)


def and_(*filters: Filter) -> Filter:
    """All of ``filters`` hold: a group inside :func:`or_`, or negated with ``.negated()``
    (top-level filters are combined with *and* already)."""
    return Filter("and", Op.AND, filters)


def leaf_columns(filters: Sequence[Filter]) -> Iterator[str]:
    """The columns the filters compare, groups included."""
    for f in filters:
        if f.op in (Op.OR, Op.AND):
            yield from leaf_columns(f.value)
        else:
            yield f.column


def in_(column: str, values: Iterable[Any]) -> Filter:
    """``column in (values…)``; an empty list matches no row, as in PostgREST."""
    return Filter(column, Op.IN, tuple(values))


def is_null(column: str) -> Filter:
    return Filter(column, Op.IS, None)


def is_not_null(column: str) -> Filter:
    return Filter(column, Op.IS, None, negate=True)


def ilike(column: str, pattern: str) -> Filter:
    """Case-insensitive ``LIKE``; ``%`` and ``_`` are the wildcards (PostgREST also reads ``*``
    as ``%``, so patterns written with ``%`` behave the same through both gateways)."""
    return Filter(column, Op.ILIKE, pattern)


@dataclass(frozen=True)
class Order:
    """One ``order by`` term; ``nulls_first=None`` keeps PostgreSQL's default for the direction."""

    column: str
    descending: bool = False
    nulls_first: bool | None = None


def asc(column: str, *, nulls_first: bool | None = None) -> Order:
    return Order(column, False, nulls_first)


def desc(column: str, *, nulls_first: bool | None = None) -> Order:
    return Order(column, True, nulls_first)
