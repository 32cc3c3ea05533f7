"""The wire contract of ``docs/sync-protocol.md`` as frozen dataclasses, parsed and serialized.

Pure: no I/O, no SQLite. Every other module of the client speaks these types, so a change in
the contract is a change here first. Parsing is strict about what the client relies on (a
missing ``bucket`` or ``status`` raises :class:`~pysync.sync.SyncError`) and lenient about
additions, so a newer server does not break an older client.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pysync.sync.errors import SyncError

__all__ = [
    "PULL_VERSION",
    "BucketPage",
    "BucketState",
    "ChecksumsResponse",
    "ColumnSpec",
    "Denied",
    "OpResult",
    "PullRequest",
    "PullResponse",
    "PushOp",
    "PushResponse",
    "SchemaInfo",
    "StreamSpec",
    "Subscription",
    "TableSpec",
    "parse_checksums",
    "parse_pull",
    "parse_push",
    "parse_schema",
    "parse_server_time",
]

Row = dict[str, Any]
Priority = Literal["critical", "normal", "background"]
OpKind = Literal["insert", "update", "delete"]
Policy = Literal["server_wins", "client_wins", "last_write_wins", "field_merge"]

PRIORITIES: tuple[Priority, ...] = ("critical", "normal", "background")


def _need(obj: Mapping[str, Any], key: str, what: str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise SyncError(f"malformed {what} from the server: no {key!r}")
    return obj[key]


def parse_server_time(text: str) -> datetime:
    """``server_time`` as an aware datetime (PostgreSQL's ISO text, any precision)."""
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise SyncError(f"malformed server_time {text!r}") from exc


# -- sync_schema -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    nullable: bool = True


@dataclass(frozen=True)
class TableSpec:
    """One synced table: how it is bucketed, what clients may write, the default policy."""

    name: str
    bucket_column: str
    columns: tuple[ColumnSpec, ...]
    writable: frozenset[str] = frozenset()
    operations: frozenset[str] = frozenset()
    conflict: Policy = "server_wins"
    counters: frozenset[str] = frozenset()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class StreamSpec:
    name: str
    table: str
    mode: Literal["auto", "on_demand"]
    ttl_seconds: int | None = None
    description: str = ""


@dataclass(frozen=True)
class SchemaInfo:
    hash: str
    tables: tuple[TableSpec, ...]
    streams: tuple[StreamSpec, ...] = ()

    def table(self, name: str) -> TableSpec | None:
        return next((t for t in self.tables if t.name == name), None)

    def stream(self, name: str) -> StreamSpec | None:
        return next((s for s in self.streams if s.name == name), None)


def parse_schema(obj: Any) -> SchemaInfo:
    tables = []
    for t in _need(obj, "tables", "sync_schema"):
        conflict: Policy = "server_wins"
        if t.get("conflict") in ("server_wins", "client_wins", "last_write_wins", "field_merge"):
            conflict = t["conflict"]
        tables.append(
            TableSpec(
                name=_need(t, "name", "sync_schema table"),
                bucket_column=_need(t, "bucket_column", "sync_schema table"),
                columns=tuple(
                    ColumnSpec(c["name"], c.get("type", "text"), bool(c.get("nullable", True)))
                    for c in _need(t, "columns", "sync_schema table")
                ),
                writable=frozenset(t.get("writable") or ()),
                operations=frozenset(t.get("operations") or ()),
                conflict=conflict,
                counters=frozenset(t.get("counters") or ()),
            )
        )
    streams = tuple(
        StreamSpec(
            name=s["name"],
            table=s["table"],
            mode="on_demand" if s.get("mode") == "on_demand" else "auto",
            ttl_seconds=s.get("ttl_seconds"),
            description=s.get("description") or "",
        )
        for s in obj.get("streams") or ()
    )
    return SchemaInfo(
        hash=str(_need(obj, "hash", "sync_schema")), tables=tuple(tables), streams=streams
    )


# -- sync_pull ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketState:
    """What the client sends back for a bucket: exactly what the server last returned."""

    cursor: str | None = None
    round: str | None = None
    after: str | None = None

    def to_json(self) -> dict[str, Any]:
        # Only what is set: a state is nearly always a bare cursor, and a pull sends one for
        # every bucket held.
        if self.round is None and self.after is None:
            return {} if self.cursor is None else {"cursor": self.cursor}
        state = {"cursor": self.cursor, "round": self.round, "after": self.after}
        return {key: value for key, value in state.items() if value is not None}


@dataclass(frozen=True)
class Subscription:
    stream: str
    key: str

    def to_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "key": self.key}


