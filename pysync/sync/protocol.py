"""The sync protocol as a state machine without I/O (PowerSync's shape).

:class:`SyncMachine` takes events (a sync was asked for, a batch was pushed, a page was pulled,
checksums compared, a request failed, connectivity changed, a nudge arrived, a retry timer
fired) and returns instructions (push the next batch, pull, fetch checksums, wait and retry,
done, failed). The driver (:class:`~pysync.sync.SyncCache`) does the I/O and feeds the
outcome back. So the order of a sync — push everything first so pulls rebase less, pull until
``has_more`` is false, then verify checksums and repair — and the retry policy are tested
without a server or a database.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

__all__ = [
    "Checksums",
    "ChecksumsCompared",
    "Connectivity",
    "Done",
    "Failed",
    "Fatal",
    "Instruction",
    "Mode",
    "Nudged",
    "Phase",
    "Pull",
    "Pulled",
    "Push",
    "Pushed",
    "RetryAfter",
    "SyncMachine",
    "SyncRequested",
    "TimerFired",
    "is_fatal",
]

Mode = Literal["push", "pull", "sync", "reconcile"]


class Phase(Enum):
    IDLE = "idle"
    PUSHING = "pushing"
    PULLING = "pulling"
    CHECKSUMS = "checksums"
    WAITING = "waiting"  # backing off before a retry
    OFFLINE = "offline"


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncRequested:
    reason: str = "manual"  # start | manual | periodic | nudge | connectivity
    mode: Mode = "sync"


@dataclass(frozen=True)
class Pushed:
    """A batch's results are stored; ``more`` when ops are still pending."""

    more: bool


@dataclass(frozen=True)
class Pulled:
    has_more: bool


@dataclass(frozen=True)
class ChecksumsCompared:
    mismatched: frozenset[str]


@dataclass(frozen=True)
class Failed:
    code: str | None
    message: str
    retryable: bool


@dataclass(frozen=True)
class Connectivity:
    online: bool


@dataclass(frozen=True)
class Nudged:
    bucket: str


@dataclass(frozen=True)
class TimerFired:
    pass


Event = (
    SyncRequested
    | Pushed
    | Pulled
    | ChecksumsCompared
    | Failed
    | Connectivity
    | Nudged
    | TimerFired
)

# -- instructions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Push:
    """Push the next batch of pending ops (the driver answers :class:`Pushed`)."""


@dataclass(frozen=True)
class Pull:
    """Pull one page; ``repair`` names buckets to send with ``cursor: null`` and reset."""

    repair: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Checksums:
    """Fetch ``sync_checksums`` for every held bucket and compare with the local ones."""


@dataclass(frozen=True)
class Done:
    mode: Mode


@dataclass(frozen=True)
class RetryAfter:
    seconds: float
    attempt: int


@dataclass(frozen=True)
class Fatal:
    """The request cannot succeed as it is (SQLSTATE 22, 23, 42501): stop and report."""

    code: str | None
    message: str


Instruction = Push | Pull | Checksums | Done | RetryAfter | Fatal


def is_fatal(code: str | None) -> bool:
    """SQLSTATE classes 22 (data) and 23 (integrity), and 42501 (privilege): retrying the
    same request cannot help."""
    return bool(code) and (code[:2] in ("22", "23") or code == "42501")  # type: ignore[index]


_RANK: dict[Mode, int] = {"push": 0, "pull": 0, "sync": 1, "reconcile": 2}


def _merge(a: Mode | None, b: Mode) -> Mode:
    if a is None or a == b:
        return b
    if {a, b} == {"push", "pull"}:
        return "sync"
    return a if _RANK[a] >= _RANK[b] else b


@dataclass
class SyncMachine:
    """One sync at a time; requests during a sync are merged into one follow-up run."""

    base_delay: float = 1.0
    max_delay: float = 300.0
    random: Callable[[], float] = field(default=random.random)
    phase: Phase = Phase.IDLE
    mode: Mode | None = None
    attempt: int = 0
    queued: Mode | None = None
    _repaired: bool = False

    @property
    def busy(self) -> bool:
        return self.phase in (Phase.PUSHING, Phase.PULLING, Phase.CHECKSUMS)

    def backoff(self, attempt: int) -> float:
        """Exponential with "equal jitter": half fixed, half random, capped."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(0, attempt - 1))
        return float(ceiling / 2 + self.random() * ceiling / 2)

    def _start(self, mode: Mode) -> list[Instruction]:
        self.mode = mode
        self._repaired = False
        if mode == "pull":
            self.phase = Phase.PULLING
            return [Pull()]
        self.phase = Phase.PUSHING
        return [Push()]

    def _finish(self) -> list[Instruction]:
        assert self.mode is not None
        done: list[Instruction] = [Done(self.mode)]
        self.phase, self.mode, self.attempt = Phase.IDLE, None, 0
        if self.queued is not None:
            queued, self.queued = self.queued, None
            done.extend(self._start(queued))
        return done

    def handle(self, event: Event) -> list[Instruction]:
        match event:
            case Connectivity(online=False):
                self.queued = _merge(self.queued, self.mode or "sync") if self.busy else self.queued
                self.phase, self.mode = Phase.OFFLINE, None
                return []
            case Connectivity(online=True):
                if self.phase is not Phase.OFFLINE:
                    return []
                self.phase = Phase.IDLE
                queued, self.queued = self.queued, None
                return self._start(_merge(queued, "sync"))
            case SyncRequested() | Nudged():
                mode: Mode = event.mode if isinstance(event, SyncRequested) else "sync"
                if self.phase is Phase.IDLE:
                    return self._start(mode)
                if self.phase is Phase.WAITING:
                    # An explicit request skips the rest of the backoff.
                    queued, self.queued = self.queued, None
                    return self._start(_merge(_merge(queued, self.mode or mode), mode))
                self.queued = _merge(self.queued, mode)
                return []
            case TimerFired():
                if self.phase is not Phase.WAITING:
                    return []
                return self._start(self.mode or "sync")
            case Failed(code=code, message=message, retryable=retryable):
                if not self.busy:
                    return []
                if is_fatal(code) or not retryable:
                    self.phase, self.mode, self.attempt, self.queued = Phase.IDLE, None, 0, None
                    return [Fatal(code, message)]
                self.attempt += 1
                self.phase = Phase.WAITING
                return [RetryAfter(self.backoff(self.attempt), self.attempt)]
            case Pushed(more=more):
                if self.phase is not Phase.PUSHING:
                    return []
                if more:
                    return [Push()]
                if self.mode == "push":
                    return self._finish()
                self.phase = Phase.PULLING
                return [Pull()]
            case Pulled(has_more=has_more):
                if self.phase is not Phase.PULLING:
                    return []
                if has_more:
                    return [Pull()]
                if self.mode == "reconcile" and not self._repaired:
                    self.phase = Phase.CHECKSUMS
                    return [Checksums()]
                return self._finish()
            case ChecksumsCompared(mismatched=mismatched):
                if self.phase is not Phase.CHECKSUMS:
                    return []
                self._repaired = True
                if mismatched:
                    self.phase = Phase.PULLING
                    return [Pull(repair=mismatched)]
                return self._finish()
        return []
