"""Serving one API dialect from a channel that speaks another, over `translate`. No I/O.

Two conversions, registered in `proxy.CONVERSIONS` by (caller dialect, channel type):

* `MessagesViaChat`: Anthropic Messages callers (Claude Code) on OpenAI-compatible, Azure and
  mock channels, which are sent Chat Completions;
* `ChatViaMessages`: Chat Completions callers (OpenAI SDKs, aider, Cline) on Anthropic
  channels, which are sent Messages.

A request that cannot be translated is the caller's error (`InvalidRequest`, 400); an upstream
answer or stream that cannot be translated is the upstream's (`UpstreamError`, 502). Upstream
error bodies reach the caller in the caller's own error shape, message kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from .errors import InvalidRequest, UpstreamError
from .estimate import estimate_tokens
from .sse import Dialect
from .translate import (
    ChatStreamToMessages,
    MessagesStreamToChat,
    TranslationError,
    chat_request_to_messages,
    chat_response_to_messages,
    messages_request_to_chat,
    messages_response_to_chat,
)

Json = dict[str, Any]

#: The Anthropic ``error.type`` an HTTP status stands for (api.anthropic.com's table).
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error",
}
_MAX_MESSAGE = 1000


def sse_events(block: bytes) -> Iterator[tuple[str, bytes]]:
    """Yield (event name, joined data) of each event in *block*; the name is "" when absent.

    *block* holds whole events (a last one may lack its blank line); comments and events
    without data are skipped.
    """
    for event in block.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = "", []
        for line in event.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode("utf-8", "replace")
            elif line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
        if data:
            yield name, b"\n".join(data)


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError("upstream sent a stream event that is not JSON") from None


def _error_message(status: int, body: bytes) -> str:
    """The message of an OpenAI- or Anthropic-shaped error body, else the body's text."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        error = obj.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
        if isinstance(obj.get("message"), str):
            return obj["message"]
    text = body.decode("utf-8", "replace").strip()[:_MAX_MESSAGE]
    return text or f"upstream answered {status}"


def _error_type(body: bytes) -> str | None:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = obj.get("error") if isinstance(obj, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else None


class ChatEventsToMessages:
    """A StreamConverter: chat.completion.chunk SSE bytes in, Anthropic SSE event bytes out."""

    def __init__(self, model: str, estimated_input_tokens: int) -> None:
        self._stream = ChatStreamToMessages(model, estimated_input_tokens)

    def feed(self, events: bytes) -> bytes:
        out = []
        for _, data in sse_events(events):
            if data.strip() == b"[DONE]":
                continue
            try:
                out.append(self._stream.feed(_loads(data)))
            except TranslationError as exc:
                raise UpstreamError(f"upstream stream error: {exc}") from None
        return b"".join(out)

    def finish(self) -> bytes:
        return self._stream.finish()


class MessagesEventsToChat:
    """A StreamConverter: Anthropic SSE event bytes in, chat.completion.chunk SSE bytes out."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self._stream = MessagesStreamToChat(model, include_usage)

    def feed(self, events: bytes) -> bytes:
        out = []
        for name, data in sse_events(events):
            obj = _loads(data)
            event = name or (obj.get("type") if isinstance(obj, dict) else "") or ""
            try:
                out.append(self._stream.feed(event, obj))
            except TranslationError as exc:
                raise UpstreamError(f"upstream stream error: {exc}") from None
        return b"".join(out)

    def finish(self) -> bytes:
        return self._stream.finish()


class MessagesViaChat:
    """Anthropic Messages served by a Chat Completions channel."""

    upstream: Dialect = "chat"

    def request(self, payload: Json) -> Json:
        try:
            return messages_request_to_chat(payload)
        except TranslationError as exc:
            raise InvalidRequest(str(exc)) from None

    def response(self, body: Json, payload: Json) -> Json:
        try:
            return chat_response_to_messages(body, str(payload.get("model")))
        except TranslationError as exc:
            raise UpstreamError(f"upstream answer cannot be translated: {exc}") from None

    def stream(self, payload: Json) -> ChatEventsToMessages:
        return ChatEventsToMessages(str(payload.get("model")), estimate_tokens(payload))

    def error(self, status: int, body: bytes) -> bytes:
        """An upstream's error body as ``{"type": "error", "error": {type, message}}``."""
        kind = ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500
                                         else "invalid_request_error")
        return orjson.dumps({"type": "error", "error": {
            "type": kind, "message": _error_message(status, body)}})


class ChatViaMessages:
    """Chat Completions served by an Anthropic Messages channel."""

    upstream: Dialect = "messages"

    def request(self, payload: Json) -> Json:
        try:
            return chat_request_to_messages(payload)
        except TranslationError as exc:
            raise InvalidRequest(str(exc)) from None

    def response(self, body: Json, payload: Json) -> Json:
        try:
            return messages_response_to_chat(body, str(payload.get("model")))
        except TranslationError as exc:
            raise UpstreamError(f"upstream answer cannot be translated: {exc}") from None

    def stream(self, payload: Json) -> MessagesEventsToChat:
        model = str(payload.get("model"))
        options = payload.get("stream_options")
        include = isinstance(options, dict) and options.get("include_usage") is True
        return MessagesEventsToChat(model, include)

    def error(self, status: int, body: bytes) -> bytes:
        """An upstream's error body as ``{"error": {message, type, code, param}}``."""
        return orjson.dumps({"error": {
            "message": _error_message(status, body),
            "type": _error_type(body) or "invalid_request_error", "code": None,
            "param": None}})


_MESSAGES_VIA_CHAT = MessagesViaChat()
_CHAT_VIA_MESSAGES = ChatViaMessages()

#: The conversions `proxy.CONVERSIONS` starts with.
BUILTIN: dict[tuple[Dialect, str], MessagesViaChat | ChatViaMessages] = {
    ("messages", "openai"): _MESSAGES_VIA_CHAT,
    ("messages", "azure"): _MESSAGES_VIA_CHAT,
    ("messages", "mock"): _MESSAGES_VIA_CHAT,
    ("chat", "anthropic"): _CHAT_VIA_MESSAGES,
}
