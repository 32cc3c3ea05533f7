"""The gateway over supabase-py: the production path, through a project's PostgREST API.

supabase-py's postgrest client builds every request (URL, query string, ``Prefer`` and
``Accept`` headers, JSON body), exactly as any Supabase SDK user's request would look; this
module only sets the identity's ``apikey``/``Authorization`` headers per request and reads the
HTTP response itself, so the status, ``Content-Range`` count and error JSON are mapped
precisely (a void function's ``204`` becomes ``None``; errors become the same exceptions
:class:`~pysync.gateway.PostgresGateway` raises).

supabase-py's automatic retry of ``GET`` on 503 is turned off: :class:`Unavailable` is
``retryable`` and callers (the sync engine) own the retry policy, so one call is one request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal, overload

import httpx
from postgrest import SyncPostgrestClient, SyncSelectRequestBuilder
from postgrest.base_request_builder import BaseFilterRequestBuilder, RequestConfig
from postgrest.types import CountMethod, ReturnMethod

from pysync.errors import ConfigError
from pysync.gateway._common import (
    check_name,
    check_range,
    column_names,
    encode_json,
    require_filters,
    row_list,
)
from pysync.gateway.apikeys import request_headers
from pysync.gateway.errors import GatewayError, InvalidInput, Unavailable, error_for
from pysync.gateway.filters import Filter, Op, Order, wire_value
from pysync.gateway.identity import Identity, IdentityKind
from pysync.gateway.protocol import Columns, Row, SelectResult
from supabase import Client, ClientOptions, create_client

__all__ = ["PostgrestGateway"]

#: Largest JSON argument sent in a ``GET /rpc/…`` query string. A ``GET`` is what Supabase's
#: API gateway may route to a read replica, but proxies cap URLs at 8 KB or so; a read-only
#: call with larger arguments (a sync pull from a cache holding hundreds of buckets) is POSTed
#: instead, which PostgREST still runs read-only when the function is ``stable``.
MAX_GET_ARGUMENT_BYTES = 6000

_PLAIN_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_CONTENT_RANGE_TOTAL = re.compile(r"/(\d+)$")


def _field(name: str) -> str:
    """A column name as PostgREST's select/order syntax reads it (quoted when not plain)."""
    if _PLAIN_FIELD.fullmatch(name):
        return name
    if '"' in name:
        raise InvalidInput(f"PostgREST cannot address a column named {name!r}")
    return f'"{name}"'


def _error(response: httpx.Response) -> GatewayError:
    """The gateway exception for a PostgREST error response (its JSON, else its status)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("code" in body or "message" in body):
        return error_for(
            str(body["code"]) if body.get("code") is not None else None,
            str(body.get("message") or response.reason_phrase),
            details=body.get("details"),
            hint=body.get("hint"),
            status=response.status_code,
        )
    return error_for(
        None,
        response.reason_phrase or f"HTTP {response.status_code}",
        details=response.text or None,
        status=response.status_code,
    )


_GROUPS = (Op.OR, Op.AND)


def _quoted(value: Any) -> str:
    """A value inside a logic tree, double-quoted so ``,.:()`` in it stay data (PostgREST's
    ``pQuotedValue``: backslash escapes the next character)."""
    text = wire_value(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _logic(f: Filter) -> str:
    """One member of ``or=(…)``/``and=(…)`` in PostgREST's logic-tree syntax."""
    negation = "not." if f.negate else ""
    if f.op in _GROUPS:
        return f"{negation}{f.op.value}({','.join(_logic(member) for member in f.value)})"
    field = _field(check_name("column", f.column))
    if f.op is Op.IS:
        return f"{field}.{negation}is.null"
    if f.op is Op.IN:
        return f"{field}.{negation}in.({','.join(_quoted(v) for v in f.value)})"
    return f"{field}.{negation}{f.op.value}.{_quoted(f.value)}"


