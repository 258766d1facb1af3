"""What the request path knows of Anthropic's dialects without translating: Messages, and its
counting route ``/v1/messages/count_tokens`` (a Messages conversation without an answer;
translated to Gemini's countTokens by `dialects.counting`)."""

from __future__ import annotations

from typing import Any, ClassVar

from ...errors import GatewayError, Kind
from .. import ir
from ..codec import Codec
from ..dialect import (
    FAILURE_KIND,
    Dialect,
    Json,
    content_parts,
    conversation_of,
    positive,
    tool_types,
)
from ..wire import dumps
from . import CODEC
from .errors import error_event
from .request import session_of
from .response import fold_usage

#: The Anthropic ``error.type`` of a gateway error of each kind.
ANTHROPIC_TYPES: dict[Kind, str] = {
    "server_error": "api_error", "authentication": "authentication_error",
    "permission": "permission_error", "not_found": "not_found_error",
    "invalid_request": "invalid_request_error", "timeout": "timeout_error",
    "too_large": "request_too_large", "quota": "rate_limit_error",
    "rate_limit": "rate_limit_error", "upstream": "api_error",
    "overloaded": "overloaded_error"}


class AnthropicDialect(Dialect):
    """The facts Messages and its counting route share: request fields and error shapes."""

    family = "anthropic"
    issuer = "messages"

    def asks_reasoning(self, payload: Json) -> bool:
        thinking = payload.get("thinking")
        return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")

    def offers_tools(self, payload: Json) -> bool:
        return bool(payload.get("tools"))

    def has_images(self, payload: Json) -> bool:
        """An ``image`` block in a message or in a tool result's content."""
        return any(part.get("type") == "image"
                   for part in content_parts(payload.get("messages"), "content"))

    def asks_web_search(self, payload: Json) -> bool:
        """A server web-search tool (``web_search_20250305`` and its successors)."""
        return any(kind.startswith("web_search_") for kind in tool_types(payload))

    def session_hint(self, payload: Json) -> tuple[str, str] | None:
        """Claude Code's session id, inside ``metadata.user_id``."""
        metadata = payload.get("metadata")
        user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
        session = session_of(user_id) if isinstance(user_id, str) else None
        return ("claude", session) if session else None

    def conversation(self, payload: Json) -> tuple[Any, list[Any]]:
        return conversation_of(payload.get("system") or None, payload.get("messages"))

    def system_prompt(self, payload: Json) -> Any:
        return payload.get("system") or None

    def error_body(self, error: GatewayError) -> bytes:
        """``{"type": "error", "error": {type, message}}``, Anthropic's shape."""
        return dumps({"type": "error", "error": {"type": ANTHROPIC_TYPES[error.kind],
                                                 "message": error.message}}).encode()

    def error_event(self, error: GatewayError) -> bytes:
        """``event: error``, typed as a translated stream's would be."""
        return error_event(error.message, FAILURE_KIND[error.kind])


class Messages(AnthropicDialect):
    name = "messages"
    codec: ClassVar[Codec | None] = CODEC
    terminal = (b"message_stop",)

    def max_output(self, payload: Json) -> int:
        return positive(payload.get("max_tokens"))

    def body_usage(self, body: Json) -> ir.Usage | None:
        return fold_usage(body.get("usage"), None)

    def event_usage(self, event: Json, so_far: ir.Usage | None) -> ir.Usage | None:
        """message_start's usage, then message_delta's on top of it."""
        message = event.get("message")
        raw = message.get("usage") if isinstance(message, dict) else event.get("usage")
        return fold_usage(raw, so_far)

    def drop_reasoning(self, body: Json) -> None:
        body.pop("thinking", None)


class CountTokens(AnthropicDialect):
    """``/v1/messages/count_tokens``: uses no tokens, so its usage is zero, never estimated."""

    name = "count_tokens"
    operation = "count_tokens"
    counting = True

    def body_usage(self, body: Json) -> ir.Usage | None:
        return ir.Usage()

    def count_answer(self, tokens: int) -> Json:
        return {"input_tokens": tokens}


MESSAGES = Messages()
COUNT_TOKENS = CountTokens()
