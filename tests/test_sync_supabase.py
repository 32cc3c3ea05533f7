"""SyncCache over a Supabase project: the RPCs as PostgREST requests (an httpx.MockTransport
answering like PostgREST), and a live round trip when a project is configured."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import jwt
import pytest

from pysync import Client
from pysync.config import Settings
from pysync.gateway.postgrest import MAX_GET_ARGUMENT_BYTES
from pysync.sync import SyncCache
from tests.helpers import gotrue_session

URL = "https://abc.supabase.co"
ANON_KEY = "anon-key"
USER_ID = "8d0fd2b3-9ca5-4d6c-8a5e-2c7a7a1f0c11"
CONVERSATION = "3f0c2d1e-0000-4000-8000-000000000001"
TOKEN = jwt.encode(
    {"sub": USER_ID, "role": "authenticated", "exp": int(time.time()) + 3600},
    "project-secret-with-at-least-32-characters",
    algorithm="HS256",
)
STAMP = "2026-12-01T10:00:00.123456+00:00"
SCHEMA = {
    "hash": "h1",
    "tables": [
        {
            "name": "messages",
            "bucket_column": "conversation_id",
            "columns": [
                {"name": "id", "type": "uuid", "nullable": False},
                {"name": "conversation_id", "type": "uuid", "nullable": False},
                {"name": "sender_id", "type": "uuid", "nullable": False},
                {"name": "body", "type": "text", "nullable": False},
                {"name": "created_at", "type": "timestamp with time zone", "nullable": False},
                {"name": "updated_at", "type": "timestamp with time zone", "nullable": False},
                {"name": "version", "type": "bigint", "nullable": False},
            ],
            "writable": ["conversation_id", "sender_id", "body"],
            "operations": ["insert", "update"],
            "conflict": "last_write_wins",
            "counters": [],
        }
    ],
    "streams": [
        {
            "name": "my_messages",
            "table": "messages",
            "mode": "auto",
            "ttl_seconds": None,
            "description": "",
        },
        {
            "name": "other_conversation",
            "table": "messages",
            "mode": "on_demand",
            "ttl_seconds": 3600,
            "description": "",
        },
    ],
}


def message(row_id: str, body: str, version: int = 1) -> dict[str, Any]:
    return {
        "id": row_id,
        "conversation_id": CONVERSATION,
        "sender_id": USER_ID,
        "body": body,
        "created_at": STAMP,
        "updated_at": STAMP,
        "version": version,
    }


@dataclass
class Project:
    """A fake project: GoTrue's /token, and PostgREST's /rpc/sync_* answered by name."""

    requests: list[httpx.Request] = field(default_factory=list)
    server_rows: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/auth/v1/token":
            return httpx.Response(200, json=gotrue_session(USER_ID, TOKEN))
        if path == "/rest/v1/rpc/sync_schema":
            return httpx.Response(200, json=SCHEMA)
        if path == "/rest/v1/rpc/sync_push":
            ops = json.loads(request.content)["ops"]
            for op in ops:
                self.server_rows.append(message(op["id"], op["data"]["body"]))
            results = [{"op_id": op["op_id"], "status": "applied", "version": 1} for op in ops]
            return httpx.Response(200, json={"server_time": STAMP, "results": results})
        if path == "/rest/v1/rpc/sync_pull":
            entries = [
                {
                    "bucket": f"messages:{CONVERSATION}",
                    "table": "messages",
                    "key": CONVERSATION,
                    "streams": ["my_messages"],
                    "state": "changed",
                    "rows": self.server_rows,
                    "removed": [],
                    "complete": True,
                    "cursor": "100:100:",
                    "round": None,
                    "after": None,
                }
            ]
            self.server_rows = []
            return httpx.Response(
                200,
                json={
                    "snapshot": "100:100:",
                    "server_time": STAMP,
                    "schema_hash": "h1",
                    "buckets": entries,
                    "unchanged": [],
                    "removed_buckets": [],
                    "denied": [],
                    "has_more": False,
                },
            )
        return httpx.Response(404, json={"code": "PGRST202", "message": f"no {path}"})

    def rpc_calls(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.startswith("/rest/v1/rpc/")]


@pytest.fixture
def project() -> Project:
    return Project()


@pytest.fixture
def client(project: Project) -> Iterator[Client]:
    http = httpx.Client(transport=httpx.MockTransport(project))
    yield Client.supabase(URL, ANON_KEY, "ada@example.com", "secret-pw", http_client=http)
    http.close()


def sent_argument(request: httpx.Request, name: str) -> Any:
    if request.method == "GET":
        return json.loads(unquote(request.url.params[name]))
    return json.loads(request.content)[name]


def test_a_cache_syncs_through_postgrest_rpc(
    project: Project, client: Client, tmp_path: Path
) -> None:
    with SyncCache.open(client, tmp_path / "ada.db") as cache:
        draft = cache.insert(
            "messages", {"conversation_id": CONVERSATION, "sender_id": USER_ID, "body": "hi"}
        )
        cache.sync()
        assert cache.get("messages", draft) == {**message(draft, "hi"), "version": 1}
        assert cache.status().pending_ops == 0

    calls = [(r.method, r.url.path) for r in project.rpc_calls()]
    assert calls == [
        ("GET", "/rest/v1/rpc/sync_schema"),
        ("POST", "/rest/v1/rpc/sync_push"),
        ("GET", "/rest/v1/rpc/sync_pull"),
    ]
    schema, push, pull = project.rpc_calls()
    for request in (schema, push, pull):
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["apikey"] == ANON_KEY
    ops = sent_argument(push, "ops")
    assert [(op["kind"], op["table"], op["id"], op["data"]["body"]) for op in ops] == [
        ("insert", "messages", draft, "hi")
    ]
    assert uuid.UUID(sent_argument(push, "client_id"))
    assert sent_argument(pull, "request")["buckets"] == {}


def test_a_large_pull_is_posted_not_put_in_the_url(
    project: Project, client: Client, tmp_path: Path
) -> None:
    with SyncCache.open(client, tmp_path / "ada.db") as cache:
        for index in range(80):  # many on-demand subscriptions make a long request
            cache.subscribe("other_conversation", str(uuid.UUID(int=index)))
        cache.pull()
    pull = project.rpc_calls()[-1]
    assert (pull.method, pull.url.path) == ("POST", "/rest/v1/rpc/sync_pull")
    request = sent_argument(pull, "request")
    assert len(request["subscriptions"]) == 80
    assert len(json.dumps({"request": request})) > MAX_GET_ARGUMENT_BYTES


@pytest.mark.live
def test_live_project_round_trip(tmp_path: Path) -> None:
    """Against a real project with this repository's migrations pushed: a user's first sync,
    an offline insert pushed once, and the row pulled back with its server version."""
    settings = Settings.load()
    needed = (settings.supabase_url, settings.anon_key, settings.service_role_key)
    if not all(needed):
        pytest.skip("live sync needs SUPABASE_URL, SUPABASE_ANON_KEY and SUPABASE_SERVICE_ROLE_KEY")
    from supabase_auth import SyncGoTrueAdminAPI

    url, anon_key, service_key = (str(value) for value in needed)
    admin = SyncGoTrueAdminAPI(
        url=f"{url.rstrip('/')}/auth/v1",
        headers={"apikey": service_key, "Authorization": f"Bearer {service_key}"},
    )
    email, password = f"sync-{uuid.uuid4().hex[:10]}@example.com", uuid.uuid4().hex
    created = admin.create_user({"email": email, "password": password, "email_confirm": True})
    assert created.user is not None
    try:
        with (
            Client.supabase(url, anon_key, email, password) as user,
            SyncCache.open(user, tmp_path / "live.db") as cache,
        ):
            cache.sync()
            device = cache.insert(
                "devices", {"user_id": created.user.id, "device_id": "live", "platform": "web"}
            )
            cache.sync()
            row = cache.get("devices", device)
            assert row is not None and row["version"] == 1
            assert cache.status().pending_ops == 0
    finally:
        admin.delete_user(created.user.id)
