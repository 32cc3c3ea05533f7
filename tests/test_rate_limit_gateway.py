"""The rate limit through the gateway: PostgresGateway runs ``private.check_request()`` as
PostgREST's ``db-pre-request`` hook, with the request's method and headers, so writes past
the limit fail with RateLimited (HTTP 429 behind PostgREST) and reads never count."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pysync.auth import mint_access_token
from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway import Identity, PostgresGateway, RateLimited, eq
from pysync.localdb import LocalDatabase
from tests.helpers import connect

SAM = "c0000000-0000-4000-8000-000000000001"
SAM_TOKEN = mint_access_token(LOCAL_JWT_SECRET, user_id=SAM, email="student.sam@example.com")


def _set_limits(conn: psycopg.Connection[Any], *, web: int, mobile: int) -> None:
    for platform, limit in (("web", web), ("mobile", mobile)):
        conn.execute(
            "update private.rate_limit_rules set max_writes = %s where platform = %s",
            (limit, platform),
        )
    conn.execute("delete from private.rate_limit_counters")


@pytest.fixture
def gateway(app_url: str, local_db: LocalDatabase) -> Iterator[PostgresGateway]:
    dbname = app_url.rsplit("/", 1)[1]
    with connect(app_url) as conn:
        # Small limits so the test stays fast; restored afterwards.
        _set_limits(conn, web=3, mobile=5)
    with PostgresGateway.connect(
        local_db.url(dbname, user="authenticator"),
        jwt_secret=LOCAL_JWT_SECRET,
        pre_request="private.check_request",
    ) as gw:
        yield gw.as_identity(Identity.from_jwt(SAM_TOKEN))
    with connect(app_url) as conn:
        _set_limits(conn, web=60, mobile=120)


def _write(gw: PostgresGateway, n: int) -> Any:
    return gw.update("profiles", {"display_name": f"Sam {n}"}, filters=[eq("id", SAM)])


def test_web_writes_past_the_limit_are_rate_limited(gateway: PostgresGateway) -> None:
    web = gateway.with_headers({"x-client-info": "supabase-js-web/2.45.0"})
    for n in range(3):
        _write(web, n)
    with pytest.raises(RateLimited) as caught:
        _write(web, 3)
    assert caught.value.code == "PT429"
    # Reads are never limited, even past the write limit.
    for _ in range(10):
        assert web.select("profiles", filters=[eq("id", SAM)]).rows


def test_mobile_clients_have_their_own_larger_limit(gateway: PostgresGateway) -> None:
    mobile = gateway.with_headers({"x-client-info": "supabase-flutter/2.5.0"})
    for n in range(5):
        _write(mobile, n)
    with pytest.raises(RateLimited):
        _write(mobile, 5)


def test_a_limited_write_changes_nothing(gateway: PostgresGateway, app_url: str) -> None:
    web = gateway.with_headers({"x-client-platform": "web"})
    for n in range(3):
        _write(web, n)
    with pytest.raises(RateLimited):
        _write(web, 99)
    with psycopg.connect(app_url) as conn:
        row = conn.execute("select display_name from public.profiles where id = %s", (SAM,))
        assert row.fetchone() == ("Sam 2",)
