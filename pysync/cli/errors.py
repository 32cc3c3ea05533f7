"""Turn library errors into one readable line and a non-zero exit (tracebacks only with
``PYSYNC_DEBUG=1``)."""

from __future__ import annotations

import os

import psycopg
from rich.text import Text

from pysync.cli.output import err_console
from pysync.errors import PysyncError, first_line

#: Exit codes: 1 for errors the user can act on, 2 is typer's usage error.
EXIT_ERROR = 1


def debug_enabled() -> bool:
    return os.environ.get("PYSYNC_DEBUG", "") not in ("", "0", "false")


def describe(exc: BaseException) -> str | None:
    """The one-line message for an expected error, or None for a bug."""
    if isinstance(exc, PysyncError):
        return str(exc)
    if isinstance(exc, psycopg.OperationalError):
        return f"cannot reach the database: {first_line(exc)}"
    if isinstance(exc, psycopg.Error):
        code = f" [{exc.sqlstate}]" if exc.sqlstate else ""
        return f"database error: {first_line(exc)}{code}"
    return None


def report(exc: BaseException) -> int:
    """Print ``exc`` as one line on stderr; returns the exit code."""
    message = describe(exc)
    if message is None:
        message = f"unexpected {type(exc).__name__}: {exc} (set PYSYNC_DEBUG=1 for details)"
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    return EXIT_ERROR
