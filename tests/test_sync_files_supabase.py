"""The file queue's Supabase object store at the request level (an httpx.MockTransport that
answers like Storage: simple uploads, TUS resumable uploads, conditional downloads, Storage's
error bodies), and a live round trip when a project is configured."""

from __future__ import annotations

import base64
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from pysync.gateway import Identity, PermissionDenied, Unavailable
from pysync.progress import ProgressEvent
from pysync.sync.files import ResumeSlot, SupabaseObjectStore, is_refusal, object_store_for

URL = "https://abc.supabase.co"
ANON_KEY = "anon-key"
USER_ID = "8d0fd2b3-9ca5-4d6c-8a5e-2c7a7a1f0c11"
TOKEN = jwt.encode(
    {"sub": USER_ID, "role": "authenticated", "exp": int(time.time()) + 3600},
    "project-secret-with-at-least-32-characters",
    algorithm="HS256",
)
PATH = f"{USER_ID}/essay 1.pdf"


class FakeStorage:
    """Storage's HTTP behaviour for one object path, recording every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.fail_patch_at: set[int] = set()  # PATCH numbers (1-based) that never reach it
        self.refuse = False
        self.patches = 0
        self.stale_heads = 0  # HEADs that answer the offset before the last chunk

    def etag(self, key: str) -> str:
        return f'"{hash(self.objects[key]) & 0xFFFFFFFF:08x}"'

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if self.refuse:
            body = {
                "statusCode": "403",
                "error": "Unauthorized",
                "message": "new row violates row-level security policy",
            }
            return httpx.Response(400, json=body)
        if request.method == "POST" and path.startswith("/storage/v1/object/"):
            key = path.removeprefix("/storage/v1/object/")
            if key in self.objects and request.headers.get("x-upsert") != "true":
                return httpx.Response(400, json={"statusCode": "409", "error": "Duplicate"})
            self.objects[key] = request.content
            return httpx.Response(200, json={"Key": key, "Id": str(uuid.uuid4())})
        if path.startswith("/storage/v1/object/authenticated/"):
            key = path.removeprefix("/storage/v1/object/authenticated/")
            if key not in self.objects:
                return httpx.Response(400, json={"statusCode": "404", "error": "not_found"})
            etag = self.etag(key)
            if request.headers.get("If-None-Match") == etag:
                return httpx.Response(304)
            headers = {"ETag": etag, "Content-Length": str(len(self.objects[key]))}
            if request.method == "HEAD":
                return httpx.Response(200, headers=headers)
            return httpx.Response(200, headers=headers, content=self.objects[key])
        if request.method == "POST" and path == "/storage/v1/upload/resumable":
            metadata = dict(
                item.split(" ") for item in request.headers["Upload-Metadata"].split(",")
            )
            decoded = {k: base64.b64decode(v).decode() for k, v in metadata.items()}
            upload_id = uuid.uuid4().hex
            self.uploads[upload_id] = {
                "length": int(request.headers["Upload-Length"]),
                "data": b"",
                "meta": decoded,
                "upsert": request.headers.get("x-upsert"),
            }
            return httpx.Response(
                201, headers={"Location": f"{URL}/storage/v1/upload/resumable/{upload_id}"}
            )
        if path.startswith("/storage/v1/upload/resumable/"):
            upload = self.uploads.get(path.rsplit("/", 1)[1])
            if upload is None:
                return httpx.Response(404)
            if request.method == "HEAD":
                offset = len(upload["data"])
                if self.stale_heads:
                    self.stale_heads -= 1
                    offset -= 1000
                return httpx.Response(200, headers={"Upload-Offset": str(offset)})
            self.patches += 1
            if self.patches in self.fail_patch_at:
                raise httpx.ConnectError("connection reset", request=request)
            if int(request.headers["Upload-Offset"]) != len(upload["data"]):
                return httpx.Response(409)
            assert request.headers["Content-Type"] == "application/offset+octet-stream"
            upload["data"] += request.content
            if len(upload["data"]) == upload["length"]:
                meta = upload["meta"]
                self.objects[f"{meta['bucketName']}/{meta['objectName']}"] = upload["data"]
            return httpx.Response(204, headers={"Upload-Offset": str(len(upload["data"]))})
        return httpx.Response(404)


@pytest.fixture
def fake() -> FakeStorage:
    return FakeStorage()


def store_for(fake: FakeStorage, chunk: int = 1000, threshold: int = 2500) -> SupabaseObjectStore:
    http = httpx.Client(transport=httpx.MockTransport(fake.handle))
    store = SupabaseObjectStore(
        URL, ANON_KEY, lambda: Identity.from_jwt(TOKEN), http_client=http, chunk_size=chunk
    )
    store.resumable_threshold = threshold
    return store


def test_small_upload_is_one_post_with_the_users_token_and_upsert(
    fake: FakeStorage, tmp_path: Path
) -> None:
    source = tmp_path / "a.pdf"
    source.write_bytes(b"%PDF small")
    info = store_for(fake).upload(
        "submissions", PATH, source, content_type="application/pdf", upsert=True
    )
    post, head = fake.requests
    assert (post.method, post.url.raw_path.decode()) == (
        "POST",
        f"/storage/v1/object/submissions/{USER_ID}/essay%201.pdf",
    )
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"
    assert post.headers["apikey"] == ANON_KEY
    assert post.headers["x-upsert"] == "true"
    assert post.headers["Content-Type"] == "application/pdf"
    assert head.method == "HEAD"
    assert info.size == 10 and info.etag == fake.etag(f"submissions/{PATH}")


def test_large_upload_goes_through_tus_in_chunks(fake: FakeStorage, tmp_path: Path) -> None:
    data = bytes(range(256)) * 12  # 3072 bytes: chunks of 1000, 1000, 1000, 72
    source = tmp_path / "big.zip"
    source.write_bytes(data)
    saved: list[str | None] = []
    seen: list[ProgressEvent] = []
    store_for(fake).upload(
        "submissions",
        PATH,
        source,
        content_type="application/zip",
        upsert=False,
        resume=ResumeSlot(None, saved.append),
        progress=seen.append,
    )
    create = fake.requests[0]
    assert (create.method, create.url.path) == ("POST", "/storage/v1/upload/resumable")
    assert create.headers["Tus-Resumable"] == "1.0.0"
    assert create.headers["Upload-Length"] == str(len(data))
    assert create.headers["x-upsert"] == "false"
    (upload,) = fake.uploads.values()
    assert upload["meta"] == {
        "bucketName": "submissions",
        "objectName": PATH,
        "contentType": "application/zip",
        "cacheControl": "3600",
    }
    patches = [r for r in fake.requests if r.method == "PATCH"]
    assert [r.headers["Upload-Offset"] for r in patches] == ["0", "1000", "2000", "3000"]
    assert fake.objects[f"submissions/{PATH}"] == data
    assert [(e.task, e.done, e.total) for e in seen] == [
        (f"upload submissions/{PATH}", done, len(data)) for done in (0, 1000, 2000, 3000, 3072)
    ]
    assert saved[0] is not None and saved[0].startswith(f"{URL}/storage/v1/upload/resumable/")
    assert saved[-1] is None  # done: nothing to resume


def test_cut_tus_upload_resumes_from_the_servers_offset(fake: FakeStorage, tmp_path: Path) -> None:
    data = b"x" * 2600
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    store = store_for(fake)
    slot = ResumeSlot(None, lambda url: setattr(slot, "url", url))
    fake.fail_patch_at = {2}
    with pytest.raises(Unavailable) as caught:
        store.upload(
            "submissions", PATH, source, content_type="text/plain", upsert=True, resume=slot
        )
    assert not is_refusal(caught.value)  # the queue keeps it and retries
    assert slot.url is not None
    before = len(fake.requests)
    store.upload("submissions", PATH, source, content_type="text/plain", upsert=True, resume=slot)
    again = fake.requests[before:]
    assert [r.method for r in again[:1]] == ["HEAD"]  # where did we stop?
    assert not any(r.method == "POST" for r in again)  # no second upload created
    assert [r.headers["Upload-Offset"] for r in again if r.method == "PATCH"] == ["1000", "2000"]
    assert fake.objects[f"submissions/{PATH}"] == data


def test_offset_mismatch_is_resynchronised_with_head(fake: FakeStorage, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(b"y" * 2600)
    store = store_for(fake)
    slot = ResumeSlot(None, lambda url: setattr(slot, "url", url))
    fake.fail_patch_at = {2}
    with pytest.raises(Unavailable):
        store.upload(
            "submissions", PATH, source, content_type="text/plain", upsert=True, resume=slot
        )
    # The second chunk did land before the connection broke, and the first HEAD after it
    # still answers the old offset: the PATCH at that offset is refused with 409.
    (upload,) = fake.uploads.values()
    upload["data"] = b"y" * 2000
    fake.stale_heads = 1
    before = len(fake.requests)
    store.upload("submissions", PATH, source, content_type="text/plain", upsert=True, resume=slot)
    again = [(r.method, r.headers.get("Upload-Offset")) for r in fake.requests[before:]]
    assert again[:4] == [("HEAD", None), ("PATCH", "1000"), ("HEAD", None), ("PATCH", "2000")]
    assert fake.objects[f"submissions/{PATH}"] == b"y" * 2600


def test_storage_refusals_and_outages_are_told_apart(fake: FakeStorage, tmp_path: Path) -> None:
    source = tmp_path / "a.pdf"
    source.write_bytes(b"%PDF")
    fake.refuse = True
    with pytest.raises(PermissionDenied) as refused:
        store_for(fake).upload("submissions", PATH, source, content_type="a/b", upsert=True)
    assert is_refusal(refused.value) and "row-level security" in str(refused.value)
    down = SupabaseObjectStore(
        URL,
        ANON_KEY,
        lambda: Identity.from_jwt(TOKEN),
        http_client=httpx.Client(
            transport=httpx.MockTransport(lambda _r: httpx.Response(503, text="busy"))
        ),
    )
    with pytest.raises(Unavailable) as outage:
        down.upload("submissions", PATH, source, content_type="a/b", upsert=True)
    assert not is_refusal(outage.value)


def test_download_is_conditional_on_the_etag(fake: FakeStorage, tmp_path: Path) -> None:
    fake.objects[f"course-materials/{PATH}"] = b"slides"
    store = store_for(fake)
    dest = tmp_path / "copy"
    info = store.download("course-materials", PATH, dest)
    assert info is not None and dest.read_bytes() == b"slides"
    assert store.download("course-materials", PATH, tmp_path / "again", etag=info.etag) is None
    assert fake.requests[-1].headers["If-None-Match"] == info.etag
    assert not (tmp_path / "again").exists()
    fake.objects[f"course-materials/{PATH}"] = b"slides v2"
    newer = store.download("course-materials", PATH, dest, etag=info.etag)
    assert newer is not None and newer.etag != info.etag and dest.read_bytes() == b"slides v2"


@pytest.mark.live
def test_live_tus_upload_retry_and_conditional_download(tmp_path: Path) -> None:
    """Against a real project with this repository's policies: a file into the user's own
    avatars folder through TUS (one final chunk), uploaded twice (a retry: still one object),
    downloaded, then not downloaded again while unchanged."""
    from pysync.config import Settings

    settings = Settings.load()
    needed = (settings.supabase_url, settings.anon_key, settings.service_role_key)
    if not all(needed):
        pytest.skip("live files need SUPABASE_URL, SUPABASE_ANON_KEY and SUPABASE_SERVICE_ROLE_KEY")
    from supabase_auth import SyncGoTrueAdminAPI

    from pysync import Client

    url, anon_key, service_key = (str(value) for value in needed)
    admin = SyncGoTrueAdminAPI(
        url=f"{url.rstrip('/')}/auth/v1",
        headers={"apikey": service_key, "Authorization": f"Bearer {service_key}"},
    )
    email, password = f"files-{uuid.uuid4().hex[:10]}@example.com", uuid.uuid4().hex
    created = admin.create_user({"email": email, "password": password, "email_confirm": True})
    assert created.user is not None
    path = f"{created.user.id}/live.png"
    source = tmp_path / "live.png"
    source.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100_000))
    try:
        with Client.supabase(url, anon_key, email, password) as user:
            store = object_store_for(user)
            assert isinstance(store, SupabaseObjectStore)
            store.resumable_threshold = 0  # TUS even for this small file
            first = store.upload("avatars", path, source, content_type="image/png", upsert=True)
            second = store.upload("avatars", path, source, content_type="image/png", upsert=True)
            assert first.size == second.size == source.stat().st_size
            copy = tmp_path / "copy.png"
            info = store.download("avatars", path, copy)
            assert info is not None and copy.read_bytes() == source.read_bytes()
            assert store.download("avatars", path, tmp_path / "x", etag=info.etag) is None
            listed = user.storage.list("avatars", created.user.id)
            assert [o.name for o in listed] == [path]
            user.storage.remove("avatars", [path])
    finally:
        admin.delete_user(created.user.id)
