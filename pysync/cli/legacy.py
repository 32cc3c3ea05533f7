"""``pysync import legacy``: move a legacy Node.js/PostgreSQL deployment's data in."""

from __future__ import annotations

from typing import Annotated

import typer

from pysync.cli import context, output
from pysync.cli.options import DbUrl, Json
from pysync.cli.progress import progress_bars
from pysync.errors import ConfigError
from pysync.ops import legacy
from pysync.ops.legacy import ImportReport

import_app = typer.Typer(help="Import data from other systems into this schema.")


def _render(report: ImportReport) -> None:
    if report.problems:
        output.table(
            "Problems",
            ["table", "legacy id", "action", "problem"],
            [(p.table, p.legacy_id, p.action, p.message) for p in report.problems],
        )
    if report.dry_run:
        skipped = sum(1 for p in report.problems if p.action == "skipped")
        output.say(f"dry run: nothing written; {skipped} row(s) would be skipped")
        return
    output.table(
        "Reconciliation",
        ["source", "target", "source rows", "skipped", "target rows", "checksum"],
        [
            (
                r.source_table,
                r.target_table,
                r.source_rows if r.unit == "rows" else f"{r.source_rows} {r.unit}",
                r.skipped,
                r.target_rows if r.ok else output.styled(r.target_rows, "red"),
                "ok" if r.checksum_ok else output.styled("MISMATCH", "red"),
            )
            for r in report.reconciliation
        ],
    )
    written = sum(report.written.values())
    verdict = "reconciled" if report.ok else output.styled("NOT reconciled", "red")
    output.say(f"{written} row(s) written, ", verdict, f" ({report.seconds:.1f}s)")


@import_app.command("legacy")
def import_legacy(
    source_url: Annotated[
        str,
        typer.Option(
            "--from", help="postgresql:// URL of the legacy database.", show_default=False
        ),
    ],
    db_url: DbUrl = None,
    as_json: Json = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Validate the source and the mapping; write nothing."),
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Source rows per transaction.", min=1)
    ] = 500,
) -> None:
    """Import users, courses, lessons, enrollments, appointments and messages from the
    legacy platform (idempotent), then reconcile row counts and id checksums."""
    if not source_url.startswith(("postgres://", "postgresql://")):
        raise ConfigError("--from must be a postgresql:// URL")
    project = context.project(db_url)
    with progress_bars(not as_json) as progress:
        report = legacy.import_legacy(
            source_url, project.url(), dry_run=dry_run, batch_size=batch_size, progress=progress
        )
    output.emit(as_json, report.as_dict(), lambda: _render(report))
    if not report.ok:
        raise typer.Exit(1)
