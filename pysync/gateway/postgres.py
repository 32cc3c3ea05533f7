"""The gateway over psycopg: each call is one transaction that PostgREST would have run.

It connects as ``authenticator`` (the role PostgREST logs in as, which may only *become* the
API roles), verifies the caller's JWT as PostgREST does, replays the transaction-scoped
request context (:mod:`pysync.gateway.context`), runs the ``db-pre-request`` function, then
the statement. Row level security, grants, role timeouts, ``auth.uid()`` and
``auth.jwt()`` therefore decide exactly as they would behind PostgREST. Reads run in
``READ ONLY`` transactions, as PostgREST runs ``GET`` (and calls to stable functions).

The settings statement, the pre-request call and the statement go to the server in one
pipeline and run as one implicit transaction (everything before the pipeline's Sync), which
commits or rolls back as a whole like PostgREST's ``BEGIN … COMMIT`` but costs one round trip
instead of three. Through a transaction-mode pooler (``pooled=True``) they go instead as one
simple-protocol ``Query`` message, for the reason given in :meth:`PostgresGateway._execute_pooled`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, overload

import psycopg
from psycopg import ClientCursor, IsolationLevel, sql
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from pysync.errors import first_line
from pysync.gateway import _sql
from pysync.gateway._common import (
    check_name,
    check_range,
    column_names,
    encode_json,
    require_filters,
    row_list,
)
from pysync.gateway.catalog import Catalog, Function, Table
from pysync.gateway.context import (
    Method,
    RequestClaims,
    resolve_claims,
    search_path,
    transaction_settings,
)
from pysync.gateway.errors import GatewayError, InvalidInput, NotFound, Unavailable, error_for
from pysync.gateway.filters import Filter, Order, leaf_columns
from pysync.gateway.identity import Identity
from pysync.gateway.jwks import JwksKeys
from pysync.gateway.protocol import Columns, Row, SelectResult

__all__ = ["PostgresGateway"]

_ISOLATION = {
    "read committed": IsolationLevel.READ_COMMITTED,
    "repeatable read": IsolationLevel.REPEATABLE_READ,
    "serializable": IsolationLevel.SERIALIZABLE,
}


@dataclass
class _Shared:
    """What every identity-bound copy of one gateway shares: connections and caches."""

    pool: ConnectionPool[Any]
    owns_pool: bool
    #: Whether ``pool`` connects through a transaction-mode pooler.
    pooled: bool
    jwt_secret: str
    jwks: JwksKeys | None
    schemas: tuple[str, ...]
    #: ``select <db-pre-request>()``, composed once.
    pre_request: str | None
    anon_role: str
    jwt_audience: str | None
    #: The ``search_path`` value, computed once.
    search_path: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    catalog: Catalog | None = None


def _pre_request_call(name: str, default_schema: str) -> str:
    """``select schema.function()`` for PostgREST's ``db-pre-request`` setting."""
    schema, dot, function = name.partition(".")
    if not dot:
        schema, function = default_schema, name
    target = sql.Identifier(check_name("schema", schema), check_name("function", function))
    return sql.SQL("select {}()").format(target).as_string(None)


@lru_cache(maxsize=4096)
def _settings_statement(
    path_value: str,
    role_settings: tuple[tuple[str, str], ...],
    request: RequestClaims,
    method: Method,
    path: str,
    headers: tuple[tuple[str, str], ...],
    function_settings: tuple[tuple[str, str], ...],
    read_only: bool,
) -> tuple[str, tuple[str, ...]]:
    """The ``set_config`` statement and its parameters for one kind of request.

    Pure, so memoised: a repeated call by the same token to the same path costs a lookup.
    """
    settings = transaction_settings(
        search_path=path_value,
        role_settings=role_settings,
        request=request,
        method=method,
        path=path,
        headers=dict(headers),
        function_settings=function_settings,
    )
    if read_only:
        # PostgREST's ``BEGIN READ ONLY``: going read-only is allowed at any point of a
        # transaction, so it can be the first setting of the settings statement.
        settings.insert(0, ("transaction_read_only", "on"))
    return _sql.set_config_sql(len(settings)), tuple(item for pair in settings for item in pair)


