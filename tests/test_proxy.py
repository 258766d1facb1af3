"""The OpenAI-compatible routes end to end: official SDK in front, fake upstream behind."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import orjson

from tests.conftest import ALICE, UPSTREAM_KEY, Running
from tests.fakes import USAGE, WORDS, FakeUpstream


def sdk(gateway: Running, key: str = ALICE) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


async def test_chat_completion_forwards_body_with_only_model_rewritten(
        gateway: Running, upstream: FakeUpstream) -> None:
    """The upstream receives the caller's body, model swapped for the target's, nothing else."""
    async with sdk(gateway) as client:
        reply = await client.chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "hi"}], temperature=0.2,
            extra_body={"vendor_field": {"x": [1, 2]}})
    assert reply.choices[0].message.content == "".join(WORDS)
    assert reply.usage is not None and reply.usage.total_tokens == 15
    [seen] = upstream.seen
    assert seen.path == "/v1/chat/completions"
    assert seen.json == {"model": "upstream-model", "temperature": 0.2,
                         "messages": [{"role": "user", "content": "hi"}],
                         "vendor_field": {"x": [1, 2]}}
    assert seen.body == orjson.dumps(seen.json)


async def test_upstream_gets_channel_auth_and_headers_not_the_callers(
        gateway: Running, upstream: FakeUpstream) -> None:
    """Caller credentials, cookies, hop-by-hop and unlisted headers are dropped; the channel's
    are set (the allow-list itself: tests/adversarial/test_headers.py)."""
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/v1/chat/completions", json={"model": "smart"},
                             headers={"Authorization": f"Bearer {ALICE}", "Cookie": "a=b",
                                      "x-api-key": "nope", "api-key": "nope",
                                      "Proxy-Authorization": "p", "X-Custom": "kept",
                                      "OpenAI-Beta": "assistants=v2"}) as resp:
            assert resp.status == 200
            rid = resp.headers["x-request-id"]
    headers = upstream.seen[0].headers
    assert headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert headers["X-Channel"] == "up"
    assert "X-Custom" not in headers
    assert headers["OpenAI-Beta"] == "assistants=v2"
    assert headers["X-Request-Id"] == rid
    for dropped in ("Cookie", "x-api-key", "api-key", "Proxy-Authorization"):
        assert dropped not in headers
    assert ALICE not in str(dict(headers))


async def test_every_response_carries_the_callers_request_id(gateway: Running) -> None:
    """A caller's x-request-id is echoed and stored; without one a new id is made."""
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/v1/chat/completions", json={"model": "smart"},
                             headers={"Authorization": f"Bearer {ALICE}",
                                      "x-request-id": "trace-42"}) as resp:
            assert resp.headers["x-request-id"] == "trace-42"
        async with http.get(gateway.url + "/v1/models") as resp:
            assert resp.status == 401
            assert resp.headers["x-request-id"].startswith("req_")
    [row] = await gateway.rows()
    assert row["request_id"] == "trace-42"


async def test_usage_row_for_a_completion(gateway: Running) -> None:
    """One row with who, what, where, tokens from the upstream and the priced cost."""
    async with sdk(gateway) as client:
        await client.chat.completions.create(model="smart", messages=[])
    [row] = await gateway.rows()
    assert {k: row[k] for k in (
        "token", "token_group", "endpoint", "model", "channel", "upstream_model", "status",
        "stream", "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens",
        "usage_source", "attempts", "error", "client_ip")} == {
        "token": "alice", "token_group": "team", "endpoint": "/v1/chat/completions",
        "model": "smart", "channel": "up", "upstream_model": "upstream-model", "status": 200,
        "stream": 0, "prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15,
        "cached_tokens": 3, "usage_source": "upstream", "attempts": 1, "error": None,
        "client_ip": "127.0.0.1"}
    # 8 fresh input at 1.0, 3 cached at 0.5, 4 output at 2.0, per million
    assert row["cost"] == (8 * 1.0 + 3 * 0.5 + 4 * 2.0) / 1_000_000
    assert row["latency_ms"] > 0 and row["ttfb_ms"] > 0


