"""Thin aiohttp handlers: authenticate, read and check the body, admit, forward, record."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from ..auth import (
    authenticate,
    authenticate_key,
    check_model,
    gemini_key,
    may_use,
    presented_key,
    require_admin,
)
from ..config import Config, Limits, Token
from ..config.prices import dearest_cost
from ..dialects.dialect import Dialect as Facts
from ..dialects.envelope import TAG
from ..dialects.registry import DIALECTS, ENDPOINTS, of_path
from ..errors import (
    GatewayError,
    HeadersTooLarge,
    InvalidRequest,
    MethodNotAllowed,
    ModelNotFound,
    NotFound,
    RequestTimeout,
    RequestTooLarge,
    ServiceUnavailable,
    StorageUnavailable,
    UpgradeRequired,
)
from ..estimate import MAX_DEPTH, scan_body
from ..logs import ACCESS_LOG
from ..quotas.model import refuse_oversized
from ..quotas.protocol import Admission
from ..refusals import REFUSALS
from ..rules import first_rule, is_background, traits
from ..sessions import Conversations, client_name, pin_key, session_key
from ..sse import COUNTING, Dialect
from ..state import GATEWAY, Gateway
from ..usage import GROUPINGS, DatabaseUnavailable, Record, parse_moment
from .body import read_at_most
from .exchange import SHUTTING_DOWN, Exchange

if TYPE_CHECKING:
    from ..tracing import RequestTrace

log = logging.getLogger("coderouter.relay.handlers")

_REQUEST_ID = web.RequestKey("request_id", str)
RATELIMIT_HEADERS = web.RequestKey("ratelimit_headers", dict[str, str])
_JSON_HEADERS = {"Content-Type": "application/json"}
_ENVELOPE_TAG = TAG.encode()


class _RequestIds:
    """New request ids: ``req_`` and 24 hex digits, a random prefix of this process and a
    counter (a system call per request for 12 random bytes cost more than the rest of it)."""

    def __init__(self) -> None:
        self.prefix, self.count = "", 1 << 32

    def new(self) -> str:
        self.count += 1
        if self.count >= 1 << 32:  # a fresh prefix every 4 billion ids (and at the start)
            self.prefix, self.count = f"req_{os.urandom(8).hex()}", 0
        return f"{self.prefix}{self.count:08x}"


_new_request_id = _RequestIds().new


def request_id(request: web.Request) -> str:
    """The caller's ``x-request-id`` when it is sane, else a new one; fixed per request."""
    rid: str | None = request.get(_REQUEST_ID)
    if rid is None:
        given = request.headers.get("x-request-id", "")
        rid = given if 0 < len(given) <= 128 and given.isascii() and given.isprintable() \
            else _new_request_id()
        request[_REQUEST_ID] = rid
    return rid


def check_header_bytes(request: web.Request, limit: int) -> None:
    """`HeadersTooLarge` when the request's header names and values pass *limit* bytes."""
    size = sum(len(name) + len(value) for name, value in request.raw_headers)
    if size > limit:
        raise HeadersTooLarge(f"request headers of {size} bytes are over the {limit} byte "
                              "limit")


async def read_body(request: web.Request, limits: Limits) -> bytes:
    """The whole body; `RequestTooLarge` as soon as it passes ``limits.max_body`` bytes (or
    its path's, ``limits.routes``),
    `RequestTimeout` when it has not all arrived within ``limits.body_timeout``,
    `InvalidRequest` when its framing or encoding is broken, `RequestTooLarge` when it has
    more items than ``limits.max_items`` (`check_items`)."""
    limit, max_items = limits.body_bounds(request.path)
    length = request.content_length
    if length is not None and length > limit:
        raise RequestTooLarge(f"request body of {length} bytes is over the {limit} byte limit")
    try:
        if request.content.is_eof():  # all of it came with the head: no wait, no timer
            body = await _read_capped(request, limit)
        else:
            async with asyncio.timeout(limits.body_timeout):
                body = await _read_capped(request, limit)
    except TimeoutError:
        raise RequestTimeout(f"request body did not arrive within "
                             f"{limits.body_timeout:g}s") from None
    except RequestPayloadError as exc:  # broken framing or encoding; see coderouter.protocol
        raise InvalidRequest(f"request body is malformed: {exc}") from None
    check_items(body, max_items)
    return body


