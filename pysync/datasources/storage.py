"""Files in storage buckets: the Storage API in production, its database side locally.

In production :class:`SupabaseStorage` talks to the project's Storage API through storage3
with the user's token; the Storage server checks the bucket's limits, then writes the object's
row in ``storage.objects`` *as the user*, so the policies in ``policies/storage.sql`` decide.

Locally no Storage server runs. :class:`LocalStorage` does the database half of its work:
it writes and reads the object metadata rows in ``storage.objects`` through a
:class:`~pysync.gateway.PostgresGateway` whose request schema is ``storage``, as the user,
exactly as the Storage server does (role ``authenticated``, the user's claims), so the same
policies decide and permission tests run for real. That gateway's ``db-pre-request`` must be
:data:`STORAGE_PRE_REQUEST`, which lets its deletes past ``storage.protect_delete()`` as the
Storage server lets its own (a plain SQL delete is refused). File bytes are not kept, and
bucket limits (size, MIME types), which the Storage server enforces, are not checked.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import httpx
from storage3 import SyncStorageClient
from storage3.exceptions import StorageApiError

from pysync.datasources._base import Context
from pysync.datasources.models import StoredObject, parse
from pysync.gateway import GatewayError, Identity, IdentityKind, NotFound, asc, eq, ilike, in_
from pysync.gateway.apikeys import request_headers
from pysync.gateway.errors import error_for

__all__ = ["STORAGE_PRE_REQUEST", "LocalStorage", "SupabaseStorage"]

#: The local storage gateway's ``db-pre-request`` (a local-only emulation function): on a
#: DELETE it sets ``storage.allow_delete_query``, as the Storage server does for its deletes.
STORAGE_PRE_REQUEST = "pysync_local.storage_api_request"


def _like_prefix(prefix: str) -> str:
    """``prefix`` as a LIKE pattern that matches it literally, then anything."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _local_object(row: dict[str, Any]) -> StoredObject:
    metadata = row.get("metadata") or {}
    return parse(
        StoredObject,
        {
            **row,
            "size": metadata.get("size"),
            "mimetype": metadata.get("mimetype"),
        },
    )


