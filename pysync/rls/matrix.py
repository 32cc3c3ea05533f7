"""The declared access matrix (``policies/matrix.toml``): who may do what to which row.

The file names a small fixture world (users with application roles, and rows that refer to
them) and a list of case lines. Each line is one operation on one table, and lists the
actors it must be *allowed* for; every other actor must be denied. One line therefore
expands to a case per actor, so the file reads as the table-by-actor-by-operation grid the
product promises.

Values are TOML values; strings may name users and rows in braces: ``"{owner_tutor}"`` is
that user's id, ``"{published_course}"`` that row's id, ``"{me}"`` the acting user's id
(null for anon and service_role), and ``"{owner_student}/avatar.png"`` builds a path.

A fixture row that a trigger has already made (a user's default notification preferences)
names its key in ``on_conflict = ["user_id", "category"]``: the world then updates that row
to the given values and uses its id.

RPCs are declared in ``[[rpc]]`` lines: a function of ``public`` (as PostgREST exposes it,
``"sync_pull(jsonb)"``) and the API roles allowed to execute it; every other API role must be
denied. Execute rights belong to roles, not users, so these lines speak of ``anon``,
``authenticated`` and ``service_role``; what a function does for each user is the business of
the function's own tests.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pysync.errors import PysyncError

__all__ = [
    "ACTORS",
    "API_ROLES",
    "OPERATIONS",
    "Case",
    "CaseSpec",
    "Matrix",
    "MatrixError",
    "RpcSpec",
    "UserSpec",
    "load_matrix",
]

#: Everyone the matrix speaks about: anon and service_role act without a user; the others
#: are fixture users with the application role their name suggests.
ACTORS = (
    "anon",
    "owner_student",
    "other_student",
    "owner_tutor",
    "other_tutor",
    "admin",
    "service_role",
)
API_ACTORS = ("anon", "service_role")
#: The roles PostgREST runs a request as: who may execute an RPC is decided per role.
API_ROLES = ("anon", "authenticated", "service_role")
OPERATIONS = ("select", "insert", "update", "delete")
Value = Any


class MatrixError(PysyncError):
    """The matrix file is malformed (unknown actor, row, table or operation)."""


@dataclass(frozen=True)
class UserSpec:
    name: str
    app_role: str
    deleted: bool = False


@dataclass(frozen=True)
class RowSpec:
    """A fixture row. ``on_conflict`` names the key of a row that a trigger may already have
    created (e.g. a user's default preferences): the fixture then updates that row."""

    name: str
    table: str
    values: dict[str, Value]
    on_conflict: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaseSpec:
    """One line of the matrix: an operation, and the actors it is allowed for."""

    table: str
    op: str
    allow: frozenset[str]
    actors: tuple[str, ...] = ACTORS
    name: str = ""
    row: str | None = None
    values: dict[str, Value] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.op} {self.name}".strip() if self.name else self.op

    def expand(self) -> list[Case]:
        return [
            Case(spec=self, actor=actor, expected="allow" if actor in self.allow else "deny")
            for actor in self.actors
        ]


@dataclass(frozen=True)
class Case:
    """One actor trying one line of the matrix."""

    spec: CaseSpec
    actor: str
    expected: str


@dataclass(frozen=True)
class RpcSpec:
    """One ``[[rpc]]`` line: a function (``public.sync_pull(jsonb)``) and the API roles that
    may execute it; the other API roles must not."""

    function: str
    allow: frozenset[str]


@dataclass(frozen=True)
class Matrix:
    users: dict[str, UserSpec]
    rows: dict[str, RowSpec]
    lines: list[CaseSpec]
    path: Path | None = None
    rpcs: list[RpcSpec] = field(default_factory=list)

    @property
    def cases(self) -> list[Case]:
        return [case for line in self.lines for case in line.expand()]

    @property
    def tables(self) -> set[str]:
        return {qualified(line.table) for line in self.lines}


def qualified(table: str) -> str:
    """``courses`` → ``public.courses``; ``storage.objects`` stays as it is."""
    return table if "." in table else f"public.{table}"


def function_name(signature: str) -> str:
    """``sync_push(uuid,jsonb)`` → ``public.sync_push(uuid, jsonb)``: schema-qualified, one
    space after each comma, as the catalog spells argument types (``oidvectortypes``)."""
    name, _, args = signature.strip().partition("(")
    types = [t.strip() for t in args.rstrip(")").split(",") if t.strip()]
    return f"{qualified(name.strip())}({', '.join(types)})"


def _names_in(value: Value) -> set[str]:
    if isinstance(value, str):
        import string

        return {name for _, name, _, _ in string.Formatter().parse(value) if name}
    if isinstance(value, list):
        return set().union(*(_names_in(v) for v in value)) if value else set()
    return set()


