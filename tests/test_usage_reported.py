"""The usage row bills what the upstream reported, and a caller is told the same numbers: one
usage parser per dialect serves both (DeepSeek's cache hits, a total_tokens-only usage)."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import orjson

from tests.conftest import ALICE, Running
from tests.fakes import CREATED, FakeUpstream, chat_chunk

#: DeepSeek reports its cache hits beside prompt_tokens, not in prompt_tokens_details.
DEEPSEEK = {"prompt_tokens": 10, "completion_tokens": 5, "prompt_cache_hit_tokens": 6,
            "prompt_cache_miss_tokens": 4, "total_tokens": 15}
#: Some OpenAI-compatible servers report the total and not the completion.
TOTAL_ONLY = {"prompt_tokens": 10, "total_tokens": 15}
ROW_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens",
              "usage_source")


def chat_answer(usage: dict[str, Any]) -> bytes:
    return orjson.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "created": CREATED,
        "model": "upstream-model", "choices": [{
            "index": 0, "message": {"role": "assistant", "content": "Hi"},
            "logprobs": None, "finish_reason": "stop"}],
        "usage": usage})


def chat_stream(usage: dict[str, Any]) -> list[bytes]:
    return [chat_chunk([{"index": 0, "delta": {"role": "assistant", "content": "Hi"},
                         "finish_reason": None}], usage=None),
            chat_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}], usage=None),
            chat_chunk([], usage=usage), b"data: [DONE]\n\n"]


async def row_of(gateway: Running) -> dict[str, Any]:
    [row] = await gateway.rows()
    return {k: row[k] for k in ROW_FIELDS}


def billed(prompt: int, completion: int, cached: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, "cached_tokens": cached,
            "usage_source": "upstream"}


def claude_sdk(gateway: Running) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gateway.url, auth_token=ALICE, max_retries=0)


def openai_sdk(gateway: Running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=ALICE, max_retries=0)


HELLO = [{"role": "user", "content": "Hello"}]


async def test_deepseek_cache_hits_billed_on_chat_pass_through(
        coding_gateway: Running, upstream: FakeUpstream) -> None:
    """A Chat caller on a DeepSeek-like upstream: the row records its 6 cache hits."""
    upstream.then(body=chat_answer(DEEPSEEK), content_type="application/json")
    async with openai_sdk(coding_gateway) as client:
        answer = await client.chat.completions.create(model="smart", messages=HELLO)
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (10, 5)
    assert (answer.usage.model_extra or {})["prompt_cache_hit_tokens"] == 6
    assert await row_of(coding_gateway) == billed(10, 5, 6)


async def test_deepseek_cache_hits_billed_on_chat_stream(
        coding_gateway: Running, upstream: FakeUpstream) -> None:
    """The same in a stream: the usage chunk's cache hits reach the row."""
    upstream.then(parts=chat_stream(DEEPSEEK))
    async with openai_sdk(coding_gateway) as client:
        stream = await client.chat.completions.create(
            model="smart", messages=HELLO, stream=True, stream_options={"include_usage": True})
        usages = [chunk.usage async for chunk in stream if chunk.usage is not None]
    assert [(u.prompt_tokens, u.completion_tokens) for u in usages] == [(10, 5)]
    assert await row_of(coding_gateway) == billed(10, 5, 6)


async def test_deepseek_cache_hits_told_and_billed_alike_when_translated(
        coding_gateway: Running, upstream: FakeUpstream) -> None:
    """A Messages caller on a DeepSeek-like Chat upstream is told 6 cache reads, and the row
    bills the same 6."""
    upstream.then(body=chat_answer(DEEPSEEK), content_type="application/json")
    async with claude_sdk(coding_gateway) as client:
        message = await client.messages.create(model="smart", max_tokens=64, messages=HELLO)
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.output_tokens) == (4, 6, 5)
    assert await row_of(coding_gateway) == billed(10, 5, 6)


async def test_total_only_usage_told_and_billed_alike(
        coding_gateway: Running, upstream: FakeUpstream) -> None:
    """``{"prompt_tokens":10,"total_tokens":15}``: the answer took 5 tokens, for the caller
    and for the row."""
    upstream.then(body=chat_answer(TOTAL_ONLY), content_type="application/json")
    async with claude_sdk(coding_gateway) as client:
        message = await client.messages.create(model="smart", max_tokens=64, messages=HELLO)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 5)
    assert await row_of(coding_gateway) == billed(10, 5, 0)


async def test_total_only_usage_told_and_billed_alike_in_a_stream(
        coding_gateway: Running, upstream: FakeUpstream) -> None:
    """The same through a translated stream: message_delta says 5 output tokens."""
    upstream.then(parts=chat_stream(TOTAL_ONLY))
    async with claude_sdk(coding_gateway) as client:
        async with client.messages.stream(model="smart", max_tokens=64,
                                          messages=HELLO) as stream:
            message = await stream.get_final_message()
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 5)
    assert await row_of(coding_gateway) == billed(10, 5, 0)


async def test_deepseek_stream_told_and_billed_alike_when_translated(
        coding_gateway: Running, upstream: FakeUpstream) -> None:
    """A translated stream of a DeepSeek-like upstream: cache reads told and billed."""
    upstream.then(parts=chat_stream(DEEPSEEK))
    async with claude_sdk(coding_gateway) as client:
        async with client.messages.stream(model="smart", max_tokens=64,
                                          messages=HELLO) as stream:
            message = await stream.get_final_message()
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.output_tokens) == (4, 6, 5)
    assert await row_of(coding_gateway) == billed(10, 5, 6)
