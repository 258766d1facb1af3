"""``GET /v1/responses`` as a WebSocket (Codex's built-in provider), frames in and out.

The caller authenticates with the upgrade's headers. Each ``response.create`` frame is one
Responses request through the ordinary relay (`handlers.relay`: routing, quotas, translation,
failover, one usage row), as if it had been POSTed with the upgrade's headers; its stream's
events go back as JSON text frames, a refusal as one ``{"type": "error", ...}`` frame. Frames
are served one at a time, in order. What the frames mean (warm-up, continuing an earlier
response) is `dialects.responses.socket`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from ..auth import authenticate, check_model
from ..dialects import framing
from ..dialects.registry import of_path
from ..dialects.responses.socket import Collector, History, error_frame, warm_up
from ..errors import GatewayError, InvalidRequest, ModelNotFound, RequestTooLarge
from ..state import GATEWAY
from . import handlers
from .stream import STREAM_SINK

log = logging.getLogger("coderouter.relay.websocket")

#: Frames read ahead of the one being answered (Codex sends one at a time).
_QUEUED = 8
_SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("websockets")
#: Upgrade headers a frame's request does without: the WebSocket's own, and the beta that
#: asked for it (an upstream spoken to over HTTP must not read it).
_SOCKET_ONLY = frozenset({"connection", "upgrade", "x-request-id", "openai-beta"})


def install(app: web.Application, path: str) -> None:
    """Serve the Responses WebSocket on ``GET`` *path*; close the open ones at shutdown."""
    app[_SOCKETS] = weakref.WeakSet()
    app.router.add_get(path, responses_socket)
    app.on_shutdown.append(_close_all)


async def responses_socket(request: web.Request) -> web.StreamResponse:
    """The upgrade: authenticated before it is accepted; then the frames until either side
    closes. A plain GET is a 405, as before there was a socket here."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise web.HTTPMethodNotAllowed(request.method, ["POST"])
    config = request.app[GATEWAY].holder.current
    handlers.check_header_bytes(request, config.limits.max_header_bytes)
    authenticate(config, request.headers)
    headers = {k: v for k, v in request.headers.items()
               if k.lower() not in _SOCKET_ONLY and not k.lower().startswith("sec-websocket")}
    template = request.clone(method="POST", headers=headers)
    max_frame = config.limits.body_bounds(request.path)[0]  # limits.routes may set it
    socket = web.WebSocketResponse(max_msg_size=max_frame, compress=True, autoping=True)
    await socket.prepare(request)
    request.app[_SOCKETS].add(socket)
    connection = _Connection(template, socket)
    frames: asyncio.Queue[str | None] = asyncio.Queue(_QUEUED)
    worker = asyncio.create_task(connection.work(frames))
    try:  # read on while a frame is answered: pings get their pongs, a close is seen
        async for message in socket:
            if worker.done():
                break
            if message.type == WSMsgType.TEXT:
                await frames.put(message.data)
            elif message.type == WSMsgType.BINARY:
                await frames.put(None)
    finally:
        worker.cancel()  # the caller left: a frame still answered ends as a 499 row
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        log.info("responses websocket from %s closed after %d frames", request.remote,
                 connection.frames)
    return socket


async def _close_all(app: web.Application) -> None:
    """At shutdown (after the drain ended the requests in flight): close every socket."""
    sockets = app[_SOCKETS]
    for socket in list(sockets):
        await socket.close(code=1001, message=b"server shutting down")


async def send(socket: web.WebSocketResponse, data: bytes) -> None:
    """One text frame of JSON *data* (already UTF-8: not decoded to be encoded again)."""
    await socket.send_frame(data, WSMsgType.TEXT)


