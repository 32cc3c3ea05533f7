"""``pysync gen types``: client models generated from the live catalog.

The Supabase CLI generates TypeScript (and Go, Swift, Python) but not Dart; the Flutter app's
models must match the tables all the same. :func:`generate` reads the API schemas once
(:func:`~pysync.gen.introspect.introspect`) and hands the result to one writer per language,
each a pure function from :class:`~pysync.gen.model.Schema` to ``{file name: source}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg

from pysync.gen.dart import render_dart
from pysync.gen.introspect import introspect
from pysync.gen.model import Schema
from pysync.gen.python import render_python
from pysync.gen.typescript import render_typescript

__all__ = ["LANGUAGES", "generate", "introspect", "render"]

#: Each language's writer.
LANGUAGES: Mapping[str, Callable[[Schema], dict[str, str]]] = {
    "dart": render_dart,
    "typescript": render_typescript,
    "python": render_python,
}


def render(schema: Schema, lang: str) -> dict[str, str]:
    """``{file name: source}`` for ``lang`` (a key of :data:`LANGUAGES`)."""
    try:
        writer = LANGUAGES[lang]
    except KeyError:
        raise ValueError(f"unknown language {lang!r}: one of {', '.join(LANGUAGES)}") from None
    return writer(schema)


def generate(
    conn: psycopg.Connection[Any], lang: str, schemas: Sequence[str] = ("public",)
) -> dict[str, str]:
    """Read ``schemas`` from ``conn``'s catalog and write them as ``lang``."""
    return render(introspect(conn, schemas), lang)
