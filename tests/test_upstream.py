"""Reaching upstreams: the egress proxy named by the environment, resolved once per channel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from coderouter.channels.pool import proxy_for
from tests.conftest import ALICE, StartGateway, base_config
from tests.fakes import FakeUpstream

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
              "no_proxy", "ALL_PROXY", "all_proxy")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean proxy environment for one test."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_proxy_follows_the_scheme_of_the_base_url(env: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY serves http:// channels, HTTPS_PROXY https:// ones; none set means direct."""
    assert proxy_for("https://api.openai.com/v1") is None
    env.setenv("HTTP_PROXY", "http://proxy.lan:3128")
    env.setenv("HTTPS_PROXY", "http://secure.lan:3128")
    assert proxy_for("http://llm.lan:8000/v1") == "http://proxy.lan:3128"
    assert proxy_for("https://api.openai.com/v1") == "http://secure.lan:3128"


def test_no_proxy_exempts_its_hosts(env: pytest.MonkeyPatch) -> None:
    """A host listed in NO_PROXY (or under a listed domain) is reached directly."""
    env.setenv("HTTPS_PROXY", "http://proxy.lan:3128")
    env.setenv("NO_PROXY", "localhost,.internal")
    assert proxy_for("https://llm.internal/v1") is None
    assert proxy_for("https://localhost:8443/v1") is None
    assert proxy_for("https://api.anthropic.com") == "http://proxy.lan:3128"


async def test_channel_goes_through_the_proxy_from_the_environment(
        env: pytest.MonkeyPatch, start_gateway: StartGateway, upstream: FakeUpstream,
        tmp_path: Path) -> None:
    """A channel whose host only the proxy knows is reached through HTTP_PROXY."""
    env.setenv("HTTP_PROXY", upstream.url.removesuffix("/v1"))  # the fake plays the proxy
    gateway = await start_gateway(base_config("http://upstream.invalid/v1", tmp_path))
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/v1/chat/completions", json={"model": "smart"},
                             headers={"Authorization": f"Bearer {ALICE}"}) as resp:
            assert resp.status == 200
    [seen] = upstream.seen
    assert seen.headers["Host"] == "upstream.invalid"
    assert seen.path == "/v1/chat/completions"


async def test_a_kept_alive_connection_the_upstream_dropped_is_replaced_not_failed(
        start_gateway: StartGateway, tmp_path: Path) -> None:
    """An upstream that closes a kept-alive connection as the next request arrives (its idle
    timeout racing ours): the request goes once more on a new connection, in the same
    attempt, and the key is not cooled down."""
    answer = (b'{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,'
              b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
              b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}')
    connections = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        served = 0
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            if served:  # the second request on this connection: drop it unanswered
                writer.close()
                return
            served += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        gateway = await start_gateway(base_config(f"http://127.0.0.1:{port}/v1", tmp_path))
        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                async with http.post(gateway.url + "/v1/chat/completions",
                                     json={"model": "smart"},
                                     headers={"Authorization": f"Bearer {ALICE}"}) as resp:
                    assert resp.status == 200
        rows = await gateway.rows()
        assert [(r["status"], r["attempts"], r["error"]) for r in rows] == \
            [(200, 1, None), (200, 1, None)]
        assert len(connections) == 2
    finally:
        server.close()
        await server.wait_closed()
