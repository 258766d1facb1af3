"""aiohttp's HTTP/1.1 server with one fix: a request body whose chunked framing turns invalid
after the head fails the handler's body read at once.

aiohttp's C parser (llhttp) drops the open payload on a framing error without telling it, and
queues a 400 for after the current request; the handler reading that body would wait for
``limits.body_timeout``. Here the connection sets the parser's error on the body of the
request it parsed last (the one the framing error is about), even before its handler starts,
so the handler answers 400 in the caller's dialect (and writes its usage row); the
connection then closes, as its framing is lost. aiohttp's pure-Python parser already does
this.
"""

from __future__ import annotations

import itertools

from aiohttp import StreamReader, web
from aiohttp.helpers import set_exception
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo


class _Connection(RequestHandler):
    #: The body of the request parsed last (what a framing error can only be about).
    _body: StreamReader | None = None

    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        super().data_received(data)
        for message, payload in itertools.islice(self._messages, queued, None):
            if not isinstance(message, _ErrInfo):
                self._body = payload
                continue
            body = self._body
            if body is not None and not body.is_eof():
                set_exception(body, RequestPayloadError(message.message))
                self.close()
            return


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """`web.AppRunner` whose connections fail a body as soon as its framing is invalid."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _Server(server.request_handler, request_factory=server.request_factory,
                       handler_cancellation=server.handler_cancellation, loop=server._loop,
                       **server._kwargs)
