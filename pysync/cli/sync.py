"""``pysync sync …``: drive a user's offline cache (:mod:`pysync.sync`) from the shell."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from pysync.cli import context, output
from pysync.cli.options import DbUrl, Json
from pysync.cli.progress import progress_bars
from pysync.client import Client
from pysync.errors import PysyncError
from pysync.progress import ProgressCallback, ProgressEvent
from pysync.sync import SyncCache, SyncStatus
from pysync.sync.demo import DEMO_STUDENT, DEMO_TUTOR, run_demo
from pysync.sync.files import FileSync, files_folder, object_store_for

sync_app = typer.Typer(
    help="A user's offline cache: sync it with the database, inspect it, queue writes."
)

As = Annotated[
    str,
    typer.Option(
        "--as",
        metavar="USER",
        help="The cache's user, by e-mail or id; their token is signed with the JWT secret"
        " (SUPABASE_JWT_SECRET), as `pysync jwt mint --user` does.",
        show_default=False,
    ),
]
CacheFile = Annotated[
    Path | None,
    typer.Option(
        "--cache",
        metavar="FILE",
        help="The cache file (default: <data dir>/caches/<USER>.sqlite; one file per user).",
        show_default=False,
    ),
]


ReadUrl = Annotated[
    str | None,
    typer.Option(
        "--read-url",
        metavar="URL",
        help="Pull (and read checksums and the schema) from this read replica of the database,"
        " e.g. a hot standby; pushes still go to the primary (--db-url).",
        show_default=False,
    ),
]


class WriteKind(StrEnum):
    insert = "insert"
    update = "update"
    delete = "delete"


class _FirstSyncBars:
    """The cache's and the files' progress callback: bars per stream and per file, drawn only
    while :meth:`showing` (the cache is opened before anyone knows it is a first sync)."""

    def __init__(self) -> None:
        self._show: ProgressCallback | None = None

    @contextlib.contextmanager
    def showing(self) -> Iterator[None]:
        with progress_bars(transient=True) as show:
            self._show = show
            try:
                yield
            finally:
                self._show = None

    def __call__(self, event: ProgressEvent) -> None:
        if self._show is not None:
            self._show(event)


def cache_path(user: str, chosen: Path | None, data_dir: Path) -> Path:
    """The cache file of ``user``: ``chosen``, else one per user under the data dir."""
    if chosen is not None:
        return chosen
    name = user.strip().lower()
    if not name or "/" in name or name.startswith("."):
        raise PysyncError(f"--as {user!r} is not an e-mail or a user id")
    return data_dir / "caches" / f"{name}.sqlite"


@contextlib.contextmanager
def open_cache(
    user: str,
    chosen: Path | None,
    db_url: str | None,
    progress: _FirstSyncBars | None = None,
    read_url: str | None = None,
) -> Iterator[SyncCache]:
    project = context.project(db_url)
    signing = context.signing(project)
    path = cache_path(user, chosen, project.settings.data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(Client.local(project.url(), signing.secret, user))
        reader = None
        if read_url:
            reader = stack.enter_context(client.local_replica(read_url, signing.secret))
        cache = stack.enter_context(
            SyncCache.open(client, path, progress=progress, read_client=reader)
        )
        # Files attached to rows upload before their rows are pushed; the local object store
        # keeps bytes under the data dir, one folder for every user (like one Storage).
        store = object_store_for(client, project.settings.data_dir / "objects")
        stack.callback(FileSync(cache, store, files_folder(path), progress=progress).close)
        yield cache


def status_data(status: SyncStatus) -> dict[str, Any]:
    return dataclasses.asdict(status)


def render_status(status: SyncStatus) -> None:
    age = status.oldest_pending_age
    output.table(
        "Sync status",
        ["", ""],
        [
            ("pending ops", status.pending_ops),
            ("oldest pending", "-" if age is None else f"{age:.0f}s ago"),
            ("dead letters", status.dead_letters),
            ("last sync", status.last_synced_at.isoformat() if status.last_synced_at else "never"),
            ("last error", status.last_error or "-"),
        ],
    )
    output.table(
        "Streams",
        ["stream", "buckets", "complete", "rows"],
        [(name, p.buckets, p.complete, p.rows) for name, p in sorted(status.streams.items())],
    )
    output.table("Tables", ["table", "rows"], sorted(status.tables.items()))
    files = status.files
    if files is not None:
        budget = "-" if files.budget_bytes is None else f"{files.budget_bytes} B"
        output.table(
            "Files",
            ["", ""],
            [
                ("queued uploads", f"{files.queued_uploads} ({files.queued_upload_bytes} B)"),
                ("refused uploads", files.rejected_uploads),
                ("downloads in flight", files.downloads_in_flight),
                ("cached files", f"{files.cached_files} ({files.cache_bytes} B)"),
                ("cache budget", budget),
            ],
        )


def _synced(
    user: str,
    chosen: Path | None,
    db_url: str | None,
    as_json: bool,
    step: Callable[[SyncCache], None],
    read_url: str | None = None,
) -> None:
    """Run ``step`` on the cache (with a progress bar on its first sync), then print its status."""
    bar = _FirstSyncBars()
    with open_cache(user, chosen, db_url, bar, read_url) as cache:
        first = cache.status().last_synced_at is None
        with bar.showing() if first and not as_json else contextlib.nullcontext():
            step(cache)
        status = cache.status()
    output.emit(as_json, status_data(status), lambda: render_status(status))


@sync_app.command("pull")
def sync_pull(
    user: As,
    cache: CacheFile = None,
    db_url: DbUrl = None,
    read_url: ReadUrl = None,
    as_json: Json = False,
) -> None:
    """Pull what changed on the server into the cache (until nothing more is pending)."""
    _synced(user, cache, db_url, as_json, SyncCache.pull, read_url)


@sync_app.command("push")
def sync_push(
    user: As,
    cache: CacheFile = None,
    db_url: DbUrl = None,
    read_url: ReadUrl = None,
    as_json: Json = False,
) -> None:
    """Push the cache's pending writes; rejected ones go to dead letters."""
    _synced(user, cache, db_url, as_json, SyncCache.push, read_url)