#: The newest ``sync_pull`` wire version this client speaks: 2 sends rows as arrays of values
#: under a column list per table, 3 may send a page's rows column by column (``by_column``),
#: 4 may leave a served bucket's ``streams`` out (null: as the client holds it), 5 takes the
#: buckets at one shared cursor by table (``cursor``, ``held``) and answers a pull that found
#: nothing with ``all_unchanged``; version 1, objects, is what a request without ``version``
#: gets. A server that knows only an older version answers in it, and the client reads that
#: too.
PULL_VERSION = 5


@dataclass(frozen=True)
class PullRequest:
    buckets: Mapping[str, BucketState] = field(default_factory=dict)
    subscriptions: tuple[Subscription, ...] = ()
    limit: int = 1000
    version: int = PULL_VERSION
    #: The last response's resolution token, sent back as it came: when it still holds, a pull
    #: in which nothing changed skips working out the caller's buckets again.
    resolution: str | None = None
    #: Send the buckets at the most common cursor as key arrays by table (version 5's
    #: ``cursor`` and ``held``): only to a server that has answered in version 5, since an
    #: older one reads ``buckets`` alone.
    compact: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"version": self.version}
        shared = _shared_cursor(self.buckets) if self.compact else None
        if shared is None:
            states = sorted(self.buckets.items())
            body["buckets"] = {name: state.to_json() for name, state in states}
        else:
            held: dict[str, list[str]] = {}
            others: dict[str, Any] = {}
            for name, state in self.buckets.items():
                if state.cursor == shared and state.round is None and state.after is None:
                    table, _, key = name.partition(":")
                    keys = held.get(table)
                    if keys is None:
                        held[table] = [key]
                    else:
                        keys.append(key)
                else:
                    others[name] = state.to_json()
            body["buckets"] = others
            body["cursor"] = shared
            body["held"] = held
        body["subscriptions"] = [s.to_json() for s in self.subscriptions]
        body["limit"] = self.limit
        if self.resolution is not None:
            body["resolution"] = self.resolution
        return body


def _shared_cursor(buckets: Mapping[str, BucketState]) -> str | None:
    """The cursor most buckets hold as their whole state (not mid-round), if any: after a
    pull in which nothing changed, every bucket holds the same one."""
    counts = Counter(
        state.cursor for state in buckets.values() if state.round is None and state.after is None
    )
    counts.pop(None, None)
    return max(counts, key=counts.__getitem__) if counts else None


@dataclass(frozen=True)
class BucketPage:
    """One bucket's part of a pull page.

    A version 1 response carries its rows as objects (``rows``); versions 2 and 3 as arrays
    of values (``values``) in the order of ``columns``, its table's column list, which the
    storage layer can insert without building a dict a row. (Version 3's rows column by
    column are turned into those arrays when parsed.)"""

    bucket: str
    table: str
    key: str
    #: ``None`` (version 4): the streams the client holds the bucket through, unchanged.
    streams: tuple[str, ...] | None
    state: Literal["new", "reset", "changed"]
    rows: tuple[Row, ...]
    removed: tuple[str, ...]
    complete: bool
    cursor: str | None
    round: str | None
    after: str | None
    columns: tuple[str, ...] = ()
    values: tuple[Sequence[Any], ...] = ()

    @property
    def row_count(self) -> int:
        return len(self.rows) + len(self.values)

    def row_dicts(self) -> list[Row]:
        """Every row of the page as an object, whichever version carried it."""
        return [*self.rows, *(dict(zip(self.columns, v, strict=True)) for v in self.values)]

    def next_state(self, previous: BucketState | None) -> BucketState:
        """The state to store and send back next time (rule 3 of the apply rules).

        Mid-round the server answers ``cursor: null``; the cursor the round started from is
        kept (the server keeps filtering the round's later pages by it, and a null cursor would
        turn the bucket into a new one, served whole and without removals)."""
        if self.complete:
            return BucketState(cursor=self.cursor)
        cursor = self.cursor
        if cursor is None and previous is not None:
            cursor = previous.cursor
        return BucketState(cursor=cursor, round=self.round, after=self.after)


