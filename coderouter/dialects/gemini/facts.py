"""What the request path knows of the Gemini API without translating: ``generateContent``
(and its stream), and its counting method ``countTokens`` (translated to Anthropic's
count_tokens by `dialects.counting`). The model is the URL's; the Gemini routes put it, and
the stream flag, beside the body as ``model`` and ``stream``."""

from __future__ import annotations

from typing import Any, ClassVar

from ...errors import GatewayError
from .. import ir
from ..codec import Codec
from ..dialect import Dialect, Json, content_parts, conversation_of, positive
from . import CODEC
from .errors import error_body
from .fields import _get
from .response import decode_usage


class GeminiDialect(Dialect):
    """The facts generateContent and countTokens share: request fields and error shapes."""

    family = "gemini"
    issuer = "gemini"
    model_in_url = True

    def asks_reasoning(self, payload: Json) -> bool:
        config = payload.get("generationConfig")
        thinking = config.get("thinkingConfig") if isinstance(config, dict) else None
        if not isinstance(thinking, dict):
            return False
        budget = thinking.get("thinkingBudget")
        return bool(thinking.get("includeThoughts") or thinking.get("thinkingLevel")
                    or (isinstance(budget, int) and budget != 0))

    def offers_tools(self, payload: Json) -> bool:
        return bool(payload.get("tools"))

    def has_images(self, payload: Json) -> bool:
        """A part with inline data or a file whose MIME type is an image's (or unsaid)."""
        for part in content_parts(payload.get("contents"), "parts"):
            for field in ("inlineData", "fileData"):
                blob = _get(part, field)
                if isinstance(blob, dict):
                    mime = _get(blob, "mimeType")
                    if not isinstance(mime, str) or mime.startswith("image/"):
                        return True
        return False

    def asks_web_search(self, payload: Json) -> bool:
        """A ``googleSearch`` (or the older ``googleSearchRetrieval``) tool."""
        tools = payload.get("tools")
        return any(isinstance(tool, dict) and (_get(tool, "googleSearch") is not None
                                               or _get(tool, "googleSearchRetrieval") is not None)
                   for tool in (tools if isinstance(tools, list) else ()))

    def conversation(self, payload: Json) -> tuple[Any, list[Any]]:
        return conversation_of(payload.get("systemInstruction") or None, payload.get("contents"))

    def system_prompt(self, payload: Json) -> Any:
        return payload.get("systemInstruction") or None

    def error_body(self, error: GatewayError) -> bytes:
        """Google's ``{"error": {code, message, status}}``."""
        return error_body(error.status, error.message)

    def error_event(self, error: GatewayError) -> bytes:
        status = 503 if error.kind == "overloaded" else 502
        return b"data: " + error_body(status, error.message, "UNAVAILABLE") + b"\r\n\r\n"


class Gemini(GeminiDialect):
    name = "gemini"
    operation = "generate_content"
    codec: ClassVar[Codec | None] = CODEC
    terminal = (b'"finishReason"',)
    usage_key = b'"usageMetadata"'
    usage_repeats = True

    def max_output(self, payload: Json) -> int:
        config = payload.get("generationConfig")
        return positive(config.get("maxOutputTokens")) if isinstance(config, dict) else 0

    def body_usage(self, body: Json) -> ir.Usage | None:
        return decode_usage(_get(body, "usageMetadata"))

    def event_usage(self, event: Json, so_far: ir.Usage | None) -> ir.Usage | None:
        """Gemini repeats its running usage in every chunk: the latest counts."""
        return decode_usage(_get(event, "usageMetadata")) or so_far

    def drop_reasoning(self, body: Json) -> None:
        config = body.get("generationConfig")
        if isinstance(config, dict):
            config.pop("thinkingConfig", None)


class GeminiCount(GeminiDialect):
    """``countTokens``: uses no tokens, so its usage is zero, never estimated."""

    name = "gemini_count"
    operation = "count_tokens"
    counting = True

    def body_usage(self, body: Json) -> ir.Usage | None:
        return ir.Usage()

    def count_answer(self, tokens: int) -> Json:
        return {"totalTokens": tokens}


GEMINI = Gemini()
GEMINI_COUNT = GeminiCount()
