"""Turn library errors into one readable line and a non-zero exit (tracebacks only with
``PYSYNC_DEBUG=1``)."""

from __future__ import annotations

import os

import psycopg

from pysync.errors import PysyncError
from pysync_cli.output import err_console

#: Exit codes: 1 for errors the user can act on, 2 is typer's usage error.
EXIT_ERROR = 1


def debug_enabled() -> bool:
    return os.environ.get("PYSYNC_DEBUG", "") not in ("", "0", "false")


def describe(exc: BaseException) -> str | None:
    """The one-line message for an expected error, or None for a bug."""
    if isinstance(exc, PysyncError):
        return str(exc)
    if isinstance(exc, psycopg.OperationalError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot reach the database: {first}"
    if isinstance(exc, psycopg.Error):
        code = f" [{exc.sqlstate}]" if exc.sqlstate else ""
        return f"database error: {str(exc).strip().splitlines()[0]}{code}"
    return None


def report(exc: BaseException) -> int:
    """Print ``exc`` as one line on stderr; returns the exit code."""
    message = describe(exc)
    if message is None:
        message = f"unexpected {type(exc).__name__}: {exc} (set PYSYNC_DEBUG=1 for details)"
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return EXIT_ERROR
