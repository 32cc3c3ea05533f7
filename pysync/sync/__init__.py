"""pysync.sync: the offline-first sync client of ``docs/sync-protocol.md``.

Open a :class:`SyncCache` for a :class:`~pysync.Client`, read and write local tables, and
:meth:`~SyncCache.sync`. The parts, one role each (as in the PowerSync SDKs): :mod:`.wire`
(the contract's shapes), :mod:`.schema` and :mod:`.storage` (local SQLite; all its SQL),
:mod:`.outbox` (CRUD queue), :mod:`.conflicts`, :mod:`.protocol` (state machine, no I/O),
:mod:`.connector` (the RPCs, retries), :mod:`.status` and :mod:`.progress`, :mod:`.triggers`.
"""

from pysync.progress import ProgressCallback, ProgressEvent
from pysync.sync.cache import RejectedCallback, SyncCache, Watch
from pysync.sync.conflicts import ConflictContext, ConflictPolicy, Resolver
from pysync.sync.connector import Connector
from pysync.sync.errors import CacheLocked, SchemaMismatch, SyncError, UnknownTable, WrongKey
from pysync.sync.realtime import RealtimeNudges
from pysync.sync.schema import LOCAL_SCHEMA_VERSION
from pysync.sync.status import StreamProgress, SyncStatus
from pysync.sync.storage import DeadLetter
from pysync.sync.triggers import NudgeSource, PgNudges, Triggers

__all__ = [
    "LOCAL_SCHEMA_VERSION",
    "CacheLocked",
    "ConflictContext",
    "ConflictPolicy",
    "Connector",
    "DeadLetter",
    "NudgeSource",
    "PgNudges",
    "ProgressCallback",
    "ProgressEvent",
    "RealtimeNudges",
    "RejectedCallback",
    "Resolver",
    "SchemaMismatch",
    "StreamProgress",
    "SyncCache",
    "SyncError",
    "SyncStatus",
    "Triggers",
    "UnknownTable",
    "Watch",
    "WrongKey",
]
