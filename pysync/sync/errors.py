"""The sync engine's exceptions: one small hierarchy under :class:`SyncError`.

An application catches :class:`SyncError` for anything the cache cannot do; the subclasses
exist only where the caller can do something different about it (unlock, ask for the right
key, upgrade the app).
"""

from __future__ import annotations

from pysync.errors import PysyncError

__all__ = ["CacheLocked", "SchemaMismatch", "SyncError", "UnknownTable", "WrongKey"]


class SyncError(PysyncError):
    """The offline cache could not do what was asked; the message says what and why."""


class SchemaMismatch(SyncError):
    """The local cache and the server's ``sync_schema()`` disagree in a way that cannot be
    migrated forward (a column's type changed, the local file is from a newer client)."""


class CacheLocked(SyncError):
    """Another :class:`~pysync.sync.SyncCache` has this file open. Two caches on one file
    would share a ``client_id`` and reuse op ids, which breaks exactly-once pushes."""


class WrongKey(SyncError):
    """The cache file is encrypted with another key, or is not a cache at all."""


class UnknownTable(SyncError):
    """The table is not synced (not in ``sync_schema()``), or not writable by clients."""
