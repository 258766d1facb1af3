"""create_app(): the gateway's state, its setup and teardown, and the route table."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from .capture import Captures
from .channels.pool import Pools
from .config import Config, Database
from .config.reload import ConfigHolder, install_sighup, watch_config
from .control import reload_route
from .dashboard import api as dashboard_api
from .dashboard import pages
from .dialects import hub
from .dialects.registry import ENDPOINTS
from .logs import ACCESS_LOG, AccessLog, flush_at_stop
from .metrics import METRICS, Metrics, metrics_route, mirror_state
from .quotas import quotas_for
from .relay import gemini_routes, handlers, websocket
from .relay.forward import Forwarder
from .routing import Health
from .state import GATEWAY, Gateway
from .usage import UsageStore, UsageWriter

log = logging.getLogger("coderouter")


def create_app(holder: ConfigHolder, *, watch: bool = False,
               clock: Callable[[], float] = time.time) -> web.Application:
    """The gateway serving *holder*'s config; *watch* follows the file and SIGHUP.

    *clock* (unix seconds) stamps usage rows and drives quota periods and rate-limit windows.
    """
    config = holder.current
    hub.use_secret(envelope_secret(config))
    pools, health = Pools(), Health(sessions=config.limits.sessions)
    writer = usage_store(config.database)
    gateway = Gateway(holder=holder, pools=pools, health=health,
                      forwarder=Forwarder(pools, health), writer=writer,
                      quotas=quotas_for(config, writer, health, lambda: holder.current, clock),
                      clock=clock, captures=Captures(clock))
    holder.on_swap = partial(_swapped, pools, health)
    app = web.Application(middlewares=[handlers.errors_middleware])
    app[GATEWAY] = gateway
    if config.tracing.endpoint is not None:
        gateway.tracing = _tracing()(config.tracing)
        app.on_cleanup.append(_stop_tracing)
    app[METRICS] = Metrics.attach(gateway)
    if app[METRICS].mirror is not None:
        app.cleanup_ctx.append(mirror_state)
    app[ACCESS_LOG] = AccessLog(holder)
    gateway.observers.append(app[ACCESS_LOG])
    app.on_cleanup.append(flush_at_stop)
    app.on_response_prepare.append(handlers.on_prepare)
    app.on_shutdown.append(_drain)
    app.cleanup_ctx.append(_usage_writer)
    app.cleanup_ctx.append(_capture_writer)
    app.cleanup_ctx.append(_quotas)
    app.cleanup_ctx.append(dashboard_api.reader_ctx)
    app.cleanup_ctx.append(_upstream_pools)
    if watch:
        app.cleanup_ctx.append(_config_watch)
    for path in ENDPOINTS:
        app.router.add_post(path, handlers.relay)
    websocket.install(app, "/v1/responses")  # Codex's Responses WebSocket
    gemini_routes.add_routes(app.router)  # with GET /v1/models (OpenAI's list)
    app.router.add_get("/v1/usage", handlers.own_usage)
    app.router.add_get("/admin/usage", handlers.admin_usage)
    app.router.add_get("/", handlers.root)
    app.router.add_get("/api/hello", handlers.root)  # Claude Code's connectivity probe
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/metrics", metrics_route)
    app.router.add_post("/admin/reload", reload_route)
    # the pages (coderouter/dashboard) and the JSON behind them
    app.router.add_get("/dashboard", pages.dashboard_page)
    app.router.add_get("/me", pages.me_page)
    app.router.add_get("/ui/{name}", pages.static_file)
    app.router.add_get("/admin/overview", dashboard_api.admin_overview)
    app.router.add_get("/admin/breakdown", dashboard_api.admin_breakdown)
    app.router.add_get("/admin/channels", dashboard_api.admin_channels)
    app.router.add_get("/admin/quotas", dashboard_api.admin_quotas)
    app.router.add_get("/admin/alerts", dashboard_api.admin_alerts)
    app.router.add_get("/admin/requests", dashboard_api.admin_requests)
    app.router.add_get("/admin/config", dashboard_api.admin_config)
    app.router.add_get("/admin/captures/{request_id}", dashboard_api.admin_capture)
    app.router.add_get("/me/overview", dashboard_api.own_overview)
    app.router.add_get("/me/requests", dashboard_api.own_requests)
    return app


async def _capture_writer(app: web.Application) -> AsyncIterator[None]:
    """Write captured bodies once a second while serving; the rest at stop."""
    captures = app[GATEWAY].captures

    async def tick() -> None:
        while True:
            await asyncio.sleep(1.0)
            await captures.flush()

    task = asyncio.create_task(tick(), name="capture-writer")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await captures.close()


def _tracing() -> Any:
    """`tracing.Tracing`, imported only when tracing is on (it needs the otel extra)."""
    try:
        from .tracing import Tracing
    except ImportError:
        raise RuntimeError("tracing.endpoint needs the OpenTelemetry SDK: "
                           "pip install 'coderouter[otel]'") from None
    return Tracing


async def _stop_tracing(app: web.Application) -> None:
    tracing = app[GATEWAY].tracing
    if tracing is not None:
        await tracing.close()


def usage_store(database: Database) -> UsageStore:
    """PostgreSQL when ``database.url`` is set, else the SQLite file at ``database.path``."""
    if database.url is not None:
        from .usage.postgres import PostgresWriter
        return PostgresWriter(database)
    return UsageWriter(database.path)


def envelope_secret(config: Config) -> bytes:
    """The secret that signs envelopes (`dialects.envelope`): the config's ``secret:``, else
    the one in ``coderouter.secret`` beside the SQLite database, made on first start (0600).
    Gateways sharing callers behind one address need the same secret: set ``secret:``."""
    if config.secret is not None:
        return config.secret.encode()
    path = Path(config.database.path).parent / "coderouter.secret"
    kept = _read_secret(path)
    if kept is not None:
        return kept
    made = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(made.hex() + "\n")
        return made
    except FileExistsError:  # another process made it meanwhile: use theirs
        kept = _read_secret(path)
        problem = "it holds no secret (32+ hex characters)"
    except OSError as exc:
        kept, problem = None, exc.strerror or "cannot write"
    if kept is not None:
        return kept
    log.warning("envelope secret file %s: %s; reasoning state carried through callers will "
                "not survive a restart (set secret: in the config)", path, problem)
    return made


def _read_secret(path: Path) -> bytes | None:
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return secret if len(secret) >= 16 else None


def _swapped(pools: Pools, health: Health, old: Config, new: Config) -> None:
    """A reload: close the pools of removed or disabled channels after their last request;
    apply the new bound on sticky sessions; a changed ``secret:`` signs envelopes from now
    on."""
    pools.retain(channel.name for channel in new.channels if channel.enabled)
    health.sticky.maximum = new.limits.sessions
    if new.secret != old.secret:
        hub.use_secret(envelope_secret(new))


async def _drain(app: web.Application) -> None:
    """Let forwarded requests finish within ``shutdown.grace``, then end the rest."""
    gateway = app[GATEWAY]
    await gateway.drain.stop(gateway.holder.current.shutdown.grace)


async def _usage_writer(app: web.Application) -> AsyncIterator[None]:
    writer = app[GATEWAY].writer
    await writer.open()
    yield
    await writer.close()


async def _quotas(app: web.Application) -> AsyncIterator[None]:
    """Rebuild the quota counters from the usage table (or connect to Redis) before serving;
    settle everything at stop, before the table closes."""
    quotas = app[GATEWAY].quotas
    await quotas.open()
    yield
    await quotas.close()


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
