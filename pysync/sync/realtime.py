"""Realtime nudges from a Supabase project: one private broadcast channel per held bucket.

The server sends ``{"bucket": "<table>:<key>"}`` with event ``sync`` on the private topic
``sync:<table>:<key>`` when a bucket changes (docs/sync-protocol.md, "Realtime nudges"); RLS on
``realtime.messages`` lets only callers who may hold the bucket join. :class:`RealtimeNudges`
keeps realtime-py's asyncio client on a thread of its own, so the synchronous cache and its
:class:`~pysync.sync.triggers.Triggers` use it like :class:`~pysync.sync.triggers.PgNudges`.
The user's access token is re-sent whenever the bucket set changes, so an hours-long session
keeps its channels authorized as the token refreshes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import Any

from realtime import AsyncRealtimeChannel, AsyncRealtimeClient
from realtime.types import BroadcastPayload, RealtimeChannelOptions

__all__ = ["RealtimeNudges", "realtime_url"]


def realtime_url(project_url: str) -> str:
    """``https://ref.supabase.co`` → ``wss://ref.supabase.co/realtime/v1``."""
    base = project_url.rstrip("/")
    scheme, _, rest = base.partition("://")
    return f"{'ws' if scheme == 'http' else 'wss'}://{rest}/realtime/v1"


class RealtimeNudges:
    """Joins ``sync:<table>:<key>`` for every held bucket; calls ``on_nudge(bucket)`` per nudge.

    Supabase caps channels per connection (100 on most plans): a cache holding more buckets
    than that relies on its periodic sync for the rest."""

    def __init__(
        self,
        url: str,
        api_key: str,
        token: Callable[[], str],
        on_nudge: Callable[[str], None],
        *,
        timeout: float = 10.0,
    ) -> None:
        self._token = token
        self._on_nudge = on_nudge
        self._timeout = timeout
        self._channels: dict[str, AsyncRealtimeChannel] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="pysync-realtime"
        )
        self._thread.start()
        self._client = AsyncRealtimeClient(url, token=api_key, params={"apikey": api_key})
        self._run(self._connect())

    def _run(self, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(self._timeout)

    async def _connect(self) -> None:
        await self._client.connect()
        await self._client.set_auth(self._token())

    def _received(self, message: BroadcastPayload) -> None:
        bucket = message["payload"].get("bucket")
        if isinstance(bucket, str):
            self._on_nudge(bucket)

    async def _reconcile(self, buckets: set[str]) -> None:
        await self._client.set_auth(self._token())
        for bucket in sorted(set(self._channels) - buckets):
            await self._client.remove_channel(self._channels.pop(bucket))
        for bucket in sorted(buckets - set(self._channels)):
            options: RealtimeChannelOptions = {
                "config": {"broadcast": None, "presence": None, "private": True}
            }
            channel = self._client.channel(f"sync:{bucket}", options)
            channel.on_broadcast("sync", self._received)
            await channel.subscribe()
            self._channels[bucket] = channel

    def set_buckets(self, buckets: Iterable[str]) -> None:
        """Listen to exactly ``buckets`` (``<table>:<key>`` names)."""
        self._run(self._reconcile(set(buckets)))

    @property
    def topics(self) -> list[str]:
        return sorted(f"sync:{bucket}" for bucket in self._channels)

    async def _cancel_the_rest(self) -> None:
        """Cancel the client's own tasks (listening, heartbeats) and wait for them, so none
        is destroyed pending when the loop closes."""
        current = asyncio.current_task()
        rest = [task for task in asyncio.all_tasks() if task is not current]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self._client.close())
        with contextlib.suppress(Exception):
            self._run(self._cancel_the_rest())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self._timeout)
        if not self._thread.is_alive():
            # A loop left open keeps its self-pipe sockets until the garbage collector
            # finds them (a ResourceWarning in whatever runs then).
            self._loop.close()
