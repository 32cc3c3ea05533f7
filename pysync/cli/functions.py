"""``pysync functions …``: the Deno edge functions, locally (thin over :mod:`pysync.functions`)."""

from __future__ import annotations

import subprocess
from typing import Annotated

import typer

from pysync.cli import context, output
from pysync.cli.options import DbUrl, Json
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
    db_url: Annotated[
        str | None,
        typer.Option(
            "--db-url",
            help="Run the integration tests against this database (migrated; they create and"
            " delete their own users) instead of a throw-away one.",
            show_default=False,
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Run the functions' Deno tests; the integration tests get a throw-away database on the
    embedded cluster (started for the run if it was stopped, dropped afterwards)."""
    scratch = not (no_db or db_url)
    project = (
        context.local_project(None, "pysync functions test") if scratch else context.project(None)
    )
    deno_path(project.settings)
    if not scratch:
        result = run_tests(project.settings, db_url, paths or (), capture=as_json)
    else:
        was_running = project.local.status().running
        project.local.start()
        try:
            with scratch_database(project.local, project.settings) as url:
                result = run_tests(project.settings, url, paths or (), capture=as_json)
        finally:
            if not was_running:
                project.local.stop()
    if as_json:
        report = {"ok": result.returncode == 0, "exit_code": result.returncode}
        output.emit(True, {**report, "output": result.stdout + result.stderr}, lambda: None)
    if result.returncode != 0:
        raise FunctionsError(f"the Deno tests failed (deno exited with {result.returncode})")


@functions_app.command("serve")
def functions_serve(
    port: Annotated[int, typer.Option("--port", help="Loopback port to listen on.")] = DEFAULT_PORT,
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """Serve every function on 127.0.0.1 against the embedded database (or --db-url), for
    manual testing; Ctrl-C stops it. Prints the URLs and the key push-dispatch expects first."""
    project = context.project(db_url)
    settings = project.settings
    env = serve_env(settings, project.url(), port)
    deno = deno_path(settings)
    endpoints = {name: f"http://127.0.0.1:{port}/functions/v1/{name}" for name in FUNCTIONS}
    key = env["SUPABASE_SERVICE_ROLE_KEY"]

    def human() -> None:
        for name, url in endpoints.items():
            output.line(f"{name}: POST {url}")
        output.line(f"push-dispatch bearer (service role key): {key}")
        output.line("export-my-data bearer: a user's token (`pysync jwt mint --user EMAIL`)")

    output.emit(as_json, {"functions": endpoints, "service_role_key": key}, human)
    try:
        subprocess.run(serve_command(deno), cwd=functions_dir(settings), env=env, check=False)
    except KeyboardInterrupt:
        output.line("stopped")
