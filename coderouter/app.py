"""create_app(): the gateway's state, its setup and teardown, and the route table."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from . import handlers
from .proxy import Forwarder
from .reload import ConfigHolder, install_sighup, watch_config
from .routing import Health
from .state import GATEWAY, Gateway
from .upstream import Pools
from .usage import UsageWriter

log = logging.getLogger("coderouter")


def create_app(holder: ConfigHolder, *, watch: bool = False) -> web.Application:
    """The gateway serving *holder*'s config; *watch* follows the file and SIGHUP."""
    config = holder.current
    pools, health = Pools(), Health()
    gateway = Gateway(holder=holder, pools=pools, health=health,
                      forwarder=Forwarder(pools, health),
                      writer=UsageWriter(config.database.path))
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
    app.router.add_get("/healthz", handlers.healthz)
    return app


async def _usage_writer(app: web.Application) -> AsyncIterator[None]:
    writer = app[GATEWAY].writer
    await writer.open()
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
