"""A small type language for JSON payloads that the generators render and tests check.

An RPC that takes and returns ``jsonb`` looks like ``Json`` to the catalog; its real shape is
declared once with these types (:mod:`pysync.gen.sync_payloads` for the sync RPCs), rendered
by each language's writer, and checked against the server's real answers by
:func:`validate`, so a declaration that drifts from the server fails a test instead of a
client. Deliberately small: strings (with a format), integers, booleans, any JSON value,
integer constants, closed sets of strings, lists, string-keyed maps and structs, which is
what the wire contracts use and what Dart, TypeScript and Python all express plainly.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "BOOLEAN",
    "INTEGER",
    "JSON",
    "SNAPSHOT",
    "STRING",
    "TIMESTAMP",
    "UUID",
    "Argument",
    "Choice",
    "Const",
    "Field",
    "ListOf",
    "MapOf",
    "PayloadType",
    "RpcPayload",
    "Scalar",
    "Struct",
    "Usage",
    "choices_of",
    "structs_of",
    "validate",
]


@dataclass(frozen=True)
class Scalar:
    """A JSON scalar; ``format`` narrows a string (and picks ``DateTime`` in Dart)."""

    kind: Literal["string", "integer", "boolean", "json"]
    format: Literal["", "uuid", "date-time", "snapshot"] = ""


STRING = Scalar("string")
UUID = Scalar("string", "uuid")
#: ISO 8601 with an offset, as PostgreSQL writes ``timestamptz`` into JSON.
TIMESTAMP = Scalar("string", "date-time")
#: A ``pg_snapshot`` in its text form: ``xmin:xmax:xip,…``.
SNAPSHOT = Scalar("string", "snapshot")
INTEGER = Scalar("integer")
BOOLEAN = Scalar("boolean")
#: Any JSON value (a row's column value, an op's data).
JSON = Scalar("json")


@dataclass(frozen=True)
class Const:
    """An integer that has exactly one value (a wire version)."""

    value: int


@dataclass(frozen=True)
class Choice:
    """A closed set of strings, named: an ``enum`` in Dart, a union of literals elsewhere."""

    name: str
    values: tuple[str, ...]
    doc: str


@dataclass(frozen=True)
class ListOf:
    item: PayloadType


@dataclass(frozen=True)
class MapOf:
    """A JSON object with arbitrary string keys (bucket names, table names, columns)."""

    value: PayloadType


@dataclass(frozen=True)
class Field:
    name: str
    type: PayloadType
    doc: str
    #: The value may be ``null``.
    nullable: bool = False
    #: The key may be absent (``required=False``).
    required: bool = True


@dataclass(frozen=True)
class Struct:
    """A JSON object with exactly these keys: a class in Dart, an object type elsewhere."""

    name: str
    doc: str
    fields: tuple[Field, ...]


PayloadType = Scalar | Const | Choice | ListOf | MapOf | Struct


@dataclass(frozen=True)
class Argument:
    name: str
    #: The argument's type in the catalog (``pg_type.typname``): the binding checks it.
    pg_type: str
    type: PayloadType


@dataclass(frozen=True)
class RpcPayload:
    """What one RPC takes and returns, bound to the catalog's function of that name when its
    arguments have exactly these names and types and it returns one of ``returns_pg``."""

    function: str
    arguments: tuple[Argument, ...]
    returns: PayloadType
    returns_pg: tuple[str, ...] = ("json", "jsonb")


def _children(kind: PayloadType) -> Iterator[PayloadType]:
    if isinstance(kind, ListOf):
        yield kind.item
    elif isinstance(kind, MapOf):
        yield kind.value
    elif isinstance(kind, Struct):
        yield from (f.type for f in kind.fields)


def _walk(roots: list[PayloadType], seen: dict[str, PayloadType]) -> None:
    """Named types reachable from ``roots``, each after the types it refers to."""
    for kind in roots:
        _walk(list(_children(kind)), seen)
        if isinstance(kind, Struct | Choice) and kind.name not in seen:
            seen[kind.name] = kind


def _named(payloads: tuple[RpcPayload, ...]) -> list[PayloadType]:
    seen: dict[str, PayloadType] = {}
    for payload in payloads:
        _walk([*(a.type for a in payload.arguments), payload.returns], seen)
    return list(seen.values())


def structs_of(payloads: tuple[RpcPayload, ...]) -> list[Struct]:
    """Every struct the payloads use, a struct after those its fields name."""
    return [k for k in _named(payloads) if isinstance(k, Struct)]


def choices_of(payloads: tuple[RpcPayload, ...]) -> list[Choice]:
    """Every closed set of strings the payloads use."""
    return [k for k in _named(payloads) if isinstance(k, Choice)]


# -- validation -------------------------------------------------------------------------------

_SNAPSHOT = re.compile(r"^[0-9]+:[0-9]+:([0-9]+(,[0-9]+)*)?$")


@dataclass
class Usage:
    """Which fields real payloads used, and how: a declaration that says a field can be
    ``null`` or absent is only as good as a payload that shows it (see the tests)."""

    present: set[str] = field(default_factory=set)
    null: set[str] = field(default_factory=set)
    absent: set[str] = field(default_factory=set)


def _scalar_errors(value: Any, kind: Scalar, path: str) -> list[str]:
    if kind.kind == "json":
        return []
    if kind.kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: {value!r} is not a boolean"]
    if kind.kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not an integer"]
    if not isinstance(value, str):
        return [f"{path}: {value!r} is not a string"]
    if kind.format == "uuid":
        try:
            ok = str(uuid.UUID(value)) == value
        except ValueError:
            ok = False
        return [] if ok else [f"{path}: {value!r} is not a uuid in canonical form"]
    if kind.format == "date-time":
        try:
            aware = datetime.fromisoformat(value).tzinfo is not None
        except ValueError:
            aware = False
        return [] if aware else [f"{path}: {value!r} is not an ISO 8601 time with an offset"]
    if kind.format == "snapshot" and not _SNAPSHOT.match(value):
        return [f"{path}: {value!r} is not a snapshot (xmin:xmax:xip)"]
    return []


def validate(
    value: Any, kind: PayloadType, path: str = "$", usage: Usage | None = None
) -> list[str]:
    """Every way ``value`` (decoded JSON) differs from ``kind``: a missing or undeclared key,
    a ``null`` where none is declared, a wrong type, a value outside a choice. Empty when it
    conforms. ``usage`` records each struct field as present, ``null`` or absent."""
    if isinstance(kind, Scalar):
        return _scalar_errors(value, kind, path)
    if isinstance(kind, Const):
        ok = isinstance(value, int) and not isinstance(value, bool) and value == kind.value
        return [] if ok else [f"{path}: {value!r} is not {kind.value}"]
    if isinstance(kind, Choice):
        ok = isinstance(value, str) and value in kind.values
        return [] if ok else [f"{path}: {value!r} is not one of {', '.join(kind.values)}"]
    if isinstance(kind, ListOf):
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        errors: list[str] = []
        for index, item in enumerate(value):
            errors += validate(item, kind.item, f"{path}[{index}]", usage)
        return errors
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return [f"{path}: {value!r} is not an object"]
    if isinstance(kind, MapOf):
        errors = []
        for key, item in value.items():
            errors += validate(item, kind.value, f"{path}[{key!r}]", usage)
        return errors
    errors = [f"{path}: undeclared key {key!r}" for key in value if key not in _names(kind)]
    for declared in kind.fields:
        where = f"{kind.name}.{declared.name}"
        if declared.name not in value:
            if usage is not None:
                usage.absent.add(where)
            if declared.required:
                errors.append(f"{path}: no {declared.name!r}")
            continue
        item = value[declared.name]
        if item is None:
            if usage is not None:
                usage.null.add(where)
            if not declared.nullable:
                errors.append(f"{path}.{declared.name}: null, which is not declared")
            continue
        if usage is not None:
            usage.present.add(where)
        errors += validate(item, declared.type, f"{path}.{declared.name}", usage)
    return errors


def _names(struct: Struct) -> set[str]:
    return {f.name for f in struct.fields}
