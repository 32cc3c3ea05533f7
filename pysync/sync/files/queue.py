"""Files offline: an upload queue tied to the row cache's outbox, and a bounded download cache.

The shape is PowerSync's attachments helper (a queue table beside the synced tables, local
and remote storage adapters, files that follow the rows naming them), with this engine's
guarantees carried over to files:

* **Attach offline, atomically.** :meth:`FileSync.insert` / :meth:`FileSync.update` copy the
  bytes into the cache's folder, then write the row (its file column set to a deterministic
  object path, :mod:`.rules`), its outbox op and the queued upload in **one** SQLite
  transaction. A crash before the commit leaves only an unnamed copy, deleted at the next
  start; after it, all three.
* **Files first.** Before a batch of ops is pushed, every queued upload runs
  (:class:`~pysync.sync.cache.FileHooks`), so the server never holds a row naming a file that
  is not in Storage. A retried upload (crash, lost answer) writes the same path again
  (upsert; or, where the policy allows no update, an existing object with the same ETag counts
  as done): no second object.
* **Refusals are dead letters.** Storage refusing a file (policy, bucket limit) dead-letters
  the op of the row naming it, with its client transaction and dependants, exactly like a
  rejected op (:meth:`SyncCache.reject_pending <pysync.sync.cache.SyncCache.reject_pending>`);
  the bytes stay until the dead letter is retried (the upload is queued again) or discarded.
  Other uploads and ops go on. A failure that may pass (network, 5xx) stops the push; the
  next sync retries.
* **Files follow rows.** After every sync, a cached file no row of the cache names any more
  (the row was deleted, or left with its bucket when access was lost) is deleted from disk; a
  file whose rows changed is checked again (ETag) when next opened; eager rules download new
  files. Over the byte budget, the least recently used files go, never one named by a row
  with pending writes nor a queued upload.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pysync.gateway import Conflict, GatewayError, NotFound
from pysync.progress import ProgressCallback
from pysync.sync.cache import FileHooks, SyncCache
from pysync.sync.errors import SyncError, UnknownTable
from pysync.sync.files.local import copy_file
from pysync.sync.files.objects import ObjectInfo, ObjectStore, ResumeSlot, is_refusal
from pysync.sync.files.rules import PLATFORM_RULES, FileRule
from pysync.sync.files.tables import CachedFile, FileTables, QueuedUpload
from pysync.sync.status import FileStatus
from pysync.sync.storage import OutboxOp, Storage

__all__ = ["FileSync", "file_status", "files_folder"]

Key = tuple[str, str]  # (bucket, object path)


def files_folder(cache_path: str | Path) -> Path:
    """Where a cache file's files live: beside it, ``<cache>.files/``."""
    path = Path(cache_path)
    return path.with_name(path.name + ".files")


def file_status(storage: Storage, *, budget_bytes: int | None = None) -> FileStatus | None:
    """The files of a cache file, without a store (``pysync sync status``); None when the
    cache never held a file."""
    rows = storage.query(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_files_uploads'"
    )
    if not rows:
        return None
    return FileStatus(**FileTables(storage).totals(), budget_bytes=budget_bytes)


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except FileNotFoundError:
        return False


