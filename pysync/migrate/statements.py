"""Split SQL files into statements with the PostgreSQL 17 parser itself (libpg_query).

A hand-written splitter gets dollar quotes, nested comments, ``BEGIN ATOMIC`` bodies and
``E''`` strings wrong sooner or later; pglast uses the server's own grammar, so a statement
here is exactly a statement to the server. Each statement keeps its 1-based line so errors can
point at the file line a developer should look at.
"""

from __future__ import annotations

from dataclasses import dataclass

import pglast
from pglast import parser

from pysync.errors import MigrationFileError

__all__ = ["Statement", "split_statements"]

_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})


def _code_start(text: str) -> int:
    """Character offset of the first token of ``text`` that is not a comment."""
    for token in parser.scan(text):
        if token.name not in _COMMENTS:
            return int(token.start)  # pglast reports character offsets
    return len(text)


@dataclass(frozen=True)
class Statement:
    """One statement: its text as written (leading comments dropped) and where it starts."""

    number: int
    text: str
    line: int

    def line_at(self, position: int | None) -> int:
        """The file line of a 1-based character ``position`` inside this statement."""
        if not position or position < 1:
            return self.line
        return self.line + self.text.count("\n", 0, position - 1)


def split_statements(source: str, *, path: str = "<sql>") -> list[Statement]:
    """Statements of ``source`` in order; a syntax error names the file and line."""
    try:
        # only_slices=True yields slices only; the filter tells the type checker so.
        pieces = pglast.split(source, with_parser=True, only_slices=True)
        slices = [piece for piece in pieces if isinstance(piece, slice)]
    except parser.ParseError as exc:
        message, index = (*exc.args, None)[:2]
        line = source.count("\n", 0, int(index)) + 1 if isinstance(index, int) else None
        where = f" (line {line})" if line else ""
        raise MigrationFileError(f"{path}{where}: {message}") from exc
    statements = []
    for number, piece in enumerate(slices, start=1):
        start = piece.start + _code_start(source[piece])
        text = source[start : piece.stop].rstrip()
        statements.append(
            Statement(number=number, text=text, line=source.count("\n", 0, start) + 1)
        )
    return statements
