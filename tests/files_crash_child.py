"""The process the files crash test kills (tests/test_sync_files_crash.py), in the style of
tests/crash_child.py: ``python -m tests.files_crash_child '<json spec>'`` opens the cache
file and its files, then does the spec's ``mode``:

* ``attach``: attach ``count`` files to new messages, then exit;
* ``upload-then-die``: upload every queued file, then SIGKILL itself before any push: the
  window between "the file is in Storage" and "the row is on the server";
* ``sync``: one sync, then exit;
* ``chaos``: loop (attach a file to a new message, sync) until killed.

Every attach is logged to the run's log (``O_APPEND``, one ``os.write`` a line) as ``queued
<message id> <path> <md5>`` once its SQLite transaction committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sys
from typing import Any

from pysync.datasources import Context
from pysync.gateway import Identity, PostgresGateway
from pysync.sync import SyncCache, SyncError
from pysync.sync.connector import Connector
from pysync.sync.files import FileSync, LocalObjectStore, files_folder


class _Source:
    def __init__(self, gateway: PostgresGateway, token: str, user_id: str) -> None:
        self._gateway = gateway.as_identity(Identity.from_jwt(token))
        self.user_id = user_id

    @property
    def gateway(self) -> PostgresGateway:
        return self._gateway


def run(spec: dict[str, Any]) -> None:
    log = os.open(spec["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def note(line: str) -> None:
        os.write(log, (line + "\n").encode())

    rng = random.Random(spec["seed"])
    gateway = PostgresGateway.connect(spec["url"], jwt_secret=spec["jwt_secret"], max_size=1)
    files_gw = PostgresGateway.connect(
        spec["url"], jwt_secret=spec["jwt_secret"], schemas=("storage",), max_size=1
    )
    source = _Source(gateway, spec["token"], spec["user_id"])
    store = LocalObjectStore(Context(files_gw, Identity.from_jwt(spec["token"])), spec["objects"])
    connector = Connector(source, attempts=2, wait_initial=0.01, wait_max=0.05)
    cache = SyncCache.open(source, spec["cache"], connector=connector)
    files = FileSync(cache, store, files_folder(spec["cache"]))
    note("ready")

    def attach(step: int) -> None:
        data = rng.randbytes(rng.randrange(1, 200_000))
        row = files.insert(
            "messages",
            {"conversation_id": spec["conversation_id"], "sender_id": spec["user_id"], "body": ""},
            file=data,
            filename=f"file-{spec['seed']}-{step}.bin",
        )
        local = cache.get("messages", row)
        assert local is not None
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        note(f"queued {row} {local['attachment_path']} {md5}")

    mode = spec["mode"]
    if mode == "attach":
        for step in range(spec["count"]):
            attach(step)
    elif mode == "upload-then-die":
        files.upload()
        note("uploaded")
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "sync":
        cache.sync()
        note("synced")
    else:
        step = 0
        while True:
            step += 1
            attach(step)
            try:
                cache.sync()
                note("synced")
            except SyncError as exc:
                note(f"sync-failed {exc}".replace("\n", " "))
    files.close()
    cache.close()
    files_gw.close()
    gateway.close()
    note("done")


if __name__ == "__main__":
    run(json.loads(sys.argv[1]))
