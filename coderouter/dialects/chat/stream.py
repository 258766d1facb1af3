"""Chat Completions chunks: upstream chunks to neutral events, neutral events to chunks."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from .. import ir
from ..wire import (
    Json,
    dumps,
    loads_event,
    need_dict,
    sse_data,
)
from .errors import _error_of, error_event
from .request import _reasoning_of
from .response import _FINISH_OUT, _chat_id, _finish, decode_usage, encode_usage

# Streams


class ChatStreamDecoder:
    """chat.completion.chunk events in, neutral events out. Parts open in order; a new part
    ends the one before it."""

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._next = 0
        self._open: tuple[str, int] | None = None  # ("text" | "reasoning" | "tool", index)
        self._tools: dict[int, int] = {}  # the upstream's tool-call index -> part index
        self._tool_ids: dict[str, int] = {}
        self._finish: Any = None
        self._usage: ir.Usage | None = None

    def feed(self, name: str, data: bytes) -> list[ir.Event]:
        if self._done:
            return []
        if data.strip() == b"[DONE]":
            return self._end()
        chunk = need_dict(loads_event(data, "chunk"), "chunk")
        if chunk.get("error") and not chunk.get("choices"):
            message, kind = _error_of(chunk)
            self._done = True
            return [ir.Failure(message, kind)]
        out: list[ir.Event] = []
        if not self._started:
            self._started = True
            out.append(ir.Start(str(chunk.get("id") or uuid.uuid4().hex),
                                str(chunk.get("model") or "")))
        usage = decode_usage(chunk.get("usage"))
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._choice(choice, out)
        if usage is not None:
            self._usage = usage
            out.append(ir.UsageUpdate(usage))
        return out

    def close(self) -> list[ir.Event]:
        if self._done:
            return []
        self._done = True
        return [ir.Failure("upstream closed the stream before it was complete")]

    def _end(self) -> list[ir.Event]:
        self._done = True
        out: list[ir.Event] = []
        if not self._started:
            out.append(ir.Start(uuid.uuid4().hex, ""))
        self._close_open(out)
        out.append(ir.Finish(_finish(self._finish, bool(self._tools)), self._usage))
        return out

    def _close_open(self, out: list[ir.Event]) -> None:
        if self._open is not None:
            out.append(ir.PartEnd(self._open[1]))
            self._open = None

    def _open_part(self, kind: str, part: ir.Text | ir.Reasoning | ir.ToolCall,
                   out: list[ir.Event]) -> int:
        self._close_open(out)
        index = self._next
        self._next += 1
        self._open = (kind, index)
        out.append(ir.PartStart(index, part))
        return index

    def _choice(self, choice: Json, out: list[ir.Event]) -> None:
        delta = choice.get("delta") or {}
        if isinstance(delta, dict):
            reasoning = _reasoning_of(delta)
            if reasoning:
                self._grow("reasoning", ir.Reasoning(), reasoning, out)
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._grow("text", ir.Text(""), text, out)
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    self._tool_call(call, out)
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
            self._close_open(out)

    def _grow(self, kind: str, part: ir.Text | ir.Reasoning, text: str,
              out: list[ir.Event]) -> None:
        if self._open is None or self._open[0] != kind:
            self._open_part(kind, part, out)
        assert self._open is not None
        out.append(ir.PartDelta(self._open[1], text))

    def _tool_call(self, call: Json, out: list[ir.Event]) -> None:
        key = self._tool_key(call)
        function = call.get("function") or call.get("custom") or {}
        if key not in self._tools:
            kind: Literal["function", "custom"] = \
                "custom" if call.get("type") == "custom" else "function"
            call_id = call.get("id")
            if not isinstance(call_id, str):
                call_id = f"call_{uuid.uuid4().hex[:24]}"
            self._tools[key] = self._open_part(
                "tool", ir.ToolCall(call_id, str(function.get("name") or ""), kind=kind), out)
            self._tool_ids[call_id] = key
        arguments = function.get("arguments", function.get("input"))
        if isinstance(arguments, dict):
            arguments = dumps(arguments)
        if isinstance(arguments, str) and arguments:
            out.append(ir.PartDelta(self._tools[key], arguments))

    def _tool_key(self, call: Json) -> int:
        """The upstream's tool-call index, inferred from the id when a server omits it."""
        if isinstance(call.get("index"), int):
            return int(call["index"])
        call_id = call.get("id")
        if isinstance(call_id, str) and call_id in self._tool_ids:
            return self._tool_ids[call_id]
        if call.get("id") or not self._tools:
            return len(self._tools)
        return max(self._tools)


