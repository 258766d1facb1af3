"""The ``openai`` kind: OpenAI's API and every OpenAI-compatible server (DeepSeek, Qwen, vLLM,
Ollama...), reached at ``{base_url}/chat/completions`` and its siblings with a Bearer key."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .kind import Kind

if TYPE_CHECKING:
    from ..config import Channel

#: What an OpenAI-compatible upstream serves, and the path appended to its base_url.
OPENAI_PATHS = {"chat": "/chat/completions", "completions": "/completions",
                "embeddings": "/embeddings", "responses": "/responses",
                "responses_compact": "/responses/compact"}
_CHAT_DIALECTS = ("chat", "completions")
_RESPONSES_DIALECTS = ("responses", "responses_compact")


class OpenAIKind(Kind):
    """An upstream in the OpenAI wire formats; ``responses:`` says whether it has the
    Responses API (true), not (false: /v1/responses is translated to Chat Completions), or
    only it (``only``: Chat, Messages and Gemini callers are translated to Responses)."""
    price_provider = "openai"

    name = "openai"
    family = "openai"
    paths: ClassVar = OPENAI_PATHS
    has_responses_setting = True

    def __init__(self) -> None:
        super().__init__()
        self._chat_only = tuple(d for d in self._native if d not in _RESPONSES_DIALECTS)
        self._responses_only = tuple(d for d in self._native if d not in _CHAT_DIALECTS)

    def dialects(self, channel: Channel) -> tuple[str, ...]:
        if channel.responses == "only":
            return self._responses_only
        return self._native if channel.responses else self._chat_only

    def responses_default(self, base_url: str) -> bool:
        """OpenAI's own API has the Responses API; most compatible servers do not."""
        host = base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
        return host == "api.openai.com"

    def describe(self, channel: Channel) -> str:
        """What the channel does with /v1/responses, and why."""
        said = "set" if channel.responses != self.responses_default(channel.base_url) \
            else "default for this base_url"
        if channel.responses == "only":
            return (f"channel '{channel.name}': Responses API only (responses: only); "
                    "/v1/responses passes through, Chat, Messages and Gemini callers are "
                    "translated to it, /v1/completions is refused")
        if channel.responses:
            return (f"channel '{channel.name}': Chat Completions and Responses API "
                    f"(responses: true, {said}); /v1/responses passes through")
        return (f"channel '{channel.name}': Chat Completions only (responses: false, {said}); "
                "/v1/responses is translated to Chat Completions")


OPENAI = OpenAIKind()
