"""TypeScript in the shape ``supabase gen types typescript`` writes.

``Database[schema]["Tables"|"Views"|"Functions"|"Enums"|"CompositeTypes"]`` with ``Row``,
``Insert`` and ``Update`` per table and ``Args``/``Returns`` per function, plus the
``Tables<>``/``TablesInsert<>``/``TablesUpdate<>``/``Enums<>`` helpers, so code written
against the Supabase CLI's output compiles against this one. Two additions: a column with a
single-column ``CHECK (col IN (...))`` is a union of its literals instead of ``string``, and an
RPC with a declared payload (the sync RPCs, :mod:`pysync.gen.sync_payloads`) takes and returns
exported object types (``SyncPullRequest``, ``SyncPullResponse``, …) instead of ``Json``.
"""

from __future__ import annotations

import json

from pysync.gen.model import Column, Function, Parameter, Relation, Schema
from pysync.gen.payload_types import (
    Const,
    ListOf,
    MapOf,
    PayloadType,
    Scalar,
    choices_of,
    structs_of,
)

__all__ = ["TS_TYPES", "render_typescript"]

#: ``pg_type.typname`` → TypeScript, as the Supabase CLI maps them (postgres-meta).
TS_TYPES = {
    "bool": "boolean",
    "int2": "number",
    "int4": "number",
    "int8": "number",
    "float4": "number",
    "float8": "number",
    "numeric": "number",
    "json": "Json",
    "jsonb": "Json",
    "void": "undefined",
    "record": "Record<string, unknown>",
}

_JSON_TYPE = """export type Json =
  | string
  | number
  | boolean
  | null
  | { [key: string]: Json | undefined }
  | Json[]
"""

_HELPERS = """
type PublicSchema = Database[Extract<keyof Database, "public">]

export type Tables<T extends keyof PublicSchema["Tables"]> = PublicSchema["Tables"][T]["Row"]

export type TablesInsert<T extends keyof PublicSchema["Tables"]> =
  PublicSchema["Tables"][T]["Insert"]

export type TablesUpdate<T extends keyof PublicSchema["Tables"]> =
  PublicSchema["Tables"][T]["Update"]

export type Enums<T extends keyof PublicSchema["Enums"]> = PublicSchema["Enums"][T]
"""


def _empty(pad: str) -> str:
    """An object type with no members, as the Supabase CLI writes it."""
    return "{\n" + pad + "  [_ in never]: never\n" + pad + "}"


def _quote(text: str) -> str:
    return json.dumps(text)


def _key(name: str) -> str:
    return name if name.isidentifier() else _quote(name)


def _scalar(schema: str, type_name: str, literals: tuple[str, ...] | None, enums: set[str]) -> str:
    if literals is not None:
        return " | ".join(_quote(v) for v in literals)
    if type_name in enums:
        return f'Database["{schema}"]["Enums"]["{type_name}"]'
    return TS_TYPES.get(type_name, "string")


def _column_type(relation: Relation, column: Column, enums: set[str]) -> str:
    kind = _scalar(relation.schema, column.type, column.literals, enums)
    if column.is_array:
        kind = f"({kind})[]" if " | " in kind else f"{kind}[]"
    return kind


def _object(fields: list[str], pad: str) -> str:
    if not fields:
        return _empty(pad)
    inner = "".join(f"{pad}  {field}\n" for field in fields)
    return "{\n" + inner + pad + "}"


def _relation(relation: Relation, enums: set[str], pad: str) -> str:
    row, insert, update = [], [], []
    for column in relation.columns:
        kind = _column_type(relation, column, enums)
        nullable = f"{kind} | null" if column.nullable else kind
        row.append(f"{_key(column.name)}: {nullable}")
        if column.is_generated:
            insert.append(f"{_key(column.name)}?: never")
            update.append(f"{_key(column.name)}?: never")
            continue
        optional = "?" if column.nullable or column.has_default else ""
        insert.append(f"{_key(column.name)}{optional}: {nullable}")
        update.append(f"{_key(column.name)}?: {nullable}")
    links = []
    for fk in relation.foreign_keys:
        links.append(
            "{\n"
            f"{pad}    foreignKeyName: {_quote(fk.name)}\n"
            f"{pad}    columns: [{', '.join(_quote(c) for c in fk.columns)}]\n"
            f"{pad}    isOneToOne: {'true' if fk.one_to_one else 'false'}\n"
            f"{pad}    referencedRelation: {_quote(fk.referenced_relation)}\n"
            f"{pad}    referencedColumns: [{', '.join(_quote(c) for c in fk.referenced_columns)}]\n"
            f"{pad}  }}"
        )
    relationships = (
        "[]" if not links else "[\n" + "".join(f"{pad}  {link},\n" for link in links) + f"{pad}]"
    )
    parts = [f"Row: {_object(row, pad)}"]
    if relation.kind == "table":
        parts += [f"Insert: {_object(insert, pad)}", f"Update: {_object(update, pad)}"]
    parts.append(f"Relationships: {relationships}")
    body = "".join(f"{pad}{part}\n" for part in parts)
    return "{\n" + body + pad[:-2] + "}"


def _parameter_type(schema: str, parameter: Parameter, enums: set[str]) -> str:
    if parameter.type.startswith("_"):
        return f"{_scalar(schema, parameter.type[1:], None, enums)}[]"
    return _scalar(schema, parameter.type, None, enums)


