"""The sync RPCs' payloads (wire version 5 of ``docs/sync-protocol.md``), declared once.

The catalog sees ``sync_pull(request jsonb) → json``; this module says what ``request`` and
the answer hold, so ``pysync gen types`` writes typed payloads for Dart, TypeScript and Python
from one declaration. ``tests/test_sync_payload_types.py`` runs real ``sync_*`` calls against
the migrations and validates every answer against it (every declared key present, typed as
declared, no undeclared key, and every ``null`` or absent key seen for real), so the types
cannot drift from the server. Only wire version 5 is described: the typed request always asks
for it (``version: 5``), and the answer's rows are arrays of values under ``columns``, row by
row (``rows``) or, for a bucket served whole, column by column (``by_column``); a served
bucket's ``streams`` may be null (as the client holds it). A request may name the buckets at
one shared cursor by table (``cursor``, ``held``), and the answer to a pull that found nothing
says ``all_unchanged`` instead of naming them.
"""

from __future__ import annotations

from pysync.gen.payload_types import (
    BOOLEAN,
    INTEGER,
    JSON,
    SNAPSHOT,
    STRING,
    TIMESTAMP,
    UUID,
    Argument,
    Choice,
    Const,
    Field,
    ListOf,
    MapOf,
    RpcPayload,
    Struct,
)

__all__ = ["SYNC_PAYLOADS", "WIRE_VERSION"]

#: The ``sync_pull`` wire version these types describe.
WIRE_VERSION = 5

# -- sync_schema --------------------------------------------------------------------------

OPERATION = Choice("SyncOperation", ("insert", "update", "delete"), "A write sync_push accepts.")
CONFLICT_POLICY = Choice(
    "SyncConflictPolicy",
    ("server_wins", "client_wins", "last_write_wins", "field_merge"),
    "How a client resolves a conflicted write of a table (its default policy).",
)
STREAM_MODE = Choice(
    "SyncStreamMode",
    ("auto", "on_demand"),
    "auto: the caller's membership decides; on_demand: the client subscribes to keys.",
)

COLUMN_SPEC = Struct(
    "SyncColumnSpec",
    "A synced column as sync_schema() describes it.",
    (
        Field("name", STRING, "The column's name."),
        Field("type", STRING, "PostgreSQL's format_type (`uuid`, `text[]`, `bigint`, ...)."),
        Field("nullable", BOOLEAN, "The column may hold null."),
    ),
)
TABLE_SPEC = Struct(
    "SyncTableSpec",
    "A synced table: its bucket column, columns, what clients may write, its policy.",
    (
        Field("name", STRING, "The table in `public`."),
        Field("bucket_column", STRING, "The column whose value names a row's bucket."),
        Field("columns", ListOf(COLUMN_SPEC), "Every column but `sync_xid`, in table order."),
        Field("writable", ListOf(STRING), "The columns sync_push accepts in an op's `data`."),
        Field("operations", ListOf(OPERATION), "The writes allowed (empty: read-only)."),
        Field("conflict", CONFLICT_POLICY, "The table's default conflict policy."),
        Field("counters", ListOf(STRING), "Columns field_merge takes from the server."),
    ),
)
STREAM_SPEC = Struct(
    "SyncStreamSpec",
    "A way to hold buckets of one table.",
    (
        Field("name", STRING, "The stream's name (subscriptions name it)."),
        Field("table", STRING, "The synced table it serves."),
        Field("mode", STREAM_MODE, "How its buckets are found."),
        Field("ttl_seconds", INTEGER, "How long a subscription lives (on_demand).", nullable=True),
        Field("description", STRING, "What it holds, for people."),
    ),
)
SCHEMA_INFO = Struct(
    "SyncSchemaInfo",
    "sync_schema(): what is synced, for generating the local schema.",
    (
        Field("hash", STRING, "Opaque; changes whenever anything here does."),
        Field("tables", ListOf(TABLE_SPEC), "The synced tables, by name."),
        Field("streams", ListOf(STREAM_SPEC), "The streams, by name."),
    ),
)

# -- sync_pull ----------------------------------------------------------------------------

