"""``pysync functions …``: the Deno edge functions, locally (thin over :mod:`pysync.functions`)."""

from __future__ import annotations

import subprocess
from typing import Annotated

import typer

from pysync.functions import (
    DEFAULT_PORT,
    FUNCTIONS,
    FunctionsError,
    deno_path,
    functions_dir,
    run_tests,
    scratch_database,
    serve_command,
    serve_env,
)
from pysync_cli import context, output
from pysync_cli.options import DbUrl

functions_app = typer.Typer(help="Edge functions: run their Deno tests, serve them locally.")


@functions_app.command("test")
def functions_test(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Test files or folders under supabase/functions (default: all).",
            show_default=False,
        ),
    ] = None,
    no_db: Annotated[
        bool,
        typer.Option("--no-db", help="Skip the integration tests (no database needed)."),
    ] = False,
) -> None:
    """Run the functions' Deno tests; the integration tests get a throw-away database on the
    embedded cluster (started for the run if it was stopped, dropped afterwards)."""
    project = context.local_project(None, "pysync functions test")
    deno_path(project.settings)
    if no_db:
        result = run_tests(project.settings, None, paths or ())
    else:
        was_running = project.local.status().running
        project.local.start()
        try:
            with scratch_database(project.local, project.settings) as url:
                result = run_tests(project.settings, url, paths or ())
        finally:
            if not was_running:
                project.local.stop()
    if result.returncode != 0:
        raise FunctionsError(f"the Deno tests failed (deno exited with {result.returncode})")


@functions_app.command("serve")
def functions_serve(
    port: Annotated[int, typer.Option("--port", help="Loopback port to listen on.")] = DEFAULT_PORT,
    db_url: DbUrl = None,
) -> None:
    """Serve every function on 127.0.0.1 against the embedded database (or --db-url), for
    manual testing; Ctrl-C stops it."""
    project = context.project(db_url)
    settings = project.settings
    env = serve_env(settings, project.url(), port)
    deno = deno_path(settings)
    for name in FUNCTIONS:
        output.line(f"{name}: POST http://127.0.0.1:{port}/functions/v1/{name}")
    output.line(f"push-dispatch bearer (service role key): {env['SUPABASE_SERVICE_ROLE_KEY']}")
    output.line("export-my-data bearer: a user's token (`pysync jwt mint --user EMAIL`)")
    try:
        subprocess.run(serve_command(deno), cwd=functions_dir(settings), env=env, check=False)
    except KeyboardInterrupt:
        output.line("stopped")
