"""``pysync rls …``: prove the Row Level Security promise against a database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pysync.rls import load_matrix, run_matrix
from pysync_cli import context, output
from pysync_cli.options import DbUrl, Json

rls_app = typer.Typer(help="Test Row Level Security against the declared access matrix.")

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
                    r.got if r.passed else f"[red]{r.got}[/]",
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