BUCKET_STATE = Struct(
    "SyncBucketState",
    "A held bucket's state, as the server last returned it (nulls may be left out).",
    (
        Field(
            "cursor",
            SNAPSHOT,
            "null until first served completely.",
            nullable=True,
            required=False,
        ),
        Field(
            "round",
            SNAPSHOT,
            "While served across pages: the round's snapshot.",
            nullable=True,
            required=False,
        ),
        Field(
            "after",
            UUID,
            "While served across pages: the last id served.",
            nullable=True,
            required=False,
        ),
    ),
)
SUBSCRIPTION = Struct(
    "SyncSubscription",
    "A live subscription to a key of an on_demand stream.",
    (
        Field("stream", STRING, "The on_demand stream."),
        Field("key", STRING, "The bucket key (a course id, ...)."),
    ),
)
PULL_REQUEST = Struct(
    "SyncPullRequest",
    "The `request` of sync_pull, in wire version 5.",
    (
        Field(
            "buckets",
            MapOf(BUCKET_STATE),
            "Every held bucket by name, with its state (but those in `held`).",
            required=False,
        ),
        Field(
            "cursor",
            SNAPSHOT,
            "With `held`: the cursor the buckets in `held` share.",
            required=False,
        ),
        Field(
            "held",
            MapOf(ListOf(STRING)),
            "Per table, the keys of buckets whose whole state is `cursor` (version 5 servers).",
            required=False,
        ),
        Field("subscriptions", ListOf(SUBSCRIPTION), "Live subscriptions.", required=False),
        Field("limit", INTEGER, "Most rows and removals in the page (1..10000).", required=False),
        Field("version", Const(WIRE_VERSION), "The wire version: rows as arrays of values."),
        Field(
            "resolution",
            STRING,
            "The last answer's `resolution`, sent back as it came (none yet: leave out).",
            required=False,
        ),
    ),
)
PAGE_STATE = Choice(
    "SyncBucketPageState",
    ("new", "reset", "changed"),
    "new: first served; reset: served whole again (drop local rows first); changed.",
)
BUCKET_PAGE = Struct(
    "SyncBucketPage",
    "One bucket's part of a pull page.",
    (
        Field("bucket", STRING, "The bucket's name, `<table>:<key>`."),
        Field("table", STRING, "The synced table."),
        Field("key", STRING, "The bucket column's value."),
        Field(
            "streams",
            ListOf(STRING),
            "The streams through which the caller holds it; null: as the client holds it now.",
            nullable=True,
        ),
        Field("state", PAGE_STATE, "How to apply the entry."),
        Field("rows", ListOf(ListOf(JSON)), "Rows to upsert, as values in `columns` order."),
        Field(
            "by_column",
            ListOf(ListOf(JSON)),
            "Instead of `rows` (a bucket served whole): per name in `columns`, every row's value.",
            required=False,
        ),
        Field("removed", ListOf(UUID), "Ids of rows to drop from this bucket."),
        Field("complete", BOOLEAN, "The bucket is served to the end of this snapshot."),
        Field("cursor", SNAPSHOT, "When complete: the new cursor.", nullable=True),
        Field("round", SNAPSHOT, "When not complete: send back.", nullable=True),
        Field("after", UUID, "When not complete: send back.", nullable=True),
    ),
)
DENIED = Struct(
    "SyncDenied",
    "A subscription the server did not grant.",
    (
        Field("stream", STRING, "As subscribed (null: not given).", nullable=True),
        Field("key", STRING, "As subscribed (null: not given).", nullable=True),
        Field("reason", STRING, "`not allowed`, `not a valid key`, `unknown stream`."),
    ),
)
PULL_RESPONSE = Struct(
    "SyncPullResponse",
    "One page of changes for every held bucket, in wire version 5.",
    (
        Field("version", Const(WIRE_VERSION), "The wire version of this answer."),
        Field("snapshot", SNAPSHOT, "The page's snapshot: the cursor of `unchanged` buckets."),
        Field("server_time", TIMESTAMP, "The server's clock."),
        Field("schema_hash", STRING, "sync_schema()'s hash: migrate first when it differs."),
        Field("columns", MapOf(ListOf(STRING)), "Per table with rows here: its column list."),
        Field("buckets", ListOf(BUCKET_PAGE), "Buckets with something to apply."),
        Field("unchanged", ListOf(STRING), "Buckets whose cursor becomes `snapshot`."),
        Field(
            "all_unchanged",
            BOOLEAN,
            "true: nothing changed; every bucket the request held is unchanged (`unchanged` []).",
            required=False,
        ),
        Field("removed_buckets", ListOf(STRING), "Buckets no longer held: drop their rows."),
        Field("denied", ListOf(DENIED), "Subscriptions not granted."),
        Field("has_more", BOOLEAN, "Pull again at once with the new states."),
        Field(
            "resolution",
            STRING,
            "Opaque: send it with the next pull (null: a subscription was refused).",
            nullable=True,
        ),
    ),
)

# -- sync_checksums -----------------------------------------------------------------------

