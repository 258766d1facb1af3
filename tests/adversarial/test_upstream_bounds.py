"""A hostile upstream cannot exhaust the gateway: answers and stream events are capped, event
boundaries are searched once, a trickle does not keep a stream alive, and a slow caller is
timed on its own clock, not the upstream's."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from coderouter.sse import EventTooLarge, StreamMeter
from tests.adversarial.conftest import hostile_config
from tests.adversarial.hostile import Hostile, gzip_bomb
from tests.conftest import ALICE, StartGateway, base_config
from tests.fakes import FakeUpstream, chat_chunk
from tests.service import serving, until

MiB = 1024 * 1024


async def call(url: str, model: str, **body: Any) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/v1/chat/completions", json={"model": model, **body},
                             headers={"Authorization": f"Bearer {ALICE}"}) as resp:
            return resp.status, await resp.read()


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


async def test_huge_answers_gzip_bombs_and_endless_events_stay_within_the_limits(
        hostile: Hostile, tmp_path: Path) -> None:
    """The real `serve` process: 256 MiB answers, a 256 MiB gzip bomb and a 256 MiB event
    raise its peak RSS by a small multiple of the configured caps, not by what was sent."""
    hostile.huge_bytes = 256 * MiB
    hostile.bomb_bytes = 256 * MiB
    gzip_bomb(hostile.bomb_bytes)  # built before the baseline
    config = hostile_config(hostile.url, tmp_path,
                            limits={"max_response": "4MiB", "max_event": "1MiB"})
    async with serving(config, tmp_path) as gateway:
        for _ in range(5):
            assert (await call(gateway.url, "ok"))[0] == 200
        baseline = peak_rss(gateway.proc.pid)

        status, body = await call(gateway.url, "huge")
        assert (status, orjson.loads(body)["error"]["message"]) == (
            502, "upstream answer is over the 4194304 byte limit")
        status, body = await call(gateway.url, "gzip-bomb")
        assert (status, orjson.loads(body)["error"]["message"]) == (
            502, "upstream answer is over the 4194304 byte limit")
        status, body = await call(gateway.url, "big-event", stream=True)
        assert status == 200
        assert body.endswith(b'data: {"error":{"message":"upstream sent a stream event over '
                             b'the 1048576 byte limit","type":"upstream_error",'
                             b'"code":"upstream_error"}}\n\n')
        growth = peak_rss(gateway.proc.pid) - baseline

        async def rows_written() -> bool:
            return len(gateway.rows()) == 8
        await until(rows_written, "eight usage rows")
        assert [(r["model"], r["status"]) for r in gateway.rows()[5:]] == [
            ("huge", 502), ("gzip-bomb", 502), ("big-event", 502)]
    assert growth < 16 * 4 * MiB, f"peak RSS grew {growth / MiB:.0f} MiB"


async def test_a_trickle_that_never_completes_an_event_ends_at_the_idle_timeout(
        start_gateway: StartGateway, hostile: Hostile, tmp_path: Path) -> None:
    """One byte every 50 ms, never a blank line: the stream ends after `idle` with a 504 row."""
    config = hostile_config(hostile.url, tmp_path)
    config["channels"][-1]["timeout"] = {"idle": "1s"}
    gateway = await start_gateway(config)
    status, body = await asyncio.wait_for(call(gateway.url, "endless-event", stream=True), 30)
    assert status == 200
    assert b'"message":"upstream stream stalled for more than 1s"' in body
    row = (await gateway.rows())[-1]
    assert (row["status"], row["error"]) == (504, "upstream stream stalled for more than 1s")


def test_event_boundaries_are_searched_in_new_bytes_only() -> None:
    """Feeding an event in small pieces costs linear time: twice the bytes, about twice the
    CPU (a re-scan of the whole buffer per piece would be four times)."""
    def cost(size: int) -> float:
        best = float("inf")
        for _ in range(3):
            meter = StreamMeter("chat")
            piece = b"x" * 256
            started = time.process_time()
            meter.feed(b"data: ")
            for _ in range(size // len(piece)):
                meter.feed(piece)
            assert meter.feed(b"\n\n").startswith(b"data: xxx")
            best = min(best, time.process_time() - started)
        return best

    small, large = cost(2 * MiB), cost(8 * MiB)
    assert large < 8 * small, (small, large)  # linear: ~4x; quadratic: ~16x


def test_an_event_over_max_event_raises() -> None:
    meter = StreamMeter("chat", max_event=1000)
    assert meter.feed(b"data: 1\n\ndata: ") == b"data: 1\n\n"
    meter.feed(b"x" * 900)
    with pytest.raises(EventTooLarge):
        meter.feed(b"x" * 200)


def big_stream(events: int, size: int) -> list[bytes]:
    text = "x" * size
    parts = [chat_chunk([{"index": 0, "delta": {"content": text}, "finish_reason": None}])
             for _ in range(events)]
    return [*parts, chat_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
            b"data: [DONE]\n\n"]


async def raw_stream_request(url: str, model: str) -> tuple[asyncio.StreamReader,
                                                            asyncio.StreamWriter]:
    """A streaming POST from a client with a tiny receive window that reads nothing yet."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    body = orjson.dumps({"model": model, "stream": True})
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                 b"Authorization: Bearer " + ALICE.encode() + b"\r\n"
                 b"Content-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    return reader, writer


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_a_slow_reader_is_not_cut_by_the_upstream_idle_timer(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The caller stops reading for longer than the upstream idle timeout, then reads on: the
    stream completes and the row is a success."""
    config = base_config(upstream.url, tmp_path)
    config["channels"][0]["timeout"] = {"idle": "300ms"}
    gateway = await start_gateway(config)
    upstream.then(parts=big_stream(400, 64 * 1024))
    reader, writer = await raw_stream_request(gateway.url, "smart")
    await asyncio.sleep(1.5)  # not reading: the gateway's writes block
    received = b""
    while chunk := await asyncio.wait_for(reader.read(1 << 20), 30):
        received += chunk
        if received.endswith(b"0\r\n\r\n"):
            break
    await close(writer)
    assert b"data: [DONE]\n\n" in received
    assert b'"error"' not in received
    row = (await gateway.rows())[-1]
    assert (row["status"], row["error"]) == (200, None)


async def test_a_caller_that_never_reads_is_its_own_499(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Writes blocked longer than limits.write_timeout: the row blames the caller (499)."""
    config = base_config(upstream.url, tmp_path)
    config["limits"] = {"write_timeout": "1s"}
    gateway = await start_gateway(config)
    upstream.then(parts=big_stream(400, 64 * 1024))
    _, writer = await raw_stream_request(gateway.url, "smart")

    async def row_written() -> bool:
        return len(await gateway.rows()) == 1
    await until(row_written, "the stream's usage row")
    await close(writer)
    row = (await gateway.rows())[-1]
    assert (row["status"], row["error"]) == (499, "client did not read the stream for 1s")
