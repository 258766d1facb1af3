"""Run the gateway until SIGTERM or SIGINT, then stop gracefully; tell systemd each step.

aiohttp's own `web.run_app` (3.14) waits ``shutdown_timeout`` for handlers, then as long again,
then cancels them: a stream cut that way gets no SSE error event, its row says 499, and a stop
can take twice the grace. So the gateway runs its own `AppRunner`: a signal stops the listener,
the app's ``on_shutdown`` drains (see `coderouter.drain`: streams finish within
``shutdown.grace``, the rest end with an error event and a 503 row), the cleanup contexts flush
the usage writer, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import systemd
from .config import Listen
from .protocol import Runner
from .state import GATEWAY

log = logging.getLogger("coderouter")

#: aiohttp's own shutdown wait, after the drain: only requests it does not track are left
#: (a body still uploading, a /metrics scrape). It waits up to twice this, then cancels.
BACKSTOP_TIMEOUT = 2.0
#: The HTTP parser's bounds on a request head: each line (request line, header) at most
#: MAX_LINE bytes, at most MAX_HEADERS headers; over them the answer is 400 or 431.
MAX_LINE = 8190
MAX_HEADERS = 64


def server_options(listen: Listen) -> dict[str, Any]:
    """aiohttp's per-connection options: keep-alive (also the time a connection has to send
    a complete request head: aiohttp closes a connection still waiting for one) and the
    parser's bounds."""
    return {"keepalive_timeout": listen.keepalive, "max_line_size": MAX_LINE,
            "max_field_size": MAX_LINE, "max_headers": MAX_HEADERS}


async def serve(app: web.Application, host: str, port: int, status: str = "",
                reuse_port: bool = False, banner: str = "") -> None:
    """Serve *app* on *host*:*port* until SIGTERM or SIGINT, then stop gracefully.

    *reuse_port* lets several worker processes listen on the same port (SO_REUSEPORT);
    *banner* is logged once the port is bound (a bind that fails logs only its error).
    """
    runner = Runner(app, handle_signals=False, access_log=None,
                    handler_cancellation=True, shutdown_timeout=BACKSTOP_TIMEOUT,
                    **server_options(app[GATEWAY].holder.current.listen))
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
        if banner:
            log.info("%s", banner)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _stop, stop, sig)
        systemd.ready(status or None)
        await stop.wait()
        systemd.stopping()
    finally:
        await runner.cleanup()
    log.info("stopped")


def _stop(stop: asyncio.Event, sig: signal.Signals) -> None:
    if not stop.is_set():
        log.info("%s: stopping; no new connections", sig.name)
    stop.set()


def run(app: web.Application, host: str, port: int, status: str = "",
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        reuse_port: bool = False, banner: str = "") -> None:
    """Run `serve` in a new event loop (uvloop's when *loop_factory* gives one)."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(app, host, port, status, reuse_port, banner))
