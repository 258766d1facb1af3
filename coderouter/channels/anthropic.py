"""The ``anthropic`` kind: Anthropic's Messages API (and servers speaking it), with an
``x-api-key`` header and an ``anthropic-version`` when the caller sent none."""

from __future__ import annotations

from typing import ClassVar

from multidict import CIMultiDict

from .kind import Kind

#: The ``anthropic-version`` sent when the caller names none.
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"


class AnthropicKind(Kind):
    name = "anthropic"
    family = "anthropic"
    paths: ClassVar = {"messages": "/v1/messages", "count_tokens": "/v1/messages/count_tokens"}

    def authorize(self, headers: CIMultiDict[str], key: str) -> None:
        headers["x-api-key"] = key
        headers.setdefault("anthropic-version", DEFAULT_ANTHROPIC_VERSION)


ANTHROPIC = AnthropicKind()
