"""Responses API streams: upstream events -> neutral events, and neutral events -> the full
event lifecycle a Responses caller (Codex) needs. Pure state machines, no I/O.

Encoding emits, with a rising ``sequence_number`` on every event: ``response.created`` and
``response.in_progress``; per item ``response.output_item.added``, its content or summary
part, its deltas, their ``.done`` events and ``response.output_item.done`` carrying the
complete item (Codex commits an item and runs its tool only from that event); then
``response.completed`` with the id, the output and integer usage, or ``response.incomplete``
(length, content filter) or ``response.failed`` with an ``error.code`` Codex maps.

Decoding accepts text, arguments and custom-tool input from deltas, from their ``.done``
events or only from ``response.output_item.done``, whichever carries them (some servers send
arguments only at the end); nothing arrives twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from .. import ir
from ..codec import CodecError
from ..wire import typed
from .items import (
    LOCAL_SHELL,
    Json,
    decode_usage,
    envelope,
    error_code,
    item_id,
    item_part,
    namespaces,
    output_item,
    response_id,
)

_CODE_KINDS = {
    "context_length_exceeded": "context_length", "rate_limit_exceeded": "rate_limit",
    "insufficient_quota": "rate_limit", "invalid_prompt": "invalid_request",
    "invalid_request_error": "invalid_request", "server_error": "server_error",
}


def _failure(error: Any, default: str) -> ir.Failure:
    error = error if isinstance(error, dict) else {}
    message = typed(error.get("message"), str, default)
    code = typed(error.get("code"), str, "")
    kind = _CODE_KINDS.get(code) or _CODE_KINDS.get(str(error.get("type")), "server_error")
    return ir.Failure(message=message or default, kind=kind)  # type: ignore[arg-type]


# -- decoding (upstream side) ---------------------------------------------------------------


@dataclass(slots=True)
class _Open:
    """A neutral part opened from the upstream's stream, and the text it has had so far."""

    index: int
    kind: str  # "text", "reasoning", "tool"
    text: str = ""
    #: reasoning: where its text comes from ("summary" or "content"), and per-summary text
    source: str | None = None
    summaries: dict[int, str] = field(default_factory=dict)


