"""``pysync gen types``: Dart, TypeScript or Python models from the live catalog."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pysync.cli import context, output
from pysync.cli.options import DbUrl, Json
from pysync.errors import ConfigError
from pysync.gen import generate

gen_app = typer.Typer(help="Generate client code from the database's catalog.")


class Language(StrEnum):
    dart = "dart"
    typescript = "typescript"
    python = "python"


@gen_app.command("types")
def gen_types(
    lang: Annotated[Language, typer.Option("--lang", help="The language to write.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder to write into (created if needed). Without it, a single file (the"
            " TypeScript) goes to standard output; Dart (a file per table) and Python (rows.py"
            " and, with the sync RPCs, sync_payloads.py) need a folder.",
            show_default=False,
        ),
    ] = None,
    schemas: Annotated[
        list[str] | None,
        typer.Option("--schema", help="An API schema to read (repeatable; default: public)."),
    ] = None,
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """Models of the API schemas' tables, views, enum-like columns and RPCs.

    The sync RPCs take and return typed payloads (declared in pysync/gen/sync_payloads.py).

    With --json and no --out, every file's source is in the JSON (``files``: name → text).
    """
    project = context.project(db_url)
    with project.connect() as conn:
        files = generate(conn, lang.value, schemas or ["public"])
    if out is None:
        if as_json:
            output.emit(True, {"lang": lang.value, "files": files}, lambda: None)
            return
        if len(files) != 1:
            raise ConfigError(f"{lang.value} writes {len(files)} files: give --out DIR")
        output.line(next(iter(files.values())).rstrip("\n"))
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, text in sorted(files.items()):
        (out / name).write_text(text)
    written = {"lang": lang.value, "out": str(out), "files": sorted(files)}
    output.emit(as_json, written, lambda: output.line(f"wrote {len(files)} file(s) to {out}"))
