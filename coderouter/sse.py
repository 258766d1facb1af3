"""Server-sent events as bytes: meter usage, hide the injected usage chunk. Pure.

Bytes pass through untouched; JSON is parsed only for the few events that carry usage, with
the dialect's own usage parser (`dialects.dialect.Dialect`), the one its codec tells a
translated caller with. Framing (where an event ends, its data) is `dialects.framing`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .dialects import ir
from .dialects.framing import data_of, last_boundary, split_events
from .dialects.registry import COUNTING, DIALECTS
from .dialects.registry import Name as Dialect
from .errors import GatewayError

__all__ = ["COUNTING", "Dialect", "EventTooLarge", "StreamMeter", "Usage", "ends_stream",
           "error_event", "usage_from_body"]


@dataclass(slots=True)
class Usage:
    """What a usage row bills: prompt tokens (cache reads and writes included), completion,
    cache reads, cache writes kept 5 minutes and kept 1 hour."""

    prompt: int = 0
    completion: int = 0
    cached: int = 0
    write_5m: int = 0
    write_1h: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    @classmethod
    def of(cls, usage: ir.Usage | None) -> Usage | None:
        if usage is None:
            return None
        hour = usage.cache_write_1h_tokens
        return cls(usage.input_tokens, usage.output_tokens, usage.cached_tokens,
                   usage.cache_write_tokens - hour, hour)


def usage_from_body(dialect: Dialect, body: Any) -> Usage | None:
    """The usage of a complete (non-stream) response object, or None when it has none.

    A count_tokens answer uses no tokens: its usage is zero, never estimated.
    """
    facts = DIALECTS[dialect]
    if not isinstance(body, dict):
        return Usage() if facts.counting else None
    return Usage.of(facts.body_usage(body))


def _has_usage_object(data: bytes, key: bytes = b'"usage"') -> bool:
    """Whether *data* holds ``"usage": {`` (not the ``"usage":null`` of ordinary chunks)."""
    at = data.find(key)
    while at != -1:
        i = at + len(key)
        while i < len(data) and data[i] in b" \t:":
            i += 1
        if i < len(data) and data[i] == 0x7B:  # "{"
            return True
        at = data.find(key, i)
    return False


def ends_stream(dialect: Dialect, data: bytes) -> bool:
    """Whether *data*, stream bytes for a *dialect* reader, hold the event that ends it."""
    return _holds_any(data, DIALECTS[dialect].terminal)


def _holds_any(data: bytes, markers: tuple[bytes, ...]) -> bool:
    # a plain loop: `any()` over a generator costs twice as much, twice per relayed chunk
    for marker in markers:  # noqa: SIM110
        if marker in data:
            return True
    return False


class EventTooLarge(ValueError):
    """An upstream stream event grew past the size limit without ending."""


class StreamMeter:
    """Consumes an upstream SSE byte stream; returns what the caller gets and meters usage.

    `feed` returns only complete events (a partial event waits for its end), so a hidden usage
    chunk can be dropped whole. With *hide_usage* (the gateway injected
    ``stream_options.include_usage``), the usage-only chunk and the ``"usage":null`` fields are
    removed, so the caller receives what the upstream would have sent it.

    An unfinished event is kept in a buffer that grows in place; each chunk is searched for an
    event boundary only in its own bytes (and the three before them), so a long event costs
    linear time. One that passes *max_event* bytes raises `EventTooLarge`. ``progress`` counts
    the chunks that completed at least one event.
    """

    __slots__ = ("_tail", "_usage", "dialect", "done", "events", "facts", "hide_usage",
                 "max_event", "progress", "terminal")

    def __init__(self, dialect: Dialect, *, hide_usage: bool = False,
                 max_event: int | None = None) -> None:
        self.dialect = dialect
        self.hide_usage = hide_usage
        self.max_event = max_event
        self.facts = DIALECTS[dialect]
        self.terminal = self.facts.terminal
        self._usage: ir.Usage | None = None
        self.events = 0
        self.progress = 0
        self.done = False
        self._tail = bytearray()

    @property
    def usage(self) -> Usage | None:
        """What the stream reported so far, as the usage row bills it."""
        return Usage.of(self._usage)

    def feed(self, chunk: bytes) -> bytes:
        tail = self._tail
        if not tail:
            cut = last_boundary(chunk, 0)
            if cut == len(chunk):  # the usual case: whole events
                self.progress += 1
                return self._scan(chunk)
            tail += chunk[cut:]
            self._check(tail)
            if not cut:
                return b""
            self.progress += 1
            return self._scan(chunk[:cut])
        start = max(0, len(tail) - 3)  # a boundary may straddle the old and new bytes
        tail += chunk
        cut = last_boundary(tail, start)
        if not cut:
            self._check(tail)
            return b""
        complete = bytes(tail[:cut])
        del tail[:cut]
        self._check(tail)
        self.progress += 1
        return self._scan(complete)

    def _check(self, tail: bytearray) -> None:
        if self.max_event is not None and len(tail) > self.max_event:
            raise EventTooLarge(f"upstream sent a stream event over the {self.max_event} "
                                "byte limit")

    def flush(self) -> bytes:
        """What is left after the upstream closed: a last event without its blank line."""
        tail, self._tail = bytes(self._tail), bytearray()
        return self._scan(tail) if tail.strip() else b""

    def _scan(self, block: bytes) -> bytes:
        self.events += block.count(b"data:")
        if not self.done:
            self.done = _holds_any(block, self.terminal)
        key = self.facts.usage_key
        if key not in block:
            return block
        if not _has_usage_object(block, key):
            return block.replace(b',"usage":null', b"") if self.hide_usage else block
        if self.facts.usage_repeats:
            self._latest(block)
            return block
        return b"".join(self._event(event) for event in split_events(block))

    def _latest(self, block: bytes) -> None:
        """Every event repeats the running usage (Gemini): the last one in *block* counts."""
        key = self.facts.usage_key
        for event in reversed(split_events(block)):
            if key in event and (obj := _object_of(event)) is not None:
                self._usage = self.facts.event_usage(obj, self._usage)
                return

    def _event(self, event: bytes) -> bytes:
        if not _has_usage_object(event, self.facts.usage_key):
            return event.replace(b',"usage":null', b"") if self.hide_usage else event
        obj = _object_of(event)
        if obj is None:
            return event
        self._usage = self.facts.event_usage(obj, self._usage)
        if self.hide_usage and self.facts.usage_only(obj):
            return b""
        return event


def _object_of(event: bytes) -> dict[str, Any] | None:
    """The JSON object in *event*'s data, None when it holds none."""
    try:
        obj = orjson.loads(data_of(event))
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def error_event(dialect: Dialect, error: GatewayError) -> bytes:
    """The event that ends a *dialect* stream which failed after its first byte."""
    return DIALECTS[dialect].error_event(error)
