"""Token estimates: for upstreams that report no usage, and for quota reservations."""

from __future__ import annotations

from typing import Any

IMAGE_TOKENS = 1000
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4

_BINARY_PART_TYPES = frozenset(
    {"image", "image_url", "input_image", "document", "file", "input_file", "input_audio"})
#: A Gemini part holding an image or file (Gemini parts have no "type").
_GEMINI_MEDIA = frozenset({"inlineData", "fileData"})
_UNCOUNTED_KEYS = frozenset(
    {"type", "role", "id", "tool_use_id", "tool_call_id", "cache_control", "media_type",
     "thoughtSignature"})


def estimate_tokens(body: dict[str, Any]) -> int:
    """Return a rough prompt token count for an Anthropic, OpenAI or Gemini request body.

    About one token per four characters of text in the system prompt, messages, content
    parts and tool definitions, plus a few per message; each image or file counts a flat
    1000 tokens whatever its encoded size.
    """
    if not isinstance(body, dict):
        return 0
    chars = 0
    images = 0
    for key in ("system", "messages", "tools", "functions", "prompt", "input", "instructions",
                "contents", "systemInstruction", "generateContentRequest"):
        counted_chars, counted_images = _count(body.get(key))
        chars += counted_chars
        images += counted_images
    messages = body.get("messages")
    overhead = MESSAGE_OVERHEAD_TOKENS * len(messages) if isinstance(messages, list) else 0
    return -(-chars // CHARS_PER_TOKEN) + images * IMAGE_TOKENS + overhead


def _count(value: Any) -> tuple[int, int]:
    """Return (text characters, binary parts) found in a JSON value."""
    if isinstance(value, str):
        return len(value), 0
    if isinstance(value, list):
        totals = [_count(item) for item in value]
        return sum(t[0] for t in totals), sum(t[1] for t in totals)
    if isinstance(value, dict):
        if value.get("type") in _BINARY_PART_TYPES or _GEMINI_MEDIA.intersection(value):
            return 0, 1
        totals = [_count(v) for k, v in value.items() if k not in _UNCOUNTED_KEYS]
        return sum(t[0] for t in totals), sum(t[1] for t in totals)
    if value is None:
        return 0, 0
    return len(str(value)), 0


def estimate_output_tokens(body: Any) -> int:
    """About one token per four characters of an answer's choices, output or content."""
    if not isinstance(body, dict):
        return 0
    chars = sum(_count(body.get(key))[0]
                for key in ("choices", "output", "content", "candidates"))
    return -(-chars // CHARS_PER_TOKEN)