class LocalStorage:
    """Object metadata in the embedded database, written as the user (see the module doc)."""

    def __init__(self, context: Context) -> None:
        #: A context whose gateway's request schema is ``storage``.
        self._context = context

    @property
    def context(self) -> Context:
        """The user and storage-schema gateway (the sync engine's local object store)."""
        return self._context

    def upload_metadata(
        self, bucket: str, path: str, size: int, mimetype: str, *, upsert: bool = False
    ) -> StoredObject:
        """Record an uploaded file as the Storage server would (owner = the caller);
        ``upsert`` replaces an existing object, which needs the update policy as well."""
        me = self._context.user_id
        row = {
            "bucket_id": bucket,
            "name": path,
            "owner": me,
            "owner_id": str(me),
            "metadata": {"size": size, "mimetype": mimetype},
        }
        gw = self._context.gateway()
        if upsert:
            (written,) = gw.upsert("objects", row, on_conflict=("bucket_id", "name"))
        else:
            (written,) = gw.insert("objects", row)
        return _local_object(written)

    def info(self, bucket: str, path: str) -> StoredObject:
        rows = (
            self._context.gateway()
            .select("objects", filters=[eq("bucket_id", bucket), eq("name", path)])
            .rows
        )
        if not rows:
            raise NotFound(f"no object {bucket}/{path} is visible to you", code="PGRST116")
        return _local_object(rows[0])

    def list(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        """Objects under ``prefix`` the caller may read, by name."""
        rows = (
            self._context.gateway()
            .select(
                "objects",
                filters=[eq("bucket_id", bucket), ilike("name", _like_prefix(prefix))],
                order=[asc("name")],
            )
            .rows
        )
        # ilike is case-insensitive; a prefix is not.
        return [_local_object(row) for row in rows if str(row["name"]).startswith(prefix)]

    def remove(self, bucket: str, paths: Sequence[str]) -> builtins.list[StoredObject]:
        """Delete objects; the ones actually removed (others were not visible or allowed)."""
        if not paths:
            return []
        rows = self._context.gateway().delete(
            "objects", filters=[eq("bucket_id", bucket), in_("name", list(paths))]
        )
        return [_local_object(row) for row in rows]


def _storage_error(exc: StorageApiError) -> GatewayError:
    try:
        status = int(exc.status)
    except (TypeError, ValueError):
        status = None
    return error_for(None, exc.message, details=exc.code, status=status)


class SupabaseStorage:
    """The Storage API of a Supabase project, as the signed-in user (storage3)."""

    def __init__(
        self,
        url: str,
        anon_key: str,
        identity: Callable[[], Identity],
        *,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._url = f"{url.rstrip('/')}/storage/v1/"
        self._anon_key = anon_key
        self._identity = identity
        self._http = http_client or httpx.Client(follow_redirects=True)

    @property
    def project(self) -> tuple[str, str, Callable[[], Identity]]:
        """The project URL, anon key and identity source (the sync engine's object store
        talks to the same Storage as the same user)."""
        return self._url.removesuffix("/storage/v1/"), self._anon_key, self._identity

    def _client(self) -> SyncStorageClient:
        identity = self._identity()
        token = identity.token if identity.kind is IdentityKind.TOKEN else None
        headers = request_headers(self._anon_key, token)
        return SyncStorageClient(self._url, headers, http_client=self._http)

    def upload(
        self,
        bucket: str,
        path: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        upsert: bool = False,
    ) -> StoredObject:
        try:
            response = (
                self._client()
                .from_(bucket)
                .upload(
                    path,
                    data,
                    {"content-type": content_type, "upsert": "true" if upsert else "false"},
                )
            )
        except StorageApiError as exc:
            raise _storage_error(exc) from exc
        object_id = getattr(response, "id", None)
        return StoredObject(
            bucket_id=bucket,
            name=path,
            id=UUID(object_id) if object_id else None,
            size=len(data),
            mimetype=content_type,
        )

    def download(self, bucket: str, path: str) -> bytes:
        try:
            return self._client().from_(bucket).download(path)
        except StorageApiError as exc:
            raise _storage_error(exc) from exc

    def list(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        """Objects directly in the folder ``prefix`` (the Storage API lists one level)."""
        try:
            entries = self._client().from_(bucket).list(prefix or None)
        except StorageApiError as exc:
            raise _storage_error(exc) from exc
        folder = prefix.rstrip("/")
        found: builtins.list[StoredObject] = []
        for entry in entries:
            metadata = entry.get("metadata") or {}
            name = f"{folder}/{entry['name']}" if folder else str(entry["name"])
            found.append(
                parse(
                    StoredObject,
                    {
                        "bucket_id": bucket,
                        "name": name,
                        "id": entry.get("id"),
                        "size": metadata.get("size"),
                        "mimetype": metadata.get("mimetype"),
                        "created_at": entry.get("created_at"),
                        "updated_at": entry.get("updated_at"),
                    },
                )
            )
        return found

    def remove(self, bucket: str, paths: Sequence[str]) -> builtins.list[StoredObject]:
        try:
            removed = self._client().from_(bucket).remove(list(paths))
        except StorageApiError as exc:
            raise _storage_error(exc) from exc
        return [StoredObject(bucket_id=bucket, name=str(entry.get("name"))) for entry in removed]

    def signed_url(self, bucket: str, path: str, expires_in: int = 3600) -> str:
        """A URL anyone holding it can download the file from, for ``expires_in`` seconds."""
        try:
            signed = self._client().from_(bucket).create_signed_url(path, expires_in)
        except StorageApiError as exc:
            raise _storage_error(exc) from exc
        url = signed.get("signedURL") or signed.get("signedUrl")
        if not url:
            raise NotFound(f"no signed URL for {bucket}/{path}")
        return str(url)
