"""Short-lived answers for long ranges, so a page polling every few seconds costs one query.

A 30-day aggregate over a million rows takes seconds (bench/dashboard.py); its numbers barely
move in half a minute. Callers asking the same thing while it is being computed share one
computation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

#: Range length (seconds) -> how long its answers are kept: the 24 h view (25 h at most, its
#: start aligned to the hour) is never kept, the 7-day view for 10 s, longer ones for 30 s.
TTLS = ((2 * 86400, 0.0), (8 * 86400, 10.0))
LONGEST_TTL = 30.0


def ttl_for(length: float) -> float:
    """Seconds an answer over a range of *length* seconds may be reused."""
    return next((ttl for limit, ttl in TTLS if length <= limit), LONGEST_TTL)


class Memo:
    """Answers by key, each kept for its own time-to-live; at most *size* kept."""

    def __init__(self, size: int = 64, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.clock = clock
        self._kept: dict[Hashable, tuple[float, asyncio.Future[Any]]] = {}

    async def get(self, key: Hashable, ttl: float,
                  compute: Callable[[], Awaitable[Any]]) -> Any:
        """The kept answer for *key* when fresh (or being computed), else *compute*'s."""
        if ttl <= 0:
            return await compute()
        now = self.clock()
        kept = self._kept.get(key)
        if kept is not None and kept[0] > now:
            return await asyncio.shield(kept[1])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._kept[key] = (now + ttl, future)
        self._trim(now)
        try:
            result = await compute()
        except BaseException as exc:
            self._kept.pop(key, None)
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        future.set_result(result)
        return result

    def _trim(self, now: float) -> None:
        for key in [k for k, (expires, _) in self._kept.items() if expires <= now]:
            del self._kept[key]
        while len(self._kept) > self.size:
            del self._kept[next(iter(self._kept))]
