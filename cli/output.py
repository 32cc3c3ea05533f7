"""One place that prints: rich tables and lines for people, JSON for machines."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON, or call ``human`` to render it for people."""
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        human()


def say(message: str) -> None:
    console.print(message)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(grid)


def line(message: str) -> None:
    """Print ``message`` as one line, as it is: no markup, no wrapping (for grep and editors)."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)
