"""The ``anthropic`` kind: Anthropic's Messages API (and servers speaking it), with an
``x-api-key`` header, an ``anthropic-version`` when the caller sent none, and only the
caller's ``anthropic-beta`` values the channel allows (``betas:``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from multidict import CIMultiDict

from .kind import Kind

if TYPE_CHECKING:
    from ..config import Channel

#: The ``anthropic-version`` sent when the caller names none.
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
#: The caller ``anthropic-beta`` values a channel without ``betas:`` passes: what Claude Code
#: sends for its normal work on an API key (its identity, interleaved thinking, effort,
#: context management and compaction, which pair with body fields it sends, prompt caching,
#: redacted thinking, mid-conversation tool changes, token counting). Billed or account-level
#: betas (the 1M context, fast mode, the 1 h cache TTL, files, batches, MCP servers, OAuth)
#: pass only when the operator lists them.
DEFAULT_BETAS = (
    "claude-code-20250219", "interleaved-thinking-2025-05-14", "effort-2025-11-24",
    "context-management-2025-06-27", "compact-2026-01-12", "prompt-caching-2024-07-31",
    "prompt-caching-scope-2026-01-05", "redact-thinking-2026-02-12",
    "mid-conversation-tool-changes-2026-07-01", "token-counting-2024-11-01",
    "fine-grained-tool-streaming-2025-05-14")
#: A ``betas:`` entry that passes every value the caller sends.
ANY_BETA = "*"


class AnthropicKind(Kind):
    price_provider = "anthropic"
    name = "anthropic"
    family = "anthropic"
    paths: ClassVar = {"messages": "/v1/messages", "count_tokens": "/v1/messages/count_tokens"}
    default_betas = DEFAULT_BETAS

    def restrict(self, headers: CIMultiDict[str], channel: Channel) -> None:
        """Keep the caller's ``anthropic-beta`` values that *channel*'s ``betas`` list."""
        sent = headers.popall("anthropic-beta", ())
        allowed = DEFAULT_BETAS if channel.betas is None else channel.betas
        if not sent or ANY_BETA in allowed:
            headers.extend(("anthropic-beta", value) for value in sent)
            return
        kept = [beta for value in sent for beta in (b.strip() for b in value.split(","))
                if beta in allowed]
        if kept:
            headers["anthropic-beta"] = ",".join(dict.fromkeys(kept))

    def authorize(self, headers: CIMultiDict[str], key: str) -> None:
        headers["x-api-key"] = key
        headers.setdefault("anthropic-version", DEFAULT_ANTHROPIC_VERSION)


ANTHROPIC = AnthropicKind()