class _Connection:
    """One socket's state: the request its frames are served as, and its `History`."""

    def __init__(self, template: web.Request, socket: web.WebSocketResponse) -> None:
        self.template = template
        self.socket = socket
        self.history = History()
        self.frames = 0

    async def work(self, frames: asyncio.Queue[str | None]) -> None:
        """Answer the frames in the order they came, one at a time."""
        try:
            while True:
                text = await frames.get()
                if text is None:
                    await self.refuse(InvalidRequest("frames must be JSON text"))
                else:
                    await self.serve(text)
        except ConnectionResetError:
            return  # the caller left while a frame was answered: its row says so

    async def serve(self, text: str) -> None:
        """Answer one frame: its events, or an error frame."""
        self.frames += 1
        limits = self.template.app[GATEWAY].holder.current.limits
        try:
            handlers.check_items(text, limits.body_bounds(self.template.path)[1])
            frame = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            await self.refuse(InvalidRequest(f"frame is not valid JSON: {exc}"))
            return
        except GatewayError as exc:  # more items than limits.max_items: never parsed
            await self.refuse(exc)
            return
        try:
            payload, generate = self.history.request(frame)
            if generate:
                await self._relay(payload)
            else:
                await self._warm_up(payload)
        except GatewayError as exc:
            await self.refuse(exc)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:  # the relay recorded it (500); the socket serves on
            log.exception("responses websocket frame failed")
            await self.refuse(GatewayError("internal error"))

    async def _warm_up(self, payload: dict[str, Any]) -> None:
        """A frame that asks for no answer: the model is checked, no upstream called."""
        model = payload.get("model")
        config = self.template.app[GATEWAY].holder.current
        if not isinstance(model, str) or config.route(model) is None:
            raise ModelNotFound(f"the model '{model}' does not exist")
        check_model(authenticate(config, self.template.headers), model)
        rid, events = warm_up(model)
        for event in events:
            await send(self.socket, orjson.dumps(event))
        self.history.answered(rid, payload, [])

    async def _relay(self, payload: dict[str, Any]) -> None:
        """One request through the ordinary relay, its stream written as frames."""
        request = self.template.clone()
        limit = request.app[GATEWAY].holder.current.limits.body_bounds(request.path)[0]
        body = orjson.dumps(payload)
        if len(body) > limit:
            raise RequestTooLarge(f"request of {len(body)} bytes is over the {limit} byte "
                                  "limit")
        sink = _FrameSink(self.socket)
        request[STREAM_SINK] = lambda: sink
        answer = await handlers.relay(request, body=body)
        if answer is not sink:  # a whole answer: an upstream's refusal, or no stream
            await self._whole(answer)
        elif sink.seen.completed and sink.seen.rid is not None:
            self.history.answered(sink.seen.rid, payload, sink.seen.output)

    async def _whole(self, answer: web.StreamResponse) -> None:
        body = answer.body if isinstance(answer, web.Response) else None
        try:
            parsed = orjson.loads(body) if isinstance(body, bytes) else None
        except orjson.JSONDecodeError:
            parsed = None
        if answer.status >= 400:
            frame = error_frame(answer.status, parsed)
        else:
            frame = {"type": "response.completed", "response": parsed}
        await send(self.socket, orjson.dumps(frame))

    async def refuse(self, error: GatewayError) -> None:
        body = orjson.loads(of_path(self.template.path).error_body(error))
        frame = error_frame(error.status, body)
        await send(self.socket, orjson.dumps(frame))


class _FrameSink(web.StreamResponse):
    """Where the relay writes a stream: each complete SSE event becomes one text frame."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        super().__init__()
        self.socket = socket
        self.seen = Collector()
        self._rest = b""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        block = self._rest + bytes(data)
        end = framing.last_boundary(block, 0)
        self._rest = block[end:]
        for _, event in framing.events(block[:end]):
            await self._send(event)

    async def write_eof(self, data: bytes = b"") -> None:
        rest, self._rest = self._rest + data, b""
        for _, event in framing.events(rest):
            await self._send(event)

    async def _send(self, event: bytes) -> None:
        try:
            self.seen.see(orjson.loads(event))
        except orjson.JSONDecodeError:
            return  # not a JSON event (a pass-through's comment or [DONE]): not a frame
        await send(self.socket, event)