class ResponsesStreamDecoder:
    """Upstream Responses SSE events in, neutral events out."""

    def __init__(self) -> None:
        self._started = False
        self._ended = False
        self._next = 0
        self._open: dict[tuple[int, int], _Open] = {}
        self._closed: set[tuple[int, int]] = set()
        self._tools = False
        self._usage: ir.Usage | None = None

    def feed(self, name: str, data: bytes) -> list[ir.Event]:
        if self._ended or data.strip() in (b"", b"[DONE]"):
            return []
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise CodecError(f"{name or 'event'}: data is not JSON") from None
        if not isinstance(event, dict):
            raise CodecError(f"{name or 'event'}: expected an object")
        kind = typed(event.get("type"), str, name)
        out: list[ir.Event] = []
        if not self._started:
            response = typed(event.get("response"), dict, {})
            self._started = True
            out.append(ir.Start(id=str(response.get("id") or ""),
                                model=str(response.get("model") or "")))
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, event, out)
        return out

    def close(self) -> list[ir.Event]:
        if self._ended:
            return []
        self._ended = True
        return [ir.Failure(message="the upstream's stream ended before response.completed")]

    # -- parts ---------------------------------------------------------------------------

    def _start(self, key: tuple[int, int], part: ir.Text | ir.Reasoning | ir.ToolCall,
               out: list[ir.Event]) -> _Open | None:
        if key in self._closed:
            return None
        current = self._open.get(key)
        if current is None:
            kind = ("text" if isinstance(part, ir.Text)
                    else "reasoning" if isinstance(part, ir.Reasoning) else "tool")
            current = self._open[key] = _Open(index=self._next, kind=kind)
            self._next += 1
            self._tools = self._tools or kind == "tool"
            out.append(ir.PartStart(index=current.index, part=part))
        return current

    @staticmethod
    def _delta(part: _Open | None, text: Any, out: list[ir.Event]) -> None:
        if part is not None and isinstance(text, str) and text:
            part.text += text
            out.append(ir.PartDelta(index=part.index, text=text))

    @classmethod
    def _catch_up(cls, part: _Open | None, full: Any, out: list[ir.Event]) -> None:
        """Emit what *full* (a final text) holds beyond what deltas brought."""
        if part is None or not isinstance(full, str):
            return
        if full.startswith(part.text):
            cls._delta(part, full[len(part.text):], out)

    def _end(self, key: tuple[int, int], out: list[ir.Event]) -> None:
        part = self._open.pop(key, None)
        if part is not None:
            self._closed.add(key)
            out.append(ir.PartEnd(index=part.index))

    def _text(self, event: Json, out: list[ir.Event]) -> _Open | None:
        key = (_int(event.get("output_index")), _int(event.get("content_index")))
        return self._start(key, ir.Text(text=""), out)

    @staticmethod
    def _call(item: Json) -> ir.ToolCall:
        """The empty call a function_call or custom_tool_call item opens."""
        call_id = typed(item.get("call_id"), str, "")
        name = typed(item.get("name"), str, "")
        kind: Literal["function", "custom"] = \
            "custom" if item.get("type") == "custom_tool_call" else "function"
        return ir.ToolCall(id=call_id, name=name, arguments="", kind=kind)

    # -- handlers ------------------------------------------------------------------------

    def on_item_added(self, event: Json, out: list[ir.Event]) -> None:
        item = typed(event.get("item"), dict, {})
        index = _int(event.get("output_index"))
        kind = item.get("type")
        if kind == "reasoning":
            self._start((index, -1), ir.Reasoning(id=_opt_str(item.get("id"))), out)
        elif kind in ("function_call", "custom_tool_call"):
            part = self._start((index, -1), self._call(item), out)
            self._delta(part, item.get("arguments" if kind == "function_call" else "input"), out)

    def on_part_added(self, event: Json, out: list[ir.Event]) -> None:
        part = typed(event.get("part"), dict, {})
        if part.get("type") in ("output_text", "refusal"):
            self._delta(self._text(event, out), part.get("text") or part.get("refusal"), out)

    def on_text_delta(self, event: Json, out: list[ir.Event]) -> None:
        self._delta(self._text(event, out), event.get("delta"), out)

    def on_text_done(self, event: Json, out: list[ir.Event]) -> None:
        full = event.get("text", event.get("refusal"))
        self._catch_up(self._text(event, out), full, out)

    def on_part_done(self, event: Json, out: list[ir.Event]) -> None:
        part = typed(event.get("part"), dict, {})
        if part.get("type") in ("output_text", "refusal"):
            self._catch_up(self._text(event, out), part.get("text", part.get("refusal")), out)
            key = (_int(event.get("output_index")), _int(event.get("content_index")))
            self._end(key, out)

    def _reasoning(self, event: Json, out: list[ir.Event], source: str) -> _Open | None:
        part = self._start((_int(event.get("output_index")), -1), ir.Reasoning(), out)
        if part is None:
            return None
        if part.source is None:
            part.source = source
        return part if part.source == source else None

    def _summary_text(self, part: _Open | None, index: int, text: Any,
                      out: list[ir.Event]) -> None:
        if part is None or not isinstance(text, str) or not text:
            return
        if index not in part.summaries and part.text:
            self._delta(part, "\n\n", out)  # a new summary part: keep them apart
        part.summaries[index] = part.summaries.get(index, "") + text
        self._delta(part, text, out)

    def on_summary_part_added(self, event: Json, out: list[ir.Event]) -> None:
        self._reasoning(event, out, "summary")

    def on_summary_delta(self, event: Json, out: list[ir.Event]) -> None:
        part = self._reasoning(event, out, "summary")
        self._summary_text(part, _int(event.get("summary_index")), event.get("delta"), out)

    def on_summary_done(self, event: Json, out: list[ir.Event]) -> None:
        part = self._reasoning(event, out, "summary")
        index, full = _int(event.get("summary_index")), event.get("text")
        if part is not None and isinstance(full, str):
            seen = part.summaries.get(index, "")
            if full.startswith(seen):
                self._summary_text(part, index, full[len(seen):], out)

    def on_reasoning_delta(self, event: Json, out: list[ir.Event]) -> None:
        self._delta(self._reasoning(event, out, "content"), event.get("delta"), out)

    def on_reasoning_done(self, event: Json, out: list[ir.Event]) -> None:
        self._catch_up(self._reasoning(event, out, "content"), event.get("text"), out)

    def _tool(self, event: Json) -> _Open | None:
        return self._open.get((_int(event.get("output_index")), -1))

    def on_arguments_delta(self, event: Json, out: list[ir.Event]) -> None:
        self._delta(self._tool(event), event.get("delta"), out)

    def on_arguments_done(self, event: Json, out: list[ir.Event]) -> None:
        self._catch_up(self._tool(event), event.get("arguments", event.get("input")), out)

    def on_item_done(self, event: Json, out: list[ir.Event]) -> None:
        item = typed(event.get("item"), dict, {})
        index = _int(event.get("output_index"))
        kind = item.get("type")
        if kind == "message":
            content = typed(item.get("content"), list, [])
            for ci, piece in enumerate(content):
                if not isinstance(piece, dict) or piece.get("type") not in ("output_text",
                                                                           "refusal"):
                    continue
                key = (index, ci)
                part = self._start(key, ir.Text(text=""), out)
                self._catch_up(part, piece.get("text", piece.get("refusal")), out)
                self._end(key, out)
        elif kind == "reasoning":
            self._reasoning_done(item, index, out)
        elif kind in ("function_call", "custom_tool_call"):
            key = (index, -1)
            part = self._start(key, self._call(item), out)
            self._catch_up(part, item.get("arguments" if kind == "function_call"
                                          else "input"), out)
            self._end(key, out)
        elif kind == "local_shell_call":
            key = (index, -1)
            try:
                call = item_part(item, kind, "item")
            except CodecError:
                return
            assert isinstance(call, ir.ToolCall)
            arguments, call.arguments = call.arguments, ""
            self._delta(self._start(key, call, out), arguments, out)
            self._end(key, out)

    def _reasoning_done(self, item: Json, index: int, out: list[ir.Event]) -> None:
        key = (index, -1)
        part = self._start(key, ir.Reasoning(id=_opt_str(item.get("id"))), out)
        if part is None:
            return
        if not part.text:
            full = item_part(item, "reasoning", "item")
            assert isinstance(full, ir.Reasoning)
            self._delta(part, full.text, out)
        encrypted = item.get("encrypted_content")
        if isinstance(encrypted, str) and encrypted:
            out.append(ir.PartSignature(index=part.index,
                                        signature=ir.Opaque("responses", encrypted)))
        self._end(key, out)

    def _close_parts(self, out: list[ir.Event]) -> None:
        for key in sorted(self._open, key=lambda k: self._open[k].index):
            out.append(ir.PartEnd(index=self._open[key].index))
            self._closed.add(key)
        self._open.clear()

    def on_terminal(self, event: Json, out: list[ir.Event]) -> None:
        response = typed(event.get("response"), dict, {})
        self._close_parts(out)
        self._ended = True
        if event.get("type") == "response.failed":
            out.append(_failure(response.get("error"), "the upstream's response failed"))
            return
        usage = decode_usage(response.get("usage")) or self._usage
        reason: ir.FinishReason = "tool_calls" if self._tools else "stop"
        if event.get("type") == "response.incomplete" or response.get("status") == "incomplete":
            details = response.get("incomplete_details")
            why = details.get("reason") if isinstance(details, dict) else None
            reason = "content_filter" if why == "content_filter" else "length"
        out.append(ir.Finish(reason=reason, usage=usage))

    def on_error(self, event: Json, out: list[ir.Event]) -> None:
        self._ended = True
        error = typed(event.get("error"), dict, event)
        out.append(_failure(error, "the upstream reported an error"))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_HANDLERS = {
    "response.output_item.added": ResponsesStreamDecoder.on_item_added,
    "response.content_part.added": ResponsesStreamDecoder.on_part_added,
    "response.output_text.delta": ResponsesStreamDecoder.on_text_delta,
    "response.refusal.delta": ResponsesStreamDecoder.on_text_delta,
    "response.output_text.done": ResponsesStreamDecoder.on_text_done,
    "response.refusal.done": ResponsesStreamDecoder.on_text_done,
    "response.content_part.done": ResponsesStreamDecoder.on_part_done,
    "response.reasoning_summary_part.added": ResponsesStreamDecoder.on_summary_part_added,
    "response.reasoning_summary_text.delta": ResponsesStreamDecoder.on_summary_delta,
    "response.reasoning_summary_text.done": ResponsesStreamDecoder.on_summary_done,
    "response.reasoning_text.delta": ResponsesStreamDecoder.on_reasoning_delta,
    "response.reasoning_text.done": ResponsesStreamDecoder.on_reasoning_done,
    "response.function_call_arguments.delta": ResponsesStreamDecoder.on_arguments_delta,
    "response.function_call_arguments.done": ResponsesStreamDecoder.on_arguments_done,
    "response.custom_tool_call_input.delta": ResponsesStreamDecoder.on_arguments_delta,
    "response.custom_tool_call_input.done": ResponsesStreamDecoder.on_arguments_done,
    "response.output_item.done": ResponsesStreamDecoder.on_item_done,
    "response.completed": ResponsesStreamDecoder.on_terminal,
    "response.incomplete": ResponsesStreamDecoder.on_terminal,
    "response.failed": ResponsesStreamDecoder.on_terminal,
    "error": ResponsesStreamDecoder.on_error,
}


