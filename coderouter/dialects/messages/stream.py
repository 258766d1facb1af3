"""Messages streams: upstream SSE events to neutral events, neutral events to SSE."""

from __future__ import annotations

import uuid

from .. import ir
from ..wire import Json, dumps, estimate_output, loads_event, need_dict, sse, typed
from .errors import _KIND_OF_TYPE, error_event
from .request import _signature
from .response import _STOP_IN, _message_id, _stop_reason, encode_usage, fold_usage

_CHARS_PER_TOKEN = 4


# Streams


def _block_index(obj: Json) -> int:
    """An event's block ``index``; one that is not an integer counts as 0."""
    index = obj.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else 0


class MessagesStreamDecoder:
    """Messages SSE events in, neutral events out."""

    def __init__(self) -> None:
        self._done = False
        self._usage: ir.Usage | None = None  # message_delta's usage folds into start's
        self._stop: ir.FinishReason = "stop"
        self._stop_sequence: str | None = None
        self._parts: dict[int, int] = {}  # Anthropic block index -> part index

    def feed(self, name: str, data: bytes) -> list[ir.Event]:
        if self._done:
            return []
        obj = need_dict(loads_event(data, name or "event"), f"{name or 'event'} data")
        kind = name or str(obj.get("type") or "")
        if kind == "error":
            self._done = True
            error = obj.get("error")
            error = error if isinstance(error, dict) else {}
            message = error.get("message")
            return [ir.Failure(message if isinstance(message, str) and message
                               else "upstream stream error",
                               _KIND_OF_TYPE.get(str(error.get("type")), "server_error"))]
        handler = self._HANDLERS.get(kind)
        return handler(self, obj) if handler else []

    def close(self) -> list[ir.Event]:
        if self._done:
            return []
        self._done = True
        return [ir.Failure("upstream closed the stream before it was complete")]

    def _on_message_start(self, obj: Json) -> list[ir.Event]:
        message = typed(obj.get("message"), dict, {})
        self._usage = fold_usage(message.get("usage"), self._usage)
        return [ir.Start(str(message.get("id") or uuid.uuid4().hex),
                         str(message.get("model") or ""), self._usage or ir.Usage())]

    def _on_block_start(self, obj: Json) -> list[ir.Event]:
        block = obj.get("content_block")
        if not isinstance(block, dict):
            return []
        kind = block.get("type")
        index = len(self._parts)
        part: ir.Text | ir.Reasoning | ir.ToolCall
        initial = ""
        if kind == "text":
            part, initial = ir.Text(""), str(block.get("text") or "")
        elif kind == "thinking":
            part, initial = ir.Reasoning(), str(block.get("thinking") or "")
        elif kind == "redacted_thinking":
            part = ir.Reasoning(signature=_signature(block.get("data")), redacted=True)
        elif kind == "tool_use":
            part = ir.ToolCall(str(block.get("id") or ""), str(block.get("name") or ""))
            initial = dumps(block["input"]) if block.get("input") else ""
        else:
            return []  # server tool blocks: not part of the neutral answer
        self._parts[_block_index(obj)] = index
        out: list[ir.Event] = [ir.PartStart(index, part)]
        if initial:
            out.append(ir.PartDelta(index, initial))
        return out

    def _on_block_delta(self, obj: Json) -> list[ir.Event]:
        index = self._parts.get(_block_index(obj))
        delta = obj.get("delta")
        if index is None or not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        text = {"text_delta": "text", "thinking_delta": "thinking",
                "input_json_delta": "partial_json"}.get(str(kind))
        if text is not None:
            value = delta.get(text)
            return [ir.PartDelta(index, value)] if isinstance(value, str) and value else []
        if kind == "signature_delta" and (signature := _signature(delta.get("signature"))):
            return [ir.PartSignature(index, signature)]
        return []

    def _on_block_stop(self, obj: Json) -> list[ir.Event]:
        index = self._parts.get(_block_index(obj))
        return [ir.PartEnd(index)] if index is not None else []

    def _on_message_delta(self, obj: Json) -> list[ir.Event]:
        delta = typed(obj.get("delta"), dict, {})
        if isinstance(delta.get("stop_reason"), str):
            self._stop = _STOP_IN.get(delta["stop_reason"], "stop")
        if isinstance(delta.get("stop_sequence"), str):
            self._stop_sequence = delta["stop_sequence"]
        if not isinstance(obj.get("usage"), dict):
            return []
        self._usage = fold_usage(obj["usage"], self._usage)
        return [ir.UsageUpdate(self._usage or ir.Usage())]

    def _on_message_stop(self, obj: Json) -> list[ir.Event]:
        self._done = True
        return [ir.Finish(self._stop, self._usage or ir.Usage(), self._stop_sequence)]

    _HANDLERS = {
        "message_start": _on_message_start,
        "content_block_start": _on_block_start,
        "content_block_delta": _on_block_delta,
        "content_block_stop": _on_block_stop,
        "message_delta": _on_message_delta,
        "message_stop": _on_message_stop,
    }


