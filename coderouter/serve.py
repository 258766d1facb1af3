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

from aiohttp import web

from . import systemd

log = logging.getLogger("coderouter")

#: aiohttp's own shutdown wait, after the drain: only requests it does not track are left
#: (a body still uploading, a /metrics scrape). It waits up to twice this, then cancels.
BACKSTOP_TIMEOUT = 2.0


async def serve(app: web.Application, host: str, port: int, status: str = "",
                reuse_port: bool = False) -> None:
    """Serve *app* on *host*:*port* until SIGTERM or SIGINT, then stop gracefully.

    *reuse_port* lets several worker processes listen on the same port (SO_REUSEPORT).
    """
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           handler_cancellation=True, shutdown_timeout=BACKSTOP_TIMEOUT)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
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
        reuse_port: bool = False) -> None:
    """Run `serve` in a new event loop (uvloop's when *loop_factory* gives one)."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(app, host, port, status, reuse_port))
