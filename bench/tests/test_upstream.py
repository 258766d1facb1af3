"""The fake upstream speaks OpenAI's chat.completion and chunk formats over keep-alive."""

from __future__ import annotations

import asyncio
import json

from bench import upstream


def _events(frames: tuple[bytes, ...]) -> list[bytes]:
    raw = b"".join(frames)
    body = raw.split(b"\r\n\r\n", 1)[1]
    out, pos = bytearray(), 0
    while True:
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol], 16)
        if size == 0:
            break
        out += body[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2
    return [e for e in bytes(out).split(b"\n\n") if e]


def test_stream_has_n_chunks_then_done_without_usage() -> None:
    """Without include_usage: N chunk events, the last with finish_reason, then [DONE]."""
    events = _events(upstream.stream_frames(5, 0, False))
    assert len(events) == 6
    assert events[-1] == b"data: [DONE]"
    chunks = [json.loads(e[len(b"data: "):]) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)


def test_stream_with_usage_adds_usage_chunk() -> None:
    """With include_usage: every chunk has usage null, then a choices-[] usage chunk."""
    events = _events(upstream.stream_frames(4, 20, True))
    chunks = [json.loads(e[len(b"data: "):]) for e in events[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[0]["id"] == "chatcmpl-bench-n4-d20"


def test_header_lookup_is_exact() -> None:
    """Header values are read from a lower-cased head by exact name."""
    head = b"post / http/1.1\r\nx-bench-chunks: 7\r\ncontent-length: 12\r\n"
    assert upstream._int_header(head, b"x-bench-chunks", 3) == 7
    assert upstream._int_header(head, b"x-bench-delay-ms", 3) == 3


async def test_keepalive_pipelined_and_chunked_requests() -> None:
    """Two requests on one connection, one with a chunked body, both answered in order."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: upstream.UpstreamProtocol((3, 0)), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b'{"model":"m"}'
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n"
                     b"f\r\n{\"stream\": true}\r\n0\r\n\r\n")
        first = await reader.readexactly(len(upstream.NONSTREAM_RESPONSE))
        assert first == upstream.NONSTREAM_RESPONSE
        rest = await reader.readuntil(b"0\r\n\r\n")
        assert rest.startswith(b"HTTP/1.1 200 OK") and b"data: [DONE]" in rest
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