def _check_refs(where: str, values: dict[str, Value], known: set[str]) -> None:
    for column, value in values.items():
        unknown = _names_in(value) - known - {"me"}
        if unknown:
            raise MatrixError(f"{where}: column {column} refers to unknown {sorted(unknown)}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MatrixError(f"{path}: {exc}") from exc


def matrix_parts(path: Path) -> list[Path]:
    """The main file and, beside it, every ``<stem>/*.toml`` part in name order.

    Each domain keeps its rows and cases in a part of its own (``policies/matrix/*.toml``),
    so adding a domain never edits another domain's file; users live in the main file.
    """
    folder = path.with_suffix("")
    return [path, *sorted(folder.glob("*.toml"))] if folder.is_dir() else [path]


def load_matrix(path: Path) -> Matrix:
    """Parse and validate a matrix file and its parts; errors name the offending entry."""
    parts = [(part, _read_toml(part)) for part in matrix_parts(path)]
    data = parts[0][1]

    users: dict[str, UserSpec] = {}
    for name, spec in data.get("users", {}).items():
        role = spec.get("app_role")
        if role not in ("student", "tutor", "admin"):
            raise MatrixError(f"{path}: user {name} needs app_role student, tutor or admin")
        users[name] = UserSpec(name, role, bool(spec.get("deleted", False)))
    missing = [a for a in ACTORS if a not in API_ACTORS and a not in users]
    if missing:
        raise MatrixError(f"{path}: the [users] table must define {missing}")

    rows: dict[str, RowSpec] = {}
    for part, part_data in parts:
        if part != path and "users" in part_data:
            raise MatrixError(f"{part}: users belong in {path.name}")
        for name, spec in part_data.get("rows", {}).items():
            if name in users or name == "me" or name in rows:
                raise MatrixError(f"{part}: row {name} is already defined")
            if "table" not in spec or not isinstance(spec.get("values"), dict):
                raise MatrixError(f"{part}: row {name} needs a table and values")
            _check_refs(f"{part}: row {name}", spec["values"], set(users) | set(rows))
            conflict = spec.get("on_conflict", [])
            if not isinstance(conflict, list) or not set(conflict) <= set(spec["values"]):
                raise MatrixError(f"{part}: row {name}: on_conflict must list columns it sets")
            rows[name] = RowSpec(name, spec["table"], dict(spec["values"]), tuple(conflict))

    lines: list[CaseSpec] = []
    known = set(users) | set(rows)
    for part, part_data in parts:
        for number, spec in enumerate(part_data.get("case", []), start=1):
            lines.append(_case_line(part, number, spec, known))

    rpcs: dict[str, RpcSpec] = {}
    for part, part_data in parts:
        for number, spec in enumerate(part_data.get("rpc", []), start=1):
            rpc = _rpc_line(part, number, spec)
            if rpc.function in rpcs:
                raise MatrixError(f"{part}: rpc {number}: {rpc.function} is already declared")
            rpcs[rpc.function] = rpc
    return Matrix(users=users, rows=rows, lines=lines, path=path, rpcs=list(rpcs.values()))


def _rpc_line(path: Path, number: int, spec: dict[str, Any]) -> RpcSpec:
    where = f"{path}: rpc {number} ({spec.get('function')})"
    function = spec.get("function")
    if not isinstance(function, str) or not function.rstrip().endswith(")"):
        raise MatrixError(f"{where}: function must be a signature such as sync_pull(jsonb)")
    allow = spec.get("allow")
    if not isinstance(allow, list):
        raise MatrixError(f"{where}: allow must list the API roles that may execute it")
    strangers = set(allow) - set(API_ROLES)
    if strangers:
        raise MatrixError(f"{where}: unknown roles {sorted(strangers)}; use {list(API_ROLES)}")
    return RpcSpec(function=function_name(function), allow=frozenset(allow))


def _case_line(path: Path, number: int, spec: dict[str, Any], known: set[str]) -> CaseSpec:
    where = f"{path}: case {number} ({spec.get('table')} {spec.get('op')} {spec.get('name', '')})"
    op = spec.get("op")
    if op not in OPERATIONS:
        raise MatrixError(f"{where}: op must be one of {OPERATIONS}")
    actors = tuple(spec.get("actors", ACTORS))
    allow = frozenset(spec.get("allow", []))
    strangers = (set(actors) | allow) - set(ACTORS)
    if strangers:
        raise MatrixError(f"{where}: unknown actors {sorted(strangers)}")
    if not allow <= set(actors):
        raise MatrixError(f"{where}: allows actors it does not run: {sorted(allow - set(actors))}")
    row = spec.get("row")
    if op != "insert" and row not in known:
        raise MatrixError(f"{where}: {op} needs a row naming a fixture row or user")
    values = dict(spec.get("values", spec.get("set", {})))
    if op in ("insert", "update") and not values:
        raise MatrixError(f"{where}: {op} needs values")
    _check_refs(where, values, known)
    return CaseSpec(
        table=spec["table"],
        op=op,
        allow=allow,
        actors=actors,
        name=spec.get("name", ""),
        row=row,
        values=values,
    )
