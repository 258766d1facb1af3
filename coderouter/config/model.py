"""The config as the gateway reads it: frozen dataclasses, built once by `document` and
never changed; a reload builds a new `Config`."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..channels.body_rules import BodyRule
from ..scrub import Scrubber

Period = Literal["day", "week", "month", "total"]
PERIODS: tuple[Period, ...] = ("day", "week", "month", "total")


@dataclass(frozen=True, slots=True, kw_only=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8080
    #: An idle keep-alive connection, or one whose request head is still incomplete, closes
    #: after this long (since it opened or since its previous response).
    keepalive: float = 75.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Database:
    path: str = "./coderouter.sqlite"
    #: ``postgresql://…``: usage rows go to PostgreSQL instead of the SQLite *path*.
    url: str | None = field(default=None, repr=False)
    #: Rows kept in memory while PostgreSQL is down, before they go to files in *spool*.
    buffer: int = 100_000
    spool: str = "./coderouter-spool"


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    """Where quota counters, reservations and cooldowns live: this process, or Redis."""

    redis: str | None = field(default=None, repr=False)
    #: Redis unreachable: ``closed`` refuses requests (503), ``open`` admits and counts locally.
    on_state_failure: Literal["closed", "open"] = "closed"
    #: A reservation of a process that stopped renewing it is released after this long.
    lease: float = 30.0
    #: Prefix of every Redis key, so gateways of separate deployments can share a server.
    prefix: str = "coderouter"


@dataclass(frozen=True, slots=True, kw_only=True)
class Admin:
    key: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class RouteLimits:
    """``limits.routes``: body bounds for the request paths matching *pattern* (a glob)."""

    pattern: str
    max_body: int | None = None
    max_items: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    max_body: int = 20 * 1024 * 1024
    #: A request body with more commas (array items and object members; those in strings too)
    #: is a 413 before it is parsed: what bounds the objects a body can make the gateway build.
    max_items: int = 1_000_000
    body_timeout: float = 60.0  # a caller that stalls mid-body is answered 408
    sessions: int = 100_000  # sticky-session pins kept (least recently used dropped first)
    max_response: int = 64 * 1024 * 1024  # a non-stream upstream answer, decompressed -> 502
    max_event: int = 16 * 1024 * 1024  # one upstream stream event -> error event, 502 row
    write_timeout: float = 300.0  # a caller that reads nothing of its stream this long: 499
    max_header_bytes: int = 64 * 1024  # a request's header names and values together -> 431
    #: Tighter (or looser) ``max_body`` and ``max_items`` per request path, first match wins.
    routes: tuple[RouteLimits, ...] = ()

    def body_bounds(self, path: str) -> tuple[int, int]:
        """(max_body, max_items) for a request to *path*."""
        for route in self.routes:
            if fnmatch.fnmatchcase(path, route.pattern):
                return (route.max_body or self.max_body, route.max_items or self.max_items)
        return self.max_body, self.max_items


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown:
    grace: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Log:
    format: Literal["plain", "json"] = "plain"
    access: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Capture:
    """Request and response bodies kept for debugging (`coderouter.capture`); off at 0."""

    sample: float = 0.0
    max_body: int = 64 * 1024
    keep: float = 86400.0
    #: The SQLite file; None: ``coderouter-capture.sqlite`` beside the usage database.
    path: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Tracing:
    """OpenTelemetry traces over OTLP/HTTP (`coderouter.tracing`); off without an endpoint."""

    endpoint: str | None = None
    service_name: str = "coderouter"
    #: The share of requests traced (a caller's sampled traceparent is always followed).
    sample: float = 1.0
    headers: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    connect: float = 10.0
    first_byte: float = 120.0
    idle: float = 120.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Channel:
    name: str
    #: The channel kind's name (a key of `coderouter.channels.KINDS`).
    type: str
    base_url: str = field(default="", repr=False)
    keys: tuple[str, ...] = field(default=(), repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: Caller headers (names, or prefixes ending in *) forwarded beyond `forwarding.ALLOWED`.
    forward_headers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    #: USD per million tokens per upstream model name (``prices:``).
    prices: Mapping[str, Price] = field(default_factory=dict)
    timeout: Timeouts = Timeouts()
    api_version: str | None = None
    enabled: bool = True
    #: openai/azure: the upstream serves the Responses API too (``responses:``; the default is
    #: true for api.openai.com and Azure, false for other OpenAI-compatible servers, which
    #: then get /v1/responses translated to Chat Completions). "only": the Responses API and
    #: no Chat Completions (gpt-5-codex-class models), so Chat, Messages and Gemini callers
    #: are translated to Responses.
    responses: bool | Literal["only"] = False
    #: Fields dropped from or set in every upstream body, in order (``body_rules:``).
    body_rules: tuple[BodyRule, ...] = ()
    #: anthropic: the caller ``anthropic-beta`` values forwarded (``betas:``; None: the kind's
    #: default list, ``*``: every value).
    betas: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    channel: Channel
    model: str
    weight: float = 1.0
    priority: int = 0
    #: The longest prompt (tokens) and answer the model takes; a request that does not fit
    #: is not sent here, and a context-length refusal fails over to a larger target.
    max_context: int | None = None
    max_output: int | None = None
    #: What this target costs (`prices.priced`: its own, its channel's, its group's).
    price: Price | None = None

    @property
    def id(self) -> tuple[str, str]:
        """Identity that survives reloads: cooldowns are kept per (channel name, model)."""
        return (self.channel.name, self.model)


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """USD per million tokens; cache writes default to Anthropic's multiples of input."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write_5m: float | None = None
    cache_write_1h: float | None = None
    #: (prompt tokens, price): a request whose prompt is longer than the first number is
    #: billed wholly at that price (the last such tier: Claude's and Gemini's long contexts).
    tiers: tuple[tuple[int, Price], ...] = ()

    def cost(self, prompt: int, completion: int, cached: int = 0, write_5m: int = 0,
             write_1h: int = 0) -> float:
        """USD for *prompt* tokens (of which *cached* read from a cache and *write_5m* and
        *write_1h* written to one) and *completion* tokens."""
        for above, tier in reversed(self.tiers):
            if prompt > above:
                return tier.cost(prompt, completion, cached, write_5m, write_1h)
        cached = min(cached, prompt)
        write_5m = min(write_5m, prompt - cached)
        write_1h = min(write_1h, prompt - cached - write_5m)
        fresh = prompt - cached - write_5m - write_1h
        return (fresh * self.input + cached * _or(self.cached_input, self.input)
                + write_5m * _or(self.cache_write_5m, 1.25 * self.input)
                + write_1h * _or(self.cache_write_1h, 2 * self.input)
                + completion * self.output) / 1_000_000


