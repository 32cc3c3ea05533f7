"""The ``pysync`` command: typer groups combined at the root, one error handler."""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Annotated

import typer

from pysync.cli import context, output
from pysync.cli.backup import backup_app
from pysync.cli.bench import bench_app
from pysync.cli.db import db_app
from pysync.cli.errors import debug_enabled, report
from pysync.cli.functions import functions_app
from pysync.cli.gdpr import gdpr_app
from pysync.cli.gen import gen_app
from pysync.cli.health import health
from pysync.cli.legacy import import_app
from pysync.cli.options import DbUrl, Json
from pysync.cli.progress import progress_bars
from pysync.cli.render import render_push, render_status, render_tables
from pysync.cli.rls import rls_app
from pysync.cli.seed import seed_app
from pysync.cli.sync import sync_app
from pysync.cli.tokens import jwt_app
from pysync.cli.users import users_app

app = typer.Typer(
    name="pysync",
    help="SQL-first Supabase backend: local database, migrations, policies and operations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        output.line(f"pysync {version('pysync')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    """SQL-first Supabase backend: local database, migrations, policies and operations."""


app.add_typer(db_app, name="db")
app.add_typer(rls_app, name="rls")
app.add_typer(seed_app, name="seed")
app.add_typer(users_app, name="users")
app.add_typer(jwt_app, name="jwt")
app.add_typer(bench_app, name="bench")
app.add_typer(backup_app, name="backup")
app.add_typer(import_app, name="import")
app.add_typer(gdpr_app, name="gdpr")
app.add_typer(sync_app, name="sync")
app.add_typer(gen_app, name="gen")
app.add_typer(functions_app, name="functions")


@app.command("up")
def up(
    db_url: DbUrl = None,
    as_json: Json = False,
    seed: Annotated[
        bool | None,
        typer.Option(
            "--seed/--no-seed",
            help="Run supabase/seed.sql (default: yes locally, no for --db-url targets).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the embedded database if needed, push migrations and policies, seed."""
    project = context.project(db_url)
    with progress_bars(not as_json) as progress:
        result = project.up(progress=progress, seed=seed)

    def human() -> None:
        render_push(result)
        render_status(project.status())
        render_tables(project)

    output.emit(as_json, {**result.as_dict(), "status": project.status()}, human)


app.command("health")(health)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; expected errors print one line.

    typer handles usage errors, ``--help`` and exits itself (as ``SystemExit``); anything
    else that escapes a command is ours to turn into one readable line.
    """
    try:
        app(args=argv, prog_name="pysync")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:
        if debug_enabled():
            raise
        return report(exc)
    return 0


def run() -> None:
    sys.exit(main())
