"""Open mode (``state.on_state_failure: open``): this process's own counters while Redis does
not answer.

They are rebuilt once per outage, and no fallback admission is decided before the rebuild is
done: from the usage table (every process's rows written so far, this process's queue
included), plus what this process settled after the table was read, plus its own requests
still in flight (admitted in Redis, no row yet). From then on each process counts only its
own requests: with ``workers: N`` (or N gateways on one Redis) up to N times what a quota had
left when Redis failed can be admitted before it answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from ..usage import UsageStore
from .memory import Limiter, Reservation
from .model import Answers, Scope, SeedQuery, table_source

log = logging.getLogger("coderouter.state")

#: Whose counters a request moves: ("token", name) and ("group", name).
Names = list[tuple[Scope, str]]


def names_of(scopes: tuple[str, ...]) -> Names:
    """The counter names of Redis scope keys (``t:alice``, ``g:team``)."""
    return [("token" if scope[0] == "t" else "group", scope[2:]) for scope in scopes]


class InFlight(Protocol):
    """A request admitted in Redis and not settled yet."""

    names: Names
    tokens: int
    cost: float
    #: Its hold on this process's counters, once they were rebuilt during an outage.
    local: Reservation | None


class Fallback:
    """This process's `Limiter`, rebuilt at the start of each outage (see the module doc)."""

    def __init__(self, store: UsageStore, clock: Callable[[], float],
                 live: Callable[[], Iterable[InFlight]]) -> None:
        self.local = Limiter(clock)
        self._store = store
        self._source = table_source(store)
        self._live = live
        self._rebuild: asyncio.Future[None] | None = None
        #: Settlements after the table was read (None when no rebuild is reading it).
        self._unread: list[tuple[Names, int, float, float]] | None = None

    def outage(self) -> None:
        """Redis failed: rebuild the counters, once per outage."""
        if self._rebuild is None:
            self._rebuild = asyncio.ensure_future(self._rebuild_counters())

    def recovered(self) -> None:
        """Redis answers again: the next outage rebuilds anew."""
        self._rebuild = None

    async def ready(self) -> None:
        """Return once this outage's rebuild is done (at once when there is none)."""
        if self._rebuild is not None:
            await asyncio.shield(self._rebuild)

    def settled(self, names: Names, tokens: int, cost: float, forwarded: bool,
                at: float) -> None:
        """Note a settlement of this process: one made after a rebuild read the table is not
        in what it read, and is added to the counters it rebuilds."""
        if self._unread is not None and forwarded:
            self._unread.append((names, tokens, cost, at))

    async def _rebuild_counters(self) -> None:
        plan = self.local.seed_plan()
        try:
            answers = await self._store.read_flushed(lambda: self._read(plan))
        except Exception as exc:  # the table is down too: keep what this process counted
            log.error("could not rebuild this process's counters from the usage table (%s): "
                      "counting from what it counted so far while Redis is unavailable", exc)
            self._unread = None
            answers = []
        # from here to the end no await: nothing settles or is admitted in between
        if answers:
            self.local.forget_usage()
        for query, totals in answers:
            self.local.seed(query, totals)
        for names, tokens, cost, at in self._unread or ():
            self.local.count(names, tokens=tokens, cost=cost, at=at)
        self._unread = None
        for request in self._live():
            if request.local is None:
                request.local = self.local.hold(request.names, tokens=request.tokens,
                                                cost=request.cost)

    async def _read(self, plan: list[SeedQuery]) -> Answers:
        self._unread = []  # the table holds every row of this process settled before now
        return await self._source(plan)