class ChatStreamEncoder:
    """Neutral events in, chat.completion.chunk SSE bytes out."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._created = int(time.time())
        self._role_sent = False
        self._ended = False
        self._kinds: dict[int, str] = {}
        self._tool_index: dict[int, int] = {}
        self._usage = ir.Usage()

    def feed(self, event: ir.Event) -> bytes:
        if self._ended:
            return b""
        if isinstance(event, ir.Start):
            self._id = _chat_id(event.id)
            return self._role()
        if isinstance(event, ir.PartStart):
            return self._start(event)
        if isinstance(event, ir.PartDelta):
            return self._delta(event)
        if isinstance(event, ir.UsageUpdate):
            self._usage = event.usage
            return b""
        if isinstance(event, ir.Finish):
            return self._finish(event)
        if isinstance(event, ir.Failure):
            self._ended = True
            return self._role() + error_event(event.message, event.kind)
        return b""  # PartEnd, PartSignature: nothing to say in Chat

    def close(self) -> bytes:
        """Nothing: a finished answer ended with ``[DONE]`` (sent with its finish, so the
        caller is done when the answer is, however long the upstream lingers), a failed one
        with its own."""
        return b""

    def _chunk(self, choices: list[Json], **extra: Any) -> bytes:
        return sse_data({"id": self._id, "object": "chat.completion.chunk",
                         "created": self._created, "model": self.model, "choices": choices,
                         **extra})

    def _choice(self, delta: Json, finish_reason: str | None = None) -> bytes:
        return self._role() + self._chunk([{"index": 0, "delta": delta, "logprobs": None,
                                            "finish_reason": finish_reason}])

    def _role(self) -> bytes:
        if self._role_sent:
            return b""
        self._role_sent = True
        return self._chunk([{"index": 0, "delta": {"role": "assistant", "content": ""},
                             "logprobs": None, "finish_reason": None}])

    def _start(self, event: ir.PartStart) -> bytes:
        part = event.part
        if isinstance(part, ir.ToolCall):
            self._kinds[event.index] = "tool"
            tool_index = self._tool_index[event.index] = len(self._tool_index)
            call = {"index": tool_index, "id": part.id, "type": "function",
                    "function": {"name": part.name, "arguments": part.arguments}}
            return self._choice({"tool_calls": [call]})
        self._kinds[event.index] = "reasoning" if isinstance(part, ir.Reasoning) else "text"
        if isinstance(part, ir.Text) and part.text:
            return self._choice({"content": part.text})
        if isinstance(part, ir.Reasoning) and part.text:
            return self._choice({"reasoning_content": part.text})
        return self._role()

    def _delta(self, event: ir.PartDelta) -> bytes:
        kind = self._kinds.get(event.index)
        if not event.text or kind is None:
            return b""
        if kind == "tool":
            call = {"index": self._tool_index[event.index],
                    "function": {"arguments": event.text}}
            return self._choice({"tool_calls": [call]})
        if kind == "reasoning":
            return self._choice({"reasoning_content": event.text})
        return self._choice({"content": event.text})

    def _finish(self, event: ir.Finish) -> bytes:
        self._ended = True
        usage = event.usage or self._usage
        out = [self._choice({}, _FINISH_OUT[event.reason])]
        if self.include_usage:
            out.append(self._chunk([], usage=encode_usage(usage)))
        out.append(b"data: [DONE]\n\n")
        return b"".join(out)
