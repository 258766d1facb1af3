"""Gemini streams: upstream chunks to neutral events, neutral events to chunks."""

from __future__ import annotations

from typing import Any

import orjson

from .. import ir
from ..codec import CodecError
from .errors import _error_chunk, _error_of
from .fields import Json, _get, _new_id, _own, _signature
from .request import _args_object
from .response import (
    _FINISH_OUT,
    _candidate,
    _candidate_parts,
    _finish,
    _tool_call,
    decode_usage,
    encode_usage,
)


class StreamDecoder:
    """``data: {GenerateContentResponse}`` chunks in, neutral events out.

    Text and thought parts grow the open part of their kind; a functionCall arrives whole (a
    start, one argument delta, its signature and an end). A chunk with a ``finishReason``
    finishes the stream; an ``error`` chunk fails it.
    """

    def __init__(self) -> None:
        self._prefix = _new_id()
        self._index = -1
        self._open: str | None = None  # "text" or "reasoning"
        self._calls = 0
        self._usage: ir.Usage | None = None
        self._started = False
        self._ended = False

    def feed(self, name: str, data: bytes) -> list[ir.Event]:
        if self._ended or not data.strip():
            return []
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise CodecError("stream chunk is not JSON") from None
        if isinstance(chunk, list):  # the JSON-array stream's elements, one per feed
            return [event for item in chunk for event in self._chunk(item)]
        return self._chunk(chunk)

    def _chunk(self, chunk: Any) -> list[ir.Event]:
        if not isinstance(chunk, dict):
            raise CodecError("stream chunk must be a JSON object")
        events: list[ir.Event] = []
        if "error" in chunk:
            message, kind = _error_of(chunk, 500)
            self._ended = True
            return [ir.Failure(message, kind)]  # type: ignore[arg-type]
        if not self._started:
            self._started = True
            rid = _get(chunk, "responseId")
            events.append(ir.Start(id=rid if isinstance(rid, str) and rid
                                   else f"gemini-{self._prefix}",
                                   model=str(_get(chunk, "modelVersion") or "")))
        candidate = _candidate(chunk)
        for part in _candidate_parts(candidate):
            events += self._part(part)
        usage = decode_usage(_get(chunk, "usageMetadata"))
        if usage is not None:
            self._usage = usage
            events.append(ir.UsageUpdate(usage))
        if _get(candidate, "finishReason") is not None or (
                not candidate and _get(chunk, "promptFeedback")):
            events += self._close_open()
            events.append(ir.Finish(_finish(candidate, chunk, self._calls > 0), self._usage))
            self._ended = True
        return events

    def _part(self, part: Json) -> list[ir.Event]:
        events: list[ir.Event] = []
        sig = _signature(part)
        text = part.get("text")
        if isinstance(text, str):
            kind = "reasoning" if part.get("thought") is True else "text"
            if self._open != kind:
                events += self._close_open()
                self._index += 1
                self._open = kind
                events.append(ir.PartStart(self._index, ir.Reasoning() if kind == "reasoning"
                                           else ir.Text("")))
            if text:
                events.append(ir.PartDelta(self._index, text))
            if sig is not None:
                events.append(ir.PartSignature(self._index, sig))
            return events
        call = _get(part, "functionCall")
        if not isinstance(call, dict):
            return events
        events += self._close_open()
        self._index += 1
        tool = _tool_call(call, part, f"call_{self._prefix}_{self._calls}")
        self._calls += 1
        # the signature rides on the start too: a caller of another dialect carries it on
        # the call's id, which goes out with the start
        events.append(ir.PartStart(self._index, ir.ToolCall(id=tool.id, name=tool.name,
                                                            signature=tool.signature)))
        events.append(ir.PartDelta(self._index, tool.arguments))
        if tool.signature is not None:
            events.append(ir.PartSignature(self._index, tool.signature))
        events.append(ir.PartEnd(self._index))
        return events

    def _close_open(self) -> list[ir.Event]:
        if self._open is None:
            return []
        self._open = None
        return [ir.PartEnd(self._index)]

    def close(self) -> list[ir.Event]:
        if self._ended:
            return []
        self._ended = True
        return [ir.Failure("upstream stream ended before its finishReason")]


