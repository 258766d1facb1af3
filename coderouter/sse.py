"""Server-sent events as bytes: split, meter usage, hide the injected usage chunk. Pure.

Bytes pass through untouched; JSON is parsed only for the few events that carry usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from .dialects.responses.items import failed_event

Dialect = Literal["chat", "completions", "embeddings", "responses", "messages", "count_tokens",
                  "gemini", "gemini_count"]
#: Dialects whose requests only count tokens: they use none and pass no quota.
COUNTING: frozenset[Dialect] = frozenset({"count_tokens", "gemini_count"})


@dataclass(slots=True)
class Usage:
    prompt: int = 0
    completion: int = 0
    cached: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def usage_from_body(dialect: Dialect, body: Any) -> Usage | None:
    """The usage of a complete (non-stream) response object, or None when it has none.

    A count_tokens answer uses no tokens: its usage is zero, never estimated.
    """
    if dialect in COUNTING:
        return Usage()
    if not isinstance(body, dict):
        return None
    if dialect == "gemini":
        return _gemini_usage(body.get("usageMetadata"))
    if dialect == "responses":
        return _responses_usage(body.get("usage"))
    if dialect == "messages":
        return _anthropic_usage(body.get("usage"), Usage())
    return _openai_usage(body.get("usage"))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _openai_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details = raw.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    prompt = _int(raw.get("prompt_tokens"))
    completion = _int(raw.get("completion_tokens"))
    if not completion and "total_tokens" in raw:
        completion = max(0, _int(raw.get("total_tokens")) - prompt)
    return Usage(prompt, completion, cached)


def _responses_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details = raw.get("input_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return Usage(_int(raw.get("input_tokens")), _int(raw.get("output_tokens")), cached)


def _anthropic_usage(raw: Any, into: Usage) -> Usage | None:
    """Fold an Anthropic usage object into *into*: input counts all three input kinds."""
    if not isinstance(raw, dict):
        return None
    read = _int(raw.get("cache_read_input_tokens"))
    fresh = _int(raw.get("input_tokens")) + _int(raw.get("cache_creation_input_tokens"))
    if fresh or read:
        into.prompt, into.cached = fresh + read, read
    if "output_tokens" in raw:
        into.completion = _int(raw.get("output_tokens"))
    return into


def _gemini_usage(raw: Any) -> Usage | None:
    """``usageMetadata``: the prompt counts the tool-use prompt, the answer its thoughts."""
    if not isinstance(raw, dict):
        return None
    return Usage(_int(raw.get("promptTokenCount")) + _int(raw.get("toolUsePromptTokenCount")),
                 _int(raw.get("candidatesTokenCount")) + _int(raw.get("thoughtsTokenCount")),
                 _int(raw.get("cachedContentTokenCount")))


def _has_usage_object(data: bytes) -> bool:
    """Whether *data* holds ``"usage": {`` (not the ``"usage":null`` of ordinary chunks)."""
    at = data.find(b'"usage"')
    while at != -1:
        i = at + 7
        while i < len(data) and data[i] in b" \t:":
            i += 1
        if i < len(data) and data[i] == 0x7B:  # "{"
            return True
        at = data.find(b'"usage"', i)
    return False


_TERMINAL: dict[str, tuple[bytes, ...]] = {
    "chat": (b"data: [DONE]", b"data:[DONE]"),
    "completions": (b"data: [DONE]", b"data:[DONE]"),
    "responses": (b"response.completed", b"response.incomplete", b"response.failed"),
    "messages": (b"message_stop",),
    "gemini": (b'"finishReason"',),
}


def ends_stream(dialect: Dialect, data: bytes) -> bool:
    """Whether *data*, stream bytes for a *dialect* reader, hold the event that ends it."""
    return any(marker in data for marker in _TERMINAL.get(dialect, ()))


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

    __slots__ = ("_tail", "dialect", "done", "events", "hide_usage", "max_event", "progress",
                 "terminal", "usage")

    def __init__(self, dialect: Dialect, *, hide_usage: bool = False,
                 max_event: int | None = None) -> None:
        self.dialect = dialect
        self.hide_usage = hide_usage
        self.max_event = max_event
        self.terminal = _TERMINAL.get(dialect, ())
        self.usage: Usage | None = None
        self.events = 0
        self.progress = 0
        self.done = False
        self._tail = bytearray()

    def feed(self, chunk: bytes) -> bytes:
        tail = self._tail
        if not tail:
            cut = _last_boundary(chunk, 0)
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
        cut = _last_boundary(tail, start)
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
            self.done = any(marker in block for marker in self.terminal)
        if self.dialect == "gemini":
            if b'"usageMetadata"' in block:
                self._gemini(block)
            return block
        if b'"usage"' not in block:
            return block
        if not _has_usage_object(block):
            if self.hide_usage:
                return block.replace(b',"usage":null', b"")
            return block
        return b"".join(self._event(event) for event in _split_events(block))

    def _gemini(self, block: bytes) -> None:
        """Gemini repeats its running usage in every chunk: the last one in *block* counts."""
        for event in reversed(_split_events(block)):
            if b'"usageMetadata"' not in event:
                continue
            try:
                obj = orjson.loads(_data_of(event))
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                self.usage = _gemini_usage(obj.get("usageMetadata")) or self.usage
                return

    def _event(self, event: bytes) -> bytes:
        if not _has_usage_object(event):
            return event.replace(b',"usage":null', b"") if self.hide_usage else event
        data = _data_of(event)
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return event
        if not isinstance(obj, dict):
            return event
        if self.dialect == "responses":
            response = obj.get("response")
            self.usage = _responses_usage(response.get("usage")) if isinstance(response, dict) \
                else self.usage
        elif self.dialect == "messages":
            message = obj.get("message")
            raw = message.get("usage") if isinstance(message, dict) else obj.get("usage")
            self.usage = _anthropic_usage(raw, self.usage or Usage()) or self.usage
        else:
            self.usage = _openai_usage(obj.get("usage")) or self.usage
            if self.hide_usage and obj.get("choices") == []:
                return b""
        return event


def _last_boundary(buf: bytes | bytearray, start: int) -> int:
    """Index just past the last blank line at or after *start* (the end of the last complete
    event), or 0."""
    lf = buf.rfind(b"\n\n", start)
    crlf = buf.rfind(b"\r\n\r\n", start)
    return max(lf + 2 if lf != -1 else 0, crlf + 4 if crlf != -1 else 0)


def _split_events(block: bytes) -> list[bytes]:
    """Split complete events, each keeping its terminating blank line."""
    sep = b"\r\n\r\n" if b"\r\n\r\n" in block else b"\n\n"
    parts = block.split(sep)
    events = [part + sep for part in parts[:-1]]
    if parts[-1]:
        events.append(parts[-1])
    return events


def _data_of(event: bytes) -> bytes:
    """The joined ``data:`` lines of one event."""
    lines = [line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:")]
    return b"\n".join(lines)


def error_event(dialect: Dialect, message: str, code: str = "upstream_error") -> bytes:
    """The SSE event that ends a stream which failed after its first byte."""
    if dialect == "messages":
        payload = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
    if dialect == "responses":
        # Codex reads only response.failed (an `error` event leaves it waiting for the end)
        return failed_event(message, code)
    if dialect in ("gemini", "gemini_count"):
        status = 503 if code == "shutting_down" else 502
        payload = {"error": {"code": status, "message": message, "status": "UNAVAILABLE"}}
        return b"data: " + orjson.dumps(payload) + b"\r\n\r\n"
    payload = {"error": {"message": message, "type": "upstream_error", "code": code}}
    return b"data: " + orjson.dumps(payload) + b"\n\n"
