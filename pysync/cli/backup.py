"""``pysync backup …``: back up, restore and snapshot the application's data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pysync.cli import context, output
from pysync.cli.options import DbUrl, Json, Yes
from pysync.errors import PysyncError
from pysync.ops.backup import create_backup, default_backup_path, restore_backup
from pysync.ops.sqlite_export import export_sqlite
from pysync.project import mask_url

backup_app = typer.Typer(help="Back up and restore the application's data; SQLite snapshots.")

ArchiveFile = Annotated[Path, typer.Argument(help="A backup archive made by `backup create`.")]


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


@backup_app.command("create")
def backup_create(
    db_url: DbUrl = None,
    as_json: Json = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Archive to write (default: <data dir>/backups/pysync-<UTC time>.dump).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """pg_dump the application (public, private, supabase_migrations; auth users and
    identities; storage buckets and objects) with a manifest of row counts beside it."""
    project = context.project(db_url)
    target = out or default_backup_path(project.settings.data_dir)
    result = create_backup(project.url(), target)

    def human() -> None:
        output.table("Rows backed up", ["table", "rows"], sorted(result.manifest.tables.items()))
        output.say(
            f"wrote {result.path} ({_size(result.manifest.archive_bytes)}) "
            f"and {result.manifest_path.name}"
        )

    output.emit(as_json, result.as_dict(), human)


@backup_app.command("restore")
def backup_restore(
    archive: ArchiveFile, db_url: DbUrl = None, as_json: Json = False, yes: Yes = False
) -> None:
    """Replace the target's application schemas and auth/storage rows with a backup, in one
    transaction, then verify every table's row count against the manifest."""
    project = context.project(db_url)
    if not yes:
        raise PysyncError(
            "restore replaces the application's schemas and its auth and storage rows on "
            f"{mask_url(project.url())}: run again with --yes"
        )
    result = restore_backup(project.url(), archive)

    def human() -> None:
        output.table(
            "Rows restored",
            ["table", "manifest", "restored"],
            [(c.table, c.expected, c.actual) for c in result.checks],
        )
        output.say(f"restored {result.path.name}: every count matches ({result.seconds:.1f}s)")

    output.emit(as_json, result.as_dict(), human)


@backup_app.command("export-sqlite")
def backup_export_sqlite(
    file: Annotated[Path, typer.Argument(help="SQLite file to write (replaced if it exists).")],
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """Snapshot every table in public into an SQLite file for offline inspection."""
    project = context.project(db_url)
    result = export_sqlite(project.url(), file)

    def human() -> None:
        output.table("Rows exported", ["table", "rows"], sorted(result.tables.items()))
        output.say(f"wrote {result.path}")

    output.emit(as_json, result.as_dict(), human)
