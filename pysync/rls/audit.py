"""A live audit of a database's catalog for the mistakes that leak data or slow RLS down.

Every security and performance lint of Supabase's database linter (splinter), under its
name and at its level, so a finding here and one in the dashboard's advisors compare, plus
a few of this project's own (the access matrix's coverage, definer functions with an open
``search_path`` as an error). Every finding says what is wrong (``detail``) and what to do
(``fix``). The audit reads the catalog inside a transaction that is rolled back; the one
behavioural lint (public buckets) inserts a probe object there, so nothing is left behind.

``policies/audit.toml`` holds the intended exceptions, each with a reason, and may make a
lint stricter than splinter's level (never laxer). An accepted finding is still reported, at
``info`` level, so a reader sees every exception and why it is fine. Error-level lints cannot
be accepted: they are leaks, not trade-offs.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pysync.errors import PysyncError
from pysync.rls._audit_core import (
    LEVELS,
    LINTS,
    MANAGED_SCHEMAS,
    SPLINTER_LINTS,
    Conn,
    Finding,
    LintContext,
    finding,
)
from pysync.rls._lints_functions import FUNCTION_LINTS
from pysync.rls._lints_policies import POLICY_LINTS
from pysync.rls._lints_tables import TABLE_LINTS
from pysync.rls.matrix import Matrix, load_matrix
from pysync.rls.runner import find_coverage_gaps

__all__ = [
    "LEVELS",
    "LINTS",
    "MANAGED_SCHEMAS",
    "SPLINTER_LINTS",
    "AuditConfig",
    "AuditConfigError",
    "AuditReport",
    "Finding",
    "audit_project",
    "load_audit_config",
    "run_audit",
]

DEFAULT_EXPOSED_SCHEMAS = ("public", "graphql_public")
#: splinter's threshold for ``table_bloat``: less wasted space is not worth a ``vacuum full``.
DEFAULT_BLOAT_MIN_BYTES = 20 * 1024 * 1024


class AuditConfigError(PysyncError):
    """``policies/audit.toml`` is malformed."""


@dataclass(frozen=True)
class AuditConfig:
    """Which schemas the API exposes, the findings accepted on purpose (with why), and the
    lints this project holds to a stricter level than splinter."""

    exposed_schemas: tuple[str, ...] = DEFAULT_EXPOSED_SCHEMAS
    #: ``(lint, object)`` → reason.
    accepted: dict[tuple[str, str], str] = field(default_factory=dict)
    #: lint → level, each at least as strict as the lint's default.
    levels: dict[str, str] = field(default_factory=dict)
    #: Whether /graphql/v1 serves the database; ``None``: pg_graphql decides (installed or not).
    graphql: bool | None = None
    bloat_min_bytes: int = DEFAULT_BLOAT_MIN_BYTES
    path: Path | None = None

    def level(self, lint: str) -> str:
        return self.levels.get(lint, LINTS[lint][0])


@dataclass(frozen=True)
class AuditReport:
    findings: list[Finding]

    def count(self, level: str) -> int:
        return sum(1 for f in self.findings if f.level == level)

    @property
    def ok(self) -> bool:
        """No error and no warning (info findings are notes, not failures)."""
        return not any(f.level in ("error", "warn") for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"findings": [f.as_dict() for f in self.findings]}


def _load_levels(data: dict[str, Any], path: Path) -> dict[str, str]:
    levels = data.get("levels", {})
    if not isinstance(levels, dict):
        raise AuditConfigError(f"{path}: [levels] must map lint names to levels")
    for lint, level in levels.items():
        if lint not in LINTS:
            raise AuditConfigError(f"{path}: [levels]: unknown lint {lint!r}")
        if level not in LEVELS:
            raise AuditConfigError(f"{path}: [levels]: {lint} = {level!r} is not one of {LEVELS}")
        if LEVELS.index(level) > LEVELS.index(LINTS[lint][0]):
            raise AuditConfigError(
                f"{path}: [levels]: {lint} may be made stricter than {LINTS[lint][0]}, not laxer"
            )
    return dict(levels)


def load_audit_config(path: Path) -> AuditConfig:
    """Read ``audit.toml``; a missing file means the defaults and no exceptions."""
    if not path.is_file():
        return AuditConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise AuditConfigError(f"{path}: {exc}") from exc
    schemas = data.get("exposed_schemas", list(DEFAULT_EXPOSED_SCHEMAS))
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        raise AuditConfigError(f"{path}: exposed_schemas must be a list of schema names")
    graphql = data.get("graphql")
    if graphql is not None and not isinstance(graphql, bool):
        raise AuditConfigError(f"{path}: graphql must be true or false")
    levels = _load_levels(data, path)
    accepted: dict[tuple[str, str], str] = {}
    for number, entry in enumerate(data.get("accept", []), start=1):
        lint, obj, reason = entry.get("lint"), entry.get("object"), entry.get("reason")
        where = f"{path}: accept entry {number}"
        if lint not in LINTS:
            raise AuditConfigError(f"{where}: unknown lint {lint!r}")
        if levels.get(lint, LINTS[lint][0]) == "error":
            raise AuditConfigError(f"{where}: {lint} is an error and cannot be accepted")
        if not obj or not reason:
            raise AuditConfigError(f"{where}: needs an object and a reason")
        accepted[(lint, obj)] = reason
    return AuditConfig(
        exposed_schemas=tuple(schemas),
        accepted=accepted,
        levels=levels,
        graphql=graphql,
        path=path,
    )


def _matrix(ctx: LintContext, matrix: Matrix) -> Iterator[Finding]:
    for gap in find_coverage_gaps(ctx.conn, matrix):
        where = matrix.path.name if matrix.path else "the access matrix"
        if gap.kind == "no_case_lines":
            yield finding(
                "table_missing_from_matrix",
                gap.table,
                "no case line says who may read and write it, so nothing proves its policies",
                f"add case lines for every command (allowed and denied) in {where} or a"
                " part file in policies/matrix/",
            )
        elif gap.kind == "function_without_rpc_line":
            yield finding(
                "function_missing_from_matrix",
                gap.table,
                "PostgREST exposes it at /rest/v1/rpc, but no rpc line says which API roles"
                " may execute it, so nothing proves its grants",
                f"add an [[rpc]] line (function and allowed roles) in {where} or a part file"
                " in policies/matrix/, and revoke execute from the roles it does not list",
            )
        elif gap.kind == "policy_without_case_line":
            yield finding(
                "policy_missing_from_matrix",
                f"{gap.table} ({gap.op})",
                f"a {gap.op} policy exists but no case line exercises it",
                f"add a {gap.op} case line for the table in {where}",
            )


# -- running ----------------------------------------------------------------------------------

_LintFunction = Callable[[LintContext], Iterator[Finding]]
_CATALOG_LINTS: tuple[_LintFunction, ...] = (*TABLE_LINTS, *POLICY_LINTS, *FUNCTION_LINTS)


def _settle(found: Finding, config: AuditConfig) -> Finding:
    """The project's level for the finding, or info with the reason when it is accepted."""
    if found.level == LINTS[found.lint][0]:  # not a note such as an unprobed bucket
        found = replace(found, level=config.level(found.lint))
    reason = config.accepted.get((found.lint, found.object))
    if reason is None:
        return found
    where = config.path.name if config.path else "the audit config"
    detail = f"accepted in {where}: {reason} ({found.detail})"
    return replace(found, level="info", detail=detail)


