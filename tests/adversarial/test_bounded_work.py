"""Bounded work per request: a body of millions of tiny items is refused (413, in the caller's
dialect, with its row) before anything is built from it, so it neither stalls the event loop
for other callers nor costs more than a small multiple of its size.

The stall is measured by a loop-lag probe beside the gateway (the largest gap between its
ticks), relative to the gap a plain body of the same size causes: no wall-clock bound."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
import yaml

from coderouter.config import parse
from coderouter.errors import ConfigError
from tests.conftest import ALICE, Running, StartGateway, base_config
from tests.fakes import FakeUpstream

SIZE = 19 * 1024 * 1024
HEAD = b'{"model":"smart","messages":[{"role":"user","content":"hi"}],"x":['
TINY_ITEMS = HEAD + b"0," * ((SIZE - len(HEAD)) // 2) + b"0]}"
#: A body of the same size, of source code, that the gateway reads, parses and scans (then
#: answers 404: the model does not exist, so nothing is forwarded).
CODE = "def add(a, b):\n    return a + b  # a comment, with commas\n"
PLAIN = orjson.dumps({"model": "nope", "messages": [
    {"role": "user", "content": CODE * (SIZE // len(CODE) - 1)}]})


@contextlib.asynccontextmanager
async def loop_lag() -> AsyncIterator[list[float]]:
    """The longest gap between the ticks of a task that wakes every millisecond."""
    worst = [0.0]

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst[0] = max(worst[0], now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        yield worst
        await asyncio.sleep(0.01)  # the ticker wakes after the last stall too
    finally:
        ticker.cancel()


def post(gateway: Running, path: str, body: bytes) -> tuple[int, bytes]:
    """POST from a worker thread, so the caller's own work is not on the gateway's loop."""
    host, port = gateway.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("POST", path, body=body, headers={
            "Authorization": f"Bearer {ALICE}", "Content-Type": "application/json",
            "anthropic-version": "2023-06-01"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


async def lag_of(gateway: Running, body: bytes) -> tuple[int, float]:
    async with loop_lag() as worst:
        status, _ = await asyncio.to_thread(post, gateway, "/v1/chat/completions", body)
    return status, worst[0]


async def test_millions_of_tiny_items_are_refused_before_parsing(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    gateway = await start_gateway(base_config(upstream.url, tmp_path))
    plain_lags, tiny_lags = [], []
    for _ in range(3):  # interleaved, the best of three of each: load on the machine is noise
        status, lag = await lag_of(gateway, PLAIN)
        assert status == 404
        plain_lags.append(lag)
        status, lag = await lag_of(gateway, TINY_ITEMS)
        assert status == 413
        tiny_lags.append(lag)
    assert min(tiny_lags) < 2 * min(plain_lags), (tiny_lags, plain_lags)

    tracemalloc.start()
    try:
        status, answer = await asyncio.to_thread(post, gateway, "/v1/messages", TINY_ITEMS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 413
    error = orjson.loads(answer)
    assert error["type"] == "error" and error["error"]["type"] == "request_too_large"
    assert "1000000" in error["error"]["message"]
    assert peak < 4 * len(TINY_ITEMS), peak
    rows = await gateway.rows()
    assert [r["status"] for r in rows] == [404, 413] * 3 + [413]


@pytest.mark.parametrize(("items", "status"), [(10, 200), (11, 413)])
async def test_max_items_is_configurable(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path, items: int,
        status: int) -> None:
    config = base_config(upstream.url, tmp_path)
    config["limits"] = {"max_items": 10}
    gateway = await start_gateway(config)
    body = orjson.dumps({"model": "smart", "messages": [{"role": "user", "content": "hi"}],
                         "metadata": {f"k{i}": "v" for i in range(items - 2)}})
    assert body.count(b",") == items
    got, _ = await asyncio.to_thread(post, gateway, "/v1/chat/completions", body)
    assert got == status


async def test_routes_have_their_own_bounds(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """``limits.routes``: the first glob matching the path gives its max_body and max_items;
    other routes keep the defaults."""
    config = base_config(upstream.url, tmp_path)
    config["limits"] = {"routes": {"/v1/embeddings": {"max_body": "1KiB"},
                                   "/v1/chat/*": {"max_items": 10}}}
    gateway = await start_gateway(config)
    many = orjson.dumps({"model": "smart", "messages": [{"role": "user", "content": "hi"}],
                         "metadata": {f"k{i}": "v" for i in range(20)}})
    big = orjson.dumps({"model": "smart", "input": "x" * 2000})
    assert (await asyncio.to_thread(post, gateway, "/v1/chat/completions", many))[0] == 413
    assert (await asyncio.to_thread(post, gateway, "/v1/responses", many))[0] != 413
    assert (await asyncio.to_thread(post, gateway, "/v1/embeddings", big))[0] == 413
    assert (await asyncio.to_thread(post, gateway, "/v1/completions", big))[0] != 413


async def test_a_websocket_frame_of_tiny_items_is_refused_before_parsing(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    config = base_config(upstream.url, tmp_path)
    config["limits"] = {"max_items": 1000}
    gateway = await start_gateway(config)
    frame = ('{"type":"response.create","model":"smart","input":"hi","x":['
             + "0," * 5000 + "0]}")
    async with aiohttp.ClientSession() as http, http.ws_connect(
            gateway.url + "/v1/responses", headers={"Authorization": f"Bearer {ALICE}"}) as ws:
        await ws.send_str(frame)
        refused = orjson.loads((await ws.receive()).data)
    assert (refused["type"], refused["status"]) == ("error", 413)
    assert "1000" in refused["error"]["message"]


def test_route_bounds_are_checked_at_load(tmp_path: Path) -> None:
    config = base_config("http://127.0.0.1:9/v1", tmp_path)
    config["limits"] = {"routes": {"v1/chat": {"max_items": 5},
                                   "/v1/embeddings": {"max_items": 0, "size": 1}}}
    with pytest.raises(ConfigError) as caught:
        parse(yaml.safe_dump(config))
    assert sorted(path for path, _ in caught.value.problems) == [
        "limits.routes./v1/embeddings.max_items", "limits.routes./v1/embeddings.size",
        "limits.routes.v1/chat"]
