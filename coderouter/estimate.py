"""Token estimates: for upstreams that report no usage, and for quota reservations.

A request body can be any JSON value the client chose to send (tool schemas with ``"type":
["string", "null"]``, objects whose ``type`` is an object, 20 MiB of tiny parts), so the walk
here never raises, never recurses and allocates nothing per item: one iterator per container,
dropped when the container is done. It costs less than parsing the body did.
"""

from __future__ import annotations

from typing import Any, NamedTuple

IMAGE_TOKENS = 1000
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
#: The deepest nesting of arrays and objects a request body may have (the body itself is 1).
MAX_DEPTH = 128

#: Top-level request fields that hold what the model reads, in every dialect we serve.
_PROMPT_FIELDS = frozenset({"system", "messages", "tools", "functions", "prompt", "input",
                            "instructions", "contents", "systemInstruction",
                            "system_instruction", "generateContentRequest"})
_ANSWER_FIELDS = ("choices", "output", "content", "candidates")
_BINARY_PART_TYPES = frozenset(
    {"image", "image_url", "input_image", "document", "file", "input_file", "input_audio"})
_UNLIMITED = 1 << 30


class BodyScan(NamedTuple):
    """What one walk over a request body found."""

    tokens: int  #: the prompt estimate (meaningless when *too_deep*)
    too_deep: bool  #: nested deeper than the walk's *max_depth*


def scan_body(body: Any, max_depth: int = MAX_DEPTH) -> BodyScan:
    """Estimate *body*'s prompt tokens and check its nesting, in one walk over the whole body.

    About one token per four characters of the string values under the prompt fields
    (system prompt, messages, tool definitions, input, …), plus a few per message; each image,
    file or audio part (Gemini ``inlineData``/``fileData``) counts a flat 1000 tokens whatever
    its encoded size. Keys, numbers, ``type``, ``role`` and ``thoughtSignature`` values and
    every field outside the prompt count nothing. A body
    that is not an object estimates to 0.
    """
    if not isinstance(body, dict):
        return BodyScan(0, max_depth < 1)
    chars = parts = 0
    for key, value in body.items():
        counted, binary, too_deep = _walk(value, key in _PROMPT_FIELDS, max_depth - 1)
        if too_deep:
            return BodyScan(0, True)
        chars += counted
        parts += binary
    messages = body.get("messages")
    overhead = MESSAGE_OVERHEAD_TOKENS * len(messages) if type(messages) is list else 0
    return BodyScan(-(-chars // CHARS_PER_TOKEN) + parts * IMAGE_TOKENS + overhead, False)


def estimate_tokens(body: Any) -> int:
    """Return a rough prompt token count for an Anthropic, OpenAI or Gemini request body (see
    `scan_body`)."""
    return scan_body(body, _UNLIMITED).tokens


def estimate_output_tokens(body: Any) -> int:
    """About one token per four characters of an answer's choices, output, content or
    candidates."""
    if not isinstance(body, dict):
        return 0
    chars = sum(_walk(body.get(key), True, _UNLIMITED)[0] for key in _ANSWER_FIELDS)
    return -(-chars // CHARS_PER_TOKEN)


def _walk(value: Any, counting: bool, max_depth: int) -> tuple[int, int, bool]:
    """Return (characters of string values, binary parts, deeper than *max_depth*) of *value*.

    Iterative: the stack holds one iterator per open container. Strings inside a binary part
    (its base64 data) are not counted; *counting* False only checks the depth.
    """
    chars = parts = 0
    stack = [iter((value,))]
    muted = 0 if counting else -1  # >0: the stack height of the binary part being skipped
    while stack:
        for item in stack[-1]:
            kind = type(item)
            if kind is str:
                if not muted:
                    chars += len(item)
            elif kind is dict or kind is list:
                if len(stack) > max_depth:
                    return chars, parts, True
                if kind is dict:
                    if not muted:
                        chars, parts, muted = _open_dict(item, chars, parts, len(stack))
                    stack.append(iter(item.values()))
                else:
                    stack.append(iter(item))
                break
        else:
            stack.pop()
            if muted > len(stack):
                muted = 0
    return chars, parts, False


def _open_dict(item: dict[str, Any], chars: int, parts: int,
               height: int) -> tuple[int, int, int]:
    """`_walk` entering the object *item* at stack *height*: (chars, parts, muted) after it.

    A binary part counts as a part and mutes its strings; a part's ``type``, a message's
    ``role`` and a ``thoughtSignature`` are not text.
    """
    part, role = item.get("type"), item.get("role")
    if type(part) is str:
        if part in _BINARY_PART_TYPES:
            return chars, parts + 1, height + 1
        chars -= len(part)  # a part's kind is not text
    elif "inlineData" in item or "fileData" in item:  # Gemini media
        return chars, parts + 1, height + 1
    if type(role) is str:
        chars -= len(role)  # in MESSAGE_OVERHEAD_TOKENS
    signature = item.get("thoughtSignature")  # opaque, not read
    if type(signature) is str:
        chars -= len(signature)
    return chars, parts, 0
