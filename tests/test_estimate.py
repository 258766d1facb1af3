"""Tests for coderouter.estimate: the rough token counts used when an upstream reports none."""

from __future__ import annotations

import math
import time
import tracemalloc
from typing import Any

import aiohttp
import orjson
import pytest

from coderouter.estimate import (
    MAX_DEPTH,
    MESSAGE_OVERHEAD_TOKENS,
    BodyScan,
    estimate_tokens,
    scan_body,
)
from tests.conftest import ALICE, Running
from tests.fakes import FakeUpstream

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


# -- any JSON, bounded cost ------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    {"tools": [{"type": "function", "function": {"parameters": {"type": "object", "properties": {
        "a": {"type": ["string", "null"]}, "type": {"type": {"nested": ["x"]}}}}}}]},
    {"messages": [{"role": ["user"], "content": None}, {"role": {}, "content": [[], {}]}]},
    {"input": [{"type": None}, {"type": 3}, {"type": [1, 2]}, 1.5, True, None]},
    {"contents": [{"parts": [{"inlineData": None}, {"text": ["x"]}]}], "system": {"x": "y"}},
    {"messages": [], "tools": [], "system": []},
])
def test_estimate_takes_any_json_value(body: dict[str, Any]) -> None:
    """Type lists, objects under ``type`` or ``role``, nulls and empty arrays never raise."""
    assert estimate_tokens(body) >= 0
    assert scan_body(body) == BodyScan(estimate_tokens(body), False)


def test_nesting_deeper_than_the_cap_is_found_without_recursion() -> None:
    """128 levels (the body is one) pass; 129 and ~1000 (where a recursive walk failed) don't."""
    def nested(depth: int) -> dict[str, Any]:
        return {"model": "m", "metadata": orjson.loads(b"[" * (depth - 1) + b"]" * (depth - 1))}
    assert scan_body(nested(MAX_DEPTH)) == BodyScan(0, False)
    assert scan_body(nested(MAX_DEPTH + 1)).too_deep
    assert scan_body(nested(1000)).too_deep
    assert estimate_tokens({"messages": orjson.loads(b"[" * 1000 + b"]" * 1000)}) == \
        MESSAGE_OVERHEAD_TOKENS


def best_of_three(function: Any, argument: Any) -> float:
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        function(argument)
        best = min(best, time.perf_counter() - started)
    return best


def test_estimate_costs_less_than_parsing_and_allocates_nothing_per_item() -> None:
    """A 17 MiB body of 620,000 tiny parts: the estimate takes at most twice as long as
    orjson.loads of the same body and allocates under 64 KiB (the recursive walk took 2.5x
    as long and 38 MiB)."""
    raw = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "word"} for _ in range(620_000)]}]})
    payload = orjson.loads(raw)
    tracemalloc.start()
    try:
        scan = scan_body(payload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scan == BodyScan(620_000 + MESSAGE_OVERHEAD_TOKENS, False)
    assert peak < 64 * 1024
    assert best_of_three(scan_body, payload) < 2 * best_of_three(orjson.loads, raw)


async def test_too_deep_a_body_is_a_400_in_the_callers_shape(gateway: Running,
                                                             upstream: FakeUpstream) -> None:
    """Nesting past the cap is refused before routing, OpenAI- or Anthropic-shaped, with a row;
    at the cap the body is forwarded as it came."""
    deep = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    headers = {"Authorization": f"Bearer {ALICE}"}
    async with aiohttp.ClientSession() as http:
        for path in ("/v1/chat/completions", "/v1/messages"):
            body = b'{"model":"smart","messages":[],"metadata":' + deep + b"}"
            async with http.post(gateway.url + path, data=body, headers=headers) as resp:
                assert resp.status == 400
                error = (await resp.json())["error"]
                assert error["message"] == ("request body nests arrays and objects more than "
                                            f"{MAX_DEPTH} levels deep")
                assert error["type"] == "invalid_request_error"
        body = b'{"model":"smart","messages":[],"metadata":' + deep[1:-1] + b"}"
        async with http.post(gateway.url + "/v1/chat/completions", data=body,
                             headers=headers) as resp:
            assert resp.status == 200
    assert orjson.loads(upstream.seen[0].body)["metadata"] == orjson.loads(deep[1:-1])
    assert [r["status"] for r in await gateway.rows()] == [400, 400, 200]
