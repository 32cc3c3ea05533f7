"""An object store for the embedded database: policies decided by the real RLS, bytes on disk.

Locally no Storage server runs; the embedded database has Supabase's ``storage.objects``
table and this repository's policies on it (``policies/storage.sql``). :class:`LocalObjectStore`
does what the Storage server does around that table, in the same order:

* **upload**: the bytes go to a new version file first; then the object's row is inserted
  (or, with ``upsert``, inserted or updated) *as the user* through a gateway whose request
  schema is ``storage``, so the insert/update policies decide; a refusal deletes the new
  version file and raises :class:`~pysync.gateway.PermissionDenied`. The row names the version
  (``storage.objects.version``, as the Storage server sets it), so readers never see bytes
  the row does not point to, and a crash between the two steps leaves at most an unreferenced
  version file.
* **info** / **download**: the row is selected as the user (the select policy decides; an
  invisible object is :class:`~pysync.gateway.NotFound`), then its version's bytes are read.
  A download with the current ETag answers "not modified", as ``If-None-Match`` does.

What it does not do: bucket limits (size, MIME types), which the Storage server checks from
``storage.buckets`` with its own privileges, are not enforced. No mock anywhere: the policy
check is PostgreSQL's.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pysync.datasources._base import Context
from pysync.gateway import NotFound, eq
from pysync.progress import ProgressCallback, Reporter
from pysync.sync.files.objects import ObjectInfo, ResumeSlot, transfer

__all__ = ["LocalObjectStore"]

_CHUNK = 1 << 20


def copy_file(
    source: Path, dest: Path, progress: Reporter | None = None, *, durable: bool = False
) -> tuple[str, int]:
    """Copy ``source`` to ``dest`` through a temporary file renamed into place (a killed
    process never leaves half a file under ``dest``); ``(hex md5, size)`` of what was copied.
    ``durable`` also flushes it to disk before the rename (survives power loss too): for the
    only copy of a user's file, not for copies that can be fetched again."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with source.open("rb") as src, part.open("wb") as out:
            while block := src.read(_CHUNK):
                out.write(block)
                digest.update(block)
                size += len(block)
                if progress is not None:
                    progress.update(size)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        part.replace(dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return digest.hexdigest(), size


class LocalObjectStore:
    """``storage.objects`` rows written and read as the user; bytes under ``root``."""

    def __init__(self, context: Context, root: str | Path) -> None:
        #: A context whose gateway's request schema is ``storage``.
        self._context = context
        self._root = Path(root)

    def _blob(self, bucket: str, path: str, version: str) -> Path:
        key = hashlib.sha256(f"{bucket}\0{path}".encode()).hexdigest()
        return self._root / key[:2] / key / version

    def _row(self, bucket: str, path: str) -> dict[str, Any] | None:
        rows = (
            self._context.gateway()
            .select(
                "objects",
                columns=("version", "metadata"),
                filters=[eq("bucket_id", bucket), eq("name", path)],
            )
            .rows
        )
        return dict(rows[0]) if rows else None

    def upload(
        self,
        bucket: str,
        path: str,
        source: Path,
        *,
        content_type: str,
        upsert: bool,
        resume: ResumeSlot | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        del resume  # one local write either happens whole or not at all
        version = str(uuid.uuid4())
        blob = self._blob(bucket, path, version)
        sent = transfer(progress, "upload", bucket, path, source.stat().st_size)
        sent.update()
        md5, size = copy_file(source, blob, sent)
        etag = f'"{md5}"'
        me = self._context.user_id
        row = {
            "bucket_id": bucket,
            "name": path,
            "owner": str(me),
            "owner_id": str(me),
            "version": version,
            "metadata": {
                "eTag": etag,
                "size": size,
                "mimetype": content_type,
                "contentLength": size,
                "lastModified": datetime.now(UTC).isoformat(),
            },
        }
        try:
            previous = self._row(bucket, path)
            gateway = self._context.gateway()
            if upsert:
                gateway.upsert("objects", row, on_conflict=("bucket_id", "name"), returning=False)
            else:
                gateway.insert("objects", row, returning=False)
        except BaseException:
            blob.unlink(missing_ok=True)
            raise
        if previous and previous.get("version") and previous["version"] != version:
            self._blob(bucket, path, str(previous["version"])).unlink(missing_ok=True)
        return ObjectInfo(bucket, path, size, etag)

    def info(self, bucket: str, path: str) -> ObjectInfo:
        row = self._row(bucket, path)
        if row is None:
            raise NotFound(f"no object {bucket}/{path} is visible to you", code="PGRST116")
        metadata = row.get("metadata") or {}
        return ObjectInfo(bucket, path, int(metadata.get("size") or 0), metadata.get("eTag"))

    def download(
        self,
        bucket: str,
        path: str,
        dest: Path,
        *,
        etag: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo | None:
        row = self._row(bucket, path)
        if row is None:
            raise NotFound(f"no object {bucket}/{path} is visible to you", code="PGRST116")
        metadata = row.get("metadata") or {}
        current = metadata.get("eTag")
        if etag is not None and current == etag:
            return None
        blob = self._blob(bucket, path, str(row.get("version")))
        if not blob.exists():
            raise NotFound(f"{bucket}/{path} has no bytes in the local object store {self._root}")
        received = transfer(progress, "download", bucket, path, blob.stat().st_size)
        received.update()
        _, size = copy_file(blob, dest, received)
        return ObjectInfo(bucket, path, size, current)

    def remove(self, bucket: str, path: str) -> bool:
        """Delete the object if the delete policy lets the user; whether it was deleted."""
        rows = self._context.gateway().delete(
            "objects", filters=[eq("bucket_id", bucket), eq("name", path)]
        )
        for row in rows:
            if row.get("version"):
                self._blob(bucket, path, str(row["version"])).unlink(missing_ok=True)
        return bool(rows)

    def clear(self) -> None:
        """Delete every stored byte (tests, the demo's reset); rows are the database's."""
        shutil.rmtree(self._root, ignore_errors=True)
