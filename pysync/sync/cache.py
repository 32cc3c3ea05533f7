"""The offline cache: the one object an application uses.

:class:`SyncCache` ties the parts together: local reads and writes go to :mod:`.storage`
through the CRUD queue (:mod:`.outbox`); :meth:`SyncCache.sync` drives the protocol's state
machine (:mod:`.protocol`), doing the I/O it asks for through the :mod:`.connector`; push
results settle ops (applied, conflict through :mod:`.conflicts`, rejected to dead letters).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from pysync.gateway import GatewayError
from pysync.progress import ProgressCallback
from pysync.sync.conflicts import ConflictContext, ConflictPolicy, resolve
from pysync.sync.connector import Connector, GatewaySource, retryable
from pysync.sync.errors import CacheLocked, SyncError, UnknownTable
from pysync.sync.outbox import Outbox
from pysync.sync.progress import RunProgress
from pysync.sync.protocol import (
    Checksums,
    ChecksumsCompared,
    Connectivity,
    Done,
    Event,
    Failed,
    Fatal,
    Instruction,
    Nudged,
    Phase,
    Pull,
    Pulled,
    Push,
    Pushed,
    RetryAfter,
    SyncMachine,
    SyncRequested,
    TimerFired,
)
from pysync.sync.status import FileStatus, StreamProgress, SyncStatus
from pysync.sync.storage import DeadLetter, OutboxOp, Storage
from pysync.sync.wire import BucketState, OpResult, PullRequest, PullResponse, PushResponse

__all__ = ["FileHooks", "RejectedCallback", "SyncCache", "Watch"]

Row = dict[str, Any]
RejectedCallback = Callable[[DeadLetter], None]
ConflictCallback = Callable[[ConflictContext, "dict[str, Any] | None"], None]

#: Seconds the server clock's offset may move before the file's copy is rewritten: it dates
#: ops for last-write-wins across a restart, where ten milliseconds are below the noise of
#: measuring it over a network.
CLOCK_OFFSET_STEP = 0.01

#: How far the end of a sync run may move before it is written to the file again: a run that
#: found nothing changed writes nothing else (see ``Storage.keep_unchanged``), and the status's
#: ``last_synced_at`` comes from memory while the cache is open.
SYNCED_AT_STEP = 1.0


@dataclass
class Watch:
    """A live query; :meth:`close` stops it."""

    sql: str
    tables: frozenset[str]
    _stop: Callable[[], None]

    def close(self) -> None:
        self._stop()


@dataclass(frozen=True)
class FileHooks:
    """What a file queue (:class:`pysync.sync.files.FileSync`) plugs into the sync loop."""

    #: Called with each push batch before it is sent: uploads the files the batch's rows
    #: name. An op whose file Storage refused has left the outbox (:meth:`SyncCache.reject_pending`)
    #: when it returns, and is not sent.
    before_push: Callable[[Sequence[OutboxOp]], None]
    #: Called when a sync finished: files follow their rows (evicted, refreshed, downloaded).
    after_sync: Callable[[], None]
    #: The files' part of :meth:`SyncCache.status`.
    status: Callable[[], FileStatus]


def _references(data: Mapping[str, Any], row_id: str) -> bool:
    return any(v == row_id or (isinstance(v, list) and row_id in v) for v in data.values())


class SyncCache:
    """A user's offline copy of what they may read, and their writes waiting to be pushed."""

    #: Most ops in one ``sync_push`` call.
    batch_size = 200
    #: Most rows and removals per pulled page: a first sync costs a pull's fixed part (buckets
    #: resolved, states parsed, one SQLite transaction) once per page, so pages are large; a
    #: 5000-row page of 300-byte rows is about 1.5 MB of JSON.
    page_limit = 5000
    #: Fetch the next page of a pull while the current one is applied.
    prefetch = True
    #: Push batches per sync before pulling anyway (a resolver that always conflicts must not
    #: spin forever).
    max_push_rounds = 20

    def __init__(
        self,
        storage: Storage,
        connector: Connector,
        *,
        client_id: str,
        conflict_policies: Mapping[str, ConflictPolicy] | None = None,
        on_rejected: RejectedCallback | None = None,
        on_conflict: ConflictCallback | None = None,
        progress: ProgressCallback | None = None,
        size_budget_rows: int | None = None,
        lock_file: IO[bytes] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._connector = connector
        self.client_id = client_id
        self._policies = dict(conflict_policies or {})
        self._on_rejected = on_rejected
        self._on_conflict = on_conflict
        self._progress = progress
        self._run_progress = RunProgress(None)
        self._budget = size_budget_rows
        self._lock_file = lock_file
        #: The server clock's offset as last measured (None: read the file's).
        self._offset: float | None = None
        self._now = now
        self._outbox = Outbox(storage, now=lambda: datetime.fromtimestamp(self._now(), UTC))
        self._machine = SyncMachine()
        self._sync_lock = threading.RLock()
        self._connected = False
        self._last_error: str | None = None
        # When the last sync run ended, exactly; the file has it to SYNCED_AT_STEP.
        self._synced_at: float | None = None
        self.retry_in: float | None = None
        self._push_rounds = 0
        self._closed = False
        self._fetcher: ThreadPoolExecutor | None = None
        self._prefetched: tuple[PullRequest, Future[PullResponse]] | None = None
        #: The wire version the server last answered a pull in: from 5 on, requests send the
        #: buckets at the shared cursor by table. Learnt again by every process (the first
        #: pull sends them by name), so a server rolled back is never sent what it cannot read
        #: for longer than one pull.
        self._server_pull_version = 1
        self._files: FileHooks | None = None

    # -- opening and closing -----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        client: GatewaySource,
        path: str | Path,
        *,
        encryption_key: str | None = None,
        conflict_policies: Mapping[str, ConflictPolicy] | None = None,
        on_rejected: RejectedCallback | None = None,
        on_conflict: ConflictCallback | None = None,
        progress: ProgressCallback | None = None,
        size_budget_rows: int | None = None,
        connector: Connector | None = None,
        read_client: GatewaySource | None = None,
    ) -> SyncCache:
        """Open (or create) the cache at ``path`` for ``client``'s user.

        ``read_client`` sends pulls, checksums and the schema to another gateway of the same
        user, typically a read replica (``client.local_replica(url, secret)`` or
        ``client.reading_from(gateway)``); pushes go to ``client``. With a ``connector``,
        build that one with ``Connector(client, read=…)`` instead.

        A new cache asks the server for ``sync_schema()`` to create its tables; an existing
        one opens offline and migrates when a pull reports a new schema hash. ``path`` is
        locked for this process (:class:`CacheLocked`): two caches on one file would reuse op
        ids under one ``client_id``.

        ``progress`` hears every sync run's ``push`` and ``pull <stream>`` tasks
        (:mod:`pysync.sync.progress`); :meth:`status` is the whole picture at any moment."""
        if connector is not None and read_client is not None:
            raise ValueError("pass read_client or connector, not both")
        lock_file = _lock(Path(path))
        try:
            storage = Storage.open(path, key=encryption_key)
        except BaseException:
            lock_file.close()
            raise
        try:
            client_id = storage.meta("client_id")
            if client_id is None:
                client_id = str(uuid.uuid4())
                storage.set_meta("client_id", client_id)
            user_id = str(getattr(client, "user_id", "") or "")
            owner = storage.meta("user_id")
            if owner and user_id and owner != user_id:
                raise SyncError(
                    f"{path} is the cache of another user ({owner}); open one file per user"
                )
            if user_id and not owner:
                storage.set_meta("user_id", user_id)
            connector = connector or Connector(client, read=read_client)
            cache = cls(
                storage,
                connector,
                client_id=client_id,
                conflict_policies=conflict_policies,
                on_rejected=on_rejected,
                on_conflict=on_conflict,
                progress=progress,
                size_budget_rows=size_budget_rows,
                lock_file=lock_file,
            )
            if storage.schema is None:
                cache.refresh_schema()
        except BaseException:
            storage.close()
            lock_file.close()
            raise
        return cache

    def refresh_schema(self) -> None:
        """Fetch ``sync_schema()`` and migrate the local tables forward."""
        schema, raw = self._connector.schema()
        self._storage.migrate(schema, raw)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._sync_lock:
            self._prefetched = None
            if self._fetcher is not None:
                self._fetcher.shutdown(wait=True)
            if self._synced_at is not None:
                self._write_synced_at(self._synced_at)
            self._storage.close()
            if self._lock_file is not None:
                self._lock_file.close()

    def __enter__(self) -> SyncCache:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    @property
    def storage(self) -> Storage:
        """The local storage (for tools and tests; apps use the methods below)."""
        return self._storage

    # -- local reads and writes --------------------------------------------------------------

    def insert(self, table: str, values: Mapping[str, Any], *, priority: str | None = None) -> str:
        """Insert a row locally and queue it; returns its id (a client-made uuid4 unless
        ``values`` has one)."""
        return self._outbox.insert(table, values, priority=priority)

    def update(
        self, table: str, row_id: str, values: Mapping[str, Any], *, priority: str | None = None
    ) -> bool:
        return self._outbox.update(table, row_id, values, priority=priority)

    def delete(self, table: str, row_id: str, *, priority: str | None = None) -> None:
        self._outbox.delete(table, row_id, priority=priority)

    def transaction(self, priority: str | None = None) -> contextlib.AbstractContextManager[str]:
        """Writes inside are one client transaction: pushed together, applied all or none."""
        return self._outbox.transaction(priority)

    def get(self, table: str, row_id: str) -> Row | None:
        row = self._storage.get_row(table, str(row_id))
        if row is not None:
            spec = self._storage.spec(table)
            key = row.get(spec.bucket_column)
            if key is not None:
                with self._storage.transaction():
                    self._storage.touch_bucket(f"{table}:{key}", self._now())
        return row

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """SQL over the local tables (jsonb and array columns come back as JSON text)."""
        return self._storage.query(sql, params)

    def watch(
        self, sql: str, params: Sequence[Any], callback: Callable[[list[Row]], None]
    ) -> Watch:
        """Call ``callback`` with the query's rows now and after every committed change
        (local write or applied pull) to a table the query reads."""
        tables = self._storage.tables_read_by(sql, params)

        def changed(written: frozenset[str]) -> None:
            if written & tables:
                callback(self._storage.query(sql, params))

        stop = self._storage.on_change(changed)
        callback(self._storage.query(sql, params))
        return Watch(sql, tables, stop)

    # -- subscriptions -----------------------------------------------------------------------

    def subscribe(self, stream: str, key: str, *, ttl: float | timedelta | None = None) -> None:
        """Hold an on-demand stream's bucket for ``ttl`` (default: the stream's TTL) from now;
        its rows arrive with the next pull."""
        schema = self._storage.schema
        spec = schema.stream(stream) if schema else None
        if spec is None or spec.mode != "on_demand":
            raise UnknownTable(f"{stream!r} is not an on-demand stream")
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
        if seconds is None:
            seconds = spec.ttl_seconds
        now = self._now()
        self._storage.subscribe(stream, str(key), None if seconds is None else now + seconds, now)

    def unsubscribe(self, stream: str, key: str) -> None:
        """Stop holding the bucket; the next pull drops its rows (``removed_buckets``)."""
        self._storage.unsubscribe(stream, str(key))

    # -- sync --------------------------------------------------------------------------------

    def sync(self) -> None:
        """Push every pending op, then pull until nothing more is pending on the server."""
        self._run(SyncRequested("manual", "sync"))

    def push(self) -> None:
        self._run(SyncRequested("manual", "push"))

    def pull(self) -> None:
        self._run(SyncRequested("manual", "pull"))

    def reconcile(self) -> None:
        """A sync, then ``sync_checksums`` for every held bucket; buckets whose local
        checksum differs are pulled again from scratch (cursor null, treated as reset)."""
        self._run(SyncRequested("manual", "reconcile"))

    def handle(self, event: Event) -> None:
        """Feed a trigger's event (nudge, connectivity, retry timer) to the state machine."""
        if isinstance(event, Connectivity):
            self._connected = self._connected and event.online
        self._run(event)

    def _run(self, event: Event) -> None:
        with self._sync_lock:
            if self._closed:
                raise SyncError("the cache is closed")
            self.retry_in = None
            self._push_rounds = 0
            self._prefetched = None
            self._run_progress = RunProgress(self._progress)
            repair: frozenset[str] = frozenset()
            todo = list(self._machine.handle(event))
            while todo:
                instruction = todo.pop(0)
                if isinstance(instruction, Done):
                    self._finished()
                    continue
                if isinstance(instruction, RetryAfter):
                    self.retry_in = instruction.seconds
                    raise SyncError(
                        f"sync failed, retrying in {instruction.seconds:.1f}s: {self._last_error}"
                    )
                if isinstance(instruction, Fatal):
                    raise SyncError(f"sync failed: {instruction.message}")
                if isinstance(instruction, Pull) and instruction.repair:
                    repair = instruction.repair
                try:
                    outcome = self._execute(instruction, repair)
                except (GatewayError, OSError, SyncError) as exc:
                    outcome = self._failed(exc)
                if isinstance(instruction, Pull):
                    repair = frozenset()
                todo.extend(self._machine.handle(outcome))

    def _failed(self, exc: Exception) -> Failed:
        code = exc.sqlstate if isinstance(exc, GatewayError) else None
        self._last_error = str(exc)
        if not isinstance(exc, GatewayError | SyncError) or retryable(exc):
            self._connected = False
        return Failed(code, str(exc), retryable(exc))

    def _execute(self, instruction: Instruction, repair: frozenset[str]) -> Event:
        if isinstance(instruction, Push):
            return self._push_batch()
        if isinstance(instruction, Pull):
            return self._pull_page(repair)
        if isinstance(instruction, Checksums):
            return self._compare_checksums()
        raise SyncError(f"unexpected instruction {instruction!r}")  # pragma: no cover

    def _finished(self) -> None:
        self._last_error = None
        self._synced_at = self._now()
        stored = self._storage.meta("last_synced_at")
        if stored is None or (
            self._synced_at - datetime.fromisoformat(stored).timestamp() >= SYNCED_AT_STEP
        ):
            self._write_synced_at(self._synced_at)
        self._evict()
        if self._files is not None:
            self._files.after_sync()
        self._report_pull()

    def _write_synced_at(self, at: float) -> None:
        with self._storage.transaction():
            self._storage.set_meta("last_synced_at", datetime.fromtimestamp(at, UTC).isoformat())
            self._storage.set_meta("last_error", None)

    def _report_pull(self) -> None:
        if self._run_progress.listening:
            self._run_progress.pulled(self._storage.buckets().values())

    def _record_server_time(self, server_time: datetime) -> None:
        """Keep the server clock's offset. It is written to the file only when it moved by
        more than :data:`CLOCK_OFFSET_STEP` from the value there: every push and pull brings
        one, a millisecond or two off the last, and writing each cost a statement."""
        offset = server_time.timestamp() - self._now()
        stored = self._storage.meta("clock_offset")
        if stored is None or abs(float(stored) - offset) > CLOCK_OFFSET_STEP:
            self._storage.set_meta("clock_offset", repr(offset))
        self._offset = offset
        self._connected = True

    def _clock_offset(self) -> float:
        if self._offset is None:
            self._offset = float(self._storage.meta("clock_offset") or 0.0)
        return self._offset

    # -- push --------------------------------------------------------------------------------

    def _push_batch(self) -> Event:
        self._push_rounds += 1
        batch = self._storage.push_batch(self.batch_size)
        if batch and self._files is None and self._storage.queued_file_uploads():
            # Pushing now would put rows on the server before the files they name.
            raise SyncError("files wait to upload before their rows: open a FileSync on this cache")
        if batch and self._files is not None and self._push_rounds <= self.max_push_rounds:
            # Files first: a row never reaches the server before the file it names.
            self._files.before_push(batch)
            kept = [op for op in batch if self._storage.op(op.op_id) is not None]
            if not kept:
                return Pushed(more=self._storage.pending_count()[0] > 0)
            batch = kept
        if not batch or self._push_rounds > self.max_push_rounds:
            return Pushed(more=False)
        response = self._connector.push(self.client_id, [op.to_push() for op in batch])
        self._record_server_time(response.server_time)
        self._settle(batch, response)
        pending = self._storage.pending_count()[0]
        self._run_progress.pushed(len(batch), pending)
        return Pushed(more=pending > 0)

    def _settle(self, batch: Sequence[OutboxOp], response: PushResponse) -> None:
        """Apply a push's results in one transaction; callbacks run after it commits.

        When every op was applied (nearly always) the ops leave the outbox and their rows
        take their versions in bulk: no op can have followed a rejected one to the dead
        letters, so there is nothing to check op by op (``parse_push`` has already matched the
        results to the ops sent)."""
        if all(result.status == "applied" for result in response.results):
            with self._storage.transaction():
                self._storage.remove_ops([op.op_id for op in batch])
                self._storage.set_row_versions(
                    [
                        (op.table, op.row_id, int(result.version))
                        for op, result in zip(batch, response.results, strict=True)
                        if op.kind != "delete" and result.version is not None
                    ]
                )
            return
        rejected: list[DeadLetter] = []
        conflicts: list[tuple[ConflictContext, dict[str, Any] | None]] = []
        with self._storage.transaction():
            for op, result in zip(batch, response.results, strict=True):
                if not self._storage.has_op(op.op_id):
                    continue  # already followed a rejected op to dead letters
                if result.status == "applied":
                    self._storage.remove_op(op.op_id)
                    if op.kind != "delete" and result.version is not None:
                        self._storage.set_row_version(op.table, op.row_id, int(result.version))
                elif result.status == "conflict":
                    conflicts.append(self._resolve(op, result))
                else:
                    rejected.extend(self._reject(op, result))
        for ctx, decision in conflicts:
            if self._on_conflict is not None:
                self._on_conflict(ctx, decision)
        if self._on_rejected is not None:
            for letter in rejected:
                self._on_rejected(letter)

    def _resolve(
        self, op: OutboxOp, result: OpResult
    ) -> tuple[ConflictContext, dict[str, Any] | None]:
        spec = self._storage.spec(op.table)
        # The row's later ops were made on top of this one (their base rows hold its values,
        # their base versions count on it): the server does not try them after this conflict,
        # and they are resolved with it as one edit of the row made on this op's base.
        kind, local, client_time = op.kind, dict(op.data), op.client_time
        if op.kind != "insert":
            for later in self._later_ops_on_row(op):
                self._storage.remove_op(later.op_id)
                if later.kind == "delete":
                    kind, local = "delete", {}
                else:
                    local.update(later.data)
                client_time = later.client_time or client_time
        op_time = None
        if client_time:
            op_time = datetime.fromisoformat(client_time) + timedelta(seconds=self._clock_offset())
        server_version = result.version
        if server_version is None and result.row is not None:
            server_version = result.row.get("version")  # a dependant's result has only the row
        ctx = ConflictContext(
            table=op.table,
            kind=kind,
            row_id=op.row_id,
            local=local,
            base=op.base_row,
            server=result.row,
            server_version=server_version,
            op_time=op_time,
            counters=spec.counters,
        )
        policy = self._policies.get(op.table, spec.conflict)
        decision = resolve(policy, ctx)
        self._storage.remove_op(op.op_id)
        if decision is not None and (result.row is not None or kind == "delete"):
            if kind == "delete":
                self._outbox.requeue(
                    op.table,
                    op.row_id,
                    "delete",
                    {},
                    base_version=server_version,
                    priority=op.priority,
                    base_row=result.row,
                )
            else:
                values = {k: v for k, v in decision.items() if k in spec.writable}
                self._outbox.requeue(
                    op.table,
                    op.row_id,
                    "update",
                    values,
                    base_version=server_version,
                    priority=op.priority,
                    base_row=result.row,
                )
        self._storage.rebase_row(op.table, op.row_id, result.row)
        return ctx, decision

    def _later_ops_on_row(self, op: OutboxOp) -> list[OutboxOp]:
        """The pending ops on ``op``'s row after it, up to the first that shares a client
        transaction with ops on other rows (that one stays, with its transaction)."""
        later: list[OutboxOp] = []
        pending = self._storage.pending_ops()
        for other in pending:
            if other.op_id <= op.op_id or (other.table, other.row_id) != (op.table, op.row_id):
                continue
            if any(
                o.tx_id == other.tx_id and (o.table, o.row_id) != (op.table, op.row_id)
                for o in pending
            ):
                break
            later.append(other)
        return later

    def _reject(self, op: OutboxOp, result: OpResult) -> list[DeadLetter]:
        """Dead-letter ``op`` and every pending op that depends on it; restore the rows."""
        self._storage.add_dead_letter(op, result.sqlstate, result.message, result.depends_on)
        failed = [op]
        restore: dict[tuple[str, str], Row | None] = {(op.table, op.row_id): result.row}
        queue = [op]
        while queue:
            root = queue.pop(0)
            for other in self._storage.pending_ops():
                same_row = (other.table, other.row_id) == (root.table, root.row_id)
                needs_insert = (
                    root.kind == "insert"
                    and other.kind == "insert"
                    and _references(other.data, root.row_id)
                )
                if other.op_id > root.op_id and (same_row or needs_insert):
                    self._storage.add_dead_letter(other, result.sqlstate, result.message, op.op_id)
                    failed.append(other)
                    queue.append(other)
                    restore.setdefault((other.table, other.row_id), None)
        for (table, row_id), row in restore.items():
            self._storage.rebase_row(table, row_id, row)
        letters = {d.op_id: d for d in self._storage.dead_letters()}
        return [letters[f.op_id] for f in failed if f.op_id in letters]

    def reject_pending(self, op_id: int, sqlstate: str, message: str) -> list[DeadLetter]:
        """Dead-letter a pending op the client will not push (Storage refused the file its row
        names) exactly as if the server had rejected it: the other ops of its client
        transaction and the ops that depend on it follow, rows go back to their last server
        state (an insert's row leaves), and ``on_rejected`` hears of each."""
        op = self._storage.op(op_id)
        if op is None:
            return []
        letters: list[DeadLetter] = []
        with self._storage.transaction():
            siblings = [
                o for o in self._storage.pending_ops() if o.tx_id == op.tx_id and o.op_id != op_id
            ]
            for member, depends_on in [(op, None), *((o, op_id) for o in siblings)]:
                if self._storage.op(member.op_id) is None:
                    continue  # already followed an earlier member
                server_row = None if member.kind == "insert" else member.base_row
                result = OpResult(
                    op_id=member.op_id,
                    status="rejected",
                    row=None if server_row is None else dict(server_row),
                    sqlstate=sqlstate,
                    message=message,
                    depends_on=depends_on,
                )
                letters.extend(self._reject(member, result))
        if self._on_rejected is not None:
            for letter in letters:
                self._on_rejected(letter)
        return letters

    def plug_files(self, hooks: FileHooks | None) -> None:
        """Let a file queue upload before pushes and follow rows after syncs (or stop it)."""
        self._files = hooks

    # -- pull --------------------------------------------------------------------------------

    def _pull_request(self, repair: frozenset[str]) -> PullRequest:
        now = self._now()
        states = self._storage.bucket_states()
        for name in repair:
            if name in states:
                states[name] = BucketState()
        return PullRequest(
            buckets=states,
            subscriptions=self._storage.live_subscriptions(now),
            limit=self.page_limit,
            resolution=self._storage.resolution(),
            compact=self._server_pull_version >= 5,
        )

    def _pull_page(self, repair: frozenset[str]) -> Event:
        self._storage.drop_expired_subscriptions(self._now())
        request = self._pull_request(repair)
        response = self._take_prefetched(request)
        if response is None:
            response = self._connector.pull(request)
        self._server_pull_version = response.version
        if response.schema_hash and response.schema_hash != self._storage.meta("schema_hash"):
            self.refresh_schema()
        elif response.has_more and self.prefetch:
            # Fetch the next page while this one is written to SQLite: the next request
            # follows from this response alone (the states the page will store).
            self._prefetch(_next_request(request, response))
        now = self._now()
        if repair or not self._storage.keep_unchanged(response, now=now):
            # One SQLite commit for the page and the clock offset it brings.
            with self._storage.transaction():
                self._record_server_time(response.server_time)
                self._storage.apply_page(request.buckets, response, now=now, repairing=repair)
                self._storage.set_meta("resolution", response.resolution)  # skips an equal value
        else:
            self._record_server_time(response.server_time)
        if response.has_more:
            self._storage.hold_checkpoints()
        else:
            self._storage.release_checkpoints()
        self._report_pull()
        return Pulled(has_more=response.has_more)

    def _prefetch(self, request: PullRequest) -> None:
        if self._fetcher is None:
            self._fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pysync-pull")
        self._prefetched = (request, self._fetcher.submit(self._connector.pull, request))

    def _take_prefetched(self, request: PullRequest) -> PullResponse | None:
        """The prefetched page, if it answers exactly ``request`` and arrived; else ``None``
        (the caller pulls again: a failed prefetch is retried like any pull)."""
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is None:
            return None
        sent, future = prefetched
        try:
            response = future.result()
        except Exception:
            return None
        return response if sent == request else None

    def _compare_checksums(self) -> Event:
        held = sorted(self._storage.buckets())
        if not held:
            return ChecksumsCompared(frozenset())
        response = self._connector.checksums(held, self._storage.live_subscriptions(self._now()))
        with self._storage.transaction():
            for bucket in response.removed_buckets:
                self._storage.forget_bucket(bucket)
        mismatched = frozenset(
            name
            for name, remote in response.buckets.items()
            if name in held and self._storage.local_checksum(name) != remote
        )
        return ChecksumsCompared(mismatched)

    # -- size budget -------------------------------------------------------------------------

    def _evict(self) -> None:
        """Over the row budget: drop on-demand buckets, those whose subscriptions expired
        first, then the least recently used. Auto-stream buckets stay (the server would send
        them straight back), and so do rows with pending writes."""
        if self._budget is None or self._storage.total_rows() <= self._budget:
            return
        schema = self._storage.schema
        on_demand = {s.name for s in schema.streams if s.mode == "on_demand"} if schema else set()
        now = self._now()
        subs = self._storage.subscriptions(now, include_expired=True)
        live = {
            (s["stream"], s["key"])
            for s in subs
            if s["expires_at"] is None or s["expires_at"] > now
        }
        candidates = [
            b for b in self._storage.buckets().values() if b.streams and set(b.streams) <= on_demand
        ]
        candidates.sort(key=lambda b: (any((s, b.key) in live for s in b.streams), b.last_used))
        with self._storage.transaction():
            for record in candidates:
                if self._storage.total_rows() <= self._budget:
                    break
                self._storage.forget_bucket(record.bucket)
                for stream in record.streams:
                    self._storage.unsubscribe(stream, record.key)

    # -- dead letters ------------------------------------------------------------------------

    def dead_letters(self) -> list[DeadLetter]:
        return self._storage.dead_letters()

    def retry_dead_letter(self, op_id: int, data: Mapping[str, Any] | None = None) -> None:
        """Queue a dead op again as a new op (optionally with edited ``data``), made on the
        row as it is locally now."""
        letter = next((d for d in self._storage.dead_letters() if d.op_id == op_id), None)
        if letter is None:
            raise SyncError(f"no dead letter {op_id}")
        values = dict(letter.data if data is None else data)
        with self._storage.transaction():
            self._storage.remove_dead_letter(op_id)
            if letter.kind == "insert":
                self._outbox.insert(
                    letter.table, {**values, "id": letter.row_id}, priority=letter.priority
                )
            elif letter.kind == "update":
                self._outbox.update(letter.table, letter.row_id, values, priority=letter.priority)
            else:
                self._outbox.delete(letter.table, letter.row_id, priority=letter.priority)

    def discard_dead_letter(self, op_id: int) -> None:
        with self._storage.transaction():
            self._storage.remove_dead_letter(op_id)

    # -- status ------------------------------------------------------------------------------

    def status(self) -> SyncStatus:
        pending, oldest = self._storage.pending_count()
        last_synced_at: datetime | None = None
        if self._synced_at is not None:
            last_synced_at = datetime.fromtimestamp(self._synced_at, UTC)
        elif (stored := self._storage.meta("last_synced_at")) is not None:
            last_synced_at = datetime.fromisoformat(stored)
        streams: dict[str, StreamProgress] = {}
        rows_by_stream = self._storage.row_counts_by_bucket_stream()
        for record in self._storage.buckets().values():
            for stream in record.streams:
                p = streams.get(stream, StreamProgress())
                streams[stream] = StreamProgress(
                    buckets=p.buckets + 1,
                    complete=p.complete
                    + (1 if record.state.cursor and not record.state.after else 0),
                    rows=rows_by_stream.get(stream, 0),
                )
        return SyncStatus(
            connected=self._connected and self._machine.phase is not Phase.OFFLINE,
            syncing=self._machine.busy,
            phase=self._machine.phase.value,
            pending_ops=pending,
            oldest_pending_age=None if oldest is None else max(0.0, self._now() - oldest),
            dead_letters=self._storage.dead_letter_count(),
            last_synced_at=last_synced_at,
            last_error=self._last_error,
            clock_offset=self._clock_offset(),
            streams=streams,
            tables=self._storage.row_counts(),
            files=None if self._files is None else self._files.status(),
        )

    # -- triggers ----------------------------------------------------------------------------

    def held_buckets(self) -> list[str]:
        """Bucket names held now (each one's nudges arrive on the topic ``sync:<bucket>``)."""
        return sorted(self._storage.buckets())

    def on_timer(self) -> None:
        self._run(TimerFired())

    def on_nudge(self, bucket: str) -> None:
        self._run(Nudged(bucket))


def _next_request(request: PullRequest, response: PullResponse) -> PullRequest:
    """The request that follows ``request`` once ``response`` is applied (the bucket states
    :meth:`Storage.apply_page` stores)."""
    states = dict(request.buckets)
    for name in response.removed_buckets:
        states.pop(name, None)
    for page in response.buckets:
        states[page.bucket] = page.next_state(request.buckets.get(page.bucket))
    for name in response.unchanged:
        if name in states:
            states[name] = BucketState(cursor=response.snapshot)
    return PullRequest(
        buckets=states,
        subscriptions=request.subscriptions,
        limit=request.limit,
        resolution=response.resolution,
        compact=response.version >= 5,
    )


def _lock(path: Path) -> IO[bytes]:
    if str(path) == ":memory:":
        return open(os.devnull, "rb")
    lock_path = path.with_name(path.name + ".lock")
    handle = open(lock_path, "a+b")  # noqa: SIM115
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise CacheLocked(f"{path} is open in another SyncCache (lock {lock_path})") from None
    return handle