CHECKSUMS_REQUEST = Struct(
    "SyncChecksumsRequest",
    "The `request` of sync_checksums.",
    (
        Field("buckets", ListOf(STRING), "The buckets to count."),
        Field("subscriptions", ListOf(SUBSCRIPTION), "As for sync_pull.", required=False),
    ),
)
BUCKET_CHECKSUM = Struct(
    "SyncBucketChecksum",
    "A bucket's rows as the caller sees them.",
    (
        Field("count", INTEGER, "How many rows."),
        Field("checksum", INTEGER, 'Sum of int(md5("<id>:<version>")[0:8], 16) mod 2^32.'),
    ),
)
CHECKSUMS_RESPONSE = Struct(
    "SyncChecksumsResponse",
    "Per-bucket counts and checksums.",
    (
        Field("snapshot", SNAPSHOT, "The snapshot they were computed in."),
        Field("buckets", MapOf(BUCKET_CHECKSUM), "Per held bucket asked for."),
        Field("removed_buckets", ListOf(STRING), "Buckets asked for but not held."),
    ),
)

# -- sync_push ----------------------------------------------------------------------------

OP_KIND = Choice("SyncOpKind", ("insert", "update", "delete"), "What an op does to its row.")
PRIORITY = Choice(
    "SyncPriority", ("critical", "normal", "background"), "For the client's scheduling only."
)
OP_STATUS = Choice(
    "SyncOpStatus",
    ("applied", "conflict", "rejected"),
    "applied: written; conflict: stale base_version, nothing written; rejected: see sqlstate.",
)
PUSH_OP = Struct(
    "SyncPushOp",
    "One queued write.",
    (
        Field("op_id", INTEGER, "Unique per client_id, increasing."),
        Field(
            "tx_id",
            STRING,
            "Consecutive ops with one tx_id are one transaction.",
            nullable=True,
            required=False,
        ),
        Field("table", STRING, "A synced table."),
        Field("kind", OP_KIND, "insert, update or delete."),
        Field("id", UUID, "The row's id (generated by the client for an insert)."),
        Field("data", MapOf(JSON), "Insert: the row's columns; update: the changed ones."),
        Field(
            "base_version",
            INTEGER,
            "The server version the change was made on (update: required).",
            nullable=True,
            required=False,
        ),
        Field("priority", PRIORITY, "The client's scheduling class.", required=False),
    ),
)
OP_RESULT = Struct(
    "SyncOpResult",
    "One op's result, in the order of the ops.",
    (
        Field("op_id", INTEGER, "The op's id."),
        Field("status", OP_STATUS, "What happened."),
        Field(
            "version",
            INTEGER,
            "applied: the row's new version (null for a delete); conflict: the server's.",
            nullable=True,
            required=False,
        ),
        Field(
            "row",
            MapOf(JSON),
            "conflict, rejected: the server's row as the caller sees it (null: none).",
            nullable=True,
            required=False,
        ),
        Field(
            "sqlstate", STRING, "rejected: why (`42501`, `23514`, `22023`, ...).", required=False
        ),
        Field("message", STRING, "rejected, or held back: the server's message.", required=False),
        Field("depends_on", INTEGER, "The op whose failure this one followed.", required=False),
        Field("replayed", BOOLEAN, "The stored result of an earlier delivery.", required=False),
    ),
)
PUSH_RESPONSE = Struct(
    "SyncPushResponse",
    "The results of a sync_push.",
    (
        Field("server_time", TIMESTAMP, "The server's clock."),
        Field("results", ListOf(OP_RESULT), "One per op, same order."),
    ),
)

# -- sync_prune ---------------------------------------------------------------------------

PRUNE_RESULT = Struct(
    "SyncPruneResult",
    "sync_prune() (service role): what housekeeping removed.",
    (
        Field("tombstones", INTEGER, "Tombstones deleted."),
        Field("bucket_changes", INTEGER, "Bucket change log entries deleted."),
        Field("push_results", INTEGER, "Stored push results deleted."),
        Field("pruned_xid", STRING, "The newest pruned tombstone's transaction id."),
        Field(
            "change_log_pruned_xid",
            STRING,
            "Cursors at or below this transaction are not answered from the change log.",
        ),
    ),
)

#: Every ``sync_*`` RPC of the API and what it takes and returns.
SYNC_PAYLOADS: tuple[RpcPayload, ...] = (
    RpcPayload("sync_schema", (), SCHEMA_INFO),
    RpcPayload("sync_pull", (Argument("request", "jsonb", PULL_REQUEST),), PULL_RESPONSE),
    RpcPayload(
        "sync_checksums", (Argument("request", "jsonb", CHECKSUMS_REQUEST),), CHECKSUMS_RESPONSE
    ),
    RpcPayload(
        "sync_push",
        (Argument("client_id", "uuid", UUID), Argument("ops", "jsonb", ListOf(PUSH_OP))),
        PUSH_RESPONSE,
    ),
    RpcPayload("sync_prune", (), PRUNE_RESULT),
)
