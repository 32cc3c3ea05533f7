"""A Supabase project's Storage API as the file queue's object store, with TUS for big files.

Small files take one ``POST /storage/v1/object/<bucket>/<path>`` (``x-upsert`` when the rule
allows); files of :attr:`SupabaseObjectStore.resumable_threshold` bytes and more use Storage's
TUS endpoint (``/storage/v1/upload/resumable``): the upload URL is saved in the queue's SQLite
row the moment the server hands it out, so an upload cut by a crash or a lost connection goes
on from the server's ``Upload-Offset`` (``HEAD``) instead of starting again, in 6 MiB chunks
(Supabase's required chunk size). Downloads are conditional (``If-None-Match``): an unchanged
file costs a ``304``. Every request carries the user's current token, so Storage's policies
decide as for the app.

Errors become :mod:`pysync.gateway` errors: Storage's JSON body carries the real status in
``statusCode`` (an RLS refusal arrives as HTTP 400 with ``"statusCode": "403"``), which is
what decides refusal (final) against outage (retried).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import httpx

from pysync.gateway import GatewayError, Identity, IdentityKind, Unavailable
from pysync.gateway.errors import error_for
from pysync.progress import ProgressCallback, Reporter
from pysync.sync.files.objects import ObjectInfo, ResumeSlot, transfer

__all__ = ["SupabaseObjectStore"]

TUS_VERSION = "1.0.0"
#: Supabase Storage's chunk size for TUS uploads (every chunk but the last).
TUS_CHUNK = 6 * 1024 * 1024


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def storage_error(response: httpx.Response) -> GatewayError:
    """The gateway error for a Storage answer that is not a success."""
    status = response.status_code
    message = response.reason_phrase or f"HTTP {status}"
    details: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("error") or message)
        details = body.get("error")
        inner = body.get("statusCode")
        if isinstance(inner, str | int) and str(inner).isdigit():
            status = int(inner)
    if "row-level security" in message.lower():
        status = 403
    if status >= 500 and status not in (502, 503, 504):
        return Unavailable(message, details=details, status=status)
    return error_for(None, message, details=details, status=status)


class SupabaseObjectStore:
    """Storage of a Supabase project, as the user ``identity()`` names (fresh each request)."""

    #: Files this big or bigger upload through TUS.
    resumable_threshold = TUS_CHUNK

    def __init__(
        self,
        url: str,
        anon_key: str,
        identity: Callable[[], Identity],
        *,
        http_client: httpx.Client | None = None,
        chunk_size: int = TUS_CHUNK,
    ) -> None:
        self._base = f"{url.rstrip('/')}/storage/v1/"
        self._anon_key = anon_key
        self._identity = identity
        self._http = http_client or httpx.Client(timeout=60.0)
        self._chunk = chunk_size

    def _headers(self, **extra: str) -> dict[str, str]:
        identity = self._identity()
        bearer = identity.token if identity.kind is IdentityKind.TOKEN else None
        return {
            "apikey": self._anon_key,
            "Authorization": f"Bearer {bearer or self._anon_key}",
            **extra,
        }

    def _object_url(self, kind: str, bucket: str, path: str) -> str:
        return f"{self._base}{kind}/{quote(bucket, safe='')}/{quote(path, safe='/')}"

    @contextmanager
    def _transport(self) -> Iterator[None]:
        """A request that never got an answer may pass next time: :class:`Unavailable`."""
        try:
            yield
        except httpx.TransportError as exc:
            raise Unavailable(f"Storage unreachable: {exc}") from exc

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        with self._transport():
            return self._http.request(method, url, **kwargs)

    # -- upload ------------------------------------------------------------------------------

    def upload(
        self,
        bucket: str,
        path: str,
        source: Path,
        *,
        content_type: str,
        upsert: bool,
        resume: ResumeSlot | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        size = source.stat().st_size
        sent = transfer(progress, "upload", bucket, path, size)
        if size >= self.resumable_threshold:
            self._tus(bucket, path, source, size, content_type, upsert, resume, sent)
        else:
            sent.update()
            response = self._send(
                "POST",
                self._object_url("object", bucket, path),
                content=source.read_bytes(),
                headers=self._headers(
                    **{"Content-Type": content_type, "x-upsert": "true" if upsert else "false"}
                ),
            )
            if response.status_code >= 400:
                raise storage_error(response)
            sent.update(size)
        return self.info(bucket, path)

    def _tus_offset(self, url: str) -> int | None:
        """The server's offset of an upload, or None when it no longer knows the upload."""
        response = self._send("HEAD", url, headers=self._headers(**{"Tus-Resumable": TUS_VERSION}))
        if response.status_code in (404, 410):
            return None
        if response.status_code >= 400:
            raise storage_error(response)
        return int(response.headers.get("Upload-Offset", "0"))

    def _tus_create(
        self, bucket: str, path: str, size: int, content_type: str, upsert: bool
    ) -> str:
        metadata = ",".join(
            f"{key} {_b64(value)}"
            for key, value in (
                ("bucketName", bucket),
                ("objectName", path),
                ("contentType", content_type),
                ("cacheControl", "3600"),
            )
        )
        response = self._send(
            "POST",
            f"{self._base}upload/resumable",
            headers=self._headers(
                **{
                    "Tus-Resumable": TUS_VERSION,
                    "Upload-Length": str(size),
                    "Upload-Metadata": metadata,
                    "x-upsert": "true" if upsert else "false",
                }
            ),
        )
        location = str(response.headers.get("Location") or "")
        if response.status_code >= 400 or not location:
            raise storage_error(response)
        return urljoin(self._base, location)

    def _tus(
        self,
        bucket: str,
        path: str,
        source: Path,
        size: int,
        content_type: str,
        upsert: bool,
        resume: ResumeSlot | None,
        sent: Reporter,
    ) -> None:
        url = resume.url if resume is not None else None
        offset = self._tus_offset(url) if url else None
        if url is None or offset is None:
            url = self._tus_create(bucket, path, size, content_type, upsert)
            offset = 0
            if resume is not None:
                resume.save(url)
        sent.update(offset)
        resyncs = 0
        with source.open("rb") as handle:
            while offset < size:
                handle.seek(offset)
                chunk = handle.read(self._chunk)
                response = self._send(
                    "PATCH",
                    url,
                    content=chunk,
                    headers=self._headers(
                        **{
                            "Tus-Resumable": TUS_VERSION,
                            "Upload-Offset": str(offset),
                            "Content-Type": "application/offset+octet-stream",
                        }
                    ),
                )
                if response.status_code == 409 and resyncs < 3:
                    # Our offset is not the server's (a chunk landed but its answer was lost).
                    resyncs += 1
                    known = self._tus_offset(url)
                    if known is None:
                        raise Unavailable(f"the resumable upload of {bucket}/{path} expired")
                    offset = known
                    continue
                if response.status_code >= 400:
                    raise storage_error(response)
                offset = int(response.headers.get("Upload-Offset", offset + len(chunk)))
                sent.update(offset)
        if resume is not None:
            resume.save(None)

    # -- read --------------------------------------------------------------------------------

    def info(self, bucket: str, path: str) -> ObjectInfo:
        response = self._send(
            "HEAD", self._object_url("object/authenticated", bucket, path), headers=self._headers()
        )
        if response.status_code >= 400:
            raise storage_error(response)
        return ObjectInfo(
            bucket,
            path,
            int(response.headers.get("Content-Length", "0")),
            response.headers.get("ETag"),
        )

    def download(
        self,
        bucket: str,
        path: str,
        dest: Path,
        *,
        etag: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo | None:
        headers = self._headers(**({"If-None-Match": etag} if etag else {}))
        url = self._object_url("object/authenticated", bucket, path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with self._transport(), self._http.stream("GET", url, headers=headers) as response:
                if response.status_code == 304:
                    return None
                if response.status_code >= 400:
                    response.read()
                    raise storage_error(response)
                # Content-Length counts encoded bytes: a total only when nothing is decoded.
                length = response.headers.get("Content-Length")
                encoded = response.headers.get("Content-Encoding", "identity") != "identity"
                total = int(length) if length and length.isdigit() and not encoded else None
                received = transfer(progress, "download", bucket, path, total)
                received.update()
                size = 0
                with part.open("wb") as out:
                    for block in response.iter_bytes():
                        out.write(block)
                        size += len(block)
                        # A wrong length from the server grows the total, never fails the copy.
                        received.update(size, total=None if total is None else max(total, size))
                part.replace(dest)
                received.update(size, total=size)
                return ObjectInfo(bucket, path, size, response.headers.get("ETag"))
        finally:
            part.unlink(missing_ok=True)
