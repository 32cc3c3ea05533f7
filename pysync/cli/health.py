"""``pysync health``: the checks an operator runs first against a database."""

from __future__ import annotations

from typing import Annotated

import typer

from pysync.cli import context, output
from pysync.cli.options import DbUrl, Json
from pysync.health import HealthReport, check_health

Ahead = Annotated[
    int,
    typer.Option(
        "--ahead",
        min=0,
        help="Partition periods (days, months: each table's own width) that must exist after"
        " the current one.",
    ),
]

_STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def render_health(report: HealthReport) -> None:
    output.table(
        "Health",
        ["check", "status", "detail"],
        [(c.name, output.styled(c.status, _STYLES[c.status]), c.detail) for c in report.checks],
    )
    failed = sum(c.status == "fail" for c in report.checks)
    warned = sum(c.status == "warn" for c in report.checks)
    output.line(f"health: {len(report.checks)} checks, {failed} failed, {warned} warning(s)")


def health(db_url: DbUrl = None, as_json: Json = False, ahead: Ahead = 1) -> None:
    """Check that the database is fit to serve.

    Connectivity, server version, migration drift and pending migrations, the RLS audit,
    partition coverage, the Realtime publication, the db-pre-request hook, the pg_cron
    schedules, the push-dispatch webhook and the database size: a half-deployed project
    says which step of docs/deploy.md is missing. Exits 1 when a check fails (warnings do
    not).
    """
    project = context.project(db_url)
    report = check_health(
        project.connect,
        project.settings.migrations_dir,
        project.settings.policies_dir,
        ahead=ahead,
    )
    output.emit(as_json, report.as_dict(), lambda: render_health(report))
    if not report.ok:
        raise typer.Exit(1)