async def test_stream_hides_the_injected_usage_chunk(
        gateway: Running, upstream: FakeUpstream) -> None:
    """Usage is requested upstream; the caller who did not ask sees the plain stream."""
    async with aiohttp.ClientSession() as http, http.post(gateway.url + "/v1/chat/completions",
                         json={"model": "smart", "stream": True},
                         headers={"Authorization": f"Bearer {ALICE}"}) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["X-Accel-Buffering"] == "no"
        body = await resp.read()
    assert upstream.seen[0].json["stream_options"] == {"include_usage": True}
    from tests.fakes import Behaviour, stream_events
    plain = b"".join(stream_events("/v1/chat/completions", {"stream": True}, Behaviour()))
    assert body == plain
    [row] = await gateway.rows()
    assert (row["stream"], row["prompt_tokens"], row["completion_tokens"],
            row["usage_source"]) == (1, 11, 4, "upstream")


async def test_stream_keeps_usage_when_the_caller_asked(gateway: Running) -> None:
    """With include_usage from the caller the usage chunk reaches the SDK."""
    async with sdk(gateway) as client:
        stream = await client.chat.completions.create(
            model="smart", messages=[], stream=True, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(WORDS)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15
    assert chunks[-1].choices == []


async def test_sync_sdk_streams_through(gateway: Running) -> None:
    """The synchronous OpenAI client works unchanged (run in a thread)."""
    def call() -> str:
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=ALICE, max_retries=0)
        with client:
            reply = client.chat.completions.create(model="smart", messages=[])
            stream = client.chat.completions.create(model="smart", messages=[], stream=True)
            streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        return (reply.choices[0].message.content or "") + "|" + streamed
    assert await asyncio.to_thread(call) == "".join(WORDS) + "|" + "".join(WORDS)


async def test_completions_embeddings_and_responses_pass_through(
        gateway: Running, upstream: FakeUpstream) -> None:
    """Legacy completions, embeddings and the Responses API reach their upstream paths."""
    async with sdk(gateway) as client:
        completion = await client.completions.create(model="smart", prompt="x")
        embedding = await client.embeddings.create(model="smart", input="x")
        response = await client.responses.create(model="smart", input="x")
        stream = await client.responses.create(model="smart", input="x", stream=True)
        events = [event.type async for event in stream]
    assert completion.choices[0].text == "".join(WORDS)
    assert embedding.data[0].embedding == [0.5, -0.25]
    assert response.output_text == "".join(WORDS)
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert [s.path for s in upstream.seen] == [
        "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/responses"]
    assert "stream_options" not in upstream.seen[3].json
    rows = await gateway.rows()
    assert [(r["endpoint"], r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        ("/v1/completions", 11, 4), ("/v1/embeddings", 3, 0), ("/v1/responses", 11, 4),
        ("/v1/responses", 11, 4)]


async def test_models_lists_only_what_the_token_may_use(gateway: Running) -> None:
    """GET /v1/models answers the routable names allowed to the calling token."""
    from tests.conftest import BOB
    async with sdk(gateway) as client:
        names = [m.id async for m in client.models.list()]
    async with sdk(gateway, BOB) as client:
        bobs = [m.id async for m in client.models.list()]
    assert names == ["smart"]
    assert bobs == []


async def test_healthz_needs_no_key(gateway: Running) -> None:
    """GET /healthz answers ok without authentication."""
    async with aiohttp.ClientSession() as http, http.get(gateway.url + "/healthz") as resp:
        assert (resp.status, await resp.read()) == (200, b'{"status":"ok"}')


async def test_upstream_without_usage_is_estimated(
        gateway: Running, upstream: FakeUpstream) -> None:
    """No usage from the upstream: tokens are estimated and the row says so."""
    upstream.then(usage=False).then(usage=False)
    async with sdk(gateway) as client:
        await client.chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "x" * 400}])
        stream = await client.chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "x" * 400}], stream=True)
        [c async for c in stream]
    rows = await gateway.rows()
    assert [r["usage_source"] for r in rows] == ["estimated", "estimated"]
    assert all(r["prompt_tokens"] >= 100 for r in rows)
    assert rows[0]["completion_tokens"] > 0
    assert rows[1]["completion_tokens"] == len(WORDS)
    assert USAGE["prompt_tokens"] not in (rows[0]["prompt_tokens"], rows[1]["prompt_tokens"])