class MessagesStreamEncoder:
    """Neutral events in, Messages SSE events out. Blocks are sequential: a block starting
    ends the open one; thinking is its own block, never inside a text block."""

    def __init__(self, model: str, estimated_input_tokens: int) -> None:
        self.model = model
        self.estimated_input_tokens = estimated_input_tokens
        self._started = False
        self._ended = False
        self._next = 0
        self._blocks: dict[int, tuple[int, str]] = {}  # part index -> (block index, kind)
        self._open: int | None = None  # the part index whose block is open
        self._redacted: dict[int, ir.Opaque | None] = {}
        self._usage: ir.Usage | None = None
        self._output_chars = 0

    def feed(self, event: ir.Event) -> bytes:
        if self._ended:
            return b""
        if isinstance(event, ir.Start):
            return self._start(event.id, event.usage)
        out = self._start(uuid.uuid4().hex, None)
        if isinstance(event, ir.PartStart):
            return out + self._part_start(event)
        if isinstance(event, ir.PartDelta):
            return out + self._part_delta(event)
        if isinstance(event, ir.PartSignature):
            return out + self._signature(event)
        if isinstance(event, ir.PartEnd):
            return out + self._part_end(event.index)
        if isinstance(event, ir.UsageUpdate):
            self._usage = event.usage
            return out
        if isinstance(event, ir.Finish):
            return out + self._finish(event)
        self._ended = True
        return out + error_event(event.message, event.kind)

    def close(self) -> bytes:
        return b""

    def _start(self, answer_id: str, usage: ir.Usage | None) -> bytes:
        if self._started:
            return b""
        self._started = True
        shown = encode_usage(usage) if usage is not None and usage.input_tokens else {
            "input_tokens": self.estimated_input_tokens, "output_tokens": 0,
            "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
        message: Json = {"id": _message_id(answer_id), "type": "message", "role": "assistant",
                   "model": self.model, "content": [], "stop_reason": None,
                   "stop_sequence": None, "usage": shown}
        return sse("message_start", {"type": "message_start", "message": message})

    def _part_start(self, event: ir.PartStart) -> bytes:
        out = self._part_end(self._open) if self._open is not None else b""
        part = event.part
        if isinstance(part, ir.Reasoning) and part.redacted:
            # its data may come later as a PartSignature: the whole block goes out at its end
            self._redacted[event.index] = part.signature
            self._blocks[event.index] = (-1, "redacted")
            self._open = event.index
            return out
        block: Json
        if isinstance(part, ir.ToolCall):
            kind = "tool"
            block = {"type": "tool_use", "id": part.id, "name": part.name, "input": {}}
        elif isinstance(part, ir.Reasoning):
            kind = "thinking"
            block = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            kind = "text"
            block = {"type": "text", "text": ""}
        index = self._next
        self._next += 1
        self._blocks[event.index] = (index, kind)
        self._open = event.index
        out += sse("content_block_start", {"type": "content_block_start", "index": index,
                                           "content_block": block})
        initial = part.arguments if isinstance(part, ir.ToolCall) else part.text
        if initial:
            out += self._part_delta(ir.PartDelta(event.index, initial))
        return out

    def _part_delta(self, event: ir.PartDelta) -> bytes:
        index, kind = self._blocks.get(event.index, (-1, ""))
        if not event.text or index < 0 or event.index != self._open:
            return b""
        self._output_chars += len(event.text)
        delta = {"text": {"type": "text_delta", "text": event.text},
                 "thinking": {"type": "thinking_delta", "thinking": event.text},
                 "tool": {"type": "input_json_delta", "partial_json": event.text}}[kind]
        return sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                           "delta": delta})

    def _signature(self, event: ir.PartSignature) -> bytes:
        index, kind = self._blocks.get(event.index, (-1, ""))
        if event.signature.issuer != "messages":
            return b""
        if kind == "redacted":
            self._redacted[event.index] = event.signature
            return b""
        if kind != "thinking" or event.index != self._open:
            return b""
        return sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                           "delta": {"type": "signature_delta",
                                                     "signature": event.signature.data}})

    def _part_end(self, part_index: int) -> bytes:
        if part_index != self._open:
            return b""
        self._open = None
        index, kind = self._blocks[part_index]
        if kind == "redacted":
            signature = self._redacted.pop(part_index, None)
            if signature is None or signature.issuer != "messages":
                return b""
            index = self._next
            self._next += 1
            block = {"type": "redacted_thinking", "data": signature.data}
            return sse("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": block}) \
                + sse("content_block_stop", {"type": "content_block_stop", "index": index})
        return sse("content_block_stop", {"type": "content_block_stop", "index": index})

    def _finish(self, event: ir.Finish) -> bytes:
        self._ended = True
        out = self._part_end(self._open) if self._open is not None else b""
        usage = event.usage or self._usage
        shown = encode_usage(usage) if usage is not None else {
            "output_tokens": estimate_output(self._output_chars, _CHARS_PER_TOKEN)}
        return out + sse("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(event.reason, event.stop_sequence),
                      "stop_sequence": event.stop_sequence},
            "usage": shown}) + sse("message_stop", {"type": "message_stop"})
