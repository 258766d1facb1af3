"""Graceful stop: know the requests in flight, wait for them, end the stragglers at a deadline.

The gateway tracks every forwarded request while it runs. On SIGTERM/SIGINT (after the server
stopped accepting), `Drain.stop` waits up to the grace period for them to finish on their own,
then tells each one left to end now: a stream ends with an SSE error event, a request still
waiting for its upstream is answered 503 ``shutting_down``. Both are written as usage rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Protocol

log = logging.getLogger("coderouter.drain")

#: How long requests told to end may take to write their last bytes and their row.
END_TIMEOUT = 5.0


class Stoppable(Protocol):
    """A request in flight that can be told to end now."""

    def stop(self) -> None: ...


class Drain:
    """The requests in flight, so a stopping gateway can wait for them and end the rest."""

    def __init__(self) -> None:
        self.active: set[Stoppable] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def track(self, request: Stoppable) -> Iterator[None]:
        """Count *request* as in flight for the duration of the block."""
        self.active.add(request)
        self._idle.clear()
        try:
            yield
        finally:
            self.active.discard(request)
            if not self.active:
                self._idle.set()

    async def stop(self, grace: float) -> int:
        """Wait up to *grace* seconds for the requests in flight, then end the rest.

        Returns how many requests had to be ended. Waits at most `END_TIMEOUT` more for them
        to write their last bytes; whatever is left after that is aiohttp's to cancel.
        """
        if not self.active:
            return 0
        log.info("waiting up to %gs for %d request%s in flight", grace, len(self.active),
                 "" if len(self.active) == 1 else "s")
        if await self._wait(grace):
            return 0
        left = list(self.active)
        log.warning("grace period of %gs is over: ending %d request%s still in flight",
                    grace, len(left), "" if len(left) == 1 else "s")
        for request in left:
            request.stop()
        if not await self._wait(END_TIMEOUT):
            log.error("%d request%s did not end in time", len(self.active),
                      "" if len(self.active) == 1 else "s")
        return len(left)

    async def _wait(self, seconds: float) -> bool:
        """Whether every request ended within *seconds*."""
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True
