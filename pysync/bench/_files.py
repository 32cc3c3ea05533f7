"""``pysync bench sync --only files``: the local file path's throughput against a plain copy.

A student attaches ``count`` files of ``size`` bytes to chat messages (each copied into the
cache's folder and flushed to disk, its row, op and queued upload committed: ``attach``), then
uploads them (:class:`~pysync.sync.files.FileSync` into a
:class:`~pysync.sync.files.LocalObjectStore`: each file copied into the store, its
``storage.objects`` row written as the user under RLS: ``upload``); the rows are pushed (not
timed). The tutor of the chat syncs
(not timed), then opens each file (its row selected as the tutor under RLS, the bytes copied
into the tutor's cache). The baseline, measured in the same run: the same bytes copied file by
file with :func:`shutil.copyfile`. Each side runs ``rounds`` times; the median MB/s counts.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pysync.datasources import Context
from pysync.gateway import Identity, PostgresGateway
from pysync.sync import SyncCache
from pysync.sync.files import FileSync, LocalObjectStore, files_folder

__all__ = ["measure_files"]

MB = 1024 * 1024


def _mb_s(total_bytes: int, seconds: float) -> float:
    return round(total_bytes / MB / max(seconds, 1e-9), 1)


def measure_files(
    world: Any,
    directory: Path,
    conversation_of: Callable[[Any, str, str], str],
    *,
    count: int,
    size: int,
    rounds: int,
    say: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """``(measured, baseline, ratio)``: upload and download MB/s, plain copy MB/s, and the
    slower of the two local paths over the copy."""
    student, student_token = world.user()
    tutor, tutor_token = world.user("tutor")
    conversation = conversation_of(world, student, tutor)
    sources = directory / "file-sources"
    sources.mkdir(parents=True, exist_ok=True)
    payloads = []
    for i in range(count):
        path = sources / f"f{i}.bin"
        path.write_bytes(os.urandom(size))
        payloads.append(path)
    total = count * size
    objects = directory / "objects"
    storage_gw = PostgresGateway.connect(
        world.gateway_url, jwt_secret=world.secret, schemas=("storage",), max_size=1
    )
    attaches: list[float] = []
    uploads: list[float] = []
    downloads: list[float] = []
    copies: list[float] = []
    try:
        for round_no in range(rounds):
            say(f"files: round {round_no + 1} of {rounds} ({count} x {size // 1024} KiB)")
            copy_dir = directory / f"copy-{round_no}"
            copy_dir.mkdir()
            started = time.perf_counter()
            for path in payloads:
                shutil.copyfile(path, copy_dir / path.name)
            copies.append(time.perf_counter() - started)

            phone_path = directory / f"phone-{uuid.uuid4().hex}.db"
            with SyncCache.open(world.client(student_token), phone_path) as phone:
                files = FileSync(
                    phone,
                    LocalObjectStore(
                        Context(storage_gw, Identity.from_jwt(student_token)), objects
                    ),
                    files_folder(phone_path),
                )
                phone.sync()
                started = time.perf_counter()
                for path in payloads:
                    files.insert(
                        "messages",
                        {"conversation_id": conversation, "sender_id": student, "body": ""},
                        file=path,
                    )
                attaches.append(time.perf_counter() - started)
                started = time.perf_counter()
                files.upload()
                uploads.append(time.perf_counter() - started)
                phone.sync()

            desk_path = directory / f"desk-{uuid.uuid4().hex}.db"
            with SyncCache.open(world.client(tutor_token), desk_path) as desk:
                desk_files = FileSync(
                    desk,
                    LocalObjectStore(Context(storage_gw, Identity.from_jwt(tutor_token)), objects),
                    files_folder(desk_path),
                )
                desk.sync()
                ids = [
                    r["id"]
                    for r in desk.query(
                        "select id from messages where attachment_path is not null"
                        " and sender_id = ? and conversation_id = ?",
                        (student, conversation),
                    )
                ]
                started = time.perf_counter()
                for row_id in ids[-count:]:
                    desk_files.path("messages", row_id)
                downloads.append(time.perf_counter() - started)
    finally:
        storage_gw.close()
    upload = _mb_s(total, statistics.median(uploads))
    download = _mb_s(total, statistics.median(downloads))
    copy = _mb_s(total, statistics.median(copies))
    measured = {
        "attach_mb_s": _mb_s(total, statistics.median(attaches)),
        "upload_mb_s": upload,
        "download_mb_s": download,
        "files": count,
        "file_bytes": size,
        "rounds": rounds,
    }
    baseline = {"copy_mb_s": copy, "method": "shutil.copyfile of the same files"}
    return measured, baseline, min(upload, download) / max(copy, 1e-9)
