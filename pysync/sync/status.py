"""The observable state of a cache: one immutable :class:`SyncStatus` per moment.

Apps render it (a "synced 2 minutes ago", a pending badge, a per-course download bar) and
tests assert on it; nothing in it is needed to sync, so it is computed on demand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["FileStatus", "StreamProgress", "SyncStatus"]


@dataclass(frozen=True)
class StreamProgress:
    """How far one stream's buckets are downloaded."""

    #: Buckets held through this stream.
    buckets: int = 0
    #: Of those, buckets served completely at least once (they have a cursor).
    complete: int = 0
    #: Local rows in those buckets.
    rows: int = 0

    @property
    def fraction(self) -> float:
        return 1.0 if self.buckets == 0 else self.complete / self.buckets


@dataclass(frozen=True)
class FileStatus:
    """The file queue and download cache (:mod:`pysync.sync.files`)."""

    #: Files waiting to be uploaded before the rows that name them are pushed.
    queued_uploads: int = 0
    #: Their bytes.
    queued_upload_bytes: int = 0
    #: Uploads Storage refused, kept with their dead letters.
    rejected_uploads: int = 0
    #: Downloads running right now.
    downloads_in_flight: int = 0
    #: Files held in the download cache, and their bytes.
    cached_files: int = 0
    cache_bytes: int = 0
    #: The cache's byte budget (None: unbounded).
    budget_bytes: int | None = None


@dataclass(frozen=True)
class SyncStatus:
    """Every field is a snapshot taken when the status was made."""

    #: The last request reached the server (False after a network or server failure, and
    #: while told the device is offline).
    connected: bool = False
    #: A sync is running right now.
    syncing: bool = False
    #: The state machine's phase: idle, pushing, pulling, checksums, waiting, offline.
    phase: str = "idle"
    #: Local writes not yet acknowledged by the server.
    pending_ops: int = 0
    #: Seconds since the oldest pending op was made (None when nothing is pending).
    oldest_pending_age: float | None = None
    #: Ops the server rejected, waiting for the app to retry or discard them.
    dead_letters: int = 0
    #: When the last sync (push and pull until ``has_more`` was false) finished.
    last_synced_at: datetime | None = None
    #: The last failure's message, cleared by the next successful sync.
    last_error: str | None = None
    #: Server time minus local time, in seconds (used by last-write-wins).
    clock_offset: float = 0.0
    #: Download progress per stream name.
    streams: Mapping[str, StreamProgress] = field(default_factory=dict)
    #: Local rows per synced table.
    tables: Mapping[str, int] = field(default_factory=dict)
    #: Files, when the cache has a file queue (:class:`pysync.sync.files.FileSync`).
    files: FileStatus | None = None
