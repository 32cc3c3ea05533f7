"""PostgrestGateway at the HTTP level: the exact requests supabase-py sends for each call, and
PostgREST's error responses mapped to the gateway's exceptions. No network: an
``httpx.MockTransport`` is injected into supabase-py's client."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from pysync.errors import ConfigError
from pysync.gateway import (
    Conflict,
    GatewayError,
    Identity,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PostgrestGateway,
    QueryTimeout,
    RateLimited,
    Unauthorized,
    Unavailable,
    and_,
    asc,
    desc,
    eq,
    gt,
    gte,
    ilike,
    in_,
    is_not_null,
    is_null,
    lt,
    lte,
    neq,
    or_,
)

URL = "https://abc.supabase.co"
ANON_KEY = "anon-key"
SERVICE_KEY = "service-key"


@dataclass
class Api:
    """Records requests; answers each with the next queued response (default: 200 ``[]``)."""

    requests: list[httpx.Request] = field(default_factory=list)
    responses: list[httpx.Response | Exception] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.responses:
            return httpx.Response(200, json=[])
        answer = self.responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def reply(self, status: int = 200, body: Any = None, **headers: str) -> None:
        content = b"" if body is None else json.dumps(body).encode()
        self.responses.append(httpx.Response(status, content=content, headers=headers))


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def gateway(api: Api) -> Iterator[PostgrestGateway]:
    client = httpx.Client(transport=httpx.MockTransport(api))
    yield PostgrestGateway.connect(URL, ANON_KEY, service_role_key=SERVICE_KEY, http_client=client)
    client.close()


def query(request: httpx.Request) -> list[tuple[str, str]]:
    """The decoded query string, in order."""
    return list(request.url.params.multi_items())


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


# -- reads ------------------------------------------------------------------------------------


def test_select_request_and_count(api: Api, gateway: PostgrestGateway) -> None:
    api.reply(206, [{"id": 5}], **{"content-range": "0-0/42"})
    result = gateway.select(
        "gw_notes",
        filters=[eq("id", 5)],
        order=[desc("created_at")],
        limit=10,
        offset=20,
        count=True,
    )
    assert (result.rows, result.count) == ([{"id": 5}], 42)
    request = api.last
    assert (request.method, request.url.path) == ("GET", "/rest/v1/gw_notes")
    assert query(request) == [
        ("select", "*"),
        ("id", "eq.5"),
        ("order", "created_at.desc"),
        ("limit", "10"),
        ("offset", "20"),
    ]
    assert request.headers["apikey"] == ANON_KEY
    assert request.headers["authorization"] == f"Bearer {ANON_KEY}"
    assert request.headers["prefer"] == "count=exact"
    assert request.headers["accept-profile"] == "public"
    assert request.content == b""


def test_select_without_count_sends_no_prefer_and_ignores_content_range(
    api: Api, gateway: PostgrestGateway
) -> None:
    api.reply(200, [], **{"content-range": "*/*"})
    assert gateway.select("gw_notes", columns=["id", "body"]).count is None
    assert "prefer" not in api.last.headers
    assert query(api.last) == [("select", "id,body")]


def test_every_filter_in_postgrests_syntax(api: Api, gateway: PostgrestGateway) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    gateway.select(
        "gw_notes",
        filters=[
            eq("id", ident),
            neq("is_public", True),
            gt("created_at", moment),
            gte("rank", 2),
            lt("rank", 9),
            lte("rank", 8),
            in_("slug", ["a", "b,c", 'q"uote']),
            is_null("body"),
            is_not_null("owner"),
            ilike("body", "%note%"),
            eq("rank", 3).negated(),
        ],
    )
    # httpx groups repeated keys together; PostgREST ANDs filters in any order.
    assert sorted(query(api.last)[1:]) == sorted(
        [
            ("id", f"eq.{ident}"),
            ("is_public", "neq.true"),
            ("created_at", "gt.2026-01-02T03:04:05+00:00"),
            ("rank", "gte.2"),
            ("rank", "lt.9"),
            ("rank", "lte.8"),
            ("slug", 'in.(a,"b,c","q\\"uote")'),
            ("body", "is.null"),
            ("owner", "not.is.null"),
            ("body", "ilike.%note%"),
            ("rank", "not.eq.3"),
        ]
    )


def test_groups_in_postgrests_logic_tree_syntax(api: Api, gateway: PostgrestGateway) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    gateway.select(
        "gw_notes",
        filters=[
            eq("owner", "u1"),
            or_(lt("created_at", moment), and_(eq("created_at", moment), lt("rank", 7))),
            or_(in_("slug", ["a", "b,c"]), is_null("body"), eq("rank", 1).negated()).negated(),
            and_(gte("rank", 1), ilike("body", 'x"y')).negated(),
            and_(eq("rank", 2), eq("is_public", False)),
        ],
    )
    stamp = '"2026-01-02T03:04:05.123456+00:00"'
    assert sorted(query(api.last)[1:]) == sorted(
        [
            ("owner", "eq.u1"),
            ("or", f'(created_at.lt.{stamp},and(created_at.eq.{stamp},rank.lt."7"))'),
            # not(A or B or C) goes as A, B and C negated (postgrest-py's public API has
            # no not.or); not(A and B) as or=(not A, not B).
            ("slug", 'not.in.(a,"b,c")'),
            ("body", "not.is.null"),
            ("rank", "eq.1"),
            ("or", '(rank.not.gte."1",body.not.ilike."x\\"y")'),
            ("rank", "eq.2"),
            ("is_public", "eq.false"),
        ]
    )


def test_order_terms_and_nulls(api: Api, gateway: PostgrestGateway) -> None:
    gateway.select("gw_notes", order=[asc("rank", nulls_first=True), desc("created_at")])
    assert dict(query(api.last))["order"] == "rank.asc.nullsfirst,created_at.desc"


def test_odd_column_names_are_quoted(api: Api, gateway: PostgrestGateway) -> None:
    gateway.select("gw_notes", columns=["plain", "with space", "a,b"])
    assert dict(query(api.last))["select"] == 'plain,"with space","a,b"'


def test_single_asks_for_an_object(api: Api, gateway: PostgrestGateway) -> None:
    api.reply(200, {"id": 1})
    assert gateway.select("gw_notes", filters=[eq("id", 1)], single=True) == {"id": 1}
    assert api.last.headers["accept"] == "application/vnd.pgrst.object+json"


# -- writes -----------------------------------------------------------------------------------


def test_insert_request(api: Api, gateway: PostgrestGateway) -> None:
    api.reply(201, [{"id": 1, "body": "x"}])
    owner = uuid.uuid4()
    rows = gateway.insert("gw_notes", {"owner": owner, "body": "x"})
    assert rows == [{"id": 1, "body": "x"}]
    request = api.last
    assert (request.method, request.url.path) == ("POST", "/rest/v1/gw_notes")
    assert request.headers["prefer"] == "return=representation"
    assert request.headers["content-type"] == "application/json"
    assert set(dict(query(request))["columns"].split(",")) == {'"owner"', '"body"'}
    assert body(request) == [{"owner": str(owner), "body": "x"}]


def test_insert_without_returning_asks_for_minimal(api: Api, gateway: PostgrestGateway) -> None:
    api.reply(201)
    assert gateway.insert("gw_notes", [{"a": 1}, {"a": 2}], returning=False) == []
    assert api.last.headers["prefer"] == "return=minimal"
    assert body(api.last) == [{"a": 1}, {"a": 2}]


def test_upsert_request(api: Api, gateway: PostgrestGateway) -> None:
    api.reply(200, [{"slug": "s"}])
    gateway.upsert("gw_notes", {"slug": "s", "body": "b"}, on_conflict=["slug"])
    request = api.last
    assert request.method == "POST"
    assert request.headers["prefer"] == "return=representation,resolution=merge-duplicates"
    assert dict(query(request))["on_conflict"] == "slug"
    gateway.upsert("gw_notes", {"id": 1})
    assert "on_conflict" not in dict(query(api.last))


def test_update_request(api: Api, gateway: PostgrestGateway) -> None:
    api.reply(200, [{"id": 1}])
    assert gateway.update("gw_notes", {"body": "new"}, filters=[eq("id", 1)]) == [{"id": 1}]
    request = api.last
    assert (request.method, query(request)) == ("PATCH", [("id", "eq.1")])
    assert request.headers["prefer"] == "return=representation"
    assert body(request) == {"body": "new"}


def test_delete_request(api: Api, gateway: PostgrestGateway) -> None:
    api.reply(204)
    assert gateway.delete("gw_notes", filters=[in_("id", [1, 2])], returning=False) == []
    request = api.last
    assert (request.method, query(request)) == ("DELETE", [("id", "in.(1,2)")])
    assert request.headers["prefer"] == "return=minimal"


def test_unfiltered_update_and_delete_send_nothing(api: Api, gateway: PostgrestGateway) -> None:
    with pytest.raises(InvalidInput):
        gateway.update("gw_notes", {"body": "all"}, filters=[])
    with pytest.raises(InvalidInput):
        gateway.delete("gw_notes", filters=[])
    assert api.requests == []


# -- rpc --------------------------------------------------------------------------------------


def test_rpc_posts_named_arguments(api: Api, gateway: PostgrestGateway) -> None:
    api.reply(200, 3)
    assert gateway.rpc("gw_add", {"a": 1, "b": 2}) == 3
    request = api.last
    assert (request.method, request.url.path) == ("POST", "/rest/v1/rpc/gw_add")
    assert body(request) == {"a": 1, "b": 2}


def test_read_only_rpc_is_a_get_with_arguments_in_the_query(
    api: Api, gateway: PostgrestGateway
) -> None:
    api.reply(200, [1, 2])
    assert gateway.rpc("gw_nums", {"n": 2, "tags": ["a", "b"]}, read_only=True) == [1, 2]
    request = api.last
    assert (request.method, request.content) == ("GET", b"")
    assert query(request) == [("n", "2"), ("tags", "{a,b}")]


def test_void_rpc_returns_none(api: Api, gateway: PostgrestGateway) -> None:
    api.reply(204)
    assert gateway.rpc("gw_touch", {"note_id": "x"}) is None


# -- identities and headers -------------------------------------------------------------------


def test_identities_present_their_credentials(api: Api, gateway: PostgrestGateway) -> None:
    gateway.as_identity(Identity.from_jwt("user-token")).select("gw_notes")
    assert (api.last.headers["apikey"], api.last.headers["authorization"]) == (
        ANON_KEY,
        "Bearer user-token",
    )
    gateway.as_identity(Identity.service_role()).select("gw_notes")
    assert (api.last.headers["apikey"], api.last.headers["authorization"]) == (
        SERVICE_KEY,
        f"Bearer {SERVICE_KEY}",
    )
    gateway.select("gw_notes")
    assert api.last.headers["authorization"] == f"Bearer {ANON_KEY}"


def test_service_role_without_its_key_sends_nothing(api: Api) -> None:
    client = httpx.Client(transport=httpx.MockTransport(api))
    gateway = PostgrestGateway.connect(URL, ANON_KEY, http_client=client)
    with pytest.raises(ConfigError):
        gateway.as_identity(Identity.service_role()).select("gw_notes")
    assert api.requests == []


def test_extra_headers_are_sent_on_every_request(api: Api, gateway: PostgrestGateway) -> None:
    tagged = gateway.with_headers({"X-Client-Id": "device-1"})
    tagged.rpc("gw_add", {"a": 1})
    tagged.as_identity(Identity.from_jwt("t")).select("gw_notes")
    assert [r.headers["x-client-id"] for r in api.requests] == ["device-1", "device-1"]
    gateway.select("gw_notes")
    assert "x-client-id" not in api.last.headers


def test_names_that_would_change_the_url_are_refused(api: Api, gateway: PostgrestGateway) -> None:
    for attempt in (
        lambda: gateway.select("../auth/v1/admin/users"),
        lambda: gateway.select(".."),
        lambda: gateway.rpc("x/../../auth/v1/logout"),
        lambda: gateway.select("gw_notes", columns=['id"), x']),
        lambda: gateway.select("gw_notes\r\nX-Injected: 1"),
    ):
        with pytest.raises(InvalidInput):
            attempt()
    assert api.requests == []


# -- errors -----------------------------------------------------------------------------------

ERRORS: list[tuple[int, dict[str, Any], type[GatewayError]]] = [
    (401, {"code": "42501", "message": "permission denied for table gw_notes"}, PermissionDenied),
    (
        403,
        {"code": "42501", "message": 'new row violates row-level security policy for table "x"'},
        PermissionDenied,
    ),
    (401, {"code": "PGRST301", "message": "JWT expired"}, Unauthorized),
    (401, {"code": "PGRST303", "message": "JWT expired"}, Unauthorized),
    (409, {"code": "23505", "message": "duplicate key value"}, Conflict),
    (409, {"code": "23P01", "message": "conflicting key value"}, Conflict),
    (409, {"code": "PT409", "message": "stale version"}, Conflict),
    (409, {"code": "23503", "message": "violates foreign key constraint"}, InvalidInput),
    (400, {"code": "23502", "message": "null value"}, InvalidInput),
    (400, {"code": "23514", "message": "violates check constraint"}, InvalidInput),
    (400, {"code": "22P02", "message": "invalid input syntax for type uuid"}, InvalidInput),
    (400, {"code": "42703", "message": "column gw_notes.nope does not exist"}, InvalidInput),
    (400, {"code": "PGRST204", "message": "Could not find the 'nope' column"}, InvalidInput),
    (400, {"code": "P0001", "message": "no thanks"}, InvalidInput),
    (
        405,
        {"code": "25006", "message": "cannot execute UPDATE in a read-only transaction"},
        InvalidInput,
    ),
    (404, {"code": "42P01", "message": 'relation "public.x" does not exist'}, NotFound),
    (404, {"code": "PGRST205", "message": "Could not find the table"}, NotFound),
    (404, {"code": "PGRST202", "message": "Could not find the function"}, NotFound),
    (406, {"code": "PGRST116", "message": "JSON object requested"}, NotFound),
    (429, {"code": "PT429", "message": "too many requests"}, RateLimited),
    (
        500,
        {"code": "57014", "message": "canceling statement due to statement timeout"},
        QueryTimeout,
    ),
    (503, {"code": "PGRST001", "message": "Database client error"}, Unavailable),
    (500, {"code": "40001", "message": "could not serialize access"}, Unavailable),
    (503, {"code": "53300", "message": "too many connections"}, Unavailable),
    (500, {"code": "XX000", "message": "internal error"}, GatewayError),
]


@pytest.mark.parametrize(("status", "error", "expected"), ERRORS)
def test_error_responses_map_to_exceptions(
    api: Api,
    gateway: PostgrestGateway,
    status: int,
    error: dict[str, Any],
    expected: type[GatewayError],
) -> None:
    api.reply(status, {**error, "details": "some details", "hint": "a hint"})
    with pytest.raises(GatewayError) as raised:
        gateway.select("gw_notes")
    assert type(raised.value) is expected
    assert (raised.value.code, raised.value.message) == (error["code"], error["message"])
    assert (raised.value.details, raised.value.hint, raised.value.status) == (
        "some details",
        "a hint",
        status,
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [(502, Unavailable), (503, Unavailable), (429, RateLimited), (418, GatewayError)],
)
def test_non_json_error_responses_map_by_status(
    api: Api, gateway: PostgrestGateway, status: int, expected: type[GatewayError]
) -> None:
    api.responses.append(httpx.Response(status, text="<html>bad gateway</html>"))
    with pytest.raises(GatewayError) as raised:
        gateway.rpc("gw_add", {"a": 1})
    assert type(raised.value) is expected
    assert raised.value.details == "<html>bad gateway</html>"


def test_a_success_that_is_not_json_is_an_error(api: Api, gateway: PostgrestGateway) -> None:
    api.responses.append(httpx.Response(200, text="<html>portal</html>"))
    with pytest.raises(GatewayError) as raised:
        gateway.select("gw_notes")
    assert (raised.value.status, raised.value.details) == (200, "<html>portal</html>")


@pytest.mark.parametrize(
    "failure",
    [
        lambda r: httpx.ConnectError("connection refused", request=r),
        lambda r: httpx.ReadTimeout("timed out", request=r),
    ],
)
def test_transport_failures_are_unavailable(
    api: Api, gateway: PostgrestGateway, failure: Callable[[httpx.Request], Exception]
) -> None:
    api.responses.append(failure(httpx.Request("GET", URL)))
    with pytest.raises(Unavailable):
        gateway.select("gw_notes")