@dataclass(frozen=True)
class Denied:
    stream: str
    key: str
    reason: str


@dataclass(frozen=True)
class PullResponse:
    snapshot: str
    server_time: datetime
    schema_hash: str
    buckets: tuple[BucketPage, ...]
    unchanged: tuple[str, ...] = ()
    removed_buckets: tuple[str, ...] = ()
    denied: tuple[Denied, ...] = ()
    has_more: bool = False
    #: Opaque; send it with the next pull (``None``: the server gave none, send none).
    resolution: str | None = None
    #: The wire version the server answered in: from 5 on, it reads ``PullRequest.compact``.
    version: int = 1


def split_bucket(name: str) -> tuple[str, str]:
    """``"messages:3f0c…"`` → ``("messages", "3f0c…")``; keys may not hold colons, tables don't."""
    table, sep, key = name.partition(":")
    if not sep:
        raise SyncError(f"malformed bucket name {name!r}")
    return table, key


def _rows_of_columns(
    bucket: str, names: tuple[str, ...], by_column: Any
) -> tuple[Sequence[Any], ...]:
    """Version 3's rows column by column (one array per name, one value per row) as one tuple
    of values per row: ``zip`` does the turn in C."""
    if not isinstance(by_column, list) or len(by_column) != len(names):
        raise SyncError(
            f"malformed sync_pull bucket {bucket}: by_column is not {len(names)} arrays"
        )
    if not all(isinstance(c, list) for c in by_column) or len({len(c) for c in by_column}) != 1:
        raise SyncError(f"malformed sync_pull bucket {bucket}: by_column arrays differ in length")
    return tuple(zip(*by_column, strict=True))


def _parse_page(
    b: Mapping[str, Any], columns: Mapping[str, tuple[str, ...]] | None, version: int
) -> BucketPage:
    bucket = str(_need(b, "bucket", "sync_pull bucket"))
    table, key = split_bucket(bucket)
    table = str(b.get("table") or table)
    state: Literal["new", "reset", "changed"] = b.get("state") or "changed"
    if state not in ("new", "reset", "changed"):
        raise SyncError(f"malformed sync_pull bucket {bucket}: state {state!r}")
    served = b.get("rows") or ()
    by_column = b.get("by_column") if columns is not None else None
    names: tuple[str, ...] = ()
    values: tuple[Sequence[Any], ...] = ()
    rows: tuple[Row, ...] = ()
    if columns is None:
        rows = tuple(dict(r) for r in served)
    elif served or by_column:
        names = columns.get(table, ())
        if not names:
            raise SyncError(f"malformed sync_pull page: rows of {table} without its columns")
        if by_column:
            values = _rows_of_columns(bucket, names, by_column)
            if served:
                raise SyncError(f"malformed sync_pull bucket {bucket}: rows and by_column")
        elif {len(v) for v in served} != {len(names)}:
            raise SyncError(
                f"malformed sync_pull bucket {bucket}: a row is not {len(names)} values"
            )
        else:
            values = tuple(served)
    return BucketPage(
        bucket=bucket,
        table=table,
        key=str(b.get("key") or key),
        streams=None
        if version >= 4 and b.get("streams") is None
        else tuple(b.get("streams") or ()),
        state=state,
        rows=rows,
        removed=tuple(str(i) for i in b.get("removed") or ()),
        complete=bool(b.get("complete", True)),
        cursor=b.get("cursor"),
        round=b.get("round"),
        after=None if b.get("after") is None else str(b["after"]),
        columns=names,
        values=values,
    )


