"""Client.supabase at the HTTP level: sign-in through supabase-auth, data sources through
PostgREST and files through the Storage API, all on an httpx.MockTransport (no network)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest

from pysync import Client, Conflict, Cursor, PermissionDenied, Profile, SupabaseStorage
from tests.helpers import gotrue_session

URL = "https://abc.supabase.co"
ANON_KEY = "anon-key"
USER_ID = "8d0fd2b3-9ca5-4d6c-8a5e-2c7a7a1f0c11"
TOKEN = jwt.encode(
    {"sub": USER_ID, "role": "authenticated", "exp": int(time.time()) + 3600},
    "project-secret-with-at-least-32-characters",
    algorithm="HS256",
)
STAMP = "2026-11-23T08:00:00.123456+00:00"


def profile_row(**extra: Any) -> dict[str, Any]:
    return {
        "id": USER_ID,
        "display_name": "Ada",
        "avatar_url": None,
        "timezone": "UTC",
        "locale": "en",
        "role": "student",
        "onboarded": False,
        "deleted_at": None,
        "created_at": STAMP,
        "updated_at": STAMP,
        "version": 3,
        "sync_xid": "1234",
        **extra,
    }


@dataclass
class Project:
    """A fake Supabase project: GoTrue's /token, and queued answers for the other APIs."""

    requests: list[httpx.Request] = field(default_factory=list)
    answers: list[httpx.Response] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/auth/v1/token":
            return httpx.Response(200, json=gotrue_session(USER_ID, TOKEN))
        if self.answers:
            return self.answers.pop(0)
        return httpx.Response(200, json=[])

    def answer(self, status: int, body: Any) -> None:
        self.answers.append(httpx.Response(status, content=json.dumps(body).encode()))

    def after_sign_in(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path != "/auth/v1/token"]


@pytest.fixture
def project() -> Project:
    return Project()


@pytest.fixture
def client(project: Project) -> Iterator[Client]:
    http = httpx.Client(transport=httpx.MockTransport(project))
    yield Client.supabase(URL, ANON_KEY, "ada@example.com", "secret-pw", http_client=http)
    http.close()


def test_sign_in_then_requests_carry_the_users_token(project: Project, client: Client) -> None:
    (sign_in,) = project.requests
    assert sign_in.url.path == "/auth/v1/token"
    assert sign_in.url.params["grant_type"] == "password"
    sent = json.loads(sign_in.content)
    assert (sent["email"], sent["password"]) == ("ada@example.com", "secret-pw")
    project.answer(200, [profile_row()])
    me = client.profiles.me()
    assert isinstance(me, Profile) and str(me.id) == USER_ID and me.version == 3
    assert me.created_at == datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)
    (request,) = project.after_sign_in()
    assert (request.method, request.url.path) == ("GET", "/rest/v1/profiles")
    assert request.url.params["id"] == f"eq.{USER_ID}"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["apikey"] == ANON_KEY


def test_keyset_page_is_one_request_after_the_cursor(project: Project, client: Client) -> None:
    conversation = uuid.uuid4()
    after = uuid.UUID(int=5)
    cursor = Cursor(datetime.fromisoformat(STAMP), after)
    client.messages.page(conversation, before=cursor, limit=10)
    (request,) = project.after_sign_in()
    assert request.url.params["conversation_id"] == f"eq.{conversation}"
    assert request.url.params["created_at"] == f"lte.{STAMP}"
    assert request.url.params["or"] == (
        f'(created_at.lt."{STAMP}",and(created_at.eq."{STAMP}",id.lt."{after}"))'
    )
    assert request.url.params["order"] == "created_at.desc,id.desc"
    assert request.url.params["limit"] == "11"


def test_stale_version_is_a_conflict_through_postgrest(project: Project, client: Client) -> None:
    project.answer(200, [])  # PATCH matched nothing
    project.answer(200, [{"id": USER_ID, "version": 4}])  # the row has moved on
    with pytest.raises(Conflict) as stale:
        client.profiles.update_me(display_name="Bea", expected_version=3)
    assert stale.value.code == "PT409"
    patch = project.after_sign_in()[0]
    assert patch.method == "PATCH"
    assert patch.url.params["version"] == "eq.3"
    assert json.loads(patch.content) == {"display_name": "Bea"}


def test_storage_through_storage3(project: Project, client: Client) -> None:
    storage = client.storage
    assert isinstance(storage, SupabaseStorage)
    project.answer(200, {"Key": f"avatars/{USER_ID}/me.png", "Id": str(uuid.uuid4())})
    stored = storage.upload("avatars", f"{USER_ID}/me.png", b"\x89PNG", content_type="image/png")
    assert (stored.name, stored.size, stored.mimetype) == (f"{USER_ID}/me.png", 4, "image/png")
    upload = project.after_sign_in()[-1]
    assert (upload.method, upload.url.path) == (
        "POST",
        f"/storage/v1/object/avatars/{USER_ID}/me.png",
    )
    assert upload.headers["authorization"] == f"Bearer {TOKEN}"

    project.answers.append(httpx.Response(200, content=b"\x89PNG"))
    assert storage.download("avatars", f"{USER_ID}/me.png") == b"\x89PNG"

    project.answer(
        200,
        [
            {
                "name": "me.png",
                "id": str(uuid.uuid4()),
                "created_at": STAMP,
                "updated_at": STAMP,
                "metadata": {"size": 4, "mimetype": "image/png"},
            }
        ],
    )
    (listed,) = storage.list("avatars", USER_ID)
    assert (listed.name, listed.size) == (f"{USER_ID}/me.png", 4)
    listing = project.after_sign_in()[-1]
    assert listing.url.path == "/storage/v1/object/list/avatars"
    assert json.loads(listing.content)["prefix"] == USER_ID

    project.answer(200, {"signedURL": f"/object/sign/avatars/{USER_ID}/me.png?token=t"})
    url = storage.signed_url("avatars", f"{USER_ID}/me.png", expires_in=60)
    assert url.startswith(f"{URL}/storage/v1/object/sign/avatars/") and "token=t" in url
    assert json.loads(project.after_sign_in()[-1].content) == {"expiresIn": "60"}

    project.answer(200, [{"name": f"{USER_ID}/me.png"}])
    assert [o.name for o in storage.remove("avatars", [f"{USER_ID}/me.png"])] == [
        f"{USER_ID}/me.png"
    ]
    assert project.after_sign_in()[-1].method == "DELETE"

    project.answer(
        403,
        {
            "statusCode": "403",
            "error": "Unauthorized",
            "message": "new row violates row-level security policy",
        },
    )
    with pytest.raises(PermissionDenied):
        storage.upload("avatars", "someone-else/me.png", b"x", content_type="image/png")
