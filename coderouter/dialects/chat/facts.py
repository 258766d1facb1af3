"""What the request path knows of OpenAI's dialects without translating: Chat Completions, and
the two OpenAI routes that only pass through (legacy completions, embeddings: no codec, the
same usage and error shapes as Chat)."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from ...errors import GatewayError, Kind
from .. import ir
from ..codec import Codec
from ..dialect import (
    Dialect,
    Json,
    content_parts,
    conversation_of,
    positive,
    system_of,
    tool_types,
)
from . import CODEC
from .response import decode_usage

#: The OpenAI ``error.type`` of a gateway error of each kind.
OPENAI_TYPES: dict[Kind, str] = {
    "server_error": "server_error", "authentication": "invalid_request_error",
    "permission": "invalid_request_error", "not_found": "invalid_request_error",
    "invalid_request": "invalid_request_error", "timeout": "invalid_request_error",
    "too_large": "invalid_request_error", "quota": "insufficient_quota",
    "rate_limit": "rate_limit_exceeded", "upstream": "upstream_error",
    "overloaded": "server_error"}


def names_effort(value: Any) -> bool:
    """Whether a reasoning ``effort`` field asks for reasoning: a string other than none."""
    return isinstance(value, str) and value != "none"


class OpenAIDialect(Dialect):
    """The facts every OpenAI route shares: usage and error shapes."""

    family = "openai"

    def body_usage(self, body: Json) -> ir.Usage | None:
        return decode_usage(body.get("usage"))

    def event_usage(self, event: Json, so_far: ir.Usage | None) -> ir.Usage | None:
        return decode_usage(event.get("usage")) or so_far

    def usage_only(self, event: Json) -> bool:
        """The chunk with ``"choices": []`` that Chat and completions streams end with."""
        return event.get("choices") == []

    def error_body(self, error: GatewayError) -> bytes:
        """``{"error": {message, type, code, param}}``, OpenAI's shape."""
        return orjson.dumps({"error": {"message": error.message,
                                       "type": OPENAI_TYPES[error.kind],
                                       "code": error.code, "param": None}})

    def error_event(self, error: GatewayError) -> bytes:
        payload = {"error": {"message": error.message, "type": "upstream_error",
                             "code": error.code}}
        return b"data: " + orjson.dumps(payload) + b"\n\n"


class Chat(OpenAIDialect):
    name = "chat"
    issuer = "chat"
    codec: ClassVar[Codec | None] = CODEC
    injects_usage = True
    terminal = (b"data: [DONE]", b"data:[DONE]")

    def max_output(self, payload: Json) -> int:
        return positive(payload.get("max_completion_tokens")) or positive(
            payload.get("max_tokens"))

    def asks_reasoning(self, payload: Json) -> bool:
        """``reasoning_effort``, OpenRouter's ``reasoning``, or the ``thinking`` switch of
        DeepSeek, GLM and Kimi."""
        if names_effort(payload.get("reasoning_effort")):
            return True
        reasoning = payload.get("reasoning")
        if isinstance(reasoning, dict) and names_effort(reasoning.get("effort")):
            return True
        thinking = payload.get("thinking")
        return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")

    def offers_tools(self, payload: Json) -> bool:
        return bool(payload.get("tools") or payload.get("functions"))

    def has_images(self, payload: Json) -> bool:
        return any(part.get("type") == "image_url"
                   for part in content_parts(payload.get("messages"), "content"))

    def asks_web_search(self, payload: Json) -> bool:
        """``web_search_options``, or a server web-search tool (OpenRouter, some vendors)."""
        return isinstance(payload.get("web_search_options"), dict) or any(
            kind.startswith("web_search") for kind in tool_types(payload))

    def session_hint(self, payload: Json) -> tuple[str, str] | None:
        key = payload.get("prompt_cache_key")
        return ("pck", key) if isinstance(key, str) else None

    def conversation(self, payload: Json) -> tuple[Any, list[Any]]:
        return conversation_of(None, payload.get("messages"))

    def system_prompt(self, payload: Json) -> Any:
        return system_of(None, payload.get("messages"))

    def drop_reasoning(self, body: Json) -> None:
        for key in ("reasoning_effort", "reasoning", "thinking"):
            body.pop(key, None)
        messages = body.get("messages")
        if isinstance(messages, list):
            for message in messages:
                if isinstance(message, dict):
                    message.pop("reasoning_content", None)

    def takes_cache_key(self, base_url: str) -> bool:
        """OpenAI's own Chat Completions does; other Chat servers may refuse a field they do
        not know."""
        return "//api.openai.com" in base_url


class Completions(OpenAIDialect):
    """``/v1/completions``: passed through to OpenAI-compatible channels, never translated."""

    name = "completions"
    operation = "text_completion"
    injects_usage = True
    terminal = (b"data: [DONE]", b"data:[DONE]")

    def max_output(self, payload: Json) -> int:
        return positive(payload.get("max_tokens"))


class Embeddings(OpenAIDialect):
    """``/v1/embeddings``: passed through to OpenAI-compatible channels, never translated."""

    name = "embeddings"
    operation = "embeddings"

    def conversation(self, payload: Json) -> tuple[Any, list[Any]]:
        return conversation_of(None, payload.get("input"))


CHAT = Chat()
COMPLETIONS = Completions()
EMBEDDINGS = Embeddings()