def parse_pull(obj: Any, sent: PullRequest | None = None) -> PullResponse:
    """A ``sync_pull`` response of any version this client speaks (``version`` absent: 1).

    Version 5's ``all_unchanged`` answer names no bucket: every bucket of ``sent``, the
    request it answers, is unchanged, and the response says so by name like any other."""
    version = obj.get("version", 1) if isinstance(obj, Mapping) else 1
    columns: dict[str, tuple[str, ...]] | None = None
    if version != 1:
        if version not in (2, 3, 4, PULL_VERSION):
            raise SyncError(f"sync_pull answered in wire version {version!r}, which is unknown")
        columns = {str(t): tuple(c) for t, c in (obj.get("columns") or {}).items()}
    unchanged = tuple(obj.get("unchanged") or ())
    if obj.get("all_unchanged") is True:
        if sent is None:
            raise SyncError("sync_pull answered all_unchanged, but the request is not known")
        unchanged = tuple(sent.buckets)
    return PullResponse(
        snapshot=str(_need(obj, "snapshot", "sync_pull")),
        server_time=parse_server_time(_need(obj, "server_time", "sync_pull")),
        schema_hash=str(obj.get("schema_hash") or ""),
        buckets=tuple(_parse_page(b, columns, version) for b in obj.get("buckets") or ()),
        unchanged=unchanged,
        removed_buckets=tuple(obj.get("removed_buckets") or ()),
        denied=tuple(
            Denied(str(d.get("stream")), str(d.get("key")), str(d.get("reason") or ""))
            for d in obj.get("denied") or ()
        ),
        has_more=bool(obj.get("has_more", False)),
        resolution=obj["resolution"] if isinstance(obj.get("resolution"), str) else None,
        version=version if isinstance(version, int) else 1,
    )


# -- sync_checksums ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChecksumsResponse:
    snapshot: str
    buckets: Mapping[str, tuple[int, int]]  # bucket -> (count, checksum)
    removed_buckets: tuple[str, ...] = ()


def parse_checksums(obj: Any) -> ChecksumsResponse:
    buckets = {
        name: (int(v.get("count", 0)), int(v.get("checksum", 0)))
        for name, v in (_need(obj, "buckets", "sync_checksums") or {}).items()
    }
    return ChecksumsResponse(
        snapshot=str(obj.get("snapshot") or ""),
        buckets=buckets,
        removed_buckets=tuple(obj.get("removed_buckets") or ()),
    )


# -- sync_push ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushOp:
    op_id: int
    tx_id: str
    table: str
    kind: OpKind
    id: str
    data: Mapping[str, Any]
    base_version: int | None
    priority: Priority = "normal"

    def to_json(self) -> dict[str, Any]:
        return {
            "op_id": self.op_id,
            "tx_id": self.tx_id,
            "table": self.table,
            "kind": self.kind,
            "id": self.id,
            "data": dict(self.data),
            "base_version": self.base_version,
            "priority": self.priority,
        }


@dataclass(frozen=True)
class OpResult:
    op_id: int
    status: Literal["applied", "conflict", "rejected"]
    version: int | None = None
    row: Row | None = None
    sqlstate: str | None = None
    message: str | None = None
    depends_on: int | None = None
    replayed: bool = False


@dataclass(frozen=True)
class PushResponse:
    server_time: datetime
    results: tuple[OpResult, ...]


def parse_push(obj: Any, sent: Sequence[PushOp] = ()) -> PushResponse:
    """The push response; with ``sent``, checks there is one result per op in order."""
    results = []
    for r in _need(obj, "results", "sync_push") or ():
        status = _need(r, "status", "sync_push result")
        if status not in ("applied", "conflict", "rejected"):
            raise SyncError(f"malformed sync_push result: status {status!r}")
        results.append(
            OpResult(
                op_id=int(_need(r, "op_id", "sync_push result")),
                status=status,
                version=r.get("version"),
                row=None if r.get("row") is None else dict(r["row"]),
                sqlstate=r.get("sqlstate"),
                message=r.get("message"),
                depends_on=r.get("depends_on"),
                replayed=bool(r.get("replayed", False)),
            )
        )
    if sent and [r.op_id for r in results] != [op.op_id for op in sent]:
        raise SyncError("sync_push answered with results that do not match the ops sent")
    return PushResponse(
        server_time=parse_server_time(_need(obj, "server_time", "sync_push")),
        results=tuple(results),
    )
