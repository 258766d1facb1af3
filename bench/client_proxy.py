"""A minimal proxy on the aiohttp server with a pluggable upstream client (`bench.clients`).

    python -m bench.client_proxy --client aiohttp|lean|pyreqwest|aiosonic --upstream PORT

It does what every candidate must do for Code Router and nothing else: read the caller's
body, POST it to the upstream with the channel key and the `x-bench-*` headers, answer a
plain answer whole and relay a stream's chunks as they arrive. Prints `PORT <n>` once
listening. The candidates' imports happen only for the one chosen, so a missing package
names itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

KEY = "Bearer sk-upstream-bench"
PATH = "/v1/chat/completions"


class Upstream:
    """What the proxy needs of an answer: status, content type, its body in pieces."""

    status: int
    content_type: str

    async def read(self) -> bytes:
        raise NotImplementedError

    def chunks(self) -> AsyncIterator[bytes]:
        raise NotImplementedError

    async def close(self) -> None:
        pass


def bench_headers(request: web.Request) -> dict[str, str]:
    out = {"Authorization": KEY, "Content-Type": "application/json"}
    out.update((k, v) for k, v in request.headers.items() if k.lower().startswith("x-bench-"))
    return out


# -- candidates -----------------------------------------------------------------------------


class AiohttpClient:
    """aiohttp's ClientSession configured as Code Router's pools are."""

    def __init__(self, url: str) -> None:
        import aiohttp
        self.url = url
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=2048, keepalive_timeout=60),
            cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, auto_decompress=False,
            skip_auto_headers=("User-Agent",),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120))

    async def send(self, headers: dict[str, str], body: bytes) -> Upstream:
        resp = await self.session.post(self.url, data=body, headers=headers)

        class Answer(Upstream):
            status, content_type = resp.status, resp.content_type

            async def read(self) -> bytes:
                return await resp.read()

            async def chunks(self) -> AsyncIterator[bytes]:
                async for data in resp.content.iter_any():
                    yield data

            async def close(self) -> None:
                resp.release()

        return Answer()


class LeanClient:
    """`bench.lean_client`: asyncio Protocol + httptools, keep-alive pool, one write."""

    def __init__(self, url: str) -> None:
        from bench.lean_client import Pool
        port = int(url.split(":")[2].split("/")[0])
        self.pool = Pool("127.0.0.1", port)

    async def send(self, headers: dict[str, str], body: bytes) -> Upstream:
        answer = await self.pool.request(
            b"POST", PATH.encode(), [(k.encode(), v.encode()) for k, v in headers.items()], body)
        ctype = (answer.header(b"content-type") or b"").split(b";")[0].decode()

        class Answer(Upstream):
            status, content_type = answer.status, ctype

            async def read(self) -> bytes:
                return await answer.read()

            def chunks(self) -> AsyncIterator[bytes]:
                return answer.iter_chunks()

            async def close(self) -> None:
                answer.release()

        return Answer()


class PyreqwestClient:
    """pyreqwest (Rust reqwest/hyper behind a Python API), streamed reads."""

    def __init__(self, url: str) -> None:
        from pyreqwest.client import ClientBuilder
        self.url = url
        self.client = ClientBuilder().max_connections(2048).build()

    async def send(self, headers: dict[str, str], body: bytes) -> Upstream:
        request = self.client.post(self.url).headers(headers).body_bytes(body).build_streamed()
        resp = await request.__aenter__()
        ctype = (resp.headers.get("content-type") or "").split(";")[0]

        class Answer(Upstream):
            status, content_type = resp.status, ctype

            async def read(self) -> bytes:
                return bytes(await resp.body_reader.bytes())

            async def chunks(self) -> AsyncIterator[bytes]:
                reader = resp.body_reader
                while (data := await reader.read_chunk()) is not None:
                    yield bytes(data)

            async def close(self) -> None:
                await request.__aexit__(None, None, None)

        return Answer()


class AiosonicClient:
    """aiosonic's HTTPClient (pure Python, own connection pool)."""

    def __init__(self, url: str) -> None:
        import aiosonic
        self.url = url
        self.client = aiosonic.HTTPClient()

    async def send(self, headers: dict[str, str], body: bytes) -> Upstream:
        resp = await self.client.post(self.url, data=body, headers=headers)
        ctype = (resp.headers.get("content-type") or "").split(";")[0]

        class Answer(Upstream):
            status, content_type = resp.status_code, ctype

            async def read(self) -> bytes:
                return bytes(await resp.content())

            async def chunks(self) -> AsyncIterator[bytes]:
                async for data in resp.read_chunks():
                    yield data

        return Answer()


CLIENTS: dict[str, Any] = {"aiohttp": AiohttpClient, "lean": LeanClient,
                           "pyreqwest": PyreqwestClient, "aiosonic": AiosonicClient}
CLIENT = web.AppKey("client", object)


async def proxy(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    up = await request.app[CLIENT].send(bench_headers(request), body)  # type: ignore[attr-defined]
    try:
        if up.content_type != "text/event-stream":
            return web.Response(status=up.status, body=await up.read(),
                                content_type=up.content_type or "application/json")
        resp = web.StreamResponse(status=up.status,
                                  headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        async for data in up.chunks():
            await resp.write(data)
        await resp.write_eof()
        return resp
    finally:
        await up.close()


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def serve(client: str, upstream: int) -> None:
    app = web.Application()
    app[CLIENT] = CLIENTS[client](f"http://127.0.0.1:{upstream}{PATH}")
    app.router.add_post(PATH, proxy)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {port}", flush=True)
    gc.freeze()
    gc.set_threshold(7000, 20, 20)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client_proxy")
    parser.add_argument("--client", choices=sorted(CLIENTS), required=True)
    parser.add_argument("--upstream", type=int, required=True)
    args = parser.parse_args(argv)
    import uvloop
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.client, args.upstream))
    return 0


if __name__ == "__main__":
    sys.exit(main())
