"""Device B of the propagation benchmark, in a process of its own.

Two devices are two processes. Run as threads of one interpreter, A's push and B's pull took
turns on one GIL: B started pulling when the nudge arrived, at A's commit, while A was still
reading its push's answer, so each slowed the other in a way no pair of phones does.

Run as ``python -m pysync.bench._device``. Lines of JSON in both directions:

- in, first: the job: ``url`` (the gateway's, as ``authenticator``), ``secret``, ``token``,
  ``path`` (the SQLite file), ``nudge_url`` (where ``PgNudges`` listens), ``interval`` (the
  triggers' ``min_interval``);
- out: ``{"ready": true}`` once the cache has synced and its triggers have settled;
- in: ``{"want": "<message id>"}``, out: ``{"watching": "<id>"}``; then, when that message is in
  the cache, ``{"arrived": "<id>", "at_ns": <time.monotonic_ns()>}`` (``CLOCK_MONOTONIC``, the
  clock both processes read);
- in: ``{"settle": true}``, out: ``{"settled": true}`` once only the periodic sync is scheduled
  and the throttle's window has passed;
- in: ``{"stop": true}`` (or end of input): close everything and exit.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from pysync.client import Client
from pysync.gateway import PostgresGateway
from pysync.sync import SyncCache
from pysync.sync.triggers import PgNudges, Triggers

_out_lock = threading.Lock()


def _say(message: dict[str, Any]) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def _settle(triggers: Triggers, interval: float, timeout: float = 10.0) -> None:
    """Wait until only the periodic sync is scheduled (no trailing pull pending), then for
    the throttle's window: the next write comes after a quiet spell."""
    deadline = time.monotonic() + timeout
    while (triggers.next_run_in or 0.0) < interval * 4:
        if time.monotonic() > deadline:
            raise TimeoutError(f"device B's syncs did not settle within {timeout:.0f}s")
        time.sleep(0.002)
    time.sleep(interval)


def main() -> None:
    job = json.loads(sys.stdin.readline())
    interval = float(job["interval"])
    gateway = PostgresGateway.connect(job["url"], jwt_secret=job["secret"], min_size=1, max_size=2)
    cache = SyncCache.open(Client.for_token(gateway, job["token"]), job["path"])
    wanted: dict[str, str] = {}

    def written(tables: frozenset[str]) -> None:
        row_id = wanted.get("id")
        if (
            "messages" in tables
            and row_id
            and cache.query("SELECT 1 FROM messages WHERE id = ?", [row_id])
        ):
            at = time.monotonic_ns()
            wanted.clear()
            _say({"arrived": row_id, "at_ns": at})

    cache.pull()
    stop_listening = cache.storage.on_change(written)
    triggers = Triggers(
        cache,
        period=3600,
        min_interval=interval,
        nudges=lambda nudged: PgNudges(job["nudge_url"], nudged),
    )
    try:
        triggers.start()
        _settle(triggers, interval)
        _say({"ready": True})
        for line in sys.stdin:
            command = json.loads(line)
            if "want" in command:
                wanted["id"] = str(command["want"])
                _say({"watching": wanted["id"]})
            elif "settle" in command:
                _settle(triggers, interval)
                _say({"settled": True})
            else:
                break
    finally:
        triggers.close()
        stop_listening()
        cache.close()
        gateway.close()


if __name__ == "__main__":
    main()
