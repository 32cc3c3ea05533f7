"""A sync run's progress, told as :class:`~pysync.progress.ProgressEvent` s.

Two kinds of task per run (one :meth:`SyncCache.sync <pysync.sync.SyncCache.sync>` call):

* ``push``, in ops: ops acknowledged by the server so far, of those plus the ones still
  pending (the total grows if the app writes meanwhile, and shrinks when an op is
  dead-lettered before it was sent);
* ``pull <stream>``, in buckets, one task per stream: buckets served completely (or
  dropped) in this run, of the buckets the stream held at some point of the run. A first
  sync fills these bars as pages arrive; a later sync shows them full at once.

Counts are of sets that only grow during the run, so ``done`` never goes back even when a
bucket leaves half-way (it counts as done: there is nothing left to fetch for it).
"""

from __future__ import annotations

from collections.abc import Iterable

from pysync.progress import ProgressCallback, Reporter
from pysync.sync.storage import BucketRecord

__all__ = ["RunProgress"]


class RunProgress:
    """The events of one sync run; cheap no-ops when nobody listens."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._push = Reporter(callback, "push", unit="ops")
        self._held: dict[str, set[str]] = {}
        self._done: dict[str, set[str]] = {}
        self._told: dict[str, tuple[int, int]] = {}

    @property
    def listening(self) -> bool:
        return self._callback is not None

    def pushed(self, ops: int, pending: int) -> None:
        """``ops`` more were acknowledged (applied, conflicted or rejected); ``pending`` wait."""
        done = self._push.done + ops
        self._push.update(done, total=done + pending)

    def pulled(self, buckets: Iterable[BucketRecord]) -> None:
        """Report the streams whose counts changed, given the buckets the cache holds now."""
        if self._callback is None:
            return
        now: dict[str, set[str]] = {}
        for record in buckets:
            complete = record.state.cursor is not None and record.state.after is None
            for stream in record.streams:
                now.setdefault(stream, set()).add(record.bucket)
                self._held.setdefault(stream, set()).add(record.bucket)
                if complete:
                    self._done.setdefault(stream, set()).add(record.bucket)
        for stream, held in self._held.items():
            done = self._done.setdefault(stream, set())
            done |= held - now.get(stream, set())  # dropped: nothing left to fetch
            counts = (len(done), len(held))
            if self._told.get(stream) != counts:
                self._told[stream] = counts
                Reporter(self._callback, f"pull {stream}", total=counts[1], unit="buckets").update(
                    counts[0]
                )
