"""create_app(): the gateway's state, its setup and teardown, and the route table."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from . import handlers
from .limits import Limiter
from .proxy import Forwarder
from .reload import ConfigHolder, install_sighup, watch_config
from .routing import Health
from .state import GATEWAY, Gateway
from .upstream import Pools
from .usage import UsageWriter, seed_limiter

log = logging.getLogger("coderouter")


def create_app(holder: ConfigHolder, *, watch: bool = False,
               clock: Callable[[], float] = time.time) -> web.Application:
    """The gateway serving *holder*'s config; *watch* follows the file and SIGHUP.

    *clock* (unix seconds) stamps usage rows and drives quota periods and rate-limit windows.
    """
    config = holder.current
    pools, health = Pools(), Health()
    gateway = Gateway(holder=holder, pools=pools, health=health,
                      forwarder=Forwarder(pools, health),
                      writer=UsageWriter(config.database.path),
                      limiter=Limiter(clock), clock=clock)
    app = web.Application(middlewares=[handlers.errors_middleware])
    app[GATEWAY] = gateway
    app.on_response_prepare.append(handlers.on_prepare)
    app.cleanup_ctx.append(_usage_writer)
    app.cleanup_ctx.append(_upstream_pools)
    if watch:
        app.cleanup_ctx.append(_config_watch)
    for path in handlers.ENDPOINTS:
        app.router.add_post(path, handlers.relay)
    app.router.add_get("/v1/models", handlers.models)
    app.router.add_get("/v1/usage", handlers.own_usage)
    app.router.add_get("/admin/usage", handlers.admin_usage)
    app.router.add_get("/healthz", handlers.healthz)
    return app


async def _usage_writer(app: web.Application) -> AsyncIterator[None]:
    """Open the usage table and rebuild the quota counters from it before serving."""
    gateway = app[GATEWAY]
    writer = gateway.writer
    await writer.open()
    if gateway.limiter is not None:
        assert writer.db is not None
        await seed_limiter(writer.db, gateway.limiter)
    yield
    await writer.close()


async def _upstream_pools(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[GATEWAY].pools.close()


async def _config_watch(app: web.Application) -> AsyncIterator[None]:
    holder = app[GATEWAY].holder
    install_sighup(asyncio.get_running_loop(), holder)
    stop = asyncio.Event()
    task = asyncio.create_task(watch_config(holder, stop), name="config-watch")
    yield
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
