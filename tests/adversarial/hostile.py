"""A misbehaving upstream: an aiohttp app on loopback that does what real upstreams sometimes do.

Each behaviour is chosen by the ``model`` the gateway sends (the target's upstream model), so
one channel can reach all of them through model groups. Requests are recorded (`Seen`).

Behaviours (model name -> what the upstream does):

* ``echo``: 200 chat completion whose text is the request's headers as JSON (a debug upstream)
* ``echo-<status>``: that status, ``Incorrect API key provided: <the key it got>`` as the error
* ``echo-stream``: an SSE stream whose text echoes the key, the key split across TCP writes
* ``echo-stream-error``: one event, then an error event quoting the key
* ``redirect``: 307 to ``redirect_to`` (another server that records what reaches it)
* ``huge``: a 200 body of ``huge_bytes`` zero bytes (never valid JSON, never complete)
* ``gzip-bomb``: a small gzip body that inflates to ``bomb_bytes``
* ``endless-event``: an SSE event that never ends: ``data:`` then one byte every ``trickle`` s
* ``big-event``: a first event, then one event of ``huge_bytes`` without a blank line
* ``retry-after``: 429 with ``Retry-After: 99999999``
* ``status-<n>``: that status with a fixed error body
"""

from __future__ import annotations

import asyncio
import functools
import zlib
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from tests.fakes import Seen, chat_chunk


def key_of(headers: CIMultiDictProxy[str]) -> str:
    """The credential the gateway sent, in whichever header the channel type uses."""
    auth = headers.get("Authorization", "")
    return auth.removeprefix("Bearer ") or headers.get("x-api-key") or headers.get("api-key", "")


def completion(text: str) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}


class Hostile:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.url = ""
        self.redirect_to = ""
        self.huge_bytes = 64 * 1024 * 1024
        self.bomb_bytes = 256 * 1024 * 1024
        self.trickle = 0.05
        self.streams_open = 0
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, request.query_string,
                              request.headers, body))
        payload = orjson.loads(body) if body else {}
        model = str(payload.get("model", ""))
        key = key_of(request.headers)
        if model == "echo":
            echoed = {str(name): value for name, value in request.headers.items()}
            return web.json_response(completion(orjson.dumps(echoed).decode()))
        if model.startswith("echo-") and model[5:].isdigit():
            return web.json_response(
                {"error": {"message": f"Incorrect API key provided: {key}. You can find your "
                           "API key at https://example.invalid.", "type": "invalid_request_error",
                           "code": "invalid_api_key"}}, status=int(model[5:]))
        if model.startswith("status-"):
            return web.json_response({"error": {"message": "no", "type": "x"}},
                                     status=int(model[7:]))
        if model == "echo-stream":
            half = len(key) // 2
            first = chat_chunk([{"index": 0, "delta": {"content": f"key={key}"}}])
            cut = first.index(key.encode()) + half
            return await self.stream(request, [
                first[:cut], first[cut:],
                chat_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}],
                           usage={"prompt_tokens": 5, "completion_tokens": 7,
                                  "total_tokens": 12}),
                b"data: [DONE]\n\n"])
        if model == "echo-stream-error":
            error = {"error": {"message": f"key {key} was revoked", "type": "server_error"}}
            return await self.stream(request, [
                chat_chunk([{"index": 0, "delta": {"content": "hi"}}]),
                b"data: " + orjson.dumps(error) + b"\n\n"])
        if model == "redirect":
            raise web.HTTPTemporaryRedirect(self.redirect_to)
        if model == "huge":
            return await self.huge(request)
        if model == "gzip-bomb":
            return self.bomb()
        if model == "endless-event":
            return await self.endless(request)
        if model == "big-event":
            return await self.big_event(request)
        if model == "retry-after":
            return web.json_response({"error": {"message": "slow down", "type": "x"}},
                                     status=429, headers={"Retry-After": "99999999"})
        return web.json_response(completion("ok"))

    async def stream(self, request: web.Request, parts: list[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for part in parts:
            await response.write(part)
            await asyncio.sleep(0.01)  # separate TCP segments
        await response.write_eof()
        return response

    async def huge(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)  # chunked: no length to refuse it by
        block = b"0" * (1024 * 1024)
        sent = 0
        try:
            while sent < self.huge_bytes:
                await response.write(block)
                sent += len(block)
        except ConnectionResetError:
            pass
        return response

    def bomb(self) -> web.Response:
        return web.Response(body=gzip_bomb(self.bomb_bytes),
                            headers={"Content-Type": "application/json",
                                     "Content-Encoding": "gzip"})

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        self.streams_open += 1
        try:
            await response.write(chat_chunk([{"index": 0, "delta": {"content": "hi"}}]))
            await response.write(b"data: ")
            while True:
                await asyncio.sleep(self.trickle)
                await response.write(b"x")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.streams_open -= 1
        return response

    async def big_event(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(chat_chunk([{"index": 0, "delta": {"content": "hi"}}]))
        block = b"x" * (64 * 1024)
        sent = 0
        try:
            await response.write(b"data: ")
            while sent < self.huge_bytes:
                await response.write(block)
                sent += len(block)
        except ConnectionResetError:
            pass
        return response


@functools.cache
def gzip_bomb(size: int) -> bytes:
    """A gzip body of *size* zero bytes, compressed without ever holding them all."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"0" * (1024 * 1024)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, packer.flush()])
