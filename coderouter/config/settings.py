"""The process's own sections: listen, database, state, workers, admin, limits, shutdown, log,
tracing, capture and secret (every key optional, typed, defaulted by the dataclass)."""

from __future__ import annotations

import os
from typing import Any

from .model import (
    Admin,
    Capture,
    Database,
    Limits,
    Listen,
    Log,
    RouteLimits,
    Shutdown,
    State,
    Tracing,
)
from .readers import Reader, join, kind_of

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def listen(r: Reader, m: dict[str, Any]) -> Listen:
    found = r.section(m, "listen", Listen, {
        "host": r.string, "port": lambda v, p: r.integer(v, p, 1), "keepalive": r.duration})
    if found.port > 65535:
        r.error("listen.port", f"must be at most 65535, got {found.port}")
    return found


def database(r: Reader, m: dict[str, Any]) -> Database:
    found = r.section(m, "database", Database, {
        "path": r.string, "url": r.secret, "spool": r.string,
        "buffer": lambda v, p: r.integer(v, p, 1)})
    if found.url is not None and not found.url.startswith(_POSTGRES_SCHEMES):
        r.error("database.url", "must start with postgresql://")
    return found


def state(r: Reader, m: dict[str, Any]) -> State:
    found = r.section(m, "state", State, {
        "redis": r.secret, "on_state_failure": r.choice(("closed", "open")),
        "lease": r.duration, "prefix": r.string})
    if found.lease <= 0:
        r.error("state.lease", "must be greater than 0")
    if found.redis is not None and not found.redis.startswith(_REDIS_SCHEMES):
        r.error("state.redis", "must start with redis://, rediss:// or unix://")
    return found


def workers(r: Reader, m: dict[str, Any], shared: State) -> int:
    """``workers``: a whole number of processes, or ``auto`` for one per core."""
    value = m.get("workers")
    if value is None:
        count = 1
    elif value == "auto":
        count = os.cpu_count() or 1
    else:
        count = r.integer(value, "workers", 1) or 1
    if count > 1 and shared.redis is None:
        r.error("workers", f"{count} workers need state.redis: each process would "
                           "count quotas, rate limits and cooldowns on its own, so "
                           "every limit would be multiplied by the number of workers")
    return count


def admin(r: Reader, m: dict[str, Any]) -> Admin:
    found = r.section(m, "admin", Admin, {"key": r.secret})
    return Admin() if found.key == "" else found


def secret(r: Reader, m: dict[str, Any]) -> str | None:
    found = r.field(m, "", "secret", r.secret, None)
    if found is not None and len(found) < 16:
        r.error("secret", "needs at least 16 characters")
    return found


def limits(r: Reader, m: dict[str, Any]) -> Limits:
    return r.section(m, "limits", Limits, {
        "max_body": r.size, "max_items": lambda v, p: r.integer(v, p, 1),
        "body_timeout": r.duration,
        "sessions": lambda v, p: r.integer(v, p, 1),
        "max_response": r.size, "max_event": r.size, "write_timeout": r.duration,
        "max_header_bytes": r.size, "routes": lambda v, p: _route_limits(r, v, p)})


def _route_limits(r: Reader, value: Any, path: str) -> tuple[RouteLimits, ...] | None:
    """``limits.routes``: a mapping of request path globs to their ``max_body``/``max_items``."""
    if not isinstance(value, dict):
        r.error(path, f"expected a mapping of request paths, got {kind_of(value)}")
        return None
    out = []
    for pattern, raw in value.items():
        where = join(path, str(pattern))
        if not isinstance(pattern, str) or not pattern.startswith("/"):
            r.error(where, "expected a request path (or glob) starting with /")
            continue
        m = r.mapping(raw, where, ("max_body", "max_items"))
        if m is None:
            continue
        out.append(RouteLimits(
            pattern, max_body=r.field(m, where, "max_body", r.size, None),
            max_items=r.field(m, where, "max_items", lambda v, p: r.integer(v, p, 1), None)))
    return tuple(out)


def shutdown(r: Reader, m: dict[str, Any]) -> Shutdown:
    return r.section(m, "shutdown", Shutdown, {"grace": r.duration})


def log(r: Reader, m: dict[str, Any]) -> Log:
    return r.section(m, "log", Log, {
        "format": r.choice(("plain", "json")), "access": r.boolean})


def tracing(r: Reader, m: dict[str, Any]) -> Tracing:
    found = r.section(m, "tracing", Tracing, {
        "endpoint": r.string, "service_name": r.string, "sample": r.number,
        "headers": r.headers})
    if found.endpoint is not None and not found.endpoint.startswith(("http://", "https://")):
        r.error("tracing.endpoint", "must be an http:// or https:// URL (OTLP/HTTP)")
    if found.sample > 1:
        r.error("tracing.sample", f"must be between 0 and 1, got {found.sample:g}")
    return found


def capture(r: Reader, m: dict[str, Any]) -> Capture:
    found = r.section(m, "capture", Capture, {
        "sample": r.number, "max_body": r.size, "keep": r.duration, "path": r.string})
    if found.sample > 1:
        r.error("capture.sample", f"must be between 0 and 1, got {found.sample:g}")
    return found
