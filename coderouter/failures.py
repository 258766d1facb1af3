"""Failed upstream attempts, booked on the target that failed. In memory, per process.

A usage row books its request on the target that answered it (or that failed last), so a dead
target that every request fails over from would show no requests, no errors and no last error.
The forwarder adds each failed attempt here that its row does not already tell; channel health
adds them to the target's numbers. Bounded: the newest `KEEP` failure times per target. With
shared state (``state.redis``), `on_add` tells the other processes, which `apply` it, so every
worker's dashboard shows every worker's failures.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Failure times kept per target; older ones drop out of the ranges' counts.
KEEP = 10_000


@dataclass(slots=True)
class _Target:
    times: deque[float] = field(default_factory=lambda: deque(maxlen=KEEP))
    last: dict[str, Any] | None = None


class FailedAttempts:
    """Times and the last error of failed attempts, per target id (channel, model)."""

    def __init__(self) -> None:
        self._targets: dict[tuple[str, str], _Target] = {}
        #: Called with each failure `add`ed here (not those `apply`ed): shared state passes
        #: it on to the other processes.
        self.on_add: Callable[[tuple[str, str], float, int, str], None] | None = None

    def add(self, target: tuple[str, str], ts: float, status: int, error: str) -> None:
        """A failed attempt on *target* in this process."""
        self.apply(target, ts, status, error)
        if self.on_add is not None:
            self.on_add(target, ts, status, error)

    def apply(self, target: tuple[str, str], ts: float, status: int, error: str) -> None:
        """A failed attempt on *target*, in this process or told by another."""
        entry = self._targets.get(target)
        if entry is None:
            entry = self._targets[target] = _Target()
        if entry.times and ts < entry.times[-1]:
            ts = entry.times[-1]  # keep the deque sorted for `between`
        entry.times.append(ts)
        entry.last = {"ts": ts, "status": status, "error": error}

    def between(self, target: tuple[str, str], since: float,
                until: float) -> tuple[int, dict[str, Any] | None]:
        """How many attempts on *target* failed in ``since <= ts < until``, and the last of
        them (ts, status, error), or None."""
        entry = self._targets.get(target)
        if entry is None:
            return 0, None
        times = entry.times
        count = bisect.bisect_left(times, until) - bisect.bisect_left(times, since)
        last = entry.last if count and entry.last and entry.last["ts"] < until else None
        return count, last
