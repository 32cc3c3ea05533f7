"""When to sync: at start, when connectivity returns, periodically, on a realtime nudge, or
when asked. Every trigger goes through one scheduler. Nudges are throttled, not debounced: the
first nudge after a quiet spell syncs at once (a message shows up in milliseconds, not after a
debounce delay), and the nudges that arrive within ``min_interval`` of that sync's start join
one more sync at the end of the window, so a burst (a busy conversation, or the several
buckets one write touches) costs two pulls at most, never one each. A failed sync is retried
after the state machine's backoff.
Nudges locally come from PostgreSQL ``NOTIFY`` on the topic ``sync:<table>:<key>`` (the
emulated ``realtime.send`` also notifies): :class:`PgNudges` ``LISTEN``\\ s on the held buckets. On
a Supabase project the same topics are private Realtime broadcast channels
(:class:`~pysync.sync.realtime.RealtimeNudges`); any object with ``set_buckets`` and ``close``
(:class:`NudgeSource`) plugs in the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import select
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import psycopg
from psycopg import sql

from pysync.sync.cache import SyncCache
from pysync.sync.errors import SyncError
from pysync.sync.protocol import Connectivity

__all__ = ["NudgeSource", "PgNudges", "Triggers", "notify_channel"]


class NudgeSource(Protocol):
    def set_buckets(self, buckets: Iterable[str]) -> None: ...

    def close(self) -> None: ...


class Triggers:
    """Runs ``cache.sync()`` on a background timer thread; nudge-driven syncs start at most
    once per ``min_interval`` seconds (the first at once)."""

    def __init__(
        self,
        cache: SyncCache,
        *,
        period: float = 300.0,
        min_interval: float = 0.25,
        nudges: Callable[[Callable[[str], None]], NudgeSource] | None = None,
    ) -> None:
        self._cache = cache
        self._period = period
        self._min_interval = min_interval
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._due: float | None = None
        self._last_start = float("-inf")
        self._closed = False
        self._nudges = None if nudges is None else nudges(self.nudge)
        self.runs = 0

    def start(self) -> None:
        self._schedule(0.0)

    @property
    def next_run_in(self) -> float | None:
        """Seconds until the next scheduled sync (``None`` while none is scheduled)."""
        with self._lock:
            return None if self._due is None else max(0.0, self._due - time.monotonic())

    def manual(self) -> None:
        self._schedule(0.0)

    def nudge(self, bucket: str) -> None:
        """Sync now, or, within ``min_interval`` of the last sync's start, once at the end of
        that window. A sync that is running when the nudge arrives may have read before the
        write it announces, so the nudge always leads to a sync that starts after it."""
        with self._lock:
            wait = self._last_start + self._min_interval - time.monotonic()
        self._schedule(max(0.0, wait))

    def connectivity(self, online: bool) -> None:
        with contextlib.suppress(SyncError):
            self._cache.handle(Connectivity(online))
        if online:
            self._schedule(0.0)

    def _schedule(self, delay: float) -> None:
        with self._lock:
            if self._closed:
                return
            due = time.monotonic() + delay
            if self._due is not None and self._due <= due:
                return  # a run is already due sooner: this trigger joins it
            if self._timer is not None:
                self._timer.cancel()
            self._due = due
            self._timer = threading.Timer(delay, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer, self._due = None, None
            if self._closed:
                return
            self._last_start = time.monotonic()
        self.runs += 1
        next_in = self._period
        try:
            self._cache.sync()
        except SyncError:
            if self._cache.retry_in is not None:
                next_in = min(self._cache.retry_in, self._period)
        except Exception:
            next_in = self._period
        if self._nudges is not None:
            with contextlib.suppress(Exception):
                self._nudges.set_buckets(self._cache.held_buckets())
        self._schedule(next_in)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
        if self._nudges is not None:
            self._nudges.close()


def _bucket_of(channel: str, payload: str) -> str:
    """The bucket a NOTIFY is about: its payload's ``bucket``, else the topic's tail."""
    try:
        bucket = json.loads(payload)["payload"]["bucket"]
    except (ValueError, KeyError, TypeError):
        return channel.removeprefix("sync:")
    return str(bucket)


def notify_channel(topic: str) -> str:
    """The local ``NOTIFY`` channel of a realtime topic: the topic itself, or, beyond
    PostgreSQL's 63-byte channel names, ``realtime:<md5 of the topic>`` (as the emulated
    ``realtime.send`` does)."""
    if len(topic.encode()) <= 63:
        return topic
    return "realtime:" + hashlib.md5(topic.encode()).hexdigest()


class PgNudges:
    """``LISTEN`` on each held bucket's topic ``sync:<table>:<key>`` on a dedicated connection;
    calls ``on_nudge(bucket)`` for each notification. For the local database (and tests)."""

    def __init__(self, url: str, on_nudge: Callable[[str], None], *, poll: float = 0.5) -> None:
        self._conn: psycopg.Connection[Any] = psycopg.connect(url, autocommit=True)
        self._on_nudge = on_nudge
        self._poll = poll
        self._topics: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="pysync-nudges")
        self._thread.start()

    def set_buckets(self, buckets: Iterable[str]) -> None:
        wanted = {notify_channel(f"sync:{bucket}") for bucket in buckets}
        with self._lock:
            for topic in sorted(wanted - self._topics):
                self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(topic)))
            for topic in sorted(self._topics - wanted):
                self._conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(topic)))
            self._topics = wanted

    def _loop(self) -> None:
        # Wait on the socket, not a timer: a notification wakes the loop at once (a fixed
        # sleep added half the poll interval to every nudge's latency on average); ``poll``
        # bounds the wait, so notifications psycopg read while running LISTEN are seen too.
        while not self._stop.is_set():
            try:
                select.select([self._conn.fileno()], [], [], self._poll)
            except (OSError, ValueError):
                return
            with self._lock:
                try:
                    notices = list(self._conn.notifies(timeout=0, stop_after=100))
                except psycopg.Error:
                    return
            for notice in notices:
                self._on_nudge(_bucket_of(notice.channel, notice.payload))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._conn.close()