@sync_app.command("run")
def sync_run(
    user: As,
    cache: CacheFile = None,
    db_url: DbUrl = None,
    read_url: ReadUrl = None,
    as_json: Json = False,
) -> None:
    """Sync: push pending writes, then pull."""
    _synced(user, cache, db_url, as_json, SyncCache.sync, read_url)


@sync_app.command("reconcile")
def sync_reconcile(
    user: As,
    cache: CacheFile = None,
    db_url: DbUrl = None,
    read_url: ReadUrl = None,
    as_json: Json = False,
) -> None:
    """Sync, then compare every held bucket's checksum with the server's and pull the ones
    that differ again from scratch."""
    _synced(user, cache, db_url, as_json, SyncCache.reconcile, read_url)


@sync_app.command("status")
def sync_status(
    user: As, cache: CacheFile = None, db_url: DbUrl = None, as_json: Json = False
) -> None:
    """Pending writes, the oldest one's age, dead letters, last sync and error, per-stream
    progress, rows per table, and files: queued uploads and bytes, refused uploads, downloads
    in flight, cached files and bytes (local: nothing is synced)."""
    with open_cache(user, cache, db_url) as opened:
        status = opened.status()
    output.emit(as_json, status_data(status), lambda: render_status(status))


@sync_app.command("subscribe")
def sync_subscribe(
    stream: Annotated[str, typer.Argument(help="An on-demand stream (e.g. course_preview).")],
    key: Annotated[str, typer.Argument(help="The bucket's key (e.g. a course id).")],
    user: As,
    ttl: Annotated[
        float | None,
        typer.Option(
            "--ttl",
            min=1,
            help="Hold it this many seconds (default: the stream's TTL).",
            show_default=False,
        ),
    ] = None,
    cache: CacheFile = None,
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """Hold an on-demand stream's bucket; its rows arrive with the next pull."""
    with open_cache(user, cache, db_url) as opened:
        opened.subscribe(stream, key, ttl=ttl)
    output.emit(
        as_json,
        {"stream": stream, "key": key, "ttl": ttl},
        lambda: output.line(f"subscribed to {stream}:{key}; `pysync sync pull` fetches it"),
    )


@sync_app.command("unsubscribe")
def sync_unsubscribe(
    stream: Annotated[str, typer.Argument(help="The on-demand stream.")],
    key: Annotated[str, typer.Argument(help="The bucket's key.")],
    user: As,
    cache: CacheFile = None,
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """Stop holding an on-demand bucket; the next pull drops its rows."""
    with open_cache(user, cache, db_url) as opened:
        opened.unsubscribe(stream, key)
    output.emit(
        as_json,
        {"stream": stream, "key": key},
        lambda: output.line(f"unsubscribed from {stream}:{key}"),
    )


@sync_app.command("write")
def sync_write(
    table: Annotated[str, typer.Argument(help="A synced table.")],
    kind: Annotated[WriteKind, typer.Argument(help="What to do to the row.")],
    values: Annotated[
        str,
        typer.Argument(
            metavar="JSON",
            help='The row\'s columns (insert), or its "id" and the columns to change (update),'
            ' or its "id" (delete).',
        ),
    ],
    user: As,
    cache: CacheFile = None,
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """Queue a local write (pushed by `sync push` or `sync run`); prints the row's id."""
    try:
        data = json.loads(values)
    except json.JSONDecodeError as exc:
        raise PysyncError(f"JSON is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PysyncError("JSON must be an object of column values")
    row_id = data.pop("id", None)
    if kind is not WriteKind.insert and not row_id:
        raise PysyncError(f'{kind.value} needs the row\'s "id" in JSON')
    with open_cache(user, cache, db_url) as opened:
        if kind is WriteKind.insert:
            row_id = opened.insert(table, data if row_id is None else {**data, "id": row_id})
        elif kind is WriteKind.update:
            opened.update(table, str(row_id), data)
        else:
            opened.delete(table, str(row_id))
        pending = opened.status().pending_ops
    output.emit(
        as_json,
        {"table": table, "kind": kind.value, "id": str(row_id), "pending_ops": pending},
        lambda: output.line(str(row_id)),
    )


@sync_app.command("dead-letters")
def sync_dead_letters(
    user: As, cache: CacheFile = None, db_url: DbUrl = None, as_json: Json = False
) -> None:
    """Writes the server rejected, with the reason, kept until retried or discarded."""
    with open_cache(user, cache, db_url) as opened:
        letters = opened.dead_letters()
    output.emit(
        as_json,
        [dataclasses.asdict(d) for d in letters],
        lambda: output.table(
            f"Dead letters ({len(letters)})",
            ["op", "table", "kind", "row", "sqlstate", "message"],
            [(d.op_id, d.table, d.kind, d.row_id, d.sqlstate, d.message) for d in letters],
        ),
    )


@sync_app.command("demo")
def sync_demo(
    student: Annotated[
        str, typer.Option("--student", help="A student with an active enrollment.")
    ] = DEMO_STUDENT,
    tutor: Annotated[str, typer.Option("--tutor", help="The tutor of that course.")] = DEMO_TUTOR,
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """Tell the offline-sync story on the dev world: two devices of a student and their
    tutor's, an offline conflicting edit, an offline message with a photo, an enrollment that
    ends; then check every cache against the server. Puts back what it changed."""
    project = context.project(db_url)
    signing = context.signing(project)
    report = run_demo(
        project.url(),
        signing.secret,
        student=student,
        tutor=tutor,
        say=(lambda _line: None) if as_json else output.line,
        objects_dir=project.settings.data_dir / "objects",
    )
    if as_json:
        output.emit(True, report.as_dict(), lambda: None)
