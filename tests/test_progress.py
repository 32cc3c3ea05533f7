"""One progress type for every long job: each producer, run for real against the test
session's database, reports only :class:`ProgressEvent` s that keep the contract of
:mod:`pysync.progress` (per task: ``done`` never goes back, never passes ``total``, and the
last event reaches the total), and reports the tasks a UI would draw a bar for."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import pysync
from pysync.cli import output
from pysync.cli.progress import progress_bars
from pysync.config import Settings
from pysync.migrate import discover_migrations, discover_policies, push
from pysync.ops.legacy import MAPPERS, import_legacy
from pysync.progress import ProgressEvent, Reporter
from pysync.project import Project
from pysync.seed import DevPlan, PerfPlan, seed_dev, seed_perf
from pysync.sync import SyncCache
from pysync.sync.progress import RunProgress
from pysync.sync.storage import BucketRecord
from pysync.sync.wire import BucketState
from tests.files_world import device
from tests.helpers import PROJECT_ROOT, connect
from tests.sync_world import SyncWorld
from tests.test_legacy import legacy_database, pushed_database

MIGRATIONS = PROJECT_ROOT / "supabase" / "migrations"
POLICIES = PROJECT_ROOT / "policies"


def by_task(events: list[Any]) -> dict[str, list[ProgressEvent]]:
    """The events of one run grouped by task, after checking the contract on every task."""
    assert events, "the job reported nothing"
    grouped: dict[str, list[ProgressEvent]] = {}
    for event in events:
        assert type(event) is ProgressEvent, event
        grouped.setdefault(event.task, []).append(event)
    for task, seen in grouped.items():
        dones = [e.done for e in seen]
        assert dones == sorted(dones), f"{task} went back: {dones}"
        assert all(e.total is None or e.done <= e.total for e in seen), task
        assert len({e.unit for e in seen}) == 1, f"{task} changed units"
        last = seen[-1]
        assert last.total is not None and last.done == last.total, f"{task} stopped at {last}"
    return grouped


def test_the_event_refuses_done_outside_its_total() -> None:
    with pytest.raises(ValueError, match=r"not within 0\.\.3"):
        ProgressEvent("rows", 4, 3)
    with pytest.raises(ValueError, match="not within"):
        ProgressEvent("rows", -1)
    assert ProgressEvent("empty", 0, 0).fraction == 1.0
    assert ProgressEvent("unknown", 7).fraction is None
    assert pysync.ProgressEvent is ProgressEvent


def test_a_reporter_never_sends_done_backwards() -> None:
    seen: list[ProgressEvent] = []
    rows = Reporter(seen.append, "public.courses", total=10, unit="rows")
    rows.update(4)
    with pytest.raises(ValueError, match="went back from 4 to 3"):
        rows.update(3)
    rows.finish(message="done")
    unknown = Reporter(seen.append, "download x", unit="bytes")
    unknown.update(5)
    unknown.finish()
    assert [(e.task, e.done, e.total, e.message) for e in seen] == [
        ("public.courses", 4, 10, None),
        ("public.courses", 10, 10, "done"),
        ("download x", 5, None, None),
        ("download x", 5, 5, None),
    ]


def test_migrations_report_each_file_then_the_policies(new_database: Callable[[], str]) -> None:
    url = new_database()
    events: list[ProgressEvent] = []
    with connect(url) as conn:
        result = push(conn, MIGRATIONS, POLICIES, root=PROJECT_ROOT, progress=events.append)
    tasks = by_task(events)
    assert set(tasks) == {"migrations", "policies"}
    files = discover_migrations(MIGRATIONS)
    migrations = tasks["migrations"]
    assert migrations[-1].done == len(result.applied) == len(files)
    assert {e.unit for e in migrations} == {"migrations"}
    # The event before each file names it, with the files done so far.
    announced = [(e.done, e.message) for e in migrations if e.message]
    assert announced == [(i, f"applying {f.display(PROJECT_ROOT)}") for i, f in enumerate(files)]
    assert tasks["policies"][-1].done == len(discover_policies(POLICIES))


def test_project_up_reports_push_and_seed_and_an_empty_push_finishes_at_zero(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    project = Project(
        Settings.load(PROJECT_ROOT, environ={"PYSYNC_DATA_DIR": str(tmp_path)}),
        db_url=new_database(),
    )
    events: list[ProgressEvent] = []
    project.up(progress=events.append, seed=True)
    tasks = by_task(events)
    assert set(tasks) == {"migrations", "policies", "seed"}
    assert tasks["seed"][-1].message == "seeded from supabase/seed.sql"
    events.clear()
    project.up(progress=events.append)  # a remote target: not seeded unless asked
    tasks = by_task(events)
    assert [(e.done, e.total, e.message) for e in tasks["migrations"]] == [
        (0, 0, "no pending migrations")
    ]
    assert tasks["seed"][-1].message == "not seeding a remote database (pass --seed to do so)"


def test_dev_seed_reports_every_table_in_rows(new_database: Callable[[], str]) -> None:
    url = pushed_database(new_database)
    events: list[ProgressEvent] = []
    with connect(url) as conn:
        report = seed_dev(conn, DevPlan(today=date(2026, 11, 23)), progress=events.append)
    tasks = by_task(events)
    assert list(tasks) == list(report.inserted)
    for table, inserted in report.inserted.items():
        assert tasks[table][-1].message == f"{inserted} inserted"
        assert {e.unit for e in tasks[table]} == {"rows"}
    # Big tables move in steps, not only at the end.
    assert any(0 < e.done < (e.total or 0) for e in events)


def test_perf_seed_reports_every_table_up_to_its_planned_rows(
    new_database: Callable[[], str],
) -> None:
    url = pushed_database(new_database)
    events: list[ProgressEvent] = []
    with connect(url) as conn:
        report = seed_perf(conn, PerfPlan(users=60), progress=events.append, baseline=False)
    tasks = by_task(events)
    assert {t: e[-1].done for t, e in tasks.items()} == {t.table: t.rows for t in report.tables}


def test_legacy_import_reports_every_legacy_table(new_database: Callable[[], str]) -> None:
    legacy, target = legacy_database(new_database), pushed_database(new_database)
    events: list[ProgressEvent] = []
    import_legacy(legacy, target, batch_size=40, progress=events.append)
    tasks = by_task(events)
    assert list(tasks) == [m.source for m in MAPPERS]
    users = tasks["users"]
    assert users[0].done == 0 and len(users) > 2  # batches of 40 of 124 users


@pytest.fixture(scope="module")
def world(app_url: str) -> Iterator[SyncWorld]:
    made = SyncWorld(app_url)
    yield made
    made.close()


def test_first_sync_reports_each_stream_as_its_buckets_fill(
    world: SyncWorld, tmp_path: Path
) -> None:
    tutor, student = world.user("tutor"), world.user("student")
    for _ in range(2):
        world.enroll(student, world.course(tutor, lessons=5))
    events: list[ProgressEvent] = []
    with SyncCache.open(world.client(student), tmp_path / "s.db", progress=events.append) as cache:
        cache.page_limit = 3  # several pages, so buckets are seen before they are complete
        cache.sync()
        tasks = by_task(events)
        assert {"pull my_course_content", "pull my_enrollments"} <= set(tasks)
        content = tasks["pull my_course_content"]
        assert content[-1].total == 2 and {e.unit for e in content} == {"buckets"}
        assert any(e.done < (e.total or 0) for e in content), "no bar filled up on the way"
        assert "push" not in tasks  # nothing was written
        status = cache.status().streams
        assert {t.removeprefix("pull "): e[-1].done for t, e in tasks.items()} == {
            name: p.complete for name, p in status.items()
        }
        # A later run: writes are pushed and counted; full streams are told once.
        events.clear()
        for n in range(3):
            cache.insert(
                "devices", {"user_id": student.id, "device_id": f"d{n}", "platform": "ios"}
            )
        cache.batch_size = 2
        cache.sync()
        tasks = by_task(events)
        assert [(e.done, e.total) for e in tasks["push"]] == [(2, 3), (3, 3)]
        assert all(len(e) == 1 for t, e in tasks.items() if t != "push")


def test_run_progress_counts_a_dropped_bucket_as_done() -> None:
    def record(bucket: str, complete: bool) -> BucketRecord:
        state = BucketState("snap" if complete else None)
        return BucketRecord(bucket, "messages", bucket, ("my_messages",), state, 0.0)

    events: list[ProgressEvent] = []
    run = RunProgress(events.append)
    run.pulled([record("a", True), record("b", False)])
    run.pulled([record("a", True)])  # b left (access lost) before it was complete
    assert [(e.done, e.total) for e in by_task(events)["pull my_messages"]] == [(1, 2), (2, 2)]


def test_file_upload_and_download_report_bytes(world: SyncWorld, tmp_path: Path) -> None:
    tutor, student = world.user("tutor"), world.user("student")
    conversation = str(world.client(student).conversations.start_direct(tutor.id).id)
    photo = b"\x89PNG progress " * 100_000  # over a MiB: copied in more than one block
    sent: list[ProgressEvent] = []
    with device(world, student, tmp_path / "s.db", tmp_path / "objects", progress=sent.append) as p:
        p.cache.sync()
        sent.clear()  # the first sync's own events are another test's
        message = p.files.insert(
            "messages",
            {"conversation_id": conversation, "sender_id": student.id, "body": "photo"},
            file=photo,
            filename="photo.png",
        )
        p.cache.sync()
    path = f"{conversation}/{message}/photo.png"
    tasks = by_task(sent)
    assert set(tasks) == {f"upload chat-attachments/{path}"}
    upload = tasks[f"upload chat-attachments/{path}"]
    assert upload[-1] == ProgressEvent(
        f"upload chat-attachments/{path}", len(photo), len(photo), "bytes"
    )
    assert any(0 < e.done < len(photo) for e in upload)
    received: list[ProgressEvent] = []
    with device(
        world, tutor, tmp_path / "t.db", tmp_path / "objects", progress=received.append
    ) as desk:
        desk.cache.sync()
        assert desk.files.read("messages", message) == photo
    assert by_task(received)[f"download chat-attachments/{path}"][-1].done == len(photo)


def test_the_cli_bars_show_any_job_and_never_parse_markup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console = Console(record=True, width=120, force_terminal=False)
    monkeypatch.setattr(output, "err_console", console)
    with progress_bars() as show:
        assert show is not None
        show(ProgressEvent("users", 3, 10, "rows"))
        show(ProgressEvent("upload a/b.png", 2_500_000, 5_000_000, "bytes"))
        show(ProgressEvent("users", 10, 10, "rows", message="[/b] from a legacy row"))
    shown = console.export_text()
    assert "users: [/b] from a legacy row" in shown and "10/10 rows" in shown
    assert "2.5 MB/5.0 MB" in shown
    with progress_bars(enabled=False) as nothing:
        assert nothing is None


def test_the_cli_bars_vanish_when_the_job_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed command prints its one error line, not a half-filled bar above it."""
    console = Console(record=True, width=120, force_terminal=False)
    monkeypatch.setattr(output, "err_console", console)
    with pytest.raises(RuntimeError), progress_bars() as show:
        assert show is not None
        show(ProgressEvent("migrations", 1, 2, "migrations", message="applying bad.sql"))
        raise RuntimeError("bad.sql failed")
    assert console.export_text().strip() == ""
