"""One caller request on its way through the relay, and its settlement: the usage and cost
its row records, whatever happened."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..config import Limits, ModelGroup, Rule, Target
from ..scrub import Scrubber
from ..sse import Dialect, StreamMeter, Usage
from ..usage import Record

if TYPE_CHECKING:
    from ..capture import Capture
    from ..tracing import RequestTrace
    from .leg import Translation

#: The error of a request or stream ended by a graceful stop.
SHUTTING_DOWN = "server shutting down"
#: Statuses of a request that ended while an upstream had it: the caller left, the gateway
#: stopped.
_LEFT_WAITING = frozenset({499, 503})


@dataclass(slots=True, eq=False)
class Exchange:
    """One caller request on its way through: what was asked and what happened."""

    request: web.Request
    dialect: Dialect
    payload: dict[str, Any]
    route: ModelGroup
    record: Record
    #: The prompt's token estimate (`estimate.scan_body`), taken once when the body was read.
    prompt_estimate: int = 0
    #: The body holds the tag of our envelopes (a substring check): a pass-through opens
    #: them (`dialects.foreign`); without it, the body passes untouched.
    sealed: bool = False
    #: The conversation this request belongs to (`sessions.session_key`).
    session: str | None = None
    #: Where its session pin is kept: the caller's token and the session (`sessions.pin_key`),
    #: so another token naming the same session neither rides nor moves the pin.
    pin: str | None = None
    #: The group's rule this request met (`rules.first_rule`): its targets serve it.
    rule: Rule | None = None
    #: The answer length the caller asked for (max_tokens and its kin), 0 when unsaid.
    output_tokens: int = 0
    started: float = field(default_factory=time.monotonic)
    #: The target tried last: the one that answered, or the one that failed last.
    target: Target | None = None
    usage: Usage | None = None
    estimated: bool = False
    meter: StreamMeter | None = None
    #: The event that ends the caller's stream was written: whatever happens after (the
    #: caller hangs up, the upstream lingers), the caller got its whole answer.
    delivered: bool = False
    #: The caller's body as it came, forwarded untouched when its dialect passes through
    #: without a model in the body (Gemini: the model is in the URL).
    raw: bytes | None = None
    #: The timeout that ends this exchange early: the request's, then the stream's idle gap.
    scope: asyncio.Timeout | None = None
    #: Set by `stop`: the gateway is shutting down and this exchange must end now.
    stopping: bool = False
    #: The request's span, when tracing is on: each attempt adds one under it.
    trace: RequestTrace | None = None
    #: This request's bodies, when ``capture.sample`` picked it: what the caller got is added.
    capture: Capture | None = None
    #: The request's config generation's secrets, replaced in every upstream byte relayed.
    scrubber: Scrubber = field(default_factory=lambda: Scrubber(()))
    #: The request's config generation's limits (answer and event sizes, write timeout).
    limits: Limits = field(default_factory=Limits)
    #: The caller's request decoded and crossed for each bridge an attempt used (`leg`), kept
    #: for the attempts after it.
    translations: dict[object, Translation] = field(default_factory=dict)

    @property
    def stream(self) -> bool:
        return self.payload.get("stream") is True

    def stop(self) -> None:
        """End now (graceful stop): a waiting request gets 503, a stream its error event."""
        self.stopping = True
        if self.scope is not None:
            with contextlib.suppress(RuntimeError):  # already expired or exited: ending anyway
                self.scope.reschedule(asyncio.get_running_loop().time())

    def settle(self) -> None:
        """Put usage and cost in the row: the upstream's, else an estimate, else none.

        A stream cut short is estimated from its prompt and events. A request an upstream took
        but that ended before any answer because the caller left (499) or the gateway stopped
        (503) is charged its prompt estimate: the upstream bills it all the same, so hanging
        up must not make a request free.
        """
        usage = self.usage
        record = self.record
        if usage is None and self.meter is not None:
            usage = Usage(self.prompt_estimate, max(0, self.meter.events - 3))
            self.estimated = True
        elif usage is None and record.attempts and record.status in _LEFT_WAITING:
            usage = Usage(self.prompt_estimate, 0)
            self.estimated = True
        if usage is None:
            return
        record.prompt_tokens, record.completion_tokens = usage.prompt, usage.completion
        record.total_tokens, record.cached_tokens = usage.total, usage.cached
        record.cache_write_5m_tokens, record.cache_write_1h_tokens = usage.write_5m, usage.write_1h
        record.usage_source = "estimated" if self.estimated else "upstream"
        price = self.route.price if self.target is None else self.target.price
        if price is not None:
            record.cost = round(price.cost(usage.prompt, usage.completion, usage.cached,
                                           usage.write_5m, usage.write_1h), 10)
