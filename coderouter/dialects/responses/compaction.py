"""Codex's remote compaction served by any upstream. Pure, no I/O.

Codex (built-in provider, or a provider named ``OpenAI``/``azure``) compacts a long session by
sending the whole history with ``{"type": "compaction_trigger"}`` as the last input item, and
needs exactly one output item back, ``{"type": "compaction", "id": "cmp_…",
"encrypted_content": …}``; its next requests carry that item in place of the history.

OpenAI answers that itself (a Responses channel passes it through). Elsewhere `Compactor`
serves it: one upstream call with the history, no tools and a summarization instruction; the
answer's text is sealed (`envelope`, as reasoning state is) into the item's
``encrypted_content``. When a later request carries the item back, `unseal_history` puts the
summary in its place as a user message, which every upstream reads (a Responses upstream too:
OpenAI cannot open our envelope). A compaction item sealed by OpenAI cannot be read anywhere
else: on a translated channel it becomes a note saying that earlier turns are not available
(the responses codec), on a Responses channel it passes through untouched.
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

import orjson

from ...errors import GatewayError, UpstreamError
from .. import framing
from ..envelope import Sealer, caller_binding, sealer
from .items import CODEX_ERROR_CODES, envelope, failed_event

Json = dict[str, Any]

TRIGGER = "compaction_trigger"
#: The key of the summary inside a compaction envelope.
_SEALED_KEY = "compaction"
#: What the upstream is asked after the history (the trigger's place).
SUMMARY_INSTRUCTION = (
    "Context checkpoint. The conversation above is about to be replaced by your summary of "
    "it, and the work will continue from that summary alone. Write the summary now: the "
    "user's goal and constraints, what has been done and what came of it (files changed, "
    "commands run, findings), the decisions taken and why, and what remains to do next. Be "
    "concise and concrete. Answer with the summary only; do not call tools.")
#: What the upstream reads where a compaction item was.
SUMMARY_PREFIX = "Summary of the earlier part of this conversation (it was compacted):\n\n"
#: What a translated upstream reads where a compaction item sealed by OpenAI was.
FOREIGN_NOTE = ("[Earlier turns of this conversation were compacted by another provider and "
                "cannot be read here; continue from the messages that follow.]")


def is_trigger(payload: Json) -> bool:
    """Whether *payload* (a Responses request) asks for a remote compaction."""
    items = payload.get("input")
    return isinstance(items, list) and bool(items) and isinstance(items[-1], dict) \
        and items[-1].get("type") == TRIGGER


def compaction_item(summary: str, sealer: Sealer, bound: str = "") -> Json:
    """The one output item answering a compaction: *summary* sealed for *bound* (the caller,
    `envelope.caller_binding`)."""
    return {"type": "compaction", "id": f"cmp_{os.urandom(12).hex()}",
            "encrypted_content": sealer.seal({_SEALED_KEY: summary}, bound)}


def summary_of(item: Any, sealer: Sealer, bound: str = "") -> str | None:
    """The summary sealed for *bound* in a compaction *item* we minted, else None."""
    if not isinstance(item, dict) or item.get("type") != "compaction":
        return None
    sealed = item.get("encrypted_content")
    opened = sealer.open(sealed, bound) if isinstance(sealed, str) else None
    summary = opened.get(_SEALED_KEY) if isinstance(opened, dict) else None
    return summary if isinstance(summary, str) else None


def unseal_history(payload: Json, sealer: Sealer, caller: str = "") -> Json:
    """*payload* with each compaction item we minted for the *caller* (its token) replaced by
    its summary as a user message (the same *payload* when it holds none); another caller's
    stays sealed, foreign state."""
    items = payload.get("input")
    if not isinstance(items, list) or not any(
            isinstance(i, dict) and i.get("type") == "compaction" for i in items):
        return payload
    bound = caller_binding(caller)
    out = []
    for item in items:
        summary = summary_of(item, sealer, bound)
        out.append(item if summary is None else user_message(SUMMARY_PREFIX + summary))
    return {**payload, "input": out}


def user_message(text: str) -> Json:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def summarization_request(payload: Json) -> Json:
    """The request that asks an upstream for the summary: the history, the instruction in
    the trigger's place, no tools."""
    body = {k: v for k, v in payload.items()
            if k not in ("tools", "tool_choice", "parallel_tool_calls")}
    items = payload.get("input")
    history = items[:-1] if isinstance(items, list) else []
    body["input"] = [*history, user_message(SUMMARY_INSTRUCTION)]
    return body


def _message_text(output: Any) -> str:
    """The text of the assistant message items in a Responses *output* list."""
    texts = []
    for item in output if isinstance(output, list) else []:
        if isinstance(item, dict) and item.get("type") == "message":
            texts += [part["text"] for part in item.get("content") or []
                      if isinstance(part, dict) and isinstance(part.get("text"), str)]
    return "".join(texts).strip()