# -- encoding (caller side) -----------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    """An output item being streamed to the caller."""

    output_index: int
    id: str
    part: ir.Text | ir.Reasoning | ir.ToolCall
    text: str = ""
    summary_open: bool = False
    signature: ir.Opaque | None = None
    #: a local_shell call: held back until its arguments are whole (its action needs them)
    held: bool = False


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


class ResponsesStreamEncoder:
    """Neutral events in, Responses SSE events out."""

    def __init__(self, model: str, request: ir.Request, estimated_input_tokens: int) -> None:
        self._model = model
        self._request = request
        self._estimate = estimated_input_tokens
        self._seq = 0
        self._rid = ""
        self._created_at = int(time.time())
        self._items: dict[int, _Item] = {}
        self._output: list[Json] = []
        self._next_output = 0
        self._usage: ir.Usage | None = None
        self._ended = False
        self._spaces = namespaces(request.tools)
        self._local_shell = any(
            t.name == LOCAL_SHELL and (t.raw or {}).get("type") == LOCAL_SHELL
            for t in request.tools)

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = orjson.dumps({"type": kind, "sequence_number": self._seq, **fields})
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    def _response(self, status: str, **extra: Any) -> Json:
        return envelope(self._rid, self._model, status=status, output=list(self._output),
                        created_at=self._created_at, request=self._request, **extra)

    def _start(self, upstream_id: str) -> bytes:
        self._rid = response_id(upstream_id)
        return (self._event("response.created",
                            response=self._response("in_progress", usage=None))
                + self._event("response.in_progress",
                              response=self._response("in_progress", usage=None)))

    def feed(self, event: ir.Event) -> bytes:
        if self._ended:
            return b""
        out = b""
        if not self._rid:
            out = self._start(event.id if isinstance(event, ir.Start) else "")
            if isinstance(event, ir.Start):
                return out
        if isinstance(event, ir.PartStart):
            out += self._part_start(event)
        elif isinstance(event, ir.PartDelta):
            out += self._part_delta(event)
        elif isinstance(event, ir.PartSignature):
            item = self._items.get(event.index)
            if item is not None:
                item.signature = event.signature
        elif isinstance(event, ir.PartEnd):
            out += self._part_end(event.index)
        elif isinstance(event, ir.UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, ir.Finish):
            out += self._finish(event)
        elif isinstance(event, ir.Failure):
            out += self._failed(event.message, event.kind)
        return out

    def close(self) -> bytes:
        if self._ended:
            return b""
        out = b"" if self._rid else self._start("")
        return out + self._failed("the upstream's stream ended before it finished",
                                  "server_error")

    # -- items ---------------------------------------------------------------------------

    def _part_start(self, event: ir.PartStart) -> bytes:
        if event.index in self._items:
            return b""
        part = event.part
        index = self._next_output
        self._next_output += 1
        if isinstance(part, ir.Text):
            item = _Item(index, item_id("msg", self._rid, index), part)
            self._items[event.index] = item
            added = {"id": item.id, "type": "message", "role": "assistant",
                     "status": "in_progress", "content": []}
            return (self._event("response.output_item.added", output_index=index, item=added)
                    + self._event("response.content_part.added", item_id=item.id,
                                  output_index=index, content_index=0,
                                  part={"type": "output_text", "text": "",
                                        "annotations": []}))
        if isinstance(part, ir.Reasoning):
            item = _Item(index, part.id or item_id("rs", self._rid, index), part,
                         signature=part.signature)
            self._items[event.index] = item
            return self._event("response.output_item.added", output_index=index,
                               item={"id": item.id, "type": "reasoning", "summary": []})
        custom = part.kind == "custom"
        item = _Item(index, item_id("ctc" if custom else "fc", self._rid, index), part,
                     held=self._local_shell and not custom and part.name == LOCAL_SHELL)
        self._items[event.index] = item
        if item.held:
            return b""
        return self._event("response.output_item.added", output_index=index,
                           item=self._call_item(item, status="in_progress"))

    def _call_item(self, item: _Item, *, status: str) -> Json:
        call = item.part
        assert isinstance(call, ir.ToolCall)
        if call.kind == "custom":
            return {"id": item.id, "type": "custom_tool_call", "status": status,
                    "call_id": call.id, "name": call.name, "input": item.text}
        out = {"id": item.id, "type": "function_call", "status": status,
               "call_id": call.id, "name": call.name, "arguments": item.text}
        if call.name in self._spaces:
            out["namespace"], out["name"] = self._spaces[call.name]
        return out

    def _part_delta(self, event: ir.PartDelta) -> bytes:
        item = self._items.get(event.index)
        if item is None or not event.text:
            return b""
        item.text += event.text
        ids = {"item_id": item.id, "output_index": item.output_index}
        if isinstance(item.part, ir.Text):
            return self._event("response.output_text.delta", **ids, content_index=0,
                               delta=event.text, logprobs=[])
        if isinstance(item.part, ir.Reasoning):
            out = b""
            if not item.summary_open:
                item.summary_open = True
                out = self._event("response.reasoning_summary_part.added", **ids,
                                  summary_index=0, part={"type": "summary_text", "text": ""})
            return out + self._event("response.reasoning_summary_text.delta", **ids,
                                     summary_index=0, delta=event.text)
        if item.held:
            return b""
        kind = ("response.custom_tool_call_input.delta" if item.part.kind == "custom"
                else "response.function_call_arguments.delta")
        return self._event(kind, **ids, delta=event.text)

    def _part_end(self, index: int) -> bytes:
        item = self._items.pop(index, None)
        if item is None:
            return b""
        ids = {"item_id": item.id, "output_index": item.output_index}
        out = b""
        part = item.part
        if isinstance(part, ir.Text):
            whole: ir.Part = ir.Text(text=item.text)
            out += (self._event("response.output_text.done", **ids, content_index=0,
                                text=item.text, logprobs=[])
                    + self._event("response.content_part.done", **ids, content_index=0,
                                  part={"type": "output_text", "text": item.text,
                                        "annotations": []}))
        elif isinstance(part, ir.Reasoning):
            whole = ir.Reasoning(text=item.text, signature=item.signature, id=item.id)
            if item.summary_open:
                out += (self._event("response.reasoning_summary_text.done", **ids,
                                    summary_index=0, text=item.text)
                        + self._event("response.reasoning_summary_part.done", **ids,
                                      summary_index=0,
                                      part={"type": "summary_text", "text": item.text}))
        else:
            whole = ir.ToolCall(id=part.id, name=part.name, arguments=item.text,
                                kind=part.kind)
            out += self._call_done(item, whole)
        done = output_item(whole, self._rid, item.output_index, local_shell=item.held,
                           spaces=self._spaces)
        assert done is not None
        self._output.append(done)
        return out + self._event("response.output_item.done", output_index=item.output_index,
                                 item=done)

    def _call_done(self, item: _Item, call: ir.ToolCall) -> bytes:
        """The events that close a call's input, before its output_item.done."""
        ids = {"item_id": item.id, "output_index": item.output_index}
        if item.held:
            done = output_item(call, self._rid, item.output_index, local_shell=True)
            assert done is not None
            if done["type"] == "local_shell_call":
                return self._event("response.output_item.added",
                                   output_index=item.output_index,
                                   item={**done, "status": "in_progress"})
            # not a well-formed shell action: it goes out as the function call it is
            item.held = False
            text, item.text = item.text, ""
            out = self._event("response.output_item.added", output_index=item.output_index,
                              item=self._call_item(item, status="in_progress"))
            item.text = text
            if text:
                out += self._event("response.function_call_arguments.delta", **ids,
                                   delta=text)
            return out + self._call_done(item, call)
        if call.kind == "custom":
            return self._event("response.custom_tool_call_input.done", **ids, input=item.text)
        return self._event("response.function_call_arguments.done", **ids,
                           arguments=call.arguments or "{}")

    # -- ends ----------------------------------------------------------------------------

    def _close_items(self) -> bytes:
        return b"".join(self._part_end(index) for index in sorted(
            self._items, key=lambda i: self._items[i].output_index))

    def _finish(self, event: ir.Finish) -> bytes:
        if event.reason == "error":
            return self._failed("the upstream ended its answer with an error", "server_error")
        out = self._close_items()
        self._ended = True
        usage = event.usage or self._usage or ir.Usage(input_tokens=self._estimate)
        incomplete = _INCOMPLETE.get(event.reason)
        if incomplete:
            return out + self._event("response.incomplete", response=self._response(
                "incomplete", usage=usage, incomplete=incomplete))
        return out + self._event("response.completed",
                                 response=self._response("completed", usage=usage))

    def _failed(self, message: str, kind: str) -> bytes:
        self._ended = True
        error = {"code": error_code(kind), "message": message}
        return self._event("response.failed", response=self._response(
            "failed", usage=self._usage, error=error))
