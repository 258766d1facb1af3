"""What one running gateway shares between requests, behind a typed app key."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from .capture import Captures
from .channels.pool import Pools
from .config.reload import ConfigHolder
from .drain import Drain
from .quotas.protocol import Quotas
from .refusals import Refusals
from .relay.forward import Forwarder
from .routing import Health
from .sessions import Conversations
from .usage import Record, UsageStore

if TYPE_CHECKING:
    from .tracing import Tracing


@dataclass(slots=True, kw_only=True)
class Gateway:
    holder: ConfigHolder
    pools: Pools
    health: Health
    forwarder: Forwarder
    writer: UsageStore
    #: Quotas and rate limits: this process's counters, or Redis's (``state.redis``).
    quotas: Quotas
    #: Unix time for usage rows and the limiter; injected by tests to move days and minutes.
    clock: Callable[[], float] = time.time
    #: The forwarded requests in flight, for a graceful stop.
    drain: Drain = field(default_factory=Drain)
    started: float = field(default_factory=time.time)
    #: The conversations without a session id this process has seen (`sessions`).
    conversations: Conversations = field(default_factory=Conversations)
    #: Called with every finished request's row (metrics, access log); must not block.
    observers: list[Callable[[Record], None]] = field(default_factory=list)
    #: The callers refused by the gateway itself (401, 403, 429), counted per reason.
    refusals: Refusals = field(default_factory=Refusals)
    #: Sampled request and response bodies (``capture:``).
    captures: Captures = field(default_factory=Captures)
    #: OpenTelemetry traces, when ``tracing.endpoint`` is set (`coderouter.tracing`).
    tracing: Tracing | None = None

    def finished(self, record: Record) -> None:
        self.writer.add(record)
        for observe in self.observers:
            observe(record)


GATEWAY = web.AppKey("gateway", Gateway)