def _fingerprint(refs: Sequence[tuple[str, str, Any]]) -> str:
    text = ";".join(sorted(f"{table}:{row_id}:{version}" for table, row_id, version in refs))
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class FileSync:
    """The files of one :class:`SyncCache`: attach (queued uploads), open (downloads).

    ``progress`` hears each transfer as an ``upload <bucket>/<path>`` or ``download …`` task
    in bytes (:func:`~pysync.sync.files.objects.transfer`)."""

    def __init__(
        self,
        cache: SyncCache,
        store: ObjectStore | None,
        folder: str | Path,
        *,
        rules: Sequence[FileRule] = PLATFORM_RULES,
        budget_bytes: int | None = None,
        progress: ProgressCallback | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._cache = cache
        self._storage = cache.storage
        self._store = store
        self._folder = Path(folder)
        self._rules = {(r.table, r.column): r for r in rules}
        self.budget_bytes = budget_bytes
        self._progress = progress
        self._now = now
        self._in_flight = 0
        self._count_lock = threading.Lock()
        #: The last failure of a file transfer after a sync (they never fail the sync).
        self.last_error: str | None = None
        (self._folder / "queue").mkdir(parents=True, exist_ok=True)
        (self._folder / "cache").mkdir(parents=True, exist_ok=True)
        self._tables = FileTables(self._storage)
        self._delete_unnamed_files()
        cache.plug_files(FileHooks(self._before_push, self._after_sync, self.status))

    def close(self) -> None:
        """Unplug from the cache (its syncs no longer move files)."""
        self._cache.plug_files(None)

    # -- rules -------------------------------------------------------------------------------

    def _rule(self, table: str, column: str | None) -> FileRule:
        matches = [r for (t, c), r in self._rules.items() if t == table and column in (None, c)]
        if len(matches) != 1:
            named = f"{table}.{column}" if column else table
            raise UnknownTable(f"{named} holds no file (or several: name the column)")
        return matches[0]

    # -- attaching ---------------------------------------------------------------------------

    def _keep(self, file: bytes | str | Path) -> tuple[str, str, int]:
        """Copy the bytes into the queue folder; ``(local name, md5, size)``."""
        name = f"queue/{uuid.uuid4().hex}"
        dest = self._folder / name
        if isinstance(file, bytes | bytearray | memoryview):
            part = dest.with_name(f".{dest.name}.part")
            with part.open("wb") as out:
                out.write(file)
                out.flush()
                os.fsync(out.fileno())
            part.replace(dest)
            return name, hashlib.md5(file, usedforsecurity=False).hexdigest(), len(file)
        source = Path(file)
        if not source.is_file():
            raise SyncError(f"{source} is not a file that can be attached")
        md5, size = copy_file(source, dest, durable=True)
        return name, md5, size

    def _queue(
        self,
        rule: FileRule,
        row: Mapping[str, Any],
        file: bytes | str | Path,
        filename: str | None,
        content_type: str | None,
        write: Callable[[str], None],
    ) -> str:
        if filename is None:
            if isinstance(file, bytes | bytearray | memoryview):
                raise SyncError("attaching bytes needs a filename")
            filename = Path(file).name
        path = rule.path(row, filename)
        kind = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        local_name, md5, size = self._keep(file)
        row_id = str(row["id"])
        try:
            with self._cache.transaction():
                write(path)
                ops = self._storage.pending_ops(rule.table, row_id)
                replaced = self._tables.queue_upload(
                    QueuedUpload(
                        bucket=rule.bucket,
                        path=path,
                        table=rule.table,
                        row_id=row_id,
                        op_id=ops[-1].op_id if ops else 0,
                        local_name=local_name,
                        size=size,
                        md5=md5,
                        content_type=kind,
                        upsert=rule.upsert,
                        state="queued",
                        attempts=0,
                        last_error=None,
                        resume_url=None,
                    ),
                    self._now(),
                )
        except BaseException:
            (self._folder / local_name).unlink(missing_ok=True)
            raise
        if replaced:
            (self._folder / replaced).unlink(missing_ok=True)
        return path

    def insert(
        self,
        table: str,
        values: Mapping[str, Any],
        *,
        file: bytes | str | Path,
        filename: str | None = None,
        column: str | None = None,
        content_type: str | None = None,
        priority: str | None = None,
    ) -> str:
        """Insert a row naming a new file (its path is set in the file column); the file
        uploads before the row is pushed. Returns the row's id."""
        rule = self._rule(table, column)
        row = {**values, "id": str(values.get("id") or uuid.uuid4())}

        def write(path: str) -> None:
            self._cache.insert(table, {**row, rule.column: path}, priority=priority)

        self._queue(rule, row, file, filename, content_type, write)
        return str(row["id"])

    def update(
        self,
        table: str,
        row_id: str,
        values: Mapping[str, Any] | None = None,
        *,
        file: bytes | str | Path,
        filename: str | None = None,
        column: str | None = None,
        content_type: str | None = None,
        priority: str | None = None,
    ) -> str:
        """Attach a file to an existing row (with other ``values`` changed in the same op);
        returns the file's object path."""
        rule = self._rule(table, column)
        current = self._cache.get(table, str(row_id))
        if current is None:
            raise SyncError(f"{table} has no local row {row_id}")
        row = {**current, **(values or {}), "id": str(row_id)}

        def write(path: str) -> None:
            self._cache.update(
                table, str(row_id), {**(values or {}), rule.column: path}, priority=priority
            )

        return self._queue(rule, row, file, filename, content_type, write)

    # -- uploading ---------------------------------------------------------------------------

    def _before_push(self, _batch: Sequence[OutboxOp]) -> None:
        """Every queued upload, before any op is pushed (the batch's and every earlier one's
        files; the few others cost nothing extra and keep the order simple)."""
        self.upload()

    def upload(self) -> int:
        """Upload every queued file now; the number uploaded. A refusal dead-letters the
        file's row op and goes on; a failure that may pass is raised (nothing is lost)."""
        with self._storage.transaction():
            # A row op the server rejected (or that followed a rejected one) takes its file
            # with it to dead letters: no object for a row that is not going up.
            self._tables.reject_uploads_of_dead_ops("the op of the row naming it was rejected")
        self._requeue_retried()
        done = 0
        for upload in self._tables.uploads():
            if self._upload_one(upload):
                done += 1
        return done

    def _requeue_retried(self) -> None:
        """A refused upload whose dead letter the app retried is queued again with the row's
        new op; one whose dead letter was discarded leaves with its bytes."""
        for upload in self._tables.orphan_rejections():
            rule = self._rules.get((upload.table, self._column_of(upload)))
            row = self._storage.get_row(upload.table, upload.row_id) if rule else None
            ops = self._storage.pending_ops(upload.table, upload.row_id)
            retried = bool(row is not None and rule and row.get(rule.column) == upload.path and ops)
            with self._storage.transaction():
                if retried:
                    self._tables.queue_upload(
                        QueuedUpload(**{**upload.__dict__, "op_id": ops[-1].op_id}), self._now()
                    )
                else:
                    self._tables.remove_upload(upload.bucket, upload.path)
            if not retried:
                (self._folder / upload.local_name).unlink(missing_ok=True)

    def _column_of(self, upload: QueuedUpload) -> str:
        return next(
            (
                c
                for (t, c), r in self._rules.items()
                if t == upload.table and r.bucket == upload.bucket
            ),
            "",
        )

    def _upload_one(self, upload: QueuedUpload) -> bool:
        if self._store is None:
            raise SyncError("files are queued but this cache has no object store")
        source = self._folder / upload.local_name

        def save(url: str | None) -> None:
            with self._storage.transaction():
                self._tables.set_resume_url(upload, url)

        try:
            info = self._store.upload(
                upload.bucket,
                upload.path,
                source,
                content_type=upload.content_type,
                upsert=upload.upsert,
                resume=ResumeSlot(upload.resume_url, save),
                progress=self._progress,
            )
        except Conflict as exc:
            # Insert-only (no upsert): an earlier attempt may have stored it before the
            # answer was lost. The same bytes there mean it is done; other bytes, a refusal.
            try:
                there: ObjectInfo | None = self._store.info(upload.bucket, upload.path)
            except GatewayError:
                there = None
            if there is None or (there.etag or "").strip('"') != upload.md5:
                self._refuse(upload, exc)
                return False
            info = there
        except Exception as exc:
            if is_refusal(exc):
                self._refuse(upload, exc)
                return False
            with self._storage.transaction():
                self._tables.failed_attempt(upload, str(exc))
            raise
        self._uploaded(upload, info)
        return True

    def _uploaded(self, upload: QueuedUpload, info: ObjectInfo) -> None:
        """The bytes are in Storage: the queued copy becomes the cached copy (no re-download)."""
        now = self._now()
        old = self._tables.cached(upload.bucket, upload.path)
        with self._storage.transaction():
            self._tables.remove_upload(upload.bucket, upload.path)
            self._tables.put_cached(
                CachedFile(
                    bucket=upload.bucket,
                    path=upload.path,
                    local_name=upload.local_name,
                    size=upload.size,
                    etag=info.etag,
                    refs=None,
                    stale=False,
                    checked_at=now,
                    last_used=now,
                )
            )
        if old is not None and old.local_name != upload.local_name:
            (self._folder / old.local_name).unlink(missing_ok=True)

    def _refuse(self, upload: QueuedUpload, exc: Exception) -> None:
        sqlstate = exc.sqlstate if isinstance(exc, GatewayError) else None
        message = f"Storage refused {upload.bucket}/{upload.path}: {exc}"
        # The dead letter commits (and the app hears of it) before the upload is marked: a
        # crash in between only makes the next attempt find the op settled and mark it then.
        self._cache.reject_pending(upload.op_id, sqlstate or "42501", message)
        with self._storage.transaction():
            self._tables.failed_attempt(upload, message)
            self._tables.reject_uploads_of_dead_ops(message)
            orphan = self._storage.op(upload.op_id) is None and not self._is_dead(upload.op_id)
            if orphan:  # no op (left or settled) to keep the bytes for
                self._tables.remove_upload(upload.bucket, upload.path)
        if orphan:
            (self._folder / upload.local_name).unlink(missing_ok=True)

    def _is_dead(self, op_id: int) -> bool:
        return any(d.op_id == op_id for d in self._storage.dead_letters())

    def rejected(self) -> list[QueuedUpload]:
        """Uploads Storage refused, each with its dead letter's op id."""
        return self._tables.uploads("rejected")

    def discard_dead_letter(self, op_id: int) -> None:
        """Discard a dead letter and the bytes of the file its row named."""
        self._cache.discard_dead_letter(op_id)
        self._requeue_retried()

    # -- downloading -------------------------------------------------------------------------

    def path(
        self, table: str, row_id: str, column: str | None = None, *, refresh: bool = False
    ) -> Path:
        """A local copy of the file the row names: from the cache when it is there and its
        rows did not change (``refresh`` checks its ETag anyway), else downloaded."""
        rule = self._rule(table, column)
        row = self._cache.get(table, str(row_id))
        if row is None or not row.get(rule.column):
            raise SyncError(f"{table} row {row_id} names no file in {rule.column}")
        return self._open(rule.bucket, str(row[rule.column]), refresh=refresh)

    def read(
        self, table: str, row_id: str, column: str | None = None, *, refresh: bool = False
    ) -> bytes:
        return self.path(table, row_id, column, refresh=refresh).read_bytes()

    def _open(self, bucket: str, path: str, *, refresh: bool) -> Path:
        queued = self._tables.upload(bucket, path)
        if queued is not None:
            return self._folder / queued.local_name  # not uploaded yet: the local bytes are it
        cached = self._tables.cached(bucket, path)
        # A downloaded copy is not flushed to disk (it can be fetched again): after a power
        # loss it may be short, which its size tells.
        have = cached is not None and _has_size(self._folder / cached.local_name, cached.size)
        if cached is not None and have and not cached.stale and not refresh:
            with self._storage.transaction():
                self._tables.touch(bucket, path, self._now())
            return self._folder / cached.local_name
        try:
            return self._download(bucket, path, cached if have else None)
        except NotFound:
            self._forget({(bucket, path)})  # access lost: the copy goes too
            raise
        except (GatewayError, OSError):
            if cached is not None and have:
                return self._folder / cached.local_name  # offline: the last copy
            raise

    def _download(self, bucket: str, path: str, cached: CachedFile | None) -> Path:
        if self._store is None:
            raise SyncError(f"{bucket}/{path} is not cached and this cache has no object store")
        name = f"cache/{uuid.uuid4().hex}"

        with self._count_lock:
            self._in_flight += 1
        try:
            info = self._store.download(
                bucket,
                path,
                self._folder / name,
                etag=None if cached is None else cached.etag,
                progress=self._progress,
            )
        finally:
            with self._count_lock:
                self._in_flight -= 1
        now = self._now()
        if info is None and cached is not None:
            with self._storage.transaction():
                self._tables.put_cached(
                    CachedFile(**{**cached.__dict__, "refs": self._fingerprint_of(bucket, path)})
                )
                self._tables.checked(bucket, path, now)
                self._tables.touch(bucket, path, now)
            return self._folder / cached.local_name
        assert info is not None
        with self._storage.transaction():
            self._tables.put_cached(
                CachedFile(
                    bucket=bucket,
                    path=path,
                    local_name=name,
                    size=info.size,
                    etag=info.etag,
                    refs=self._fingerprint_of(bucket, path),
                    stale=False,
                    checked_at=now,
                    last_used=now,
                )
            )
        if cached is not None:
            (self._folder / cached.local_name).unlink(missing_ok=True)
        self._enforce_budget(keep={(bucket, path)})
        return self._folder / name

    # -- following the rows ------------------------------------------------------------------

    def _references(self) -> dict[Key, list[tuple[str, str, Any]]]:
        schema = self._storage.schema
        known = {t.name for t in schema.tables} if schema else set()
        refs: dict[Key, list[tuple[str, str, Any]]] = {}
        for (table, column), rule in self._rules.items():
            if table not in known:
                continue
            for path, row_id, version in self._tables.references(table, column):
                refs.setdefault((rule.bucket, path), []).append((table, row_id, version))
        return refs

    def _fingerprint_of(self, bucket: str, path: str) -> str:
        """The fingerprint of the rows naming one file now (see :meth:`reconcile`)."""
        schema = self._storage.schema
        known = {t.name for t in schema.tables} if schema else set()
        refs = [
            (table, row_id, version)
            for (table, column), rule in self._rules.items()
            if rule.bucket == bucket and table in known
            for _, row_id, version in self._tables.references_to(table, column, path)
        ]
        return _fingerprint(refs)

    def _after_sync(self) -> None:
        """Upload what is left, drop files no row names, mark changed ones, fetch eager ones,
        keep the budget. Transfers fail quietly here (``last_error``): the rows synced."""
        try:
            self.upload()
        except (GatewayError, OSError, SyncError) as exc:
            self.last_error = str(exc)
        self.reconcile()

    def reconcile(self) -> None:
        """Make the cached files follow the cached rows (see the module doc)."""
        refs = self._references()
        queued = {(u.bucket, u.path) for u in self._tables.uploads(None)}
        gone: set[Key] = set()
        with self._storage.transaction():
            for cached in self._tables.all_cached():
                key = (cached.bucket, cached.path)
                if key not in refs:
                    if key not in queued:
                        gone.add(key)
                    continue
                fingerprint = _fingerprint(refs[key])
                if cached.refs is None:
                    self._tables.put_cached(CachedFile(**{**cached.__dict__, "refs": fingerprint}))
                elif cached.refs != fingerprint:
                    self._tables.mark_stale(cached.bucket, cached.path, fingerprint)
        self._forget(gone)
        eager = {r.bucket for r in self._rules.values() if r.eager}
        for bucket, path in sorted(k for k in refs if k[0] in eager and k not in queued):
            have = self._tables.cached(bucket, path)
            if have is not None and not have.stale:
                continue
            try:
                self._open(bucket, path, refresh=False)
            except (GatewayError, OSError, SyncError) as exc:
                self.last_error = str(exc)
        self._enforce_budget(keep=set())

    def _forget(self, keys: set[Key]) -> None:
        if not keys:
            return
        names = []
        with self._storage.transaction():
            for bucket, path in keys:
                cached = self._tables.cached(bucket, path)
                if cached is not None:
                    names.append(cached.local_name)
                    self._tables.remove_cached(bucket, path)
        for name in names:
            (self._folder / name).unlink(missing_ok=True)

    def _pinned(self) -> set[Key]:
        """Files that must stay: named by a row with pending writes, or queued."""
        pinned = {(u.bucket, u.path) for u in self._tables.uploads(None)}
        for table, row_id in self._tables.pending_rows():
            for (t, column), rule in self._rules.items():
                if t != table:
                    continue
                row = self._storage.get_row(table, row_id)
                if row is not None and row.get(column):
                    pinned.add((rule.bucket, str(row[column])))
        return pinned

    def _enforce_budget(self, keep: set[Key]) -> None:
        """Least recently used first, until the cached bytes fit the budget."""
        if self.budget_bytes is None:
            return
        files = self._tables.all_cached()  # by last_used, oldest first
        total = sum(f.size for f in files)
        if total <= self.budget_bytes:
            return
        pinned = self._pinned() | keep
        evict: set[Key] = set()
        for cached in files:
            if total <= self.budget_bytes:
                break
            key = (cached.bucket, cached.path)
            if key in pinned:
                continue
            evict.add(key)
            total -= cached.size
        self._forget(evict)

    def _delete_unnamed_files(self) -> None:
        """Copies no table names: a crash between copying bytes and committing their row, or
        between committing a removal and deleting the bytes."""
        named = {u.local_name for u in self._tables.uploads(None)}
        named |= {c.local_name for c in self._tables.all_cached()}
        for sub in ("queue", "cache"):
            for entry in (self._folder / sub).iterdir():
                if f"{sub}/{entry.name}" not in named:
                    entry.unlink(missing_ok=True)

    # -- status ------------------------------------------------------------------------------

    def status(self) -> FileStatus:
        with self._count_lock:
            in_flight = self._in_flight
        return FileStatus(
            **self._tables.totals(), downloads_in_flight=in_flight, budget_bytes=self.budget_bytes
        )
