"""``pysync gdpr …``: a user's data export and erasure (thin over :mod:`pysync.gdpr`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from pysync.cli import context, output
from pysync.cli.options import DbUrl, Json, Yes
from pysync.errors import PysyncError
from pysync.gdpr import delete_user, export_user

gdpr_app = typer.Typer(help="GDPR: export everything about a user, or erase a user.")

User = Annotated[str, typer.Argument(help="The user's e-mail address or id.", show_default=False)]
Out = Annotated[
    Path | None,
    typer.Option(
        "--out", help="Write the export to this file instead of printing it.", show_default=False
    ),
]


def _sections(document: dict[str, Any]) -> dict[str, int]:
    """Rows per list in the export, for the summary line."""
    return {key: len(value) for key, value in document.items() if isinstance(value, list)}


@gdpr_app.command("export")
def gdpr_export(user: User, out: Out = None, db_url: DbUrl = None, as_json: Json = False) -> None:
    """Export everything about USER as JSON, exactly as the user would get it from the API."""
    project = context.project(db_url)
    with project.connect() as conn:
        document = export_user(conn, user)
    text = json.dumps(document, indent=2, default=str)
    if out is None:
        output.line(text)
        return
    out.write_text(text + "\n")
    summary = {"user_id": document["user_id"], "out": str(out), "rows": _sections(document)}

    def human() -> None:
        total = sum(summary["rows"].values())
        output.line(f"wrote {out}: {total} rows about user {document['user_id']}")

    output.emit(as_json, summary, human)


@gdpr_app.command("delete")
def gdpr_delete(user: User, yes: Yes = False, db_url: DbUrl = None, as_json: Json = False) -> None:
    """Erase USER: delete or anonymize everything personal, keep payments and the audit log
    anonymized. Prints the storage objects whose files to delete through the Storage API."""
    if not yes:
        raise PysyncError(f"erasing {user} cannot be undone: run again with --yes")
    project = context.project(db_url)
    with project.connect() as conn:
        summary = delete_user(conn, user)

    def human() -> None:
        deleted = sum(summary["deleted"].values())
        anonymized = sum(summary["anonymized"].values())
        output.line(
            f"erased user {summary['user_id']} (erasure id {summary['erasure_id']}):"
            f" {deleted} rows deleted, {anonymized} anonymized"
        )
        for name, count in sorted(summary["retained"].items()):
            output.line(f"kept anonymized: {name} {count}")
        for item in summary["storage_objects"]:
            output.line(f"delete file: {item['bucket']}/{item['name']}")

    output.emit(as_json, summary, human)
