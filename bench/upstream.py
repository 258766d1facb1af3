"""A fast fake OpenAI upstream: raw asyncio Protocol, pre-built bytes, HTTP/1.1 keep-alive.

`POST /v1/chat/completions` answers a fixed `chat.completion`; with `"stream": true` in the
body it answers an SSE stream of N `chat.completion.chunk` events (the usage chunk too when
the body asks `stream_options.include_usage`), then `data: [DONE]`. `GET /healthz` answers
200. Two request headers tune one stream: `x-bench-chunks: N` and `x-bench-delay-ms: MS`
(the gap between chunks; the first chunk goes out with the response head). The applied
values are echoed in every chunk's `id` (`chatcmpl-bench-n20-d20`), so a client can tell
whether a proxy forwarded them.

Run: `python -m bench.upstream [--port 0] [--chunks 20] [--delay-ms 0]`; it prints
`PORT <n>` on stdout once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import signal
import sys
from typing import cast

import orjson

CREATED = 1_700_000_000
MODEL = "gpt-bench"
MAX_HEAD = 64 * 1024

NONSTREAM_BODY = orjson.dumps({
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": CREATED,
    "model": MODEL,
    "system_fingerprint": "fp_bench",
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": "Hello! How can I help you today?",
                    "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }],
    "usage": {
        "prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    },
})
NONSTREAM_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(NONSTREAM_BODY)).encode() + b"\r\n\r\n" + NONSTREAM_BODY
)
HEALTH_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
    b'{"status": "ok"}'
)
NOT_FOUND_RESPONSE = (
    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\n"
    b"not found"
)
BAD_REQUEST_RESPONSE = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
)
STREAM_MARKERS = (b'"stream":true', b'"stream": true')
USAGE_MARKERS = (b'"include_usage":true', b'"include_usage": true')


def _frame(payload: bytes) -> bytes:
    """One HTTP/1.1 chunked-transfer frame holding *payload*."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


@functools.lru_cache(maxsize=64)
def stream_frames(chunks: int, delay_ms: int, include_usage: bool) -> tuple[bytes, ...]:
    """The chunked frames of one stream: the head glued to the first event, then one per event.

    Events: a role chunk, `chunks - 2` content chunks, a finish chunk (so *chunks* in all,
    at least 2), the usage chunk when *include_usage*, `[DONE]`, and the terminating frame.
    """
    chunks = max(2, chunks)
    ident = f"chatcmpl-bench-n{chunks}-d{delay_ms}"
    extra: dict[str, object] = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, object], finish: str | None) -> bytes:
        return _event({
            "id": ident, "object": "chat.completion.chunk", "created": CREATED,
            "model": MODEL, "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish}],
            **extra,
        })

    events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    events += [chunk({"content": f"tok{i} "}, None) for i in range(chunks - 2)]
    events.append(chunk({}, "stop"))
    if include_usage:
        events.append(_event({
            "id": ident, "object": "chat.completion.chunk", "created": CREATED,
            "model": MODEL, "system_fingerprint": "fp_bench", "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": chunks - 2,
                      "total_tokens": 9 + chunks - 2,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0}},
        }))
    events.append(b"data: [DONE]\n\n")
    frames = [_frame(e) for e in events]
    frames[0] = STREAM_HEAD + frames[0]
    frames[-1] += b"0\r\n\r\n"
    return tuple(frames)


def _header(head: bytes, name: bytes) -> bytes | None:
    """The value of header *name* (lower-case) in a lower-cased request *head*, if present."""
    start = head.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    end = head.find(b"\r\n", start)
    return head[start:end if end >= 0 else len(head)].strip()


def _int_header(head: bytes, name: bytes, default: int) -> int:
    value = _header(head, name)
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


class UpstreamProtocol(asyncio.Protocol):
    """One connection: parse requests as they complete, answer with pre-built bytes."""

    __slots__ = ("buf", "closed", "defaults", "loop", "queue", "streaming", "timer", "transport")

    def __init__(self, defaults: tuple[int, int]) -> None:
        self.defaults = defaults
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = None
        self.streaming = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.streaming:
            self._drain()

    def _drain(self) -> None:
        """Answer every complete request in the buffer (pipelining), stopping at a stream."""
        assert self.transport is not None
        while not self.streaming and not self.closed:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self._fail()
                return
            head = bytes(self.buf[:end + 2]).lower()
            body_start = end + 4
            if b"\r\ntransfer-encoding: chunked" in head:
                parsed = _dechunk(self.buf, body_start)
                if parsed is None:
                    return
                body, consumed = parsed
            else:
                length = _int_header(head, b"content-length", 0)
                if len(self.buf) < body_start + length:
                    return
                body, consumed = bytes(self.buf[body_start:body_start + length]), \
                    body_start + length
            del self.buf[:consumed]
            self._answer(head, body)
            if b"\r\nconnection: close" in head:
                self.transport.close()
                self.closed = True

    def _fail(self) -> None:
        assert self.transport is not None
        self.transport.write(BAD_REQUEST_RESPONSE)
        self.transport.close()
        self.closed = True

    def _answer(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        if head.startswith(b"post /v1/chat/completions"):
            if any(m in body for m in STREAM_MARKERS):
                self._stream(head, body)
            else:
                self.transport.write(NONSTREAM_RESPONSE)
        elif head.startswith(b"get /healthz"):
            self.transport.write(HEALTH_RESPONSE)
        else:
            self.transport.write(NOT_FOUND_RESPONSE)

    def _stream(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        chunks = _int_header(head, b"x-bench-chunks", self.defaults[0])
        delay_ms = _int_header(head, b"x-bench-delay-ms", self.defaults[1])
        frames = stream_frames(chunks, delay_ms, any(m in body for m in USAGE_MARKERS))
        if delay_ms <= 0:
            self.transport.write(b"".join(frames))
            return
        self.streaming = True
        self.transport.write(frames[0])
        self.timer = self.loop.call_later(delay_ms / 1000, self._next, frames, 1, delay_ms)

    def _next(self, frames: tuple[bytes, ...], index: int, delay_ms: int) -> None:
        if self.closed or self.transport is None:
            return
        self.transport.write(frames[index])
        if index + 1 < len(frames):
            self.timer = self.loop.call_later(delay_ms / 1000, self._next, frames, index + 1,
                                              delay_ms)
        else:
            self.timer = None
            self.streaming = False
            self._drain()


def _dechunk(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked request body starting at *start*; None until it is complete."""
    body = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", pos - 2)
            return (bytes(body), end + 4) if end >= 0 else None
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos:pos + size]
        pos += size + 2


async def serve(host: str, port: int, chunks: int, delay_ms: int) -> None:
    """Listen until SIGTERM/SIGINT; print `PORT <n>` once bound."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: UpstreamProtocol((chunks, delay_ms)), host, port,
                                      backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--delay-ms", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve(args.host, args.port, args.chunks, args.delay_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
