"""Every SQLite statement of the file queue and the download cache, in one place.

The two tables live in the cache's own SQLite file, beside ``_sync_outbox``, so queueing an
upload commits in the same transaction as the row's op (:meth:`Storage.transaction
<pysync.sync.storage.Storage.transaction>`; these statements join it). They are versioned on
their own (meta key ``files_schema_version``): the row cache's internal tables do not know
about them, and a cache that never attached a file never has them.

* ``_files_uploads``: one queued upload per object path: the op that made the row point to
  it, the local copy of the bytes, their md5 and size, the TUS resume URL, and ``state``
  (``queued``, or ``rejected`` once Storage refused it: the bytes stay until the app
  discards the dead letter).
* ``_files_cached``: one downloaded (or uploaded) file per object path: its local copy, size,
  ETag, when it was last used (LRU), whether the rows naming it changed since it was checked
  (``stale``) and a fingerprint of those rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pysync.sync.storage import Storage, quote

__all__ = ["CachedFile", "FileTables", "QueuedUpload"]

FILES_SCHEMA_VERSION = 1

_CREATE = (
    "CREATE TABLE IF NOT EXISTS _files_uploads ("
    " bucket TEXT NOT NULL, path TEXT NOT NULL, tbl TEXT NOT NULL, row_id TEXT NOT NULL,"
    " op_id INTEGER NOT NULL, local_name TEXT NOT NULL, size INTEGER NOT NULL,"
    " md5 TEXT NOT NULL, content_type TEXT NOT NULL, upsert INTEGER NOT NULL DEFAULT 1,"
    " state TEXT NOT NULL DEFAULT 'queued', attempts INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT, resume_url TEXT, created_at REAL NOT NULL,"
    " PRIMARY KEY (bucket, path))",
    "CREATE INDEX IF NOT EXISTS _files_uploads_op ON _files_uploads (op_id)",
    "CREATE TABLE IF NOT EXISTS _files_cached ("
    " bucket TEXT NOT NULL, path TEXT NOT NULL, local_name TEXT NOT NULL,"
    " size INTEGER NOT NULL, etag TEXT, refs TEXT, stale INTEGER NOT NULL DEFAULT 0,"
    " checked_at REAL NOT NULL DEFAULT 0, last_used REAL NOT NULL DEFAULT 0,"
    " PRIMARY KEY (bucket, path))",
)


@dataclass(frozen=True)
class QueuedUpload:
    bucket: str
    path: str
    table: str
    row_id: str
    op_id: int
    local_name: str
    size: int
    md5: str
    content_type: str
    upsert: bool
    state: str
    attempts: int
    last_error: str | None
    resume_url: str | None


@dataclass(frozen=True)
class CachedFile:
    bucket: str
    path: str
    local_name: str
    size: int
    etag: str | None
    refs: str | None
    stale: bool
    checked_at: float
    last_used: float


def _upload(row: dict[str, Any]) -> QueuedUpload:
    return QueuedUpload(
        bucket=row["bucket"],
        path=row["path"],
        table=row["tbl"],
        row_id=row["row_id"],
        op_id=int(row["op_id"]),
        local_name=row["local_name"],
        size=int(row["size"]),
        md5=row["md5"],
        content_type=row["content_type"],
        upsert=bool(row["upsert"]),
        state=row["state"],
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        resume_url=row["resume_url"],
    )


def _cached(row: dict[str, Any]) -> CachedFile:
    return CachedFile(
        bucket=row["bucket"],
        path=row["path"],
        local_name=row["local_name"],
        size=int(row["size"]),
        etag=row["etag"],
        refs=row["refs"],
        stale=bool(row["stale"]),
        checked_at=float(row["checked_at"]),
        last_used=float(row["last_used"]),
    )


class FileTables:
    """The file tables of one cache's SQLite file."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._q = storage.query  # runs any statement under the storage lock
        if self.exist() and int(storage.meta("files_schema_version") or 0) > FILES_SCHEMA_VERSION:
            from pysync.sync.errors import SchemaMismatch

            raise SchemaMismatch("this cache's file tables were written by a newer client")
        with storage.transaction():
            for statement in _CREATE:
                self._q(statement)
            storage.set_meta("files_schema_version", str(FILES_SCHEMA_VERSION))

    def exist(self) -> bool:
        return bool(
            self._q("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_files_uploads'")
        )

    # -- uploads -----------------------------------------------------------------------------

    def queue_upload(self, upload: QueuedUpload, now: float) -> str | None:
        """Queue ``upload``; the local file of an upload it replaces (same path), if any."""
        old = self.upload(upload.bucket, upload.path)
        self._q(
            "INSERT OR REPLACE INTO _files_uploads (bucket, path, tbl, row_id, op_id, local_name,"
            " size, md5, content_type, upsert, state, attempts, created_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?, 'queued', 0, ?)",
            (
                upload.bucket,
                upload.path,
                upload.table,
                upload.row_id,
                upload.op_id,
                upload.local_name,
                upload.size,
                upload.md5,
                upload.content_type,
                int(upload.upsert),
                now,
            ),
        )
        return None if old is None or old.local_name == upload.local_name else old.local_name

    def upload(self, bucket: str, path: str) -> QueuedUpload | None:
        rows = self._q("SELECT * FROM _files_uploads WHERE bucket = ? AND path = ?", (bucket, path))
        return _upload(rows[0]) if rows else None

    def uploads(self, state: str | None = "queued") -> list[QueuedUpload]:
        if state is None:
            rows = self._q("SELECT * FROM _files_uploads ORDER BY op_id")
        else:
            rows = self._q("SELECT * FROM _files_uploads WHERE state = ? ORDER BY op_id", (state,))
        return [_upload(r) for r in rows]

    def uploads_of_ops(self, op_ids: Sequence[int]) -> list[QueuedUpload]:
        wanted = set(op_ids)
        return [u for u in self.uploads() if u.op_id in wanted]

    def failed_attempt(self, upload: QueuedUpload, error: str) -> None:
        self._q(
            "UPDATE _files_uploads SET attempts = attempts + 1, last_error = ?"
            " WHERE bucket = ? AND path = ?",
            (error, upload.bucket, upload.path),
        )

    def set_resume_url(self, upload: QueuedUpload, url: str | None) -> None:
        self._q(
            "UPDATE _files_uploads SET resume_url = ? WHERE bucket = ? AND path = ?",
            (url, upload.bucket, upload.path),
        )

    def reject_uploads_of_dead_ops(self, error: str) -> None:
        """Queued uploads whose op went to dead letters (refused itself, or followed a refused
        op) are rejected with it."""
        self._q(
            "UPDATE _files_uploads SET state = 'rejected', last_error = coalesce(last_error, ?)"
            " WHERE state = 'queued' AND op_id IN (SELECT op_id FROM _sync_dead_letters)",
            (error,),
        )

    def remove_upload(self, bucket: str, path: str) -> None:
        self._q("DELETE FROM _files_uploads WHERE bucket = ? AND path = ?", (bucket, path))

    def rejected_of_op(self, op_id: int) -> list[QueuedUpload]:
        rows = self._q(
            "SELECT * FROM _files_uploads WHERE state = 'rejected' AND op_id = ?", (op_id,)
        )
        return [_upload(r) for r in rows]

    def orphan_rejections(self) -> list[QueuedUpload]:
        """Rejected uploads whose dead letter the app retried or discarded."""
        rows = self._q(
            "SELECT * FROM _files_uploads WHERE state = 'rejected'"
            " AND op_id NOT IN (SELECT op_id FROM _sync_dead_letters)"
        )
        return [_upload(r) for r in rows]

    # -- downloaded files --------------------------------------------------------------------

    def cached(self, bucket: str, path: str) -> CachedFile | None:
        rows = self._q("SELECT * FROM _files_cached WHERE bucket = ? AND path = ?", (bucket, path))
        return _cached(rows[0]) if rows else None

    def all_cached(self) -> list[CachedFile]:
        return [_cached(r) for r in self._q("SELECT * FROM _files_cached ORDER BY last_used")]

    def put_cached(self, file: CachedFile) -> None:
        self._q(
            "INSERT OR REPLACE INTO _files_cached (bucket, path, local_name, size, etag, refs,"
            " stale, checked_at, last_used) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                file.bucket,
                file.path,
                file.local_name,
                file.size,
                file.etag,
                file.refs,
                int(file.stale),
                file.checked_at,
                file.last_used,
            ),
        )

    def touch(self, bucket: str, path: str, now: float) -> None:
        self._q(
            "UPDATE _files_cached SET last_used = ? WHERE bucket = ? AND path = ?",
            (now, bucket, path),
        )

    def mark_stale(self, bucket: str, path: str, refs: str) -> None:
        self._q(
            "UPDATE _files_cached SET stale = 1, refs = ? WHERE bucket = ? AND path = ?",
            (refs, bucket, path),
        )

    def checked(self, bucket: str, path: str, now: float) -> None:
        self._q(
            "UPDATE _files_cached SET stale = 0, checked_at = ? WHERE bucket = ? AND path = ?",
            (now, bucket, path),
        )

    def remove_cached(self, bucket: str, path: str) -> None:
        self._q("DELETE FROM _files_cached WHERE bucket = ? AND path = ?", (bucket, path))

    # -- what rows say -----------------------------------------------------------------------

    def references(self, table: str, column: str) -> list[tuple[str, str, Any]]:
        """``(path, row id, row version)`` of every local row of ``table`` naming a file."""
        rows = self._q(
            f"SELECT {quote(column)} AS path, id, version FROM {quote(table)}"  # noqa: S608
            f" WHERE {quote(column)} IS NOT NULL AND {quote(column)} <> ''"
        )
        return [(str(r["path"]), str(r["id"]), r["version"]) for r in rows]

    def references_to(self, table: str, column: str, path: str) -> list[tuple[str, str, Any]]:
        """``(path, row id, row version)`` of the local rows of ``table`` naming ``path``."""
        rows = self._q(
            f"SELECT id, version FROM {quote(table)} WHERE {quote(column)} = ?",  # noqa: S608
            (path,),
        )
        return [(path, str(r["id"]), r["version"]) for r in rows]

    def pending_rows(self) -> set[tuple[str, str]]:
        """``(table, row id)`` of every row with pending writes."""
        return {
            (r["tbl"], r["row_id"])
            for r in self._q("SELECT DISTINCT tbl, row_id FROM _sync_outbox")
        }

    def totals(self) -> dict[str, int]:
        queued = self._q(
            "SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM _files_uploads"
            " WHERE state = 'queued'"
        )[0]
        rejected = self._q("SELECT count(*) AS n FROM _files_uploads WHERE state = 'rejected'")[0]
        cached = self._q(
            "SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM _files_cached"
        )[0]
        return {
            "queued_uploads": int(queued["n"]),
            "queued_upload_bytes": int(queued["bytes"]),
            "rejected_uploads": int(rejected["n"]),
            "cached_files": int(cached["n"]),
            "cache_bytes": int(cached["bytes"]),
        }
