"""What the file queue needs of an object store, and how it tells a refusal from an outage.

Two implementations: :class:`~pysync.sync.files.local.LocalObjectStore` (the embedded
database's ``storage.objects`` rows under RLS, bytes in a folder) and
:class:`~pysync.sync.files.supabase.SupabaseObjectStore` (a project's Storage API, with TUS
resumable uploads for large files). Both raise :mod:`pysync.gateway` errors, so the queue
decides the same way for both: a policy or a bucket limit refusing the file is final (dead
letter), anything that may pass is retried with the next sync.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pysync.gateway import GatewayError
from pysync.progress import ProgressCallback, Reporter
from pysync.sync.connector import retryable

__all__ = [
    "ObjectInfo",
    "ObjectStore",
    "ResumeSlot",
    "file_md5",
    "is_refusal",
    "transfer",
]


@dataclass(frozen=True)
class ObjectInfo:
    """An object as the store has it now."""

    bucket: str
    path: str
    size: int
    #: Changes whenever the object's bytes do (an HTTP ETag, quotes included).
    etag: str | None


@dataclass
class ResumeSlot:
    """Where a resumable upload's server URL is kept between attempts and processes: the
    queue persists ``url`` in its SQLite row through ``save`` the moment the store has one."""

    url: str | None
    save: Callable[[str | None], None]


class ObjectStore(Protocol):
    """An object store acting as the signed-in user (its policies decide)."""

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
        """Store ``source`` at ``path``; raise :class:`~pysync.gateway.Conflict` when it exists
        and ``upsert`` is off. ``progress`` hears the bytes sent (:func:`transfer`)."""
        ...

    def info(self, bucket: str, path: str) -> ObjectInfo:
        """The object, if the user may read it (else :class:`~pysync.gateway.NotFound`)."""
        ...

    def download(
        self,
        bucket: str,
        path: str,
        dest: Path,
        *,
        etag: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo | None:
        """Write the object to ``dest``; ``None`` (and ``dest`` untouched) when its ETag is
        still ``etag``. ``progress`` hears the bytes received (:func:`transfer`)."""
        ...


def transfer(
    progress: ProgressCallback | None,
    direction: Literal["upload", "download"],
    bucket: str,
    path: str,
    total: int | None,
) -> Reporter:
    """The progress task of one file moving: ``upload <bucket>/<path>`` (or ``download …``)
    in bytes, the same name from every store so an app's bar follows the file."""
    return Reporter(progress, f"{direction} {bucket}/{path}", total=total, unit="bytes")


def is_refusal(exc: BaseException) -> bool:
    """Whether the store refused the file for good (a policy, a bucket limit, a bad path)
    rather than failing in a way a later attempt may get past."""
    return isinstance(exc, GatewayError) and not retryable(exc)


def file_md5(path: Path, chunk: int = 1 << 20) -> tuple[str, int]:
    """``(hex md5, size)`` of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
