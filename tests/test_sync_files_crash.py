"""Files offline under SIGKILL (issue 14): a device killed between "the file is in Storage"
and "the row is pushed", and one killed at random points of attach-and-sync loops. After
every kill: no message on the server names a file that is not in Storage (no orphan row);
in the end every attached file is there exactly once (a retried upload makes no second
object) with the bytes attached, and every message names its own.

``PYSYNC_FILES_CRASH_KILLS`` sets the random kills (12 by default)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pysync.config import LOCAL_JWT_SECRET
from tests.files_world import routed_url
from tests.helpers import PROJECT_ROOT
from tests.sync_world import SyncWorld

KILLS = int(os.environ.get("PYSYNC_FILES_CRASH_KILLS", "12"))


@pytest.fixture(scope="module")
def world(app_url: str) -> Iterator[SyncWorld]:
    made = SyncWorld(app_url)
    yield made
    made.close()


class Device:
    """A user's cache file driven by child processes."""

    def __init__(self, world: SyncWorld, tmp: Path) -> None:
        tutor, self.student = world.user("tutor"), world.user("student")
        self.conversation = str(world.client(self.student).conversations.start_direct(tutor.id).id)
        self.world = world
        self.log = tmp / "child.log"
        self.base = {
            "url": routed_url(world.url, None),
            "jwt_secret": LOCAL_JWT_SECRET,
            "token": world.auth.session_for(self.student).access_token,
            "user_id": self.student.id,
            "conversation_id": self.conversation,
            "cache": str(tmp / "phone.db"),
            "objects": str(tmp / "objects"),
            "log": str(self.log),
        }

    def start(self, mode: str, seed: int = 0, **extra: Any) -> subprocess.Popen[bytes]:
        spec = {**self.base, "mode": mode, "seed": seed, **extra}
        return subprocess.Popen(
            [sys.executable, "-m", "tests.files_crash_child", json.dumps(spec)], cwd=PROJECT_ROOT
        )

    def run(self, mode: str, **extra: Any) -> int:
        return self.start(mode, **extra).wait(timeout=120)

    def lines(self, word: str) -> list[list[str]]:
        return [
            line.split()[1:] for line in self.log.read_text().splitlines() if line.startswith(word)
        ]

    def server_messages(self) -> dict[str, str]:
        rows = self.world.sql(
            "select id::text, attachment_path from public.messages where sender_id = %s",
            self.student.id,
        )
        return {row_id: path for row_id, path in rows}

    def objects(self) -> dict[str, str]:
        rows = self.world.sql(
            "select name, metadata ->> 'eTag' from storage.objects"
            " where bucket_id = 'chat-attachments' and starts_with(name, %s)",
            self.conversation + "/",
        )
        return {name: etag for name, etag in rows}

    def assert_no_orphan_row(self) -> None:
        objects = self.objects()
        for row_id, path in self.server_messages().items():
            assert path in objects, f"message {row_id} names {path}, which is not in Storage"


def test_kill_between_upload_and_push_leaves_no_orphan_and_no_duplicate(
    world: SyncWorld, tmp_path: Path
) -> None:
    phone = Device(world, tmp_path)
    assert phone.run("attach", count=3) == 0
    killed = phone.run("upload-then-die")
    assert killed == -signal.SIGKILL and phone.lines("uploaded")
    queued = {row: (path, md5) for row, path, md5 in phone.lines("queued")}
    # The files are in Storage; their rows are not on the server yet.
    assert set(phone.objects()) == {path for path, _ in queued.values()}
    assert phone.server_messages() == {}
    assert phone.run("sync") == 0
    assert phone.server_messages() == {row: path for row, (path, _) in queued.items()}
    assert phone.objects() == {path: f'"{md5}"' for path, md5 in queued.values()}


def test_random_kills_during_attach_and_sync_keep_rows_and_files_together(
    world: SyncWorld, tmp_path: Path
) -> None:
    phone = Device(world, tmp_path)
    rng = random.Random(KILLS)
    for kill in range(KILLS):
        before = len(phone.log.read_text().splitlines()) if phone.log.exists() else 0
        child = phone.start("chaos", seed=kill)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the child opened everything
            lines = phone.log.read_text().splitlines()[before:] if phone.log.exists() else []
            if "ready" in lines:
                break
            assert child.poll() is None, f"the child exited early: {lines}"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        phone.assert_no_orphan_row()
    assert phone.run("sync") == 0
    phone.assert_no_orphan_row()
    queued = {row: (path, md5) for row, path, md5 in phone.lines("queued")}
    messages = phone.server_messages()
    # Every committed attach arrived (a kill before its commit may leave one more row the
    # log did not see: it must be complete too), and no object exists twice or unnamed.
    assert set(queued) <= set(messages)
    assert set(phone.objects()) == set(messages.values())
    for row, (path, md5) in queued.items():
        assert messages[row] == path and phone.objects()[path] == f'"{md5}"'
    assert not [line for line in phone.log.read_text().splitlines() if line.startswith("error")]