def run_audit(
    conn: Conn, config: AuditConfig | None = None, matrix: Matrix | None = None
) -> AuditReport:
    """Run every lint against ``conn``'s database; findings sorted by level, lint, object.

    Reads the catalog with ``search_path = ''`` so deparsed policies show schema-qualified
    names (``auth.uid()``, never a bare ``uid()``), inside a transaction rolled back at the end.
    """
    config = config or AuditConfig()
    findings: list[Finding] = []
    with conn.transaction(force_rollback=True):
        conn.execute("set local search_path = ''")
        row = conn.execute(
            "select (select count(*) = 2 from pg_catalog.pg_roles"
            "  where rolname in ('anon', 'authenticated')),"
            " exists (select 1 from pg_catalog.pg_extension where extname = 'pg_graphql')"
        ).fetchone()
        has_api_roles, graphql = (bool(row[0]), bool(row[1])) if row else (False, False)
        ctx = LintContext(
            conn,
            config.exposed_schemas,
            has_api_roles,
            graphql if config.graphql is None else config.graphql,
            config.bloat_min_bytes,
        )
        for lint in _CATALOG_LINTS:
            findings.extend(lint(ctx))
        if matrix is not None:
            findings.extend(_matrix(ctx, matrix))
    findings = [_settle(f, config) for f in findings]
    findings.sort(key=lambda f: (LEVELS.index(f.level), f.lint, f.object))
    return AuditReport(findings)


def audit_project(
    conn: Conn, policies_dir: Path, exposed_schemas: tuple[str, ...] | None = None
) -> AuditReport:
    """Audit with the project's own files: ``audit.toml`` (exceptions) and ``matrix.toml``."""
    config = load_audit_config(policies_dir / "audit.toml")
    if exposed_schemas:
        config = replace(config, exposed_schemas=exposed_schemas)
    matrix_file = policies_dir / "matrix.toml"
    matrix = load_matrix(matrix_file) if matrix_file.is_file() else None
    return run_audit(conn, config, matrix)
