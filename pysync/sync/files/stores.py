"""The object store that matches a :class:`~pysync.Client`: the same Storage, the same user."""

from __future__ import annotations

from pathlib import Path

from pysync.client import Client
from pysync.datasources import LocalStorage
from pysync.sync.files.local import LocalObjectStore
from pysync.sync.files.objects import ObjectStore
from pysync.sync.files.supabase import SupabaseObjectStore

__all__ = ["object_store_for"]


def object_store_for(client: Client, local_root: str | Path | None = None) -> ObjectStore:
    """A project's Storage API for a :meth:`Client.supabase <pysync.Client.supabase>` client;
    for a local client, the local object store whose bytes live under ``local_root`` (the
    project's data directory, shared by every local user like one Storage)."""
    storage = client.storage
    if isinstance(storage, LocalStorage):
        if local_root is None:
            raise ValueError("a local client's object store needs local_root (its byte folder)")
        return LocalObjectStore(storage.context, local_root)
    url, anon_key, identity = storage.project
    return SupabaseObjectStore(url, anon_key, identity)
