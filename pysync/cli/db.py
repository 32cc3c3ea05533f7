"""``pysync db …``: the embedded database and the migrations pushed to any database."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pysync.cli import context, output
from pysync.cli.options import DbUrl, Json, Yes
from pysync.cli.progress import progress_bars
from pysync.cli.render import render_push, render_status
from pysync.config import Settings
from pysync.errors import PysyncError
from pysync.migrate import new_migration
from pysync.migrate.lint import lint_paths

db_app = typer.Typer(help="Start the embedded database; push, inspect and lint migrations.")


@db_app.command("start")
def db_start(db_url: DbUrl = None, as_json: Json = False) -> None:
    """Start the embedded database (created on first use); a no-op when running."""
    project = context.local_project(db_url, "db start")
    was_running = project.local.status().running
    status = project.local.start()
    data = {**status.as_dict(), "already_running": was_running, "url": project.local.url()}
    output.emit(
        as_json,
        data,
        lambda: output.say(
            f"local database {'already running' if was_running else 'started'}: "
            f"{project.local.url()}"
        ),
    )


@db_app.command("stop")
def db_stop(db_url: DbUrl = None, as_json: Json = False) -> None:
    """Stop the embedded database (data is kept)."""
    project = context.local_project(db_url, "db stop")
    stopped = project.local.stop()
    output.emit(
        as_json,
        {"stopped": stopped},
        lambda: output.say(
            "local database stopped" if stopped else "local database was not running"
        ),
    )


@db_app.command("status")
def db_status(
    db_url: DbUrl = None,
    as_json: Json = False,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="Show the password in the URL.")
    ] = False,
) -> None:
    """Applied and pending migrations, drift, and the target's URL."""
    project = context.project(db_url)
    report = project.status(show_secrets=show_secrets)
    output.emit(as_json, report, lambda: render_status(report))
    if report["migrations"]["drift"]:
        raise typer.Exit(1)


@db_app.command("push")
def db_push(
    db_url: DbUrl = None,
    as_json: Json = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Run everything in a transaction, then roll back.")
    ] = False,
    include_all: Annotated[
        bool,
        typer.Option("--include-all", help="Also apply pending files older than the last applied."),
    ] = False,
) -> None:
    """Apply pending migrations (each in its own transaction), then every policy file."""
    project = context.project(db_url)
    with progress_bars(not as_json) as progress:
        result = project.push(dry_run=dry_run, include_all=include_all, progress=progress)
    output.emit(as_json, result.as_dict(), lambda: render_push(result))


@db_app.command("reset")
def db_reset(db_url: DbUrl = None, as_json: Json = False, yes: Yes = False) -> None:
    """Recreate the embedded database: emulation, migrations, policies and seed."""
    project = context.local_project(db_url, "db reset")
    if not yes:
        raise PysyncError("reset deletes all local data: run again with --yes")
    with progress_bars(not as_json) as progress:
        result = project.reset(progress=progress)
    output.emit(as_json, result.as_dict(), lambda: render_push(result))


@db_app.command("new")
def db_new(
    name: Annotated[str, typer.Argument(help="What the migration does, e.g. add_courses.")],
    as_json: Json = False,
) -> None:
    """Create an empty migration named <UTC timestamp>_<name>.sql."""
    settings = Settings.load()
    path = new_migration(settings.migrations_dir, name)
    shown = str(path.relative_to(settings.project_dir))
    output.emit(as_json, {"path": shown}, lambda: output.say(f"created {shown}"))


@db_app.command("lint")
def db_lint(as_json: Json = False) -> None:
    """Lint migrations and policies with sqlfluff (style) and squawk (migration safety)."""
    settings = Settings.load()
    findings = lint_paths(settings)
    data: dict[str, Any] = {"findings": [f.as_dict() for f in findings]}

    def human() -> None:
        if not findings:
            output.say("lint: no findings")
            return
        # One line per finding, like a compiler: easy to read, grep and click in an editor.
        for f in findings:
            output.say(f"{f.path}:{f.line}: {f.tool} {f.rule}: {f.message}")
        output.say(f"lint: {len(findings)} finding(s)")

    output.emit(as_json, data, human)
    if findings:
        raise typer.Exit(1)
