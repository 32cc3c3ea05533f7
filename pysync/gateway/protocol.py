"""The one interface through which Python reads and writes data as a given identity.

Datasources and the sync engine are written against :class:`Gateway` only, so the same code
runs against a real Supabase project (:class:`~pysync.gateway.PostgrestGateway`) and against a
database directly (:class:`~pysync.gateway.PostgresGateway`) with identical row level security.

Rows are JSON-shaped ``dict[str, Any]`` exactly as PostgREST returns them (uuids, timestamps
and dates as ISO strings, numerics as numbers), whichever gateway produced them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, overload

from pysync.gateway.filters import Filter, Order
from pysync.gateway.identity import Identity

__all__ = ["Columns", "Gateway", "Row", "SelectResult"]

Row = dict[str, Any]
#: ``"*"``, a comma-separated list (``"id,body"``) or a sequence of column names.
Columns = str | Sequence[str]


@dataclass(frozen=True)
class SelectResult:
    """The rows of a ``select``; ``count`` is the number of matching rows ignoring
    ``limit``/``offset``, present only when asked for."""

    rows: list[Row] = field(default_factory=list)
    count: int | None = None


class Gateway(Protocol):
    """Reads and writes as :attr:`identity`; every call is one transaction.

    ``update`` and ``delete`` refuse to run without a filter (``InvalidInput``): Supabase loads
    ``pg-safeupdate`` for the API, which rejects unfiltered ``UPDATE``/``DELETE``, so such a
    call could never work in production and is almost always a bug.
    """

    @property
    def identity(self) -> Identity: ...

    def as_identity(self, identity: Identity) -> Gateway:
        """The same gateway (sharing connections and caches) acting as ``identity``."""
        ...

    def with_headers(self, headers: Mapping[str, str]) -> Gateway:
        """The same gateway sending these extra request headers (``request.headers``)."""
        ...

    @overload
    def select(
        self,
        table: str,
        *,
        columns: Columns = "*",
        filters: Sequence[Filter] = (),
        order: Sequence[Order] = (),
        limit: int | None = None,
        offset: int | None = None,
        count: bool = False,
        single: Literal[False] = False,
    ) -> SelectResult: ...

    @overload
    def select(
        self,
        table: str,
        *,
        columns: Columns = "*",
        filters: Sequence[Filter] = (),
        order: Sequence[Order] = (),
        limit: int | None = None,
        offset: int | None = None,
        count: bool = False,
        single: Literal[True],
    ) -> Row: ...

    def select(
        self,
        table: str,
        *,
        columns: Columns = "*",
        filters: Sequence[Filter] = (),
        order: Sequence[Order] = (),
        limit: int | None = None,
        offset: int | None = None,
        count: bool = False,
        single: bool = False,
    ) -> SelectResult | Row:
        """Rows of ``table`` visible to the identity; ``single`` returns the one row and raises
        ``NotFound`` unless exactly one matches (PostgREST's PGRST116)."""
        ...

    def insert(self, table: str, rows: Row | Sequence[Row], *, returning: bool = True) -> list[Row]:
        """Insert ``rows``; the inserted rows when ``returning``, else ``[]``."""
        ...

    def upsert(
        self,
        table: str,
        rows: Row | Sequence[Row],
        *,
        on_conflict: Sequence[str] = (),
        returning: bool = True,
    ) -> list[Row]:
        """Insert, or update the conflicting row (PostgREST's ``resolution=merge-duplicates``);
        ``on_conflict`` defaults to the primary key."""
        ...

    def update(
        self,
        table: str,
        values: Row,
        *,
        filters: Sequence[Filter],
        returning: bool = True,
    ) -> list[Row]:
        """Set ``values`` on the matching rows; at least one filter is required."""
        ...

    def delete(self, table: str, *, filters: Sequence[Filter], returning: bool = True) -> list[Row]:
        """Delete the matching rows; at least one filter is required."""
        ...

    def rpc(
        self, function: str, args: Mapping[str, Any] | None = None, *, read_only: bool = False
    ) -> Any:
        """Call ``function`` with named ``args``; its result as PostgREST returns it (a list for
        set-returning functions, an object for a composite, a scalar, or ``None`` for void).

        ``read_only`` is PostgREST's ``GET /rpc/…``: a read-only transaction. Over HTTP,
        arguments too long for a URL are POSTed instead, which PostgREST also runs read-only
        when the function is ``stable`` or ``immutable``.
        """
        ...