class StreamEncoder:
    """Neutral events in, ``data: {GenerateContentResponse}`` chunks out (``?alt=sse``).

    Text and thought deltas go out as they come; a function call goes out whole when its part
    ends (Gemini never splits one). The last chunk carries ``finishReason`` and
    ``usageMetadata``; a `Failure` is one Google-shaped ``{"error": …}`` chunk.
    """

    def __init__(self, model: str, estimated_input_tokens: int) -> None:
        self.model = model
        self.estimated_input_tokens = estimated_input_tokens
        self.id = f"gemini-{_new_id()}"
        self._parts: dict[int, ir.Part] = {}
        self._args: dict[int, list[str]] = {}
        self._pending: str | None = None  # a reasoning signature waiting for its carrier
        self._usage: ir.Usage | None = None
        self._done = False

    def _chunk(self, parts: list[Json], **candidate: Any) -> bytes:
        body: Json = {"candidates": [{"content": {"role": "model", "parts": parts},
                                      **candidate, "index": 0}]}
        if not parts:
            del body["candidates"][0]["content"]
        if "finishReason" in candidate:
            usage = self._usage or ir.Usage(input_tokens=self.estimated_input_tokens)
            body["usageMetadata"] = encode_usage(usage)
        body["modelVersion"] = self.model
        body["responseId"] = self.id
        return b"data: " + orjson.dumps(body) + b"\r\n\r\n"

    def _carry(self, item: Json) -> Json:
        if self._pending is not None and "thoughtSignature" not in item:
            item["thoughtSignature"] = self._pending
        if "thoughtSignature" in item:
            self._pending = None
        return item

    def feed(self, event: ir.Event) -> bytes:
        if self._done:
            return b""
        if isinstance(event, ir.Start):
            self.id = event.id or self.id
            if event.usage is not None:
                self._usage = event.usage
            return b""
        if isinstance(event, ir.PartStart):
            self._parts[event.index] = event.part
            if isinstance(event.part, ir.ToolCall):
                self._args[event.index] = [event.part.arguments]
            return b""
        if isinstance(event, ir.PartDelta):
            return self._delta(event)
        if isinstance(event, ir.PartSignature):
            return self._signed(event)
        if isinstance(event, ir.PartEnd):
            return self._end(event.index)
        if isinstance(event, ir.UsageUpdate):
            self._usage = event.usage
            return b""
        if isinstance(event, ir.Finish):
            return self._finish(event)
        if isinstance(event, ir.Failure):
            self._done = True
            return _error_chunk(event.message, event.kind)
        return b""

    def _finish(self, event: ir.Finish) -> bytes:
        out = b"".join(self._end(index) for index in list(self._args))
        if event.usage is not None:
            self._usage = event.usage
        parts = [{"text": "", "thoughtSignature": self._pending}] if self._pending else []
        self._done = True
        return out + self._chunk(parts, finishReason=_FINISH_OUT[event.reason])

    def _delta(self, event: ir.PartDelta) -> bytes:
        part = self._parts.get(event.index)
        if isinstance(part, ir.ToolCall):
            self._args.setdefault(event.index, []).append(event.text)
            return b""
        if not event.text:
            return b""
        if isinstance(part, ir.Reasoning):
            return self._chunk([{"text": event.text, "thought": True}])
        return self._chunk([self._carry({"text": event.text})])

    def _signed(self, event: ir.PartSignature) -> bytes:
        sig = _own(event.signature)
        part = self._parts.get(event.index)
        if sig is None:
            return b""
        if isinstance(part, ir.ToolCall):
            part.signature = event.signature
            return b""
        self._pending = sig  # a thought's or an already-sent text's: rides on the next part
        return b""

    def _end(self, index: int) -> bytes:
        part = self._parts.pop(index, None)
        pieces = self._args.pop(index, None)
        if not isinstance(part, ir.ToolCall) or pieces is None:
            return b""
        arguments = "".join(pieces)
        try:
            args = _args_object(arguments)
        except CodecError:
            args = {"arguments": arguments}  # never lose what the model wrote
        item: Json = {"functionCall": {"id": part.id, "name": part.name, "args": args}}
        if _own(part.signature):
            item["thoughtSignature"] = _own(part.signature)
        return self._chunk([self._carry(item)])

    def close(self) -> bytes:
        return b""
