"""Files offline, beside the row cache: queued uploads and a bounded download cache.

:class:`FileSync` plugs into a :class:`~pysync.sync.SyncCache`: files attached to rows upload
before the rows are pushed; files named by cached rows are downloaded on demand (or eagerly),
kept with their ETag and leave with their rows. Object stores: :class:`LocalObjectStore`
(embedded database, real ``storage.objects`` RLS) and :class:`SupabaseObjectStore` (a
project's Storage API, TUS for big files). See ``docs/sync-protocol.md`` ("Files").
"""

from pysync.sync.files.local import LocalObjectStore
from pysync.sync.files.objects import ObjectInfo, ObjectStore, ResumeSlot, is_refusal
from pysync.sync.files.queue import FileSync, file_status, files_folder
from pysync.sync.files.rules import PLATFORM_RULES, FileRule, safe_filename
from pysync.sync.files.stores import object_store_for
from pysync.sync.files.supabase import SupabaseObjectStore

__all__ = [
    "PLATFORM_RULES",
    "FileRule",
    "FileSync",
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "ResumeSlot",
    "SupabaseObjectStore",
    "file_status",
    "files_folder",
    "is_refusal",
    "object_store_for",
    "safe_filename",
]