def _translate(exc: psycopg.Error) -> GatewayError:
    """The gateway exception for a server error (by SQLSTATE) or a lost connection.

    Client-side errors (a misused connection, a wrong parameter count) have neither; they
    are bugs, so they are re-raised as they are.
    """
    if exc.sqlstate is None:
        if not isinstance(exc, psycopg.OperationalError):
            raise exc
        first = first_line(exc)
        return Unavailable(f"database unreachable: {first}", code="08000")
    diag = exc.diag
    return error_for(
        exc.sqlstate,
        diag.message_primary or str(exc),
        details=diag.message_detail,
        hint=diag.message_hint,
    )


class PostgresGateway:
    """:class:`~pysync.gateway.Gateway` straight to PostgreSQL, with PostgREST's semantics.

    ``schemas`` is PostgREST's ``db-schemas`` (tables and functions are looked up in the first,
    the request's schema); ``extra_search_path`` its ``db-extra-search-path`` (Supabase:
    ``public, extensions``); ``pre_request`` its ``db-pre-request`` (``schema.function``);
    ``headers`` become ``request.headers``. Tokens are verified with ``jwt_secret`` (HS256)
    or, for a project on asymmetric signing keys, with ``jwks`` (ES256/RS256 by ``kid``).
    """

    def __init__(
        self,
        pool: ConnectionPool[Any],
        *,
        jwt_secret: str,
        schemas: Sequence[str] = ("public",),
        extra_search_path: Sequence[str] = ("public", "extensions"),
        pre_request: str | None = None,
        headers: Mapping[str, str] | None = None,
        identity: Identity | None = None,
        anon_role: str = "anon",
        jwt_audience: str | None = None,
        jwks: JwksKeys | None = None,
        pooled: bool = False,
    ) -> None:
        if not schemas:
            raise ValueError("expose at least one schema")
        self._shared = _Shared(
            pool=pool,
            owns_pool=False,
            pooled=pooled,
            jwt_secret=jwt_secret,
            jwks=jwks,
            schemas=tuple(schemas),
            pre_request=_pre_request_call(pre_request, schemas[0]) if pre_request else None,
            anon_role=anon_role,
            jwt_audience=jwt_audience,
            search_path=search_path(schemas[0], tuple(extra_search_path)),
        )
        self._identity = identity or Identity.anon()
        self._headers = {k.lower(): v for k, v in (headers or {}).items()}

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        jwt_secret: str,
        min_size: int = 1,
        max_size: int = 8,
        timeout: float = 30.0,
        pooled: bool = False,
        **options: Any,
    ) -> PostgresGateway:
        """A gateway with its own pool of autocommit connections to ``url``.

        ``url`` should log in as ``authenticator`` (locally:
        ``LocalDatabase.url(dbname, user="authenticator")``), as PostgREST does. ``timeout``
        is how long a call waits for a connection before raising :class:`Unavailable`.

        ``pooled=True`` is for a URL of a transaction-mode pooler (pgbouncer, Supavisor's
        port 6543): psycopg's automatic server-side prepared statements are turned off
        (``prepare_threshold=None``), because the next transaction may run on a server
        connection that never saw the ``Parse``, and each request goes as one ``Query``
        message instead of a pipeline (:meth:`_execute_pooled` says why). Nothing else
        changes: every request's settings are transaction-local (``set_config(…, true)``) and
        the settings, the pre-request call and the statement form one transaction, so no state
        crosses from one request to the next on a shared server connection. A gateway built on
        a pool of your own takes ``pooled`` too.
        """
        connection_options: dict[str, Any] = {"autocommit": True}
        if pooled:
            connection_options["prepare_threshold"] = None
        pool: ConnectionPool[Any] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs=connection_options,
            open=True,
            name="pysync-gateway",
        )
        gateway = cls(pool, jwt_secret=jwt_secret, pooled=pooled, **options)
        gateway._shared.owns_pool = True
        return gateway

    def close(self) -> None:
        """Close the pool when this gateway created it (shared by every derived copy)."""
        if self._shared.owns_pool:
            self._shared.pool.close()

    def __enter__(self) -> PostgresGateway:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- identity and headers -------------------------------------------------------------

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def headers(self) -> Mapping[str, str]:
        return dict(self._headers)

    def _derive(self, identity: Identity, headers: dict[str, str]) -> PostgresGateway:
        clone = object.__new__(PostgresGateway)
        clone._shared = self._shared
        clone._identity = identity
        clone._headers = headers
        return clone

    def as_identity(self, identity: Identity) -> PostgresGateway:
        return self._derive(identity, self._headers)

    def with_headers(self, headers: Mapping[str, str]) -> PostgresGateway:
        return self._derive(
            self._identity, {**self._headers, **{k.lower(): v for k, v in headers.items()}}
        )

    # -- schema cache ---------------------------------------------------------------------

    def reload_schema_cache(self) -> None:
        """Re-read tables, functions and role settings (PostgREST's ``NOTIFY pgrst``)."""
        catalog = self._load_catalog()
        with self._shared.lock:
            self._shared.catalog = catalog

    def _load_catalog(self) -> Catalog:
        try:
            with self._shared.pool.connection() as conn:
                return Catalog.load(conn, self._shared.schemas)
        except PoolTimeout as exc:
            raise Unavailable(f"no database connection available: {exc}") from exc
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    def _catalog(self) -> Catalog:
        catalog = self._shared.catalog
        if catalog is None:
            with self._shared.lock:
                if self._shared.catalog is None:
                    self._shared.catalog = self._load_catalog()
                catalog = self._shared.catalog
        return catalog

    def _table(self, name: str) -> Table:
        schema = self._shared.schemas[0]
        table = self._catalog().tables.get((schema, check_name("table", name)))
        if table is None:
            raise NotFound(f'relation "{schema}.{name}" does not exist', code="42P01")
        return table

    def _check_columns(self, table: Table, names: Sequence[str]) -> None:
        """Columns named in a select list, filter or order must exist (PostgreSQL's 42703)."""
        for name in names:
            if name not in table.column_set:
                raise InvalidInput(f"column {table.name}.{name} does not exist", code="42703")

    def _check_payload(self, table: Table, names: Sequence[str]) -> None:
        """Columns of a body must exist (PostgREST's PGRST204, checked before any SQL)."""
        for name in names:
            if name not in table.column_set:
                raise InvalidInput(
                    f"Could not find the '{name}' column of '{table.name}' in the schema cache",
                    code="PGRST204",
                )

    def _function(self, name: str, names: Sequence[str]) -> Function:
        schema = self._shared.schemas[0]
        candidates = self._catalog().functions.get((schema, check_name("function", name)), ())
        for function in candidates:
            if function.accepts(names):
                return function
        listed = ", ".join(sorted(names))
        raise NotFound(
            f"Could not find the function {schema}.{name}({listed}) in the schema cache",
            code="PGRST202",
        )

    # -- running one request --------------------------------------------------------------

    def _run(
        self,
        *,
        method: Method,
        path: str,
        read_only: bool,
        statement: str,
        params: Sequence[Any],
        function: Function | None = None,
    ) -> tuple[Any, ...] | None:
        """Run ``statement`` in one transaction with PostgREST's context; its one row."""
        shared = self._shared
        request = resolve_claims(
            self._identity,
            shared.jwt_secret,
            anon_role=shared.anon_role,
            audience=shared.jwt_audience,
            jwks=shared.jwks,
        )
        role = self._catalog().roles.get(request.role)
        set_config, values = _settings_statement(
            shared.search_path,
            role.settings if role else (),
            request,
            method,
            path,
            tuple(sorted(self._headers.items())),
            function.hoisted_settings if function else (),
            read_only,
        )
        isolation = (function.isolation if function else None) or (role.isolation if role else None)
        try:
            with shared.pool.connection() as conn:
                row = self._execute(conn, isolation, set_config, values, statement, params)
        except PoolTimeout as exc:
            raise Unavailable(f"no database connection available: {exc}") from exc
        except psycopg.Error as exc:
            raise _translate(exc) from exc
        return tuple(row) if row else None

    def _execute(
        self,
        conn: psycopg.Connection[Any],
        isolation: str | None,
        set_config: str,
        values: Sequence[str],
        statement: str,
        params: Sequence[Any],
    ) -> tuple[Any, ...] | None:
        """Settings, pre-request and statement as one transaction in one round trip.

        In pipeline mode every statement up to the Sync belongs to one implicit transaction
        (PostgreSQL's extended query protocol), which commits at the Sync or rolls back
        entirely on the first error: the same unit as PostgREST's ``BEGIN … COMMIT``
        without two extra round trips. A non-default isolation level needs a real
        ``BEGIN ISOLATION LEVEL …``, so only then is the transaction explicit.
        """
        level = _ISOLATION.get(isolation or "")
        explicit = level is not None and level is not IsolationLevel.READ_COMMITTED
        if self._shared.pooled:
            return self._execute_pooled(
                conn, level if explicit else None, set_config, values, statement, params
            )
        if explicit:
            conn.isolation_level = level
        try:
            with conn.pipeline(), conn.transaction() if explicit else nullcontext():
                conn.execute(set_config, values)
                if self._shared.pre_request is not None:
                    conn.execute(self._shared.pre_request)
                cursor = conn.execute(statement, params)
            row = cursor.fetchone() if cursor.description else None
        finally:
            if explicit:
                conn.isolation_level = None
        return tuple(row) if row else None

    def _execute_pooled(
        self,
        conn: psycopg.Connection[Any],
        level: IsolationLevel | None,
        set_config: str,
        values: Sequence[str],
        statement: str,
        params: Sequence[Any],
    ) -> tuple[Any, ...] | None:
        """:meth:`_execute` through a transaction-mode pooler: the whole request as one
        simple-protocol ``Query`` message, parameters bound by psycopg's client-side cursor.

        psycopg ends a pipeline with a Sync and then, when the answer has not arrived yet, a
        Flush. pgbouncer (1.18) hands the server connection back to its pool as soon as the
        Sync's ReadyForQuery passes; a Flush that reaches it after that starts a new
        transaction on some server connection, which answers a Flush with nothing, so it stays
        linked to the idle client until that client's next request. On a loaded machine that
        happens to a few requests in a hundred, and once every server connection of the pool
        is held that way, other clients queue until ``query_wait_timeout``. A ``Query``
        message gets exactly one ReadyForQuery and nothing follows it. Its statements form one
        implicit transaction, as the pipeline's do; a pooler allows no prepared statements, so
        binding on the client costs nothing a pooled gateway had.

        With an isolation level the transaction is explicit (``BEGIN ISOLATION LEVEL …`` …
        ``COMMIT``); if it fails, the rollback that follows frees the server connection.
        """
        statements = []
        if level is not None:
            statements.append(f"begin isolation level {level.name.replace('_', ' ').lower()}")
        statements.append(set_config)
        if self._shared.pre_request is not None:
            statements.append(self._shared.pre_request)
        position = len(statements)
        statements.append(statement)
        if level is not None:
            statements.append("commit")
        cursor = ClientCursor(conn)
        try:
            # Each ``;`` on a line of its own: a statement ending in a line comment keeps it.
            cursor.execute("\n;\n".join(statements), [*values, *params])
        except psycopg.Error:
            if conn.pgconn.transaction_status == TransactionStatus.INERROR:
                conn.rollback()
            raise
        for _ in range(position):
            cursor.nextset()
        row = cursor.fetchone() if cursor.description else None
        return tuple(row) if row else None

    # -- the Gateway interface ------------------------------------------------------------

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
        target = self._table(table)
        names = column_names(columns)
        self._check_columns(
            target, [*(names or ()), *leaf_columns(filters), *(o.column for o in order)]
        )
        check_range(limit, offset)
        statement = _sql.select_sql(
            target,
            names,
            _sql.filter_shape(filters),
            tuple(order),
            limit is not None,
            offset is not None,
            count,
        )
        where = _sql.filter_params(filters)
        params: list[Any] = [*(where if count else ()), *where]
        params += [bound for bound in (limit, offset) if bound is not None]
        result = self._run(
            method=Method.GET,
            path=f"/{table}",
            read_only=True,
            statement=statement,
            params=params,
        )
        assert result is not None
        total, rows = result
        if total is not None and offset is not None and offset > total:
            # PostgREST answers 416 when a counted request pages past the end.
            raise InvalidInput(
                "Requested range not satisfiable",
                code="PGRST103",
                details=f"An offset of {offset} was requested, but there are only {total} rows.",
            )
        if single:
            if len(rows) != 1:
                raise NotFound(
                    "JSON object requested, multiple (or no) rows returned",
                    code="PGRST116",
                    details=f"The result contains {len(rows)} rows",
                )
            return dict(rows[0])
        return SelectResult(rows=list(rows), count=total)

    def _write(
        self,
        method: Method,
        table: Table,
        statement: str,
        params: Sequence[Any],
        returning: bool,
    ) -> list[Row]:
        result = self._run(
            method=method,
            path=f"/{table.name}",
            read_only=False,
            statement=statement,
            params=params,
        )
        return list(result[-1]) if returning and result else []

    def _insert(
        self,
        table: str,
        rows: Row | Sequence[Row],
        on_conflict: tuple[str, ...] | None,
        returning: bool,
    ) -> list[Row]:
        target = self._table(table)
        listed = row_list(rows)
        columns = tuple(dict.fromkeys(key for row in listed for key in row))
        self._check_payload(target, columns)
        if on_conflict is not None:
            self._check_columns(target, on_conflict)
        statement = _sql.insert_sql(target, columns, on_conflict, returning)
        return self._write(Method.POST, target, statement, [encode_json(listed)], returning)

    def insert(self, table: str, rows: Row | Sequence[Row], *, returning: bool = True) -> list[Row]:
        return self._insert(table, rows, None, returning)

    def upsert(
        self,
        table: str,
        rows: Row | Sequence[Row],
        *,
        on_conflict: Sequence[str] = (),
        returning: bool = True,
    ) -> list[Row]:
        conflict = tuple(check_name("column", c) for c in on_conflict)
        if not conflict:
            conflict = self._table(table).primary_key
            if not conflict:
                raise InvalidInput(
                    f"{table} has no primary key: name the on_conflict columns", code="42P10"
                )
        return self._insert(table, rows, conflict, returning)

    def update(
        self,
        table: str,
        values: Row,
        *,
        filters: Sequence[Filter],
        returning: bool = True,
    ) -> list[Row]:
        require_filters("update", filters)
        target = self._table(table)
        (payload,) = row_list(values)
        if not payload:
            raise InvalidInput("nothing to update: pass at least one column")
        columns = tuple(payload)
        self._check_payload(target, columns)
        self._check_columns(target, list(leaf_columns(filters)))
        statement = _sql.update_sql(target, columns, _sql.filter_shape(filters), returning)
        params = [encode_json(payload), *_sql.filter_params(filters)]
        return self._write(Method.PATCH, target, statement, params, returning)

    def delete(self, table: str, *, filters: Sequence[Filter], returning: bool = True) -> list[Row]:
        require_filters("delete", filters)
        target = self._table(table)
        self._check_columns(target, list(leaf_columns(filters)))
        statement = _sql.delete_sql(target, _sql.filter_shape(filters), returning)
        return self._write(Method.DELETE, target, statement, _sql.filter_params(filters), returning)

    def rpc(
        self, function: str, args: Mapping[str, Any] | None = None, *, read_only: bool = False
    ) -> Any:
        given = dict(args or {})
        for name in given:
            check_name("argument", name)
        target = self._function(function, list(given))
        names = tuple(given)
        result = self._run(
            method=Method.GET if read_only else Method.POST,
            path=f"/rpc/{function}",
            # PostgREST runs stable and immutable functions read-only even when POSTed.
            read_only=read_only or target.volatility in ("s", "i"),
            statement=_sql.rpc_sql(target, names),
            params=[encode_json(given)] if names else [],
            function=target,
        )
        return result[-1] if result else None
