"""Run the access matrix against a database: each case in its own savepoint, as its actor.

Everything happens in one transaction that is rolled back, fixture users included, so the
runner can be pointed at a staging or branch database and leaves nothing behind.

Outcomes: a select is *allowed* when the row is visible; an insert when it succeeds; an
update or delete when it touches the row. *Denied* is zero rows or SQLSTATE 42501 (RLS
``WITH CHECK``, missing grant or column privilege, or a guard trigger). Anything else is an
*error*, reported with its SQLSTATE: a matrix case must fail only for permission reasons.

An ``[[rpc]]`` line is checked per API role with ``has_function_privilege(role, function,
'execute')``: *allowed* when the role may execute it, *error* when the function does not exist.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import errors, sql

from pysync.rls.matrix import API_ACTORS, API_ROLES, Case, Matrix, RpcSpec, qualified
from pysync.rls.request import impersonate
from pysync.rls.world import World, build_world, table_identifier

__all__ = [
    "CaseResult",
    "CoverageGap",
    "MatrixReport",
    "coverage_gaps",
    "find_coverage_gaps",
    "run_matrix",
]

_METHODS = {"select": "GET", "insert": "POST", "update": "PATCH", "delete": "DELETE"}
_POLICY_COMMANDS = {"SELECT": "select", "INSERT": "insert", "UPDATE": "update", "DELETE": "delete"}


@dataclass(frozen=True)
class CaseResult:
    table: str
    actor: str
    op: str
    row: str | None
    expected: str
    got: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.expected == self.got


@dataclass
class MatrixReport:
    results: list[CaseResult]
    uncovered: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.uncovered

    def as_dict(self) -> dict[str, Any]:
        return {
            "cases": len(self.results),
            "passed": len(self.results) - len(self.failures),
            "failed": len(self.failures),
            "failures": [asdict(r) for r in self.failures],
            "uncovered": self.uncovered,
        }


def _statement(case: Case, world: World, me: uuid.UUID | None) -> tuple[sql.Composed, list[Any]]:
    spec = case.spec
    table = table_identifier(spec.table)
    row_id = world.ids[spec.row] if spec.row else None
    if spec.op == "select":
        return sql.SQL("select 1 from {} where id = %s").format(table), [row_id]
    if spec.op == "delete":
        return sql.SQL("delete from {} where id = %s").format(table), [row_id]
    values = {column: world.resolve(v, me) for column, v in spec.values.items()}
    if spec.op == "update":
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c in values
        )
        query = sql.SQL("update {} set {} where id = %s").format(table, assignments)
        return query, [*values.values(), row_id]
    query = sql.SQL("insert into {} ({}) values ({})").format(
        table,
        sql.SQL(", ").join(sql.Identifier(c) for c in values),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    return query, list(values.values())


def _run_case(conn: psycopg.Connection[Any], case: Case, world: World) -> CaseResult:
    spec = case.spec
    me = None if case.actor in API_ACTORS else world.ids[case.actor]
    role = case.actor if case.actor in API_ACTORS else "authenticated"
    query, params = _statement(case, world, me)
    got, detail = "deny", ""
    try:
        with conn.transaction(force_rollback=True):
            impersonate(conn, role, me, method=_METHODS[spec.op], path=f"/{spec.table}")
            if qualified(spec.table).startswith("storage."):
                # Users reach storage rows only through the Storage API, which allows its own
                # deletes past storage.protect_delete() (a plain SQL delete is refused).
                conn.execute("select set_config('storage.allow_delete_query', 'true', true)")
            cursor = conn.execute(query, params)
            touched = cursor.rowcount if spec.op != "select" else len(cursor.fetchall())
            got = "allow" if touched == 1 else "deny"
            if touched == 0:
                detail = "no row visible"
    except errors.InsufficientPrivilege as exc:
        detail = (exc.diag.message_primary or str(exc)).strip()
    except psycopg.Error as exc:
        got = "error"
        detail = f"{exc.sqlstate}: {(exc.diag.message_primary or str(exc)).strip()}"
    return CaseResult(
        table=qualified(spec.table),
        actor=case.actor,
        op=spec.label,
        row=spec.row,
        expected=case.expected,
        got=got,
        detail=detail,
    )


def _run_rpc(conn: psycopg.Connection[Any], rpc: RpcSpec) -> list[CaseResult]:
    found = conn.execute("select to_regprocedure(%s)::oid", (rpc.function,)).fetchone()
    oid = found[0] if found else None
    results = []
    for role in API_ROLES:
        expected = "allow" if role in rpc.allow else "deny"
        if oid is None:
            got, detail = "error", "no such function"
        else:
            allowed = conn.execute(
                "select has_function_privilege(%s, %s::oid, 'execute')", (role, oid)
            ).fetchone()
            got = "allow" if allowed and allowed[0] else "deny"
            detail = "" if got == "allow" else "no execute privilege"
        results.append(
            CaseResult(
                table=rpc.function,
                actor=role,
                op="execute",
                row=None,
                expected=expected,
                got=got,
                detail=detail,
            )
        )
    return results


@dataclass(frozen=True)
class CoverageGap:
    """Something the matrix leaves unproven. ``kind``: ``rls_disabled``, ``no_case_lines``
    (a table of ``public``), ``policy_without_case_line`` (for ``op``) or
    ``function_without_rpc_line`` (``table`` is then a function of ``public``)."""

    table: str
    kind: str
    op: str | None = None

    def __str__(self) -> str:
        if self.kind == "rls_disabled":
            return f"{self.table}: row level security is disabled"
        if self.kind == "no_case_lines":
            return f"{self.table}: no case lines in the access matrix"
        if self.kind == "function_without_rpc_line":
            return f"{self.table}: no rpc line in the access matrix"
        return f"{self.table}: {self.op} policies have no case line"


def find_coverage_gaps(conn: psycopg.Connection[Any], matrix: Matrix) -> list[CoverageGap]:
    """What the matrix leaves unproven: tables of ``public`` without case lines or without
    RLS, (table, command) pairs that have a policy but no case line, and functions of
    ``public`` (PostgREST's RPCs; not trigger functions, not an extension's) without an
    ``[[rpc]]`` line."""
    gaps: list[CoverageGap] = []
    tables = conn.execute(
        "select n.nspname || '.' || c.relname, c.relrowsecurity from pg_class c"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition"
        " order by 1"
    ).fetchall()
    covered = matrix.tables
    for table, rls in tables:
        if not rls:
            gaps.append(CoverageGap(table, "rls_disabled"))
        if table not in covered:
            gaps.append(CoverageGap(table, "no_case_lines"))
    ops = {(qualified(line.table), line.op) for line in matrix.lines}
    policies = conn.execute(
        "select distinct schemaname || '.' || tablename, cmd from pg_policies"
        " where schemaname || '.' || tablename = any(%s) or schemaname = 'public'",
        (sorted(covered),),
    ).fetchall()
    for table, command in sorted(policies):
        commands = _POLICY_COMMANDS.values() if command == "ALL" else [_POLICY_COMMANDS[command]]
        for op in commands:
            if (table, op) not in ops:
                gaps.append(CoverageGap(table, "policy_without_case_line", op))
    functions = conn.execute(
        "select n.nspname || '.' || p.proname || '(' || oidvectortypes(p.proargtypes) || ')'"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'public' and p.prokind in ('f', 'p')"
        " and p.prorettype not in ('trigger'::regtype, 'event_trigger'::regtype)"
        " and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass"
        "  and d.objid = p.oid and d.deptype = 'e')"
        " and p.oid <> all(select to_regprocedure(f) from unnest(%s::text[]) as f"
        "  where to_regprocedure(f) is not null)"
        " order by 1",
        ([rpc.function for rpc in matrix.rpcs],),
    ).fetchall()
    gaps.extend(CoverageGap(function, "function_without_rpc_line") for (function,) in functions)
    return gaps


def coverage_gaps(conn: psycopg.Connection[Any], matrix: Matrix) -> list[str]:
    """:func:`find_coverage_gaps`, one readable line each."""
    return [str(gap) for gap in find_coverage_gaps(conn, matrix)]


def run_matrix(conn: psycopg.Connection[Any], matrix: Matrix) -> MatrixReport:
    """Run every case; ``conn`` must be in autocommit mode and able to write auth.users."""
    started = time.perf_counter()
    with conn.transaction(force_rollback=True):
        uncovered = coverage_gaps(conn, matrix)
        world = build_world(conn, matrix)
        results = [_run_case(conn, case, world) for case in matrix.cases]
        results += [result for rpc in matrix.rpcs for result in _run_rpc(conn, rpc)]
    return MatrixReport(results=results, uncovered=uncovered, seconds=time.perf_counter() - started)
