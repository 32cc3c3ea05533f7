"""The CRUD queue: local writes that wait to be pushed.

Every write changes the local row **and** queues its op in one SQLite transaction, so the app
sees its edit at once and a crash cannot keep one without the other. Ops carry what the server
and the conflict policies need: ``data`` (the whole row for an insert, only the changed columns
for an update), ``base_version`` (the server version the edit was made on) and, for updates,
the base row (the three-way merge's common ancestor).

``base_version`` of an op on a row that already has pending ops is the version the server will
have given the row once those ops apply (each insert or update adds one), so several edits of
one row pushed together do not conflict with each other.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pysync.sync.errors import SyncError, UnknownTable
from pysync.sync.storage import Storage
from pysync.sync.wire import PRIORITIES, TableSpec

__all__ = ["Outbox", "jsonable"]

Row = dict[str, Any]


def jsonable(value: Any) -> Any:
    """A value as PostgREST would send it back: uuids, dates and decimals as strings."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


class Outbox:
    """Writes local rows and queues their ops."""

    def __init__(self, storage: Storage, *, now: Callable[[], datetime] | None = None) -> None:
        self._storage = storage
        self._now = now or (lambda: datetime.now(UTC))
        self._tx = threading.local()

    @contextlib.contextmanager
    def transaction(self, priority: str | None = None) -> Iterator[str]:
        """Group the writes inside into one client transaction (one ``tx_id``): the server
        applies all of them or none. Also one SQLite transaction locally."""
        if getattr(self._tx, "id", None) is not None:
            yield self._tx.id
            return
        self._tx.id = str(uuid.uuid4())
        self._tx.priority = priority
        try:
            with self._storage.transaction():
                yield self._tx.id
        finally:
            self._tx.id = None
            self._tx.priority = None

    def _tx_and_priority(self, priority: str | None) -> tuple[str, str]:
        tx_id = getattr(self._tx, "id", None) or str(uuid.uuid4())
        chosen = priority or getattr(self._tx, "priority", None) or "normal"
        if chosen not in PRIORITIES:
            raise SyncError(f"priority must be one of {', '.join(PRIORITIES)}, not {chosen!r}")
        return tx_id, chosen

    def _spec(self, table: str, operation: str) -> TableSpec:
        spec = self._storage.spec(table)
        if operation not in spec.operations:
            raise UnknownTable(f"clients may not {operation} {table!r}")
        return spec

    @staticmethod
    def _check_writable(spec: TableSpec, columns: Mapping[str, Any]) -> None:
        bad = sorted(set(columns) - spec.writable - {"id"})
        if bad:
            raise SyncError(f"{spec.name}: not writable by clients: {', '.join(bad)}")

    def _predicted_version(self, table: str, row_id: str, current: Row | None) -> int | None:
        pending = self._storage.pending_ops(table, row_id)
        version = None if current is None else current.get("version")
        ahead = sum(1 for op in pending if op.kind in ("insert", "update"))
        if version is None and ahead == 0:
            return None
        return int(version or 0) + ahead

    def insert(self, table: str, values: Mapping[str, Any], *, priority: str | None = None) -> str:
        spec = self._spec(table, "insert")
        data = {k: jsonable(v) for k, v in values.items()}
        row_id = str(data.pop("id", None) or uuid.uuid4())
        self._check_writable(spec, data)
        tx_id, prio = self._tx_and_priority(priority)
        with self._storage.transaction():
            if self._storage.get_row(table, row_id) is not None:
                raise SyncError(f"{table} already holds a row with id {row_id}")
            self._storage.put_row(table, {**data, "id": row_id, "version": None})
            self._storage.add_op(
                tx_id=tx_id,
                table=table,
                kind="insert",
                row_id=row_id,
                data=data,
                base_version=None,
                priority=prio,
                client_time=self._now().isoformat(),
            )
        return row_id

    def update(
        self, table: str, row_id: str, values: Mapping[str, Any], *, priority: str | None = None
    ) -> bool:
        """Queue the columns of ``values`` that differ from the local row; ``False`` (and no
        op) when nothing changes."""
        spec = self._spec(table, "update")
        row_id = str(row_id)
        data = {k: jsonable(v) for k, v in values.items() if k != "id"}
        self._check_writable(spec, data)
        tx_id, prio = self._tx_and_priority(priority)
        with self._storage.transaction():
            current = self._storage.get_row(table, row_id)
            if current is None:
                raise SyncError(f"{table} has no local row {row_id}")
            changed = {k: v for k, v in data.items() if current.get(k) != v}
            if not changed:
                return False
            base_version = self._predicted_version(table, row_id, current)
            self._storage.put_row(table, {**current, **changed})
            self._storage.add_op(
                tx_id=tx_id,
                table=table,
                kind="update",
                row_id=row_id,
                data=changed,
                base_version=base_version,
                priority=prio,
                base_row=jsonable(current),
                client_time=self._now().isoformat(),
            )
        return True

    def delete(self, table: str, row_id: str, *, priority: str | None = None) -> None:
        self._spec(table, "delete")
        row_id = str(row_id)
        tx_id, prio = self._tx_and_priority(priority)
        with self._storage.transaction():
            current = self._storage.get_row(table, row_id)
            if current is None:
                raise SyncError(f"{table} has no local row {row_id}")
            base_version = self._predicted_version(table, row_id, current)
            self._storage.delete_row(table, row_id)
            self._storage.add_op(
                tx_id=tx_id,
                table=table,
                kind="delete",
                row_id=row_id,
                data={},
                base_version=base_version,
                priority=prio,
                base_row=jsonable(current),
                client_time=self._now().isoformat(),
            )

    def requeue(
        self,
        table: str,
        row_id: str,
        kind: str,
        data: Mapping[str, Any],
        *,
        base_version: int | None,
        priority: str,
        base_row: Mapping[str, Any] | None,
    ) -> int:
        """Queue a resolved or retried op (a conflict's merge, an edited dead letter) as a new
        op with a new op id: the old id's result is stored on the server and must not be
        reused. The caller has already set the local row."""
        return self._storage.add_op(
            tx_id=str(uuid.uuid4()),
            table=table,
            kind=kind,
            row_id=row_id,
            data={k: jsonable(v) for k, v in data.items()},
            base_version=base_version,
            priority=priority,
            base_row=None if base_row is None else jsonable(dict(base_row)),
            client_time=self._now().isoformat(),
        )