def check_items(body: bytes | str, limit: int) -> None:
    """`RequestTooLarge` when *body* has more than *limit* commas, before it is parsed.

    Parsing and scanning cost per JSON value, not per byte: 19 MiB of ``0,`` is ten million
    objects. Every array item and object member after a container's first follows a comma,
    so the commas bound the values (strings' own commas make it an upper bound), counted at
    C speed; a body shorter than *limit* bytes cannot pass it.
    """
    if len(body) > limit and (commas := _commas(body)) > limit:
        raise RequestTooLarge(f"request body has {commas} array items and object members "
                              f"(commas), over the {limit} limit")


def _commas(body: bytes | str) -> int:
    return body.count(b",") if isinstance(body, bytes) else body.count(",")


def _read_capped(request: web.Request, limit: int) -> Awaitable[bytes]:
    return read_at_most(request.content, limit, RequestTooLarge, "request body")


def parse_payload(body: bytes) -> dict[str, Any]:
    """The JSON object of a request, with a string ``model``; else `InvalidRequest`."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = payload.get("model")
    if model is None:
        raise InvalidRequest("'model' is required")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' must be a non-empty string")
    stream = payload.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be true or false")
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object")
    for field in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = payload.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidRequest(f"'{field}' must be an integer")
    return payload


async def relay(request: web.Request, *, dialect: Dialect | None = None,
                key: Callable[[web.Request], str | None] | None = None,
                parse: Callable[[bytes], dict[str, Any]] = parse_payload,
                raw: bool = False, body: bytes | None = None) -> web.StreamResponse:
    """POST /v1/…: route by ``model`` and forward; one usage row whatever happens.

    Other APIs' routes (Gemini's) pass their *dialect*, how to find the caller's *key*, and
    how to *parse* a body into a payload with ``model`` (and ``stream``); with *raw*, the body
    as it came is what a same-dialect upstream gets. A *body* that did not come as the
    request's own (a WebSocket frame's) is served in its place.
    """
    gw = request.app[GATEWAY]
    config = gw.holder.current
    check_header_bytes(request, config.limits.max_header_bytes)
    dialect = dialect or ENDPOINTS[request.path].name
    facts = DIALECTS[dialect]
    presented = key(request) if key else presented_key(request.headers)
    token = authenticate_key(config, presented)
    started = time.monotonic()
    record = Record(ts=gw.clock(), request_id=request_id(request), endpoint=request.path,
                    token=token.name, token_group=token.group.name if token.group else None,
                    client_ip=request.remote,
                    client=client_name(request.headers.get("User-Agent")))
    exchange: Exchange | None = None
    admission: Admission | None = None
    trace = gw.tracing.request(request.headers, request.path, facts.operation) \
        if gw.tracing else None
    try:
        if body is None:
            body = await read_body(request, config.limits)
        payload = parse(body)
        payload = facts.unseal(payload, token.name)  # Codex's compacted history, opened
        exchange = _exchange(request, config, token, facts, record, body, payload, raw,
                             gw.conversations)
        exchange.trace = trace
        exchange.capture = gw.captures.start(config.capture, body, presented)
        admission = await _admit(gw, token, exchange)
        if admission is not None:
            request[RATELIMIT_HEADERS] = admission.headers
        with gw.drain.track(exchange):
            try:
                async with asyncio.timeout(None) as exchange.scope:
                    response = await gw.forwarder.forward(exchange)
                if exchange.capture is not None and isinstance(response, web.Response):
                    exchange.capture.add(response.body)  # type: ignore[arg-type]  # bytes here
                return response
            except TimeoutError:
                if not exchange.stopping:
                    raise
                raise ServiceUnavailable(SHUTTING_DOWN) from None
    except GatewayError as exc:
        exc.message = config.scrubber.clean_text(exc.message)  # may quote an upstream
        record.status = exc.status
        record.error = record.error or exc.message
        if exchange is not None and exchange.capture is not None:
            exchange.capture.add(error_body(request, exc))
        raise
    except asyncio.CancelledError:
        if exchange is None or not exchange.delivered:
            record.status, record.error = 499, "client disconnected"
        raise
    except BaseException as exc:
        record.status, record.error = 500, f"internal error: {type(exc).__name__}"
        raise
    finally:
        _finish(gw, config, record, started, exchange, admission, trace)


def _finish(gw: Gateway, config: Config, record: Record, started: float,
            exchange: Exchange | None, admission: Admission | None,
            trace: RequestTrace | None) -> None:
    """Settle a finished request: its usage and quota, its row, its span."""
    if exchange is not None:
        exchange.settle()
    if record.error:
        record.error = config.scrubber.clean_text(record.error)
    record.latency_ms = round((time.monotonic() - started) * 1000, 3)
    if admission is not None:
        admission.settle(tokens=record.total_tokens, cost=record.cost,
                         forwarded=record.attempts > 0)
    gw.finished(record)
    if exchange is not None and exchange.capture is not None:
        gw.captures.finish(exchange.capture, record, config)
    if trace is not None:
        trace.finish(record, exchange.target if exchange is not None else None)


def _exchange(request: web.Request, config: Config, token: Token, facts: Facts,
              record: Record, body: bytes, payload: dict[str, Any], raw: bool,
              conversations: Conversations) -> Exchange:
    """The exchange of a checked *payload* the *token* may send: its route, rule, session
    and estimates."""
    scan = scan_body(payload)
    if scan.too_deep:
        raise InvalidRequest(f"request body nests arrays and objects more than {MAX_DEPTH} "
                             "levels deep")
    prompt = scan.tokens
    model = facts.model(payload)
    record.model = model
    record.stream = int(facts.stream(payload))
    route = config.route(model)
    if route is None:
        raise ModelNotFound(f"the model '{model}' does not exist")
    check_model(token, model)
    record.session = session_key(request.headers, payload, facts, token.name,
                                 conversations)[0]
    rule = first_rule(route, traits(facts, payload, prompt, record.client)) \
        if route.rules else None
    record.rule = rule.name if rule is not None else None
    record.background = int(is_background(model, facts.system_prompt(payload)))
    return Exchange(request=request, dialect=facts.name, payload=payload, route=route,
                    record=record, scrubber=config.scrubber, limits=config.limits,
                    raw=body if raw else None, prompt_estimate=prompt,
                    sealed=_ENVELOPE_TAG in body,
                    session=record.session, pin=pin_key(token.name, record.session),
                    rule=rule, output_tokens=facts.max_output(payload))


async def _admit(gw: Gateway, token: Token, ex: Exchange) -> Admission:
    """The token's admission for *ex*: its quotas and rate limits, else a refusal.

    Counting uses no quota, but rpm and concurrent hold (this process's counters).
    """
    if ex.dialect in COUNTING:
        return gw.quotas.admit_free(token)
    prompt, asked = ex.prompt_estimate, ex.output_tokens
    output = asked or ex.route.output_reserve
    targets = ex.rule.targets if ex.rule is not None else ex.route.targets
    refuse_oversized(token, tokens=prompt + asked, cost=dearest_cost(targets, prompt, asked))
    estimate_cost = dearest_cost(targets, prompt, output)
    return await gw.quotas.admit(token, estimate_tokens=prompt + output,
                                 estimate_cost=estimate_cost)


async def models(request: web.Request) -> web.Response:
    """GET /v1/models: the routable names this token may use."""
    gw = request.app[GATEWAY]
    config = gw.holder.current
    token = authenticate(config, request.headers)
    created = int(gw.started)
    data = [{"id": name, "object": "model", "created": created, "owned_by": "coderouter"}
            for name in sorted(config.routes) if may_use(token, name)]
    return web.Response(body=orjson.dumps({"object": "list", "data": data}),
                        headers=_JSON_HEADERS)


async def own_usage(request: web.Request) -> web.Response:
    """GET /v1/usage: the calling token's quotas and rate limits in the current periods."""
    gw = request.app[GATEWAY]
    token = authenticate(gw.holder.current, request.headers)
    report = await gw.quotas.report(token)
    return web.Response(body=orjson.dumps(report), headers=_JSON_HEADERS)


async def admin_usage(request: web.Request) -> web.Response:
    """GET /admin/usage?since=&until=&by=: the usage table's totals, as `coderouter usage`.

    *since* and *until* take a span before now (``7d``, ``12h``) or an ISO date or datetime
    (UTC when no zone); *by* is token (default), group, model, channel or day. Rows still
    queued are written first, so the answer includes every finished request.
    """
    gw = request.app[GATEWAY]
    require_admin(gw.holder.current, request.headers, "/admin/usage")
    query = request.query
    by = query.get("by", "token")
    if by not in GROUPINGS:
        raise InvalidRequest(f"'by' must be one of {', '.join(GROUPINGS)}, got {by!r}")
    now = gw.clock()
    since, until = (_moment(query, name, now) for name in ("since", "until"))
    try:
        data = await gw.writer.report(by, since, until)
    except DatabaseUnavailable as exc:
        raise StorageUnavailable(str(exc)) from None
    body = {"by": by, "since": _iso(since), "until": _iso(until), "data": data}
    return web.Response(body=orjson.dumps(body), headers=_JSON_HEADERS)


def _moment(query: Mapping[str, str], name: str, now: float) -> float | None:
    """The unix time given as query parameter *name*, None when absent; else `InvalidRequest`."""
    text = query.get(name)
    if not text:
        return None
    try:
        return parse_moment(text, now)
    except ValueError as exc:
        raise InvalidRequest(f"'{name}': {exc}") from None


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', headers=_JSON_HEADERS)


async def root(request: web.Request) -> web.Response:
    """GET and HEAD / and /api/hello: 200, no auth (Claude Code probes the base URL)."""
    return web.Response(body=b'{"service":"coderouter","status":"ok"}', headers=_JSON_HEADERS)


def error_body(request: web.Request, error: GatewayError) -> bytes:
    """*error* in the shape of the API *request*'s path belongs to (`registry.of_path`)."""
    return of_path(request.path).error_body(error)


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn every failure into the contract's error body; never a traceback or a key."""
    try:
        return await handler(request)
    except GatewayError as exc:
        error = exc
        if isinstance(exc, REFUSALS):
            request.app[GATEWAY].refusals.refused(
                exc, gemini_key(request.headers, request.query), request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = _http_error(request, exc)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        error = GatewayError("internal error")
    return web.Response(status=error.status, body=error_body(request, error),
                        headers={**_JSON_HEADERS, **error.headers,
                                 **request.get(RATELIMIT_HEADERS, {})})


def _http_error(request: web.Request, exc: web.HTTPException) -> GatewayError:
    if exc.status in (404, 405):
        request.app[ACCESS_LOG].unserved(request.method, request.path, exc.status,
                                         request_id(request), request.remote)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return UpgradeRequired(f"{request.path} serves no WebSocket; use HTTP")
    if exc.status == 404:
        return NotFound(f"no route for {request.method} {request.path}")
    if exc.status == 405:
        return MethodNotAllowed(f"method {request.method} is not allowed on {request.path}")
    error = InvalidRequest(exc.reason)
    error.status = exc.status
    return error


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["x-request-id"] = request_id(request)
    extra = request.get(RATELIMIT_HEADERS)
    if extra:
        response.headers.update(extra)
