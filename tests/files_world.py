"""Files for sync tests: a local object store per user (the real ``storage.objects`` RLS
decides), and a cache with its :class:`FileSync`, both routed through an optional loopback
proxy so a test can take the device offline."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pysync.auth import LocalUser
from pysync.client import Client, _as_authenticator
from pysync.config import LOCAL_JWT_SECRET
from pysync.datasources import Context
from pysync.gateway import Identity, PostgresGateway
from pysync.sync import SyncCache, SyncError
from pysync.sync.connector import Connector
from pysync.sync.files import PLATFORM_RULES, FileRule, FileSync, LocalObjectStore, files_folder
from tests.sync_world import SyncWorld


def eager_materials() -> list[FileRule]:
    """The platform's rules with course materials downloaded after every sync."""
    return [
        dataclasses.replace(r, eager=True) if r.bucket == "course-materials" else r
        for r in PLATFORM_RULES
    ]


def routed_url(url: str, port: int | None) -> str:
    """``url`` as ``authenticator``, through the proxy on ``port`` when given."""
    params = {k: v for k, v in conninfo_to_dict(url).items() if v is not None}
    if port is not None:
        params.update(host="127.0.0.1", port=str(port), connect_timeout="2")
    return _as_authenticator(make_conninfo("", **params))


@dataclasses.dataclass
class Device:
    cache: SyncCache
    files: FileSync
    store: LocalObjectStore
    client: Client


@contextmanager
def device(
    world: SyncWorld,
    user: LocalUser,
    path: Path,
    objects: Path,
    *,
    proxy_port: int | None = None,
    on_rejected: Any = None,
    **options: Any,
) -> Iterator[Device]:
    """A user's cache and files; ``objects`` is the local store's byte folder (shared by
    every user of a test, like a project's Storage)."""
    url = routed_url(world.url, proxy_port)
    api = PostgresGateway.connect(url, jwt_secret=LOCAL_JWT_SECRET, max_size=2, timeout=1.0)
    files_gw = PostgresGateway.connect(
        url, jwt_secret=LOCAL_JWT_SECRET, schemas=("storage",), max_size=1, timeout=1.0
    )
    token = world.auth.session_for(user).access_token
    client = Client.for_token(api, token)
    store = LocalObjectStore(Context(files_gw, Identity.from_jwt(token)), objects)
    connector = Connector(client, attempts=4, wait_initial=0.05, wait_max=0.5)
    cache = SyncCache.open(client, path, connector=connector, on_rejected=on_rejected)
    files = FileSync(cache, store, files_folder(path), **options)
    try:
        yield Device(cache, files, store, client)
    finally:
        files.close()
        cache.close()
        files_gw.close()
        api.close()


def sync_once_reconnected(cache: SyncCache, tries: int = 5) -> None:
    """Sync as the app's triggers would after connectivity returns: a failure (the pool
    still reconnecting) is retried after the cache's backoff, a few times."""
    for attempt in range(tries):
        try:
            cache.sync()
            return
        except SyncError:
            if attempt == tries - 1:
                raise
            time.sleep(cache.retry_in or 0.5)


def objects_named(world: SyncWorld, bucket: str, prefix: str) -> list[tuple[Any, ...]]:
    """``(name, eTag, owner_id)`` of every object under ``prefix``, as postgres sees them."""
    return world.sql(
        "select name, metadata ->> 'eTag', owner_id from storage.objects"
        " where bucket_id = %s and starts_with(name, %s) order by name",
        bucket,
        prefix,
    )
