"""Hostile callers on raw sockets against the real `serve` process: slow request heads and idle
connections are closed, headers are bounded; and small faults get clear answers."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.conftest import ALICE, Running, base_config
from tests.fakes import FakeUpstream
from tests.service import serving

HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection (EOF or reset) within 30 s."""
    try:
        async with asyncio.timeout(30):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def test_slow_heads_and_idle_connections_are_closed(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    """50 slowloris connections (a header byte every 200 ms, never finished) and an idle
    keep-alive connection are all closed after listen.keepalive; real requests still pass."""
    config = base_config(upstream.url, tmp_path)
    async with serving({**config, "listen": {"keepalive": "1s"}}, tmp_path) as gateway:
        host, port = gateway.url.removeprefix("http://").split(":")
        opened = [await asyncio.open_connection(host, int(port)) for _ in range(50)]

        async def trickle(writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                writer.write(HEAD + b"X-Slow: ")
                while True:
                    await asyncio.sleep(0.2)
                    writer.write(b"a")
                    await writer.drain()

        tricklers = [asyncio.create_task(trickle(w)) for _, w in opened]
        idle_reader, idle_writer = await asyncio.open_connection(host, int(port))
        idle_writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await idle_reader.readuntil(b'{"status":"ok"}')).startswith(b"HTTP/1.1 200")
        async with aiohttp.ClientSession() as http:
            async with http.post(gateway.url + "/v1/chat/completions", json={"model": "smart"},
                                 headers={"Authorization": f"Bearer {ALICE}"}) as resp:
                assert resp.status == 200
        closed = await asyncio.gather(*(closed_by_server(r) for r, _ in opened),
                                      closed_by_server(idle_reader))
        for task in tricklers:
            task.cancel()
        for _, writer in [*opened, (idle_reader, idle_writer)]:
            writer.close()
        assert all(closed), f"{closed.count(False)} connections still open"


async def test_headers_are_bounded_in_total_and_never_forwarded_in_bulk(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    """40 allowed-looking headers of 4 KiB (160 KiB): 431, nothing reaches the upstream; more
    headers than the parser takes: refused too."""
    config = base_config(upstream.url, tmp_path)
    async with serving(config, tmp_path) as gateway:
        big = {f"x-stainless-h{i}": "v" * 4096 for i in range(40)}
        many = {f"x-stainless-n{i}": "v" for i in range(100)}
        async with aiohttp.ClientSession() as http:
            for headers, expected in ((big, 431), (many, 400)):
                async with http.post(gateway.url + "/v1/chat/completions",
                                     json={"model": "smart"},
                                     headers={"Authorization": f"Bearer {ALICE}",
                                              **headers}) as resp:
                    assert resp.status == expected
                    if expected == 431:
                        assert (await resp.json())["error"]["code"] == \
                            "request_headers_too_large"
    assert upstream.seen == []


async def test_a_gzip_request_body_is_forwarded_inflated_without_its_encoding(
        gateway: Running, upstream: FakeUpstream) -> None:
    """The gateway inflates a gzip body; the upstream gets the JSON and no Content-Encoding."""
    body = {"model": "smart", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/v1/chat/completions",
                             data=gzip.compress(orjson.dumps(body)),
                             headers={"Authorization": f"Bearer {ALICE}",
                                      "Content-Type": "application/json",
                                      "Content-Encoding": "gzip"}) as resp:
            assert resp.status == 200
    seen = upstream.seen[-1]
    assert "Content-Encoding" not in seen.headers
    assert seen.json == {**body, "model": "upstream-model"}


async def test_admin_usage_with_a_span_before_1970_is_everything(
        start_gateway: Any, upstream: FakeUpstream, tmp_path: Path) -> None:
    """since=99999999999999w means since the start, not a 500."""
    gateway = await start_gateway({**base_config(upstream.url, tmp_path),
                                   "admin": {"key": "admin-key-12345"}})
    async with aiohttp.ClientSession() as http:
        for since in ("99999999999999w", "9999-12-31T23:59:59-23:00"):
            async with http.get(gateway.url + "/admin/usage", params={"since": since},
                                headers={"Authorization": "Bearer admin-key-12345"}) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["since"] in ("1970-01-01T00:00:00Z",
                                                        "9999-12-31T23:59:59Z")
