"""One place that prints: rich tables and lines for people, JSON for machines.

Text from data (a legacy row's value, an error message, a path) is never parsed as rich
markup: ``[/b]`` in a value would otherwise crash the print or restyle the output. Style is
asked for explicitly with :func:`styled`, whose result the helpers print as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON, or call ``human`` to render it for people."""
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        human()


def styled(text: object, style: str) -> Text:
    """``text`` (any value, shown as it is) in ``style``: the one way to colour output."""
    return Text(str(text), style=style)


def as_text(*parts: object) -> Text:
    """Plain values and :func:`styled` pieces joined into one line, no markup parsed."""
    return Text.assemble(*(p if isinstance(p, Text) else str(p) for p in parts))


def _cell(value: object) -> Text:
    if isinstance(value, Text):
        return value
    return Text("" if value is None else str(value))


def say(*parts: object) -> None:
    """Print one message made of ``parts`` (see :func:`as_text`); data is never markup."""
    console.print(as_text(*parts))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A titled table; every cell is shown as it is (:func:`styled` cells keep their style)."""
    grid = Table(title=Text(title), title_justify="left")
    for column in columns:
        grid.add_column(Text(column))
    for row in rows:
        grid.add_row(*(_cell(cell) for cell in row))
    console.print(grid)


def line(message: str) -> None:
    """Print ``message`` as one line, as it is: no markup, no wrapping (for grep and editors)."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)
