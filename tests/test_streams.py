"""Streams that go wrong: stalls, truncation, callers that leave."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson

from tests.conftest import ALICE, Running, StartGateway, base_config
from tests.fakes import FakeUpstream


async def stream_body(gateway: Running, path: str = "/v1/chat/completions") -> bytes:
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + path, json={"model": "smart", "stream": True},
                             headers={"Authorization": f"Bearer {ALICE}"}) as resp:
            assert resp.status == 200
            return await resp.read()


async def test_stalled_stream_ends_with_an_error_event_and_504_row(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """An upstream silent for longer than timeout.idle mid-stream: error event, row 504."""
    config = base_config(upstream.url, tmp_path)
    config["channels"][0]["timeout"] = {"idle": "200ms"}
    gateway = await start_gateway(config)
    upstream.then(stall_after=3)
    body = await stream_body(gateway)
    assert body.count(b"data: ") == 4
    assert body.endswith(b'data: {"error":{"message":"upstream stream stalled for more than '
                         b'0.2s","type":"upstream_error","code":"upstream_error"}}\n\n')
    assert b"[DONE]" not in body
    [row] = await gateway.rows()
    assert (row["status"], row["stream"]) == (504, 1)
    assert row["error"] == "upstream stream stalled for more than 0.2s"
    assert row["usage_source"] == "estimated"


async def test_stream_without_its_end_is_reported(gateway: Running,
                                                  upstream: FakeUpstream) -> None:
    """An upstream that closes cleanly but never sent [DONE] is not a clean end."""
    upstream.then(done=False)
    body = await stream_body(gateway)
    assert body.endswith(b'data: {"error":{"message":"upstream closed the stream before it '
                         b'was complete","type":"upstream_error","code":"upstream_error"}}\n\n')
    [row] = await gateway.rows()
    assert row["status"] == 502
    assert row["prompt_tokens"] == 11  # the usage chunk still arrived before the close


async def test_responses_stream_failure_ends_with_response_failed(
        gateway: Running, upstream: FakeUpstream) -> None:
    """A Responses stream that breaks ends with `response.failed` carrying an error code:
    the terminal event Codex acts on (it ignores `error` events and would wait, then retry)."""
    upstream.then(done=False)
    body = await stream_body(gateway, "/v1/responses")
    last = body.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    name, data = last.split(b"\n")
    assert name == b"event: response.failed"
    event = orjson.loads(data.removeprefix(b"data: "))
    assert event["type"] == "response.failed"
    assert event["response"]["status"] == "failed"
    assert event["response"]["error"] == {
        "code": "server_error", "message": "upstream closed the stream before it was complete"}


async def test_caller_leaving_cancels_upstream_and_writes_499(
        gateway: Running, upstream: FakeUpstream) -> None:
    """A caller that disconnects mid-stream: the upstream request is cancelled, row 499."""
    upstream.then(chunk_delay=0.3)
    async with aiohttp.ClientSession() as http:
        resp = await http.post(gateway.url + "/v1/chat/completions",
                               json={"model": "smart", "stream": True},
                               headers={"Authorization": f"Bearer {ALICE}"})
        first = await resp.content.readany()
        assert first.startswith(b"data: ")
        resp.close()
    for _ in range(100):
        if upstream.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    assert upstream.in_flight == 0
    assert upstream.cancelled == 1
    [row] = await gateway.rows()
    assert (row["status"], row["error"], row["channel"]) == (499, "client disconnected", "up")


async def test_caller_leaving_while_waiting_writes_499(gateway: Running,
                                                       upstream: FakeUpstream) -> None:
    """A caller gone before the upstream answered: cancelled upstream call, row 499."""
    upstream.then(delay=1.0)
    async with aiohttp.ClientSession() as http:
        task = asyncio.ensure_future(http.post(
            gateway.url + "/v1/chat/completions", json={"model": "smart"},
            headers={"Authorization": f"Bearer {ALICE}"}))
        for _ in range(100):
            if upstream.in_flight:
                break
            await asyncio.sleep(0.02)
        task.cancel()
    for _ in range(100):
        if upstream.in_flight == 0 and gateway.state.writer.queued:
            break
        await asyncio.sleep(0.05)
    assert upstream.cancelled == 1
    [row] = await gateway.rows()
    assert row["status"] == 499


async def test_events_split_across_reads_arrive_whole(gateway: Running,
                                                      upstream: FakeUpstream) -> None:
    """An event cut in two by the network reaches the caller once, whole and unchanged."""
    event = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
             b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n')
    upstream.then(parts=[event[:30], event[30:], b"data: [DONE]\n\n"], chunk_delay=0.05)
    body = await stream_body(gateway)
    assert body == event + b"data: [DONE]\n\n"


async def test_a_completions_stream_hides_the_usage_it_did_not_ask_for(
        gateway: Running, upstream: FakeUpstream) -> None:
    """Legacy /v1/completions streams get usage asked for them too: the row has it, the
    caller who did not ask sees neither the usage-only chunk nor ``"usage":null``."""
    body = await stream_body(gateway, "/v1/completions")
    assert upstream.seen[0].json["stream_options"] == {"include_usage": True}
    assert b'"usage"' not in body and body.endswith(b"data: [DONE]\n\n")
    [row] = await gateway.rows()
    assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (
        11, 4, "upstream")
