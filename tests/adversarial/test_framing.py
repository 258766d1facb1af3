"""A request body whose chunked framing turns invalid after the head is answered 400 at once
(with its 400 usage row), not 408 once ``limits.body_timeout`` has passed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import ALICE, base_config
from tests.fakes import FakeUpstream
from tests.service import serving, until

HEAD = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + ALICE.encode() + b"\r\nx-request-id: req-framing\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n")


@pytest.mark.parametrize("broken", [b"zz\r\n", b"3\r\nabcdef\r\n", b"5\r\nabcde\r\r\n"],
                         ids=["bad-size", "chunk-longer-than-size", "bad-chunk-end"])
async def test_broken_chunked_framing_is_a_400_at_once(
        upstream: FakeUpstream, tmp_path: Path, broken: bytes) -> None:
    config = base_config(upstream.url, tmp_path)
    config["limits"] = {"body_timeout": "10m"}  # a 408 would take ten minutes
    async with serving(config, tmp_path) as gateway:
        host, port = gateway.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(HEAD + b'7\r\n{"model\r\n')
        await writer.drain()
        await asyncio.sleep(0.2)  # the handler is reading the body
        writer.write(broken)
        await writer.drain()
        async with asyncio.timeout(30):
            status_line = await reader.readline()
            answer = await reader.read()
        writer.close()
        assert status_line.startswith(b"HTTP/1.1 400"), status_line + answer
        assert b"invalid_request_error" in answer and b"chunk" in answer.lower()

        async def rowed() -> bool:
            return bool(gateway.rows())
        await until(rowed, "the usage row")
        assert [(r["request_id"], r["status"]) for r in gateway.rows()] == [("req-framing", 400)]
