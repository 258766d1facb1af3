"""What the request path knows of the Responses API without translating."""

from __future__ import annotations

from typing import Any, ClassVar

from ...errors import GatewayError
from .. import ir
from ..chat.facts import OpenAIDialect, names_effort
from ..codec import Codec
from ..dialect import (
    Json,
    Name,
    content_parts,
    conversation_of,
    positive,
    system_of,
    tool_types,
)
from ..envelope import sealer
from . import CODEC, compaction
from .items import decode_usage, failed_event


class Responses(OpenAIDialect):
    name: ClassVar[Name] = "responses"
    issuer = "responses"
    codec: ClassVar[Codec | None] = CODEC
    terminal = (b"response.completed", b"response.incomplete", b"response.failed")

    def max_output(self, payload: Json) -> int:
        return positive(payload.get("max_output_tokens"))

    def asks_reasoning(self, payload: Json) -> bool:
        reasoning = payload.get("reasoning")
        return isinstance(reasoning, dict) and names_effort(reasoning.get("effort"))

    def offers_tools(self, payload: Json) -> bool:
        return bool(payload.get("tools"))

    def has_images(self, payload: Json) -> bool:
        """An ``input_image`` in a message item or in a tool call's output."""
        return any(part.get("type") == "input_image"
                   for part in content_parts(payload.get("input"), "content", "output"))

    def asks_web_search(self, payload: Json) -> bool:
        return any(kind.startswith("web_search") for kind in tool_types(payload))

    def session_hint(self, payload: Json) -> tuple[str, str] | None:
        key = payload.get("prompt_cache_key")
        return ("pck", key) if isinstance(key, str) else None

    def conversation(self, payload: Json) -> tuple[Any, list[Any]]:
        return conversation_of(payload.get("instructions") or None, payload.get("input"))

    def system_prompt(self, payload: Json) -> Any:
        return system_of(payload.get("instructions") or None, payload.get("input"))

    def unseal(self, payload: Json, caller: str = "") -> Json:
        """Codex's compacted history: the summaries the gateway sealed for *caller*, opened."""
        return compaction.unseal_history(payload, sealer(), caller)

    def asks_compaction(self, payload: Json) -> bool:
        return compaction.is_trigger(payload)

    def body_usage(self, body: Json) -> ir.Usage | None:
        return decode_usage(body.get("usage"))

    def event_usage(self, event: Json, so_far: ir.Usage | None) -> ir.Usage | None:
        """The usage of the response a terminal event carries."""
        response = event.get("response")
        return (decode_usage(response.get("usage")) if isinstance(response, dict)
                else None) or so_far

    def drop_reasoning(self, body: Json) -> None:
        body.pop("reasoning", None)

    def takes_cache_key(self, base_url: str) -> bool:
        return True

    def error_event(self, error: GatewayError) -> bytes:
        """``response.failed``: Codex reads only that (an ``error`` event leaves it waiting)."""
        return failed_event(error.message, error.code)


class ResponsesCompact(Responses):
    """``POST /responses/compact`` (older Codex): a Responses request whose answer is a
    whole JSON ``response.compaction`` with the compacted history as ``output``."""

    name: ClassVar[Name] = "responses_compact"
    codec: ClassVar[Codec | None] = None
    compacts = "responses"

    def asks_compaction(self, payload: Json) -> bool:
        return False  # every request does: the route, not the payload, says so

    def takes_cache_key(self, base_url: str) -> bool:
        return False  # the route takes only what Codex sends it


RESPONSES = Responses()
RESPONSES_COMPACT = ResponsesCompact()
