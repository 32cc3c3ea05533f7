"""``pysync rls …``: prove the Row Level Security promise against a database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pysync.cli import context, output
from pysync.cli.options import DbUrl, Json
from pysync.rls import load_matrix, run_matrix
from pysync.rls.audit import LEVELS, AuditReport, audit_project
from pysync.rls.explain import explain_as, resolve_actor

rls_app = typer.Typer(
    help="Row Level Security: test the access matrix, audit the catalog, explain as a user."
)

MatrixFile = Annotated[
    Path | None,
    typer.Option(
        "--matrix",
        help="Access matrix file (default: policies/matrix.toml).",
        show_default=False,
    ),
]


@rls_app.command("test")
def rls_test(db_url: DbUrl = None, as_json: Json = False, matrix: MatrixFile = None) -> None:
    """Run every matrix case as its actor, in a transaction that is rolled back."""
    project = context.project(db_url)
    declared = load_matrix(matrix or project.settings.policies_dir / "matrix.toml")
    with project.connect() as conn:
        report = run_matrix(conn, declared)

    def human() -> None:
        ordered = sorted(report.results, key=lambda r: r.passed)  # stable: failures first
        output.table(
            "RLS cases (failures first)",
            ["table", "actor", "op", "expected", "got", "detail"],
            [
                (
                    r.table,
                    r.actor,
                    r.op,
                    r.expected,
                    r.got if r.passed else output.styled(r.got, "red"),
                    r.detail,
                )
                for r in ordered
            ],
        )
        for gap in report.uncovered:
            output.say(f"uncovered: {gap}")
        summary = report.as_dict()
        output.say(
            f"{summary['cases']} cases: {summary['passed']} passed, {summary['failed']} failed"
            f" ({report.seconds:.2f}s)"
        )

    output.emit(as_json, report.as_dict(), human)
    if not report.ok:
        raise typer.Exit(1)


Schemas = Annotated[
    list[str] | None,
    typer.Option(
        "--schema",
        help="A schema the API exposes (repeat; default: exposed_schemas in policies/audit.toml,"
        " else public and graphql_public).",
        show_default=False,
    ),
]


def render_audit(report: AuditReport) -> None:
    """One line per finding, grouped by level, then the counts."""
    titles = {"error": "errors", "warn": "warnings", "info": "info"}
    for level in LEVELS:
        findings = [f for f in report.findings if f.level == level]
        if findings:
            output.line(f"{titles[level]} ({len(findings)})")
        for f in findings:
            output.line(f"  {f.lint} {f.object}: {f.detail}. Fix: {f.fix}")
    errors, warnings, infos = (report.count(level) for level in LEVELS)
    output.line(
        f"audit: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)},"
        f" {infos} info"
    )


@rls_app.command("audit")
def rls_audit(db_url: DbUrl = None, as_json: Json = False, schema: Schemas = None) -> None:
    """Lint the live catalog for RLS leaks and slow policies.

    RLS off or without policies, per-row auth calls, stacked or always-true policies,
    user_metadata, security definer functions and views, unindexed foreign keys, listable
    public buckets, tables the access matrix misses. Exits 1 on any error or warning;
    exceptions are accepted in policies/audit.toml.
    """
    project = context.project(db_url)
    with project.connect() as conn:
        report = audit_project(
            conn, project.settings.policies_dir, tuple(schema) if schema else None
        )
    output.emit(as_json, report.as_dict(), lambda: render_audit(report))
    if not report.ok:
        raise typer.Exit(1)


@rls_app.command("explain")
def rls_explain(
    query: Annotated[str, typer.Argument(help="One SQL statement, e.g. 'select * from courses'.")],
    who: Annotated[
        str,
        typer.Option(
            "--as",
            help="A user's e-mail or id (from auth.users), anon or service_role.",
            show_default=False,
        ),
    ],
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) a query as a user.

    Runs it exactly as PostgREST would for that user (role, JWT claims, request settings),
    in a transaction that is rolled back, so writes are undone.
    """
    project = context.project(db_url)
    with project.connect() as conn:
        actor = resolve_actor(conn, who)
        plan = explain_as(conn, actor, query, as_json=as_json)

    def human() -> None:
        for text in plan:
            output.line(text)

    output.emit(as_json, {"as": who, **actor.as_dict(), "plan": plan}, human)
