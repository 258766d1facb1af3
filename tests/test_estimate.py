"""Tests for coderouter.estimate: the rough token counts used when an upstream reports none."""

from __future__ import annotations

from coderouter.estimate import estimate_tokens

PNG_B64 = "iVBORw0KGgo" * 500


def test_estimate_counts_text_at_four_characters_per_token() -> None:
    """Text counts about one token per four characters plus a few per message."""
    body = {"system": "x" * 40, "messages": [{"role": "user", "content": "y" * 80}]}
    assert estimate_tokens(body) == 30 + 4


def test_estimate_counts_images_flat_whatever_their_size() -> None:
    """An image counts 1000 tokens in either format, never its base64 length."""
    anthropic_body = {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": PNG_B64}}]}]}
    openai_body = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]}]}
    assert estimate_tokens(anthropic_body) == 1004
    assert estimate_tokens(openai_body) == 1004


def test_estimate_counts_tool_definitions_and_tool_calls() -> None:
    """Tool definitions and tool call arguments add to the estimate."""
    plain = {"messages": [{"role": "user", "content": "hi"}]}
    tools = [{"name": "read", "description": "d" * 400, "input_schema": {"type": "object"}}]
    assert estimate_tokens({**plain, "tools": tools}) >= estimate_tokens(plain) + 100
    call = {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "a" * 400}}]}
    assert estimate_tokens({"messages": [call]}) >= 100


def test_estimate_of_non_dict_is_zero() -> None:
    """A body that is not an object estimates to 0."""
    assert estimate_tokens([]) == 0  # type: ignore[arg-type]


def test_estimate_takes_tool_schemas_whose_type_is_a_list_or_an_object() -> None:
    """JSON schemas say ``"type": ["string", "null"]`` and may name a property ``type``
    (Codex and qwen-code tools do both); the estimate counts them, never fails."""
    schema = {"type": "object", "properties": {
        "path": {"type": ["string", "null"]},
        "type": {"type": "string", "enum": ["file", "dir"]}}}
    body = {"model": "m", "input": "hi", "tools": [
        {"type": "function", "name": "read", "parameters": schema}]}
    assert estimate_tokens(body) > estimate_tokens({"model": "m", "input": "hi"})
