"""What every data source shares: who is calling, and the few patterns of reading and writing.

A data source never decides access itself: every call goes through the gateway as the
user, so row level security, grants and guard triggers decide, exactly as for the Flutter
app. What this module adds is *clear* outcomes where PostgREST's are ambiguous: an update
that matched no row becomes :class:`NotFound` (the row is not visible), :class:`Conflict`
(a stale ``expected_version``) or :class:`PermissionDenied` (visible but not writable), so
the caller can tell the three apart.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar
from uuid import UUID

import jwt

from pysync.datasources.models import Cursor, Page, parse
from pysync.gateway import (
    Conflict,
    Filter,
    Gateway,
    Identity,
    IdentityKind,
    NotFound,
    Order,
    PermissionDenied,
    Row,
    Unauthorized,
    and_,
    desc,
    eq,
    lt,
    lte,
    or_,
)

__all__ = ["UNSET", "Context", "DataSource", "Unset", "values_of"]

M = TypeVar("M")
IdLike = UUID | str


class Unset(enum.Enum):
    """Marks an argument the caller did not pass (``None`` is a value: "clear this")."""

    UNSET = "UNSET"


UNSET = Unset.UNSET


def values_of(**changes: Any) -> dict[str, Any]:
    """The keyword arguments that were passed (not :data:`UNSET`)."""
    return {name: value for name, value in changes.items() if value is not UNSET}


class Context:
    """A gateway plus the identity to act as, resolved on every call.

    ``identity`` may be a callable so a session that refreshes its token (production) or
    re-signs it (local) hands each request a valid token.
    """

    def __init__(self, gateway: Gateway, identity: Identity | Callable[[], Identity]) -> None:
        self._gateway = gateway
        self._identity = identity

    def identity(self) -> Identity:
        return self._identity() if callable(self._identity) else self._identity

    def gateway(self) -> Gateway:
        return self._gateway.as_identity(self.identity())

    @property
    def user_id(self) -> UUID:
        """The signed-in user (the token's ``sub``); the server verifies the token itself."""
        identity = self.identity()
        if identity.kind is not IdentityKind.TOKEN or identity.token is None:
            raise Unauthorized("this needs a signed-in user", code="PGRST301", status=401)
        claims = jwt.decode(identity.token, options={"verify_signature": False})
        try:
            return UUID(str(claims["sub"]))
        except (KeyError, ValueError) as exc:
            raise Unauthorized("the token names no user (sub)", code="PGRST301") from exc


class DataSource:
    """Base of the per-entity data sources: one table, parsed into one model."""

    table: ClassVar[str]

    def __init__(self, context: Context) -> None:
        self._context = context

    # -- plumbing -------------------------------------------------------------------------

    @property
    def _gw(self) -> Gateway:
        return self._context.gateway()

    @property
    def _me(self) -> UUID:
        return self._context.user_id

    def _list(
        self,
        model: type[M],
        filters: Sequence[Filter] = (),
        order: Sequence[Order] = (),
        limit: int | None = None,
        table: str | None = None,
    ) -> list[M]:
        rows = self._gw.select(table or self.table, filters=filters, order=order, limit=limit).rows
        return [parse(model, row) for row in rows]

    def _get(self, model: type[M], id: IdLike, table: str | None = None) -> M:
        """The row with this id, or :class:`NotFound` (missing or not visible: RLS makes the
        two indistinguishable, on purpose)."""
        name = table or self.table
        rows = self._gw.select(name, filters=[eq("id", id)]).rows
        if not rows:
            raise NotFound(f"no {name} row {id} is visible to you", code="PGRST116")
        return parse(model, rows[0])

    def _insert(self, model: type[M], row: Row, table: str | None = None) -> M:
        (created,) = self._gw.insert(table or self.table, row)
        return parse(model, created)

    def _update(
        self,
        model: type[M],
        id: IdLike,
        values: Row,
        *,
        expected_version: int | None = None,
        table: str | None = None,
    ) -> M:
        """Update one row; with ``expected_version`` only if nobody changed it meanwhile.

        PostgREST answers an update that matched nothing with an empty list; one follow-up
        read tells why: the row is not visible (:class:`NotFound`), it moved past the
        expected version (:class:`Conflict`, code ``PT409`` as the RPCs use), or it is
        visible but its update policy refused it (:class:`PermissionDenied`).
        """
        name = table or self.table
        filters = [eq("id", id)]
        if expected_version is not None:
            filters.append(eq("version", expected_version))
        rows = self._gw.update(name, values, filters=filters)
        if rows:
            return parse(model, rows[0])
        current = self._gw.select(name, columns="id,version", filters=[eq("id", id)]).rows
        if not current:
            raise NotFound(f"no {name} row {id} is visible to you", code="PGRST116")
        actual = current[0]["version"]
        if expected_version is not None and actual != expected_version:
            raise Conflict(
                f"{name} row {id} changed since version {expected_version} (now {actual})",
                code="PT409",
                details={"expected_version": expected_version, "version": actual},
            )
        raise PermissionDenied(f"you may not change {name} row {id}", code="42501")

    def _delete(self, id: IdLike, table: str | None = None) -> None:
        name = table or self.table
        if self._gw.delete(name, filters=[eq("id", id)]):
            return
        if self._gw.select(name, columns="id", filters=[eq("id", id)]).rows:
            raise PermissionDenied(f"you may not delete {name} row {id}", code="42501")
        raise NotFound(f"no {name} row {id} is visible to you", code="PGRST116")

    def _keyset(
        self,
        model: type[M],
        filters: Sequence[Filter],
        before: Cursor | None,
        limit: int,
        cursor_of: Callable[[M], Cursor],
    ) -> Page[M]:
        """A page ordered ``created_at desc, id desc``, strictly after ``before``.

        "After (t, i)" is ``created_at < t or (created_at = t and id < i)``; the extra
        ``created_at <= t`` is implied by it but lets the index on ``(…, created_at desc, id
        desc)`` start the scan at the cursor instead of filtering from the newest row. One
        extra row is read to know whether another page follows. One request, so one
        snapshot: a page never mixes two states of the table.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        where = list(filters)
        if before is not None:
            where += [
                lte("created_at", before.created_at),
                or_(
                    lt("created_at", before.created_at),
                    and_(eq("created_at", before.created_at), lt("id", before.id)),
                ),
            ]
        rows = self._gw.select(
            self.table, filters=where, order=[desc("created_at"), desc("id")], limit=limit + 1
        ).rows
        items = tuple(parse(model, row) for row in rows[:limit])
        more = len(rows) > limit
        return Page(items, cursor_of(items[-1]) if more and items else None)