class _Stream(Protocol):
    def feed(self, events: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def error_event(self, error: GatewayError) -> bytes: ...


class _Translation(Protocol):
    """One request across a Bridge (`hub.Translation`)."""

    @property
    def upstream(self) -> str: ...

    def request(self, model: str, bound: str = "") -> Json: ...

    def response(self, body: Json) -> Json: ...

    def stream(self) -> _Stream: ...

    def error(self, status: int, body: bytes) -> bytes: ...


class _Conversion(Protocol):
    """What a Bridge does for a Responses caller (relay.leg.Conversion)."""

    @property
    def upstream(self) -> str: ...

    def translate(self, payload: Json, prompt_tokens: int = 0,
                  caller: str = "") -> _Translation: ...


class Compactor:
    """A relay Conversion answering a compaction_trigger request with one compaction item.
    *inner* translates the summarization request for a channel of another dialect; None when
    the channel answers Responses itself without compacting (the mock)."""

    __slots__ = ("_inner", "upstream")

    def __init__(self, inner: _Conversion | None) -> None:
        self._inner = inner
        self.upstream = inner.upstream if inner is not None else "responses"

    def translate(self, payload: Json, prompt_tokens: int = 0, caller: str = "") -> Compaction:
        asked = summarization_request(payload)
        inner = self._inner.translate(asked, prompt_tokens) if self._inner is not None \
            else None
        return Compaction(inner, asked, str(payload.get("model")), sealer(),
                          caller_binding(caller))


class Compaction:
    """One compaction request across a Compactor (a relay Translation)."""

    __slots__ = ("_asked", "_bound", "_inner", "_model", "_sealer", "upstream")

    def __init__(self, inner: _Translation | None, asked: Json, model: str,
                 sealer: Sealer, bound: str = "") -> None:
        self._inner = inner
        self._bound = bound  # the caller the summary is sealed for
        self._asked = asked  # the summarization request
        self._model = model  # the caller's
        self._sealer = sealer
        self.upstream = inner.upstream if inner is not None else "responses"

    def request(self, model: str, bound: str = "") -> Json:
        if self._inner is not None:
            return self._inner.request(model, bound)
        return {**self._asked, "model": model}

    def response(self, body: Json) -> Json:
        answer = self._inner.response(body) if self._inner is not None else body
        summary = _message_text(answer.get("output"))
        rid = str(answer.get("id") or f"resp_{os.urandom(12).hex()}")
        if not summary:
            return envelope(rid, self._model, status="failed", output=[],
                            usage=None, created_at=int(time.time()),
                            error={"code": "server_error",
                                   "message": "the upstream wrote no summary"})
        out = envelope(rid, self._model, status="completed",
                       output=[compaction_item(summary, self._sealer, self._bound)],
                       usage=None,
                       created_at=int(time.time()))
        out["usage"] = answer.get("usage")
        return out

    def stream(self) -> CompactionStream:
        inner = self._inner.stream() if self._inner is not None else None
        return CompactionStream(inner, self._model, self._sealer, self._bound)

    def error(self, status: int, body: bytes) -> bytes:
        return self._inner.error(status, body) if self._inner is not None else body


class CompactionStream:
    """Responses events of the summary in (the inner converter's, or the upstream's as they
    are), the compaction's events out: ``response.created``, ``response.in_progress``, the
    item's ``output_item.added`` and ``.done``, then ``response.completed`` with the
    upstream's usage; a failure as ``response.failed``."""

    __slots__ = ("_bound", "_created", "_ended", "_inner", "_model", "_rid", "_sealer", "_seq",
                 "_texts")

    def __init__(self, inner: _Stream | None, model: str, sealer: Sealer,
                 bound: str = "") -> None:
        self._bound = bound
        self._inner = inner
        self._model = model
        self._sealer = sealer
        self._rid = f"resp_{os.urandom(12).hex()}"
        self._created = int(time.time())
        self._seq = 0
        self._texts: list[str] = []
        self._ended = False

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = orjson.dumps({"type": kind, "sequence_number": self._seq, **fields})
        self._seq += 1
        return f"event: {kind}\ndata: ".encode() + data + b"\n\n"

    def _response(self, status: str, **fields: Any) -> Json:
        out = envelope(self._rid, self._model, status=status, output=[], usage=None,
                       created_at=self._created)
        out.update(fields)
        return out

    def feed(self, events: bytes) -> bytes:
        return self._translate(self._inner.feed(events) if self._inner is not None else events)

    def finish(self) -> bytes:
        tail = self._translate(self._inner.finish()) if self._inner is not None else b""
        if self._ended:
            return tail
        return tail + self._failed("the upstream's stream ended before its summary did")

    def error_event(self, error: GatewayError) -> bytes:
        if self._ended:
            return b""
        return self._failed(error.message, error.code)

    def _translate(self, events: bytes) -> bytes:
        out = []
        for _, data in framing.events(events):
            if self._ended:
                break
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                out.append(self._on(event))
        return b"".join(out)

    def _on(self, event: Json) -> bytes:
        kind = event.get("type")
        given = event.get("response")
        response: Json = given if isinstance(given, dict) else {}
        if kind == "response.created":
            if isinstance(response.get("id"), str) and response["id"]:
                self._rid = response["id"]
            return (self._event("response.created", response=self._response("in_progress"))
                    + self._event("response.in_progress",
                                  response=self._response("in_progress")))
        if kind == "response.output_item.done":
            self._texts.append(_message_text([event.get("item")]))
        elif kind in ("response.completed", "response.incomplete"):
            summary = "".join(self._texts) or _message_text(response.get("output"))
            return self._completed(summary.strip(), response.get("usage"))
        elif kind in ("response.failed", "error"):
            error = response.get("error") if kind == "response.failed" else event
            error = error if isinstance(error, dict) else {}
            return self._failed(str(error.get("message") or "the upstream failed"),
                                str(error.get("code") or "server_error"))
        return b""

    def _completed(self, summary: str, usage: Any) -> bytes:
        if not summary:
            return self._failed("the upstream wrote no summary")
        self._ended = True
        item = compaction_item(summary, self._sealer, self._bound)
        return (self._event("response.output_item.added", output_index=0, item=item)
                + self._event("response.output_item.done", output_index=0, item=item)
                + self._event("response.completed", response=self._response(
                    "completed", output=[item], usage=usage)))

    def _failed(self, message: str, code: str = "server_error") -> bytes:
        self._ended = True
        if self._seq == 0:
            return failed_event(message, code)
        code = code if code in CODEX_ERROR_CODES else "server_error"
        return self._event("response.failed", response=self._response(
            "failed", error={"code": code, "message": message}))


#: The most text of the user messages a ``/responses/compact`` answer keeps before its
#: compaction item (about 20k tokens, as Codex keeps when it compacts itself).
KEPT_USER_CHARS = 80_000


def kept_user_messages(items: list[Any]) -> list[Json]:
    """The latest user messages of *items* within `KEPT_USER_CHARS`, in their order."""
    kept: list[Json] = []
    size = 0
    for item in reversed(items):
        if not isinstance(item, dict) or item.get("role") != "user" \
                or item.get("type", "message") != "message":
            continue
        size += len(orjson.dumps(item.get("content")))
        if size > KEPT_USER_CHARS and kept:
            break
        kept.append(item)
    return kept[::-1]


class CompactRoute:
    """A relay Conversion serving ``POST /responses/compact`` (older Codex) from a channel
    without that route: the request as a compaction_trigger request through a `Compactor`
    over *inner* (None: the channel speaks Responses itself), answered as the route answers,
    ``{"object": "response.compaction", "output": [kept user messages..., compaction item]}``."""

    __slots__ = ("_compactor", "upstream")

    def __init__(self, inner: _Conversion | None) -> None:
        self._compactor = Compactor(inner)
        self.upstream = self._compactor.upstream

    def translate(self, payload: Json, prompt_tokens: int = 0,
                  caller: str = "") -> CompactAnswer:
        items = payload.get("input")
        history = list(items) if isinstance(items, list) else [] if items is None \
            else [user_message(str(items))]
        asked = {**payload, "input": [*history, {"type": TRIGGER}], "stream": False}
        return CompactAnswer(self._compactor.translate(asked, prompt_tokens, caller),
                             kept_user_messages(history))


class CompactAnswer:
    """One ``/responses/compact`` request across a `CompactRoute` (a relay Translation)."""

    __slots__ = ("_compaction", "_kept", "upstream")

    def __init__(self, compaction: Compaction, kept: list[Json]) -> None:
        self._compaction = compaction
        self._kept = kept
        self.upstream = compaction.upstream

    def request(self, model: str, bound: str = "") -> Json:
        return self._compaction.request(model, bound)

    def response(self, body: Json) -> Json:
        answer = self._compaction.response(body)
        output = answer.get("output") or []
        if answer.get("status") != "completed" or not output:
            raise UpstreamError("the upstream wrote no summary")
        return {"id": answer.get("id"), "object": "response.compaction",
                "created_at": answer.get("created_at"), "output": [*self._kept, *output],
                "usage": answer.get("usage")}

    def stream(self) -> CompactionStream:
        return self._compaction.stream()

    def error(self, status: int, body: bytes) -> bytes:
        return self._compaction.error(status, body)
