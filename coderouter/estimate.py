"""Token estimates for when an upstream reports no usage, and for quota reservations."""

from __future__ import annotations

from typing import Any

_IMAGE_TOKENS = 1000
_PER_MESSAGE = 4


def estimate_tokens(body: Any) -> int:
    """About one token per four characters of the prompt's text (system, messages, input,
    prompt, tools); an image counts a flat 1000, never the length of its data."""
    if not isinstance(body, dict):
        return 0
    chars = 0
    images = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        chars += _PER_MESSAGE * 4 * len(messages)
    for key in ("system", "messages", "input", "prompt", "instructions", "tools"):
        value = body.get(key)
        if value is not None:
            more_chars, more_images = _walk(value)
            chars += more_chars
            images += more_images
    return (chars + 3) // 4 + images * _IMAGE_TOKENS


def _walk(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        return len(value), 0
    if isinstance(value, list):
        chars = images = 0
        for item in value:
            c, i = _walk(item)
            chars += c
            images += i
        return chars, images
    if isinstance(value, dict):
        kind = value.get("type")
        if kind in ("image", "image_url", "input_image"):
            return 0, 1
        chars = images = 0
        for key, item in value.items():
            if key in ("type", "role", "cache_control", "id", "tool_call_id", "tool_use_id"):
                continue
            c, i = _walk(item)
            chars += c
            images += i
        return chars, images
    return 0, 0


def estimate_output_tokens(body: Any) -> int:
    """About one token per four characters of an answer's choices, output or content."""
    if not isinstance(body, dict):
        return 0
    chars = sum(_walk(body.get(key))[0] for key in ("choices", "output", "content"))
    return (chars + 3) // 4