class PostgrestGateway:
    """:class:`~pysync.gateway.Gateway` over a Supabase project's REST API.

    ``anon_key`` is the project's anon or publishable key (sent as ``apikey`` on every
    request); ``service_role_key`` (service_role or secret key) is needed only for
    :meth:`Identity.service_role`. Publishable and secret keys are not JWTs: they travel in
    ``apikey`` only (:func:`~pysync.gateway.apikeys.request_headers`). Build one with
    :meth:`connect`, or wrap an existing supabase-py :class:`~supabase.Client`.
    """

    def __init__(
        self,
        client: Client,
        *,
        service_role_key: str | None = None,
        identity: Identity | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._anon_key = client.supabase_key
        self._service_role_key = service_role_key
        self._identity = identity or Identity.anon()
        self._headers = {k.lower(): v for k, v in (headers or {}).items()}

    @classmethod
    def connect(
        cls,
        url: str,
        anon_key: str,
        *,
        service_role_key: str | None = None,
        http_client: httpx.Client | None = None,
        headers: Mapping[str, str] | None = None,
        schema: str = "public",
    ) -> PostgrestGateway:
        """A gateway for the project at ``url`` (``https://<ref>.supabase.co``).

        ``http_client`` replaces supabase-py's HTTP client (tests inject an
        ``httpx.MockTransport`` through it).
        """
        options = ClientOptions(
            schema=schema,
            auto_refresh_token=False,
            persist_session=False,
            postgrest_client_retry=False,
            httpx_client=http_client,
        )
        client = create_client(url, anon_key, options)
        return cls(client, service_role_key=service_role_key, headers=headers)

    # -- identity and headers -------------------------------------------------------------

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def headers(self) -> Mapping[str, str]:
        return dict(self._headers)

    def _derive(self, identity: Identity, headers: dict[str, str]) -> PostgrestGateway:
        return PostgrestGateway(
            self._client,
            service_role_key=self._service_role_key,
            identity=identity,
            headers=headers,
        )

    def as_identity(self, identity: Identity) -> PostgrestGateway:
        return self._derive(identity, self._headers)

    def with_headers(self, headers: Mapping[str, str]) -> PostgrestGateway:
        extra = {k.lower(): v for k, v in headers.items()}
        return self._derive(self._identity, {**self._headers, **extra})

    def _credentials(self) -> tuple[str, str | None]:
        """``(apikey, user token or None)`` for the identity."""
        kind = self._identity.kind
        if kind is IdentityKind.SERVICE_ROLE:
            if not self._service_role_key:
                raise ConfigError(
                    "acting as the service role needs the project's service_role key "
                    "(SUPABASE_SERVICE_ROLE_KEY)"
                )
            return self._service_role_key, None
        if kind is IdentityKind.TOKEN:
            assert self._identity.token is not None
            return self._anon_key, self._identity.token
        return self._anon_key, None

    # -- sending --------------------------------------------------------------------------

    @property
    def _rest(self) -> SyncPostgrestClient:
        return self._client.postgrest

    def _send(self, request: RequestConfig[httpx.Client]) -> tuple[Any, int | None]:
        """Send one request as the identity; its decoded body and ``Content-Range`` total."""
        apikey, token = self._credentials()
        for name, value in self._headers.items():
            request.headers[name] = value
        # supabase-py presets a bearer of its key: replaced here, or dropped for a new-style key.
        request.headers.pop("Authorization", None)
        request.headers.update(request_headers(apikey, token))
        try:
            response = request.send(httpx.Headers())
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach the API: {exc}") from exc
        if not response.is_success:
            raise _error(response)
        found = _CONTENT_RANGE_TOTAL.search(response.headers.get("content-range", ""))
        total = int(found.group(1)) if found else None
        if not response.content:
            return None, total
        try:
            return response.json(), total
        except ValueError as exc:
            raise GatewayError(
                f"the API answered {response.status_code} with a body that is not JSON",
                details=response.text[:500],
                status=response.status_code,
            ) from exc

    @staticmethod
    def _apply(builder: BaseFilterRequestBuilder[httpx.Client], filters: Sequence[Filter]) -> None:
        for f in filters:
            if f.op in _GROUPS:
                # Only or_() is public in postgrest-py; De Morgan turns the other three
                # forms into it or into plain (AND-ed) filters: not(A or B) is (not A) and
                # (not B), not(A and B) is (not A) or (not B).
                members: Sequence[Filter] = f.value
                if f.negate:
                    members = [replace(member, negate=not member.negate) for member in members]
                if (f.op is Op.AND) != f.negate:
                    PostgrestGateway._apply(builder, members)
                else:
                    builder.or_(",".join(_logic(member) for member in members))
                continue
            check_name("column", f.column)
            target = builder.not_ if f.negate else builder
            if f.op is Op.IN:
                target.in_(f.column, [wire_value(v) for v in f.value])
            elif f.op is Op.IS:
                target.filter(f.column, "is", "null")
            else:
                target.filter(f.column, f.op.value, wire_value(f.value))

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
        check_range(limit, offset)
        names = column_names(columns)
        fields = ["*"] if names is None else [_field(name) for name in names]
        query: SyncSelectRequestBuilder = self._rest.from_(check_name("table", table)).select(
            *fields, count=CountMethod.exact if count else None
        )
        self._apply(query, filters)
        for item in order:
            query.order(
                _field(check_name("column", item.column)),
                desc=item.descending,
                nullsfirst=item.nulls_first,
            )
        if limit is not None:
            query.limit(limit)
        if offset is not None:
            query.offset(offset)
        if single:
            body, _ = self._send(query.single().request)
            return dict(body)
        body, total = self._send(query.request)
        return SelectResult(rows=list(body or []), count=total if count else None)

    @staticmethod
    def _returning(returning: bool) -> ReturnMethod:
        return ReturnMethod.representation if returning else ReturnMethod.minimal

    @staticmethod
    def _body(rows: Row | Sequence[Row]) -> Any:
        """Rows as plain JSON values, encoded exactly as the Postgres gateway encodes them."""
        return json.loads(encode_json(row_list(rows)))

    def insert(self, table: str, rows: Row | Sequence[Row], *, returning: bool = True) -> list[Row]:
        query = self._rest.from_(check_name("table", table)).insert(
            self._body(rows), returning=self._returning(returning)
        )
        body, _ = self._send(query.request)
        return list(body or []) if returning else []

    def upsert(
        self,
        table: str,
        rows: Row | Sequence[Row],
        *,
        on_conflict: Sequence[str] = (),
        returning: bool = True,
    ) -> list[Row]:
        conflict = ",".join(_field(check_name("column", c)) for c in on_conflict)
        query = self._rest.from_(check_name("table", table)).upsert(
            self._body(rows), on_conflict=conflict, returning=self._returning(returning)
        )
        body, _ = self._send(query.request)
        return list(body or []) if returning else []

    def update(
        self,
        table: str,
        values: Row,
        *,
        filters: Sequence[Filter],
        returning: bool = True,
    ) -> list[Row]:
        require_filters("update", filters)
        (payload,) = self._body(values)
        if not payload:
            raise InvalidInput("nothing to update: pass at least one column")
        query = self._rest.from_(check_name("table", table)).update(
            payload, returning=self._returning(returning)
        )
        self._apply(query, filters)
        body, _ = self._send(query.request)
        return list(body or []) if returning else []

    def delete(self, table: str, *, filters: Sequence[Filter], returning: bool = True) -> list[Row]:
        require_filters("delete", filters)
        query = self._rest.from_(check_name("table", table)).delete(
            returning=self._returning(returning)
        )
        self._apply(query, filters)
        body, _ = self._send(query.request)
        return list(body or []) if returning else []

    def rpc(
        self, function: str, args: Mapping[str, Any] | None = None, *, read_only: bool = False
    ) -> Any:
        given = dict(args or {})
        for name in given:
            check_name("argument", name)
        encoded = encode_json(given)
        get = read_only and len(encoded) <= MAX_GET_ARGUMENT_BYTES
        query = self._rest.rpc(check_name("function", function), json.loads(encoded), get=get)
        body, _ = self._send(query.request)
        return body
