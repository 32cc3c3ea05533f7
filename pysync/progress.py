"""One progress type for every long job: migrations, seeding, the legacy import and sync.

Why one: a UI (the CLI's rich bars, an app's download indicator, a log line) shows one bar per
task whatever the job is. When each job spoke its own callback (a message string here,
``(table, done, total)`` there, a whole sync status or a byte count elsewhere), every caller
had to learn every shape, and a job that started reporting something new broke its callers.
Now every producer calls the same :data:`ProgressCallback` with a :class:`ProgressEvent`, and
one renderer draws any of them.

The contract a producer keeps, for each ``task`` within one run:

* ``done`` never goes down, and never exceeds ``total`` when ``total`` is known;
* ``total`` may be unknown (``None``: an indeterminate bar) or grow as work is discovered (a
  sync finds more buckets), but ``done <= total`` holds in every event;
* the last event of a task that finished has ``done == total``; a task that failed simply
  stops reporting (the job's exception says why).

:class:`Reporter` keeps that contract for producers, so none of them repeats it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["ProgressCallback", "ProgressEvent", "Reporter", "Unit"]

#: What ``done`` and ``total`` count: a renderer formats ``bytes`` as sizes, the rest as counts.
Unit = Literal["steps", "migrations", "files", "rows", "ops", "buckets", "bytes"]


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """How far one task of a long job is, at one moment."""

    #: What is progressing, stable for the task's life, e.g. ``"migrations"``,
    #: ``"public.enrollments"``, ``"pull courses"``, ``"upload chat-attachments/<path>"``: one
    #: bar per distinct task.
    task: str
    #: Units done so far.
    done: int
    #: Units in all, when known.
    total: int | None = None
    #: What ``done`` and ``total`` count.
    unit: Unit = "steps"
    #: A line for people about this step (``"applying supabase/migrations/…sql"``), if any.
    message: str | None = None

    def __post_init__(self) -> None:
        if self.done < 0 or (self.total is not None and not 0 <= self.done <= self.total):
            raise ValueError(
                f"progress of {self.task!r}: done {self.done} is not within 0..{self.total}"
            )

    @property
    def fraction(self) -> float | None:
        """``done / total`` (1.0 for an empty task), or None when the total is unknown."""
        if self.total is None:
            return None
        return 1.0 if self.total == 0 else self.done / self.total

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done == self.total


#: Called with each event of every task of a job; the job's thread calls it, so it must return
#: quickly (draw, append, log) and should not raise.
ProgressCallback = Callable[[ProgressEvent], None]


class Reporter:
    """The events of one task, sent to ``callback`` (or nowhere when it is None).

    It remembers the task, unit, total and ``done`` so producers only say what changed, and
    it refuses to send ``done`` backwards, which would make a bar jump back.
    """

    def __init__(
        self,
        callback: ProgressCallback | None,
        task: str,
        *,
        total: int | None = None,
        unit: Unit = "steps",
    ) -> None:
        self._callback = callback
        self.task = task
        self.total = total
        self.unit: Unit = unit
        self.done = 0

    def update(
        self,
        done: int | None = None,
        *,
        total: int | None = None,
        message: str | None = None,
    ) -> None:
        """Report ``done`` (default: unchanged) of ``total`` (default: unchanged)."""
        done = self.done if done is None else done
        if done < self.done:
            raise ValueError(f"progress of {self.task!r} went back from {self.done} to {done}")
        self.done = done
        if total is not None:
            self.total = total
        if self._callback is not None:
            self._callback(ProgressEvent(self.task, done, self.total, self.unit, message))

    def advance(self, by: int = 1, *, message: str | None = None) -> None:
        self.update(self.done + by, message=message)

    def finish(self, *, message: str | None = None) -> None:
        """Report the task complete: ``done`` becomes the total (the total becomes ``done``
        when it was unknown)."""
        total = self.done if self.total is None else self.total
        self.update(total, total=total, message=message)
