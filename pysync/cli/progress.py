"""Progress bars for any long job: one rich bar per task of :mod:`pysync.progress` events.

Every library job (migrations, seeding, the legacy import, sync, file transfers) reports
through the same :data:`~pysync.progress.ProgressCallback`, so every command draws its bars
with this one helper. Bars go to stderr, so stdout keeps only the command's result; a task's
message joins its description, which is shown as it is (never parsed as markup: messages
carry file names and legacy values).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich import filesize
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from pysync.cli import output
from pysync.progress import ProgressCallback, ProgressEvent

__all__ = ["progress_bars"]


class _Count(ProgressColumn):
    """``done/total unit``; bytes as sizes (``1.2/3.4 MB``), ``?`` for an unknown total."""

    def render(self, task: Task) -> Text:
        unit = str(task.fields.get("unit", "steps"))
        done = int(task.completed)
        total = None if task.total is None else int(task.total)
        if unit == "bytes":
            shown = "?" if total is None else filesize.decimal(total)
            return Text(f"{filesize.decimal(done)}/{shown}")
        return Text(f"{done:,}/{'?' if total is None else f'{total:,}'} {unit}")


@contextmanager
def progress_bars(
    enabled: bool = True, *, transient: bool = False
) -> Iterator[ProgressCallback | None]:
    """A callback drawing one bar per task while the block runs (``None`` when not
    ``enabled``, e.g. with ``--json``). The bars start at the first event, so a command that
    fails prints its one error line and nothing else (bars vanish when the block raises);
    ``transient`` bars vanish when it ends anyway."""
    if not enabled:
        yield None
        return
    bars = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        _Count(),
        TimeElapsedColumn(),
        console=output.err_console,
        transient=transient,
    )
    tasks: dict[str, TaskID] = {}

    def show(event: ProgressEvent) -> None:
        if not tasks:
            bars.start()
        description = event.task if event.message is None else f"{event.task}: {event.message}"
        if event.task not in tasks:
            tasks[event.task] = bars.add_task(description, total=event.total, unit=event.unit)
        bars.update(
            tasks[event.task], completed=event.done, total=event.total, description=description
        )

    try:
        yield show
    except BaseException:
        bars.live.transient = True  # a failed job's one error line stands alone
        raise
    finally:
        if tasks:
            bars.stop()