def _or(rate: float | None, default: float) -> float:
    return default if rate is None else rate


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """Targets for requests with some trait; every condition given must hold (`rules`)."""

    name: str
    targets: tuple[Target, ...]
    prompt_tokens_over: int | None = None
    reasoning: bool | None = None
    images: bool | None = None
    tools: bool | None = None
    web_search: bool | None = None
    clients: tuple[str, ...] | None = None
    #: Globs of the model name the caller asked for ("*haiku*": Claude Code's background).
    models: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelGroup:
    name: str
    targets: tuple[Target, ...]
    attempts: int = 3
    cooldown: float = 30.0
    price: Price | None = None
    #: False: the models of this group have no reasoning setting; a translated request's
    #: thinking is dropped instead of becoming ``reasoning_effort``.
    reasoning: bool = True
    #: How long a session stays on the target and key that served it; 0 = not sticky.
    sticky_ttl: float = 3600.0
    #: Evaluated in order; the first that matches a request names its targets.
    rules: tuple[Rule, ...] = ()
    #: Further routable names of this group, as globs ("claude-*").
    aliases: tuple[str, ...] = ()
    #: Output tokens a request that names no maximum (``max_tokens`` …) reserves of its
    #: token's quotas and tpm while in flight.
    output_reserve: int = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class Quota:
    period: Period = "total"
    tokens: int | None = None
    requests: int | None = None
    cost: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenGroup:
    name: str
    models: tuple[str, ...] | None = None
    quotas: tuple[Quota, ...] = ()
    rate_limit: RateLimit | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Token:
    name: str
    key_sha256: bytes = field(repr=False)
    group: TokenGroup | None = None
    models: tuple[str, ...] | None = None
    quotas: tuple[Quota, ...] = ()
    rate_limit: RateLimit | None = None
    expires: float | None = None  # unix seconds
    enabled: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    listen: Listen = Listen()
    database: Database = Database()
    state: State = State()
    #: Processes serving the port (SO_REUSEPORT); more than one needs ``state.redis``.
    workers: int = 1
    admin: Admin = Admin()
    limits: Limits = Limits()
    shutdown: Shutdown = Shutdown()
    log: Log = Log()
    tracing: Tracing = Tracing()
    capture: Capture = Capture()
    channels: tuple[Channel, ...] = ()
    model_groups: tuple[ModelGroup, ...] = ()
    token_groups: tuple[TokenGroup, ...] = ()
    tokens: tuple[Token, ...] = ()
    #: Signs the envelopes that carry an upstream's opaque state through callers of another
    #: dialect; None: a random secret kept in a file beside the database (`app`).
    secret: str | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()
    #: The price catalog file (``price_catalog:``), whose prices fill in the ones not given.
    price_catalog: str | None = None
    #: What that catalog holds (its source, when it was written, how many models).
    price_catalog_note: str | None = None
    #: Every routable name: explicit groups, then models listed by enabled channels.
    routes: Mapping[str, ModelGroup] = field(default_factory=dict, repr=False)
    tokens_by_sha256: Mapping[bytes, Token] = field(default_factory=dict, repr=False)
    #: Replaces every channel key and secret header value in upstream bytes (`scrub`).
    scrubber: Scrubber = field(default_factory=lambda: Scrubber(()), repr=False, compare=False)

    def route(self, model: str) -> ModelGroup | None:
        """The group serving *model*: by name, else the first group with an alias glob that
        matches it."""
        group = self.routes.get(model)
        if group is None:
            for group_ in self.model_groups:
                if group_.aliases and any(fnmatch.fnmatchcase(model, a) for a in group_.aliases):
                    return self.routes.get(group_.name)
        return group

    def summary(self) -> str:
        return ", ".join(plural(len(items), what) for items, what in (
            (self.channels, "channel"), (self.routes, "routable model"),
            (self.token_groups, "token group"), (self.tokens, "token")))


def plural(count: int, noun: str) -> str:
    """``1 channel``, ``2 channels``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


