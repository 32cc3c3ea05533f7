"""The process the crash harness kills (tests/test_sync_faults.py).

``python -m tests.crash_child --serve`` is a fork server: it imports the sync engine once,
then for every ``run <json>`` line on stdin forks a child and prints ``pid <n>``. Each child
is a fresh process that opens the cache file, then loops: queue a random write (a message in
the user's conversation, an edit of one, a profile edit, a device row added or removed) and
now and then sync, until it is killed. Forking from a warm process makes a restart cost
milliseconds instead of a Python start-up with every import, so hundreds of kills fit in a
CI minute; the child still opens everything (cache file, database connections) itself.

Every write is logged to the run's log file (``O_APPEND``, one ``os.write`` per line, so a
SIGKILL never leaves half a line) twice: ``intent <op_id> <table> <kind> <row_id>`` before
it is queued (the op id is predicted: the child is the cache's only writer) and ``queued
<op_id>`` once the SQLite transaction committed. The test's ledger needs both: an intent
without ``queued`` may or may not have committed, a ``queued`` op must never be lost.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import uuid
from typing import Any

from pysync.gateway import Identity, PostgresGateway
from pysync.sync import SyncCache, SyncError
from pysync.sync.connector import Connector


class _Source:
    """What :class:`SyncCache` needs of a client: a gateway acting as the user."""

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
    user_id, conversation = spec["user_id"], spec["conversation_id"]
    note("start")
    gateway = PostgresGateway.connect(spec["url"], jwt_secret=spec["jwt_secret"], max_size=1)
    source = _Source(gateway, spec["token"], user_id)
    connector = Connector(source, attempts=2, wait_initial=0.01, wait_max=0.05)
    cache = SyncCache.open(source, spec["cache"], connector=connector)
    note("ready")
    step = 0
    while True:
        step += 1
        tag = f"{spec['seed']}.{step}"
        next_op = int(cache.storage.meta("last_op_id") or 0) + 1
        choice = rng.random()
        if choice < 0.15 or cache.get("profiles", user_id) is None:
            try:
                cache.sync()
                note("synced")
            except SyncError as exc:
                note(f"sync-failed {exc}".replace("\n", " "))
            continue
        if choice < 0.55:
            row_id = str(uuid.uuid4())
            note(f"intent {next_op} messages insert {row_id}")
            cache.insert(
                "messages",
                {"id": row_id, "conversation_id": conversation, "sender_id": user_id, "body": tag},
            )
        elif choice < 0.7:
            mine = cache.query("select id from messages where sender_id = ?", (user_id,))
            if not mine:
                continue
            row_id = rng.choice(mine)["id"]
            note(f"intent {next_op} messages update {row_id}")
            cache.update("messages", row_id, {"body": f"edit {tag}"})
        elif choice < 0.8:
            row_id = user_id
            note(f"intent {next_op} profiles update {row_id}")
            cache.update("profiles", row_id, {"display_name": f"Name {tag}"})
        elif choice < 0.92:
            row_id = str(uuid.uuid4())
            note(f"intent {next_op} devices insert {row_id}")
            cache.insert(
                "devices",
                {"id": row_id, "user_id": user_id, "device_id": f"d-{tag}", "platform": "web"},
            )
        else:
            devices = cache.query("select id from devices where user_id = ?", (user_id,))
            if not devices:
                continue
            row_id = rng.choice(devices)["id"]
            note(f"intent {next_op} devices delete {row_id}")
            cache.delete("devices", row_id)
        note(f"queued {next_op}")
        if step >= spec.get("max_steps", 10**9):
            cache.close()
            gateway.close()
            note("done")
            return


def serve() -> None:
    """Fork a child per ``run`` line; children are reaped by the kernel (SIGCHLD ignored)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for line in sys.stdin:
        command, _, payload = line.strip().partition(" ")
        if command != "run":
            break
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                run(json.loads(payload))
            except BaseException as exc:
                code = 1
                with open(json.loads(payload)["log"], "a") as log:
                    log.write(f"error {type(exc).__name__}: {exc}".replace("\n", " ") + "\n")
            os._exit(code)
        sys.stdout.write(f"pid {pid}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        run(json.loads(sys.argv[1]))
