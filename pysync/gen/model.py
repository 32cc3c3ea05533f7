"""What the generators know about a schema: plain values read once from the catalog
(:mod:`pysync.gen.introspect`), so each language's writer is a pure function of them and
golden-file tests need no database."""

from __future__ import annotations

from dataclasses import dataclass

from pysync.gen.payload_types import RpcPayload

__all__ = ["Column", "Enum", "ForeignKey", "Function", "Parameter", "Relation", "Schema"]


@dataclass(frozen=True)
class Column:
    name: str
    #: The base type's name (``uuid``, ``timestamptz``, an enum's name); for an array, the
    #: element type's, with ``is_array`` set.
    type: str
    type_schema: str
    is_enum: bool
    is_array: bool
    #: ``format_type``'s spelling, for comments (``character varying(40)``, ``text[]``).
    formatted_type: str
    nullable: bool
    #: A default, an identity or a generated value: an insert may leave the column out.
    has_default: bool
    is_identity: bool
    is_generated: bool
    default: str
    #: The closed set a single-column ``CHECK (col IN (...))`` allows, in declared order.
    literals: tuple[str, ...] | None
    comment: str = ""


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    referenced_schema: str
    referenced_relation: str
    referenced_columns: tuple[str, ...]
    #: The referencing columns are themselves unique (a one-to-one relationship).
    one_to_one: bool


@dataclass(frozen=True)
class Relation:
    schema: str
    name: str
    #: ``table`` (tables, partitioned and foreign tables) or ``view`` (views, matviews).
    kind: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...]
    comment: str = ""


@dataclass(frozen=True)
class Enum:
    schema: str
    name: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Parameter:
    name: str
    #: The type's name as in :attr:`Column.type` (``_text`` for ``text[]``).
    type: str
    has_default: bool


@dataclass(frozen=True)
class Function:
    schema: str
    name: str
    arguments: tuple[Parameter, ...]
    #: The return type's name (``jsonb``, ``void``, a table's name for ``setof`` a row type).
    returns: str
    returns_set: bool
    #: ``returns table (...)`` / OUT parameters, when the function returns records.
    returns_table: tuple[Parameter, ...]
    comment: str
    #: API roles with EXECUTE (``anon``, ``authenticated``, ``service_role``).
    callers: tuple[str, ...]
    #: The declared shape of its JSON arguments and result (:mod:`pysync.gen.sync_payloads`),
    #: when the function is one the declaration describes; otherwise they are plain JSON.
    payload: RpcPayload | None = None


@dataclass(frozen=True)
class Schema:
    schemas: tuple[str, ...]
    relations: tuple[Relation, ...]
    enums: tuple[Enum, ...]
    functions: tuple[Function, ...]

    def tables(self) -> tuple[Relation, ...]:
        return tuple(r for r in self.relations if r.kind == "table")

    def views(self) -> tuple[Relation, ...]:
        return tuple(r for r in self.relations if r.kind == "view")

    def payloads(self, callers: tuple[str, ...] = ()) -> tuple[RpcPayload, ...]:
        """The declared payloads of the functions, once each; with ``callers``, only of
        functions one of those roles may execute."""
        found: dict[str, RpcPayload] = {}
        for function in self.functions:
            if function.payload is None:
                continue
            if callers and not set(callers) & set(function.callers):
                continue
            found.setdefault(function.payload.function, function.payload)
        return tuple(found.values())