def _returns(schema: Schema, function: Function, enums: set[str], pad: str) -> str:
    tables = {r.name for r in schema.relations if r.schema == function.schema}
    if function.returns_table:
        fields = [
            f"{_key(p.name)}: {_parameter_type(function.schema, p, enums)}"
            for p in function.returns_table
        ]
        kind = _object(fields, pad)
    elif function.returns in tables:
        section = (
            "Tables"
            if any(r.name == function.returns and r.kind == "table" for r in schema.relations)
            else "Views"
        )
        kind = f'Database["{function.schema}"]["{section}"]["{function.returns}"]["Row"]'
    else:
        kind = _parameter_type(function.schema, Parameter("", function.returns, False), enums)
    return f"{kind}[]" if function.returns_set else kind


_PAYLOAD_SCALARS = {"string": "string", "integer": "number", "boolean": "boolean", "json": "Json"}


def _payload_type(kind: PayloadType) -> str:
    """A declared payload type as TypeScript: named types by name, the rest spelled out."""
    if isinstance(kind, Scalar):
        return _PAYLOAD_SCALARS[kind.kind]
    if isinstance(kind, Const):
        return str(kind.value)
    if isinstance(kind, ListOf):
        item = _payload_type(kind.item)
        return f"({item})[]" if " | " in item else f"{item}[]"
    if isinstance(kind, MapOf):
        return f"{{ [key: string]: {_payload_type(kind.value)} }}"
    return kind.name


def _payload_declarations(schema: Schema) -> str:
    """The exported types of every declared payload the functions use, each with its doc."""
    payloads = schema.payloads()
    if not payloads:
        return ""
    parts = [
        "\n// The sync RPCs' payloads (wire version 2 of docs/sync-protocol.md), declared once in\n"
        "// pysync/gen/sync_payloads.py and checked against the server's answers.\n"
    ]
    for choice in choices_of(payloads):
        members = " | ".join(_quote(v) for v in choice.values)
        parts.append(f"\n/** {choice.doc} */\nexport type {choice.name} = {members}\n")
    for struct in structs_of(payloads):
        fields = []
        for field in struct.fields:
            kind = _payload_type(field.type)
            if field.nullable:
                kind += " | null"
            optional = "" if field.required else "?"
            fields.append(f"  /** {field.doc} */\n  {_key(field.name)}{optional}: {kind}\n")
        parts.append(
            f"\n/** {struct.doc} */\nexport type {struct.name} = {{\n" + "".join(fields) + "}\n"
        )
    return "".join(parts)


def _function(schema: Schema, function: Function, enums: set[str], pad: str) -> str:
    if function.payload is not None:
        payload = function.payload
        args = (
            _object([f"{_key(a.name)}: {_payload_type(a.type)}" for a in payload.arguments], pad)
            if payload.arguments
            else "Record<PropertyKey, never>"
        )
        returns = _payload_type(payload.returns)
        return f"{{\n{pad}Args: {args}\n{pad}Returns: {returns}\n" + pad[:-2] + "}"
    if function.arguments:
        args = _object(
            [
                f"{_key(a.name)}{'?' if a.has_default else ''}: "
                f"{_parameter_type(function.schema, a, enums)}"
                for a in function.arguments
            ],
            pad,
        )
    else:
        args = "Record<PropertyKey, never>"
    returns = _returns(schema, function, enums, pad)
    return f"{{\n{pad}Args: {args}\n{pad}Returns: {returns}\n" + pad[:-2] + "}"


def _section(entries: list[tuple[str, str]], pad: str) -> str:
    if not entries:
        return _empty(pad)
    inner = "".join(f"{pad}  {_key(name)}: {value}\n" for name, value in entries)
    return "{\n" + inner + pad + "}"


def render_typescript(schema: Schema) -> dict[str, str]:
    """``{"database.types.ts": source}`` for every API schema of ``schema``."""
    schemas = []
    for name in schema.schemas:
        enums = {e.name for e in schema.enums if e.schema == name}
        pad = "      "
        tables = [
            (r.name, _relation(r, enums, pad + "  "))
            for r in schema.relations
            if r.schema == name and r.kind == "table"
        ]
        views = [
            (r.name, _relation(r, enums, pad + "  "))
            for r in schema.relations
            if r.schema == name and r.kind == "view"
        ]
        overloads: dict[str, list[Function]] = {}
        for function in schema.functions:
            if function.schema == name:
                overloads.setdefault(function.name, []).append(function)
        functions = [
            (
                fname,
                " | ".join(_function(schema, f, enums, pad + "  ") for f in group),
            )
            for fname, group in sorted(overloads.items())
        ]
        enum_entries = [
            (e.name, " | ".join(_quote(v) for v in e.values))
            for e in schema.enums
            if e.schema == name
        ]
        sections = (
            f"    Tables: {_section(tables, '    ')}\n"
            f"    Views: {_section(views, '    ')}\n"
            f"    Functions: {_section(functions, '    ')}\n"
            f"    Enums: {_section(enum_entries, '    ')}\n"
            f"    CompositeTypes: {_empty('    ')}\n"
        )
        schemas.append(f"  {_key(name)}: {{\n{sections}  }}\n")
    header = (
        "// GENERATED by `pysync gen types --lang typescript` from the live catalog: do not\n"
        "// edit. The shape of `supabase gen types typescript`.\n\n"
    )
    text = (
        header
        + _JSON_TYPE
        + _payload_declarations(schema)
        + "\nexport type Database = {\n"
        + "".join(schemas)
        + "}\n"
    )
    return {"database.types.ts": text + _HELPERS}
