"""The YAML config: frozen dataclasses, and a loader that reports every error with its path.

`load(path)` reads and validates a whole file; `parse(text)` does the same for a string.
Both raise `ConfigError` listing every problem at once, so an operator fixes the file in one go.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import difflib
import fnmatch
import hashlib
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from ..channels.forwarding import invalid_extra
from ..errors import ConfigError
from ..scrub import Scrubber
from .yamlload import YamlTooLarge, load_yaml

ChannelType = Literal["openai", "anthropic", "azure", "gemini", "mock"]
Period = Literal["day", "week", "month", "total"]
CHANNEL_TYPES = ("openai", "anthropic", "azure", "gemini", "mock")
PERIODS = ("day", "week", "month", "total")
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    max_body: int = 20 * 1024 * 1024
    body_timeout: float = 60.0  # a caller that stalls mid-body is answered 408
    sessions: int = 100_000  # sticky-session pins kept (least recently used dropped first)
    max_response: int = 64 * 1024 * 1024  # a non-stream upstream answer, decompressed -> 502
    max_event: int = 16 * 1024 * 1024  # one upstream stream event -> error event, 502 row
    write_timeout: float = 300.0  # a caller that reads nothing of its stream this long: 499
    max_header_bytes: int = 64 * 1024  # a request's header names and values together -> 431


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown:
    grace: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Log:
    format: Literal["plain", "json"] = "plain"
    access: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    connect: float = 10.0
    first_byte: float = 120.0
    idle: float = 120.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Channel:
    name: str
    type: ChannelType
    base_url: str = field(default="", repr=False)
    keys: tuple[str, ...] = field(default=(), repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: Caller headers (names, or prefixes ending in *) forwarded beyond `forwarding.ALLOWED`.
    forward_headers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    timeout: Timeouts = Timeouts()
    api_version: str | None = None
    enabled: bool = True
    #: openai/azure: the upstream serves the Responses API too (``responses:``; the default is
    #: true for api.openai.com and Azure, false for other OpenAI-compatible servers, which
    #: then get /v1/responses translated to Chat Completions). "only": the Responses API and
    #: no Chat Completions (gpt-5-codex-class models), so Chat, Messages and Gemini callers
    #: are translated to Responses.
    responses: bool | Literal["only"] = False


def serves_responses_by_default(kind: str, base_url: str) -> bool:
    """Whether a channel without ``responses:`` has the Responses API: OpenAI's own API and
    Azure do; most OpenAI-compatible servers (DeepSeek, Qwen, vLLM, Ollama...) do not."""
    if kind == "azure":
        return True
    host = base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    return kind == "openai" and host == "api.openai.com"


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

    @property
    def id(self) -> tuple[str, str]:
        """Identity that survives reloads: cooldowns are kept per (channel name, model)."""
        return (self.channel.name, self.model)


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, prompt: int, completion: int, cached: int = 0) -> float:
        cached = min(cached, prompt)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return ((prompt - cached) * self.input + cached * cached_rate
                + completion * self.output) / 1_000_000


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
    channels: tuple[Channel, ...] = ()
    model_groups: tuple[ModelGroup, ...] = ()
    token_groups: tuple[TokenGroup, ...] = ()
    tokens: tuple[Token, ...] = ()
    #: Signs the envelopes that carry an upstream's opaque state through callers of another
    #: dialect; None: a random secret kept in a file beside the database (`app`).
    secret: str | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()
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
        return (f"{len(self.channels)} channels, {len(self.routes)} routable models, "
                f"{len(self.token_groups)} token groups, {len(self.tokens)} tokens")


_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def load(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate the config file at *path*."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError([("", f"cannot read {os.fspath(path)}: {exc.strerror}")]) from None
    return parse(text, environ)


def parse(text: str, environ: Mapping[str, str] | None = None) -> Config:
    """Validate a YAML document; raise `ConfigError` with every problem found."""
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([("", f"invalid YAML: {where}{problem}")]) from None
    except YamlTooLarge as exc:
        raise ConfigError([("", f"refused: {exc}")]) from None
    except (RecursionError, MemoryError):
        raise ConfigError([("", "refused: the document nests too deeply")]) from None
    except Exception as exc:  # whatever else the loader meets: an error, never a traceback
        raise ConfigError([("", f"cannot load the YAML: {type(exc).__name__}: {exc}")]) \
            from None
    parser = _Parser(os.environ if environ is None else environ)
    try:
        config = parser.config({} if raw is None else raw)
    except RecursionError:
        raise ConfigError([("", "refused: the document nests too deeply")]) from None
    if parser.problems:
        raise ConfigError(parser.problems)
    return config


_MISSING: Any = object()
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: What a rule's ``when`` may test (see `rules.Traits`).
_RULE_CONDITIONS = ("prompt_tokens_over", "reasoning", "images", "tools", "web_search",
                    "clients", "models", "background")
#: The model names Claude Code's background calls ask for (its small/fast model).
BACKGROUND_MODELS = ("*haiku*",)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2,
               "gb": 1000**3, "gib": 1024**3, None: 1}
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class _Parser:
    """Walks the raw YAML tree, collecting ``(path, message)`` problems instead of stopping."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[tuple[str, str]] = []
        self.warnings: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    # -- generic readers ------------------------------------------------------------------

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...],
                secret: bool = False) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {_kind(value, secret)}")
            return None
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                suffix = (f"; did you mean '{hint[0]}'?" if hint
                          else f"; expected one of {', '.join(allowed)}")
                self.error(_join(path, str(key)), f"unknown key '{key}'{suffix}")
        return value

    def field(self, m: dict[str, Any], path: str, key: str, read: Callable[[Any, str], Any],
              default: Any = _MISSING) -> Any:
        where = _join(path, key)
        if key not in m or m[key] is None:
            if default is _MISSING:
                self.error(where, "is required")
            return None if default is _MISSING else default
        return read(m[key], where)

    def string(self, value: Any, path: str, secret: bool = False) -> str | None:
        if isinstance(value, bool):
            self.error(path, f"expected a string, got {str(value).lower()} "
                             "(YAML reads yes/no/on/off as booleans: quote the value)")
            return None
        if not isinstance(value, str | int | float):
            self.error(path, f"expected a string, got {_kind(value, secret)}")
            return None
        return self.interpolate(str(value), path)

    def secret(self, value: Any, path: str) -> str | None:
        """A string whose value no error message may quote (a key)."""
        return self.string(value, path, secret=True)

    def interpolate(self, text: str, path: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.environ:
                self.error(path, f"environment variable {name} is not set")
                return ""
            return self.environ[name]
        return _ENV.sub(replace, text) if "${" in text else text

    def integer(self, value: Any, path: str, minimum: int = 0) -> int | None:
        if isinstance(value, str):
            value = self.interpolate(value, path).replace("_", "")
            with contextlib.suppress(ValueError):
                value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"expected a whole number, got {_kind(value)}")
            return None
        if value < minimum:
            self.error(path, f"must be at least {minimum}, got {value}")
            return None
        return value

    def number(self, value: Any, path: str, minimum: float = 0.0) -> float | None:
        if isinstance(value, str):
            value = self.interpolate(value, path).replace("_", "")
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            self.error(path, f"expected a number, got {_kind(value)}")
            return None
        if value < minimum:
            self.error(path, f"must be at least {minimum:g}, got {value:g}")
            return None
        return float(value)

    def positive(self, value: Any, path: str) -> float | None:
        number = self.number(value, path)
        if number is not None and number <= 0:
            self.error(path, f"must be greater than 0, got {number:g}")
            return None
        return number

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.error(path, f"expected true or false, got {_kind(value)}")
            return None
        return value

    def responses_setting(self, value: Any, path: str) -> bool | Literal["only"] | None:
        """``responses``: true, false, or ``only`` (the Responses API and no Chat)."""
        if value == "only":
            return "only"
        if not isinstance(value, bool):
            self.error(path, f"expected true, false or only, got {_kind(value)}")
            return None
        return value

    def duration(self, value: Any, path: str) -> float | None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value < 0:
                self.error(path, f"must not be negative, got {value}")
                return None
            return float(value)
        match = _DURATION.match(value) if isinstance(value, str) else None
        if not match:
            self.error(path, f"expected a duration such as 30s, 500ms, 5m, 1h or 7d, got {value!r}")
            return None
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]

    def size(self, value: Any, path: str) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        match = _SIZE.match(value) if isinstance(value, str) else None
        if not match:
            self.error(path, f"expected a size such as 65536, 64KiB or 20MiB, got {value!r}")
            return None
        unit = match.group(2).lower() if match.group(2) else None
        return int(float(match.group(1)) * _SIZE_UNITS[unit])

    def choice(self, options: tuple[str, ...]) -> Callable[[Any, str], str | None]:
        def read(value: Any, path: str) -> str | None:
            if value not in options:
                self.error(path, f"expected one of {', '.join(options)}, got {value!r}")
                return None
            return str(value)
        return read

    def strings(self, value: Any, path: str, secret: bool = False) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            self.error(path, f"expected a list, got {_kind(value, secret)}")
            return None
        items = [self.string(item, f"{path}[{i}]", secret) for i, item in enumerate(value)]
        return tuple(item for item in items if item is not None)

    def secrets(self, value: Any, path: str) -> tuple[str, ...] | None:
        """A list of strings no error message may quote (keys)."""
        return self.strings(value, path, secret=True)

    def headers(self, value: Any, path: str) -> dict[str, str] | None:
        """A mapping of header names to values; values may be credentials, never quoted."""
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {_kind(value, secret=True)}")
            return None
        out = {}
        for name, item in value.items():
            text = self.string(item, _join(path, str(name)), secret=True)
            if text is not None:
                out[str(name)] = text
        return out

    def moment(self, value: Any, path: str) -> float | None:
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                self.error(path, f"expected a date or datetime such as 2027-01-01, got {value!r}")
                return None
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)
        if not isinstance(value, dt.datetime):
            self.error(path, f"expected a date or datetime, got {_kind(value)}")
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()

    def items(self, value: Any, path: str) -> list[tuple[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"expected a list, got {_kind(value)}")
            return []
        return [(f"{path}[{i}]", item) for i, item in enumerate(value)]

    def section(self, raw: dict[str, Any], key: str, cls: type, spec: dict[str, Callable]) -> Any:
        """Read a flat mapping section whose every key is optional and typed by *spec*."""
        m = self.mapping(raw.get(key) or {}, key, tuple(spec), secret=key == "admin")
        if m is None:
            return cls()
        values = {k: read(m[k], _join(key, k)) for k, read in spec.items() if m.get(k) is not None}
        return cls(**{k: v for k, v in values.items() if v is not None})

    # -- the document ---------------------------------------------------------------------

    def config(self, raw: Any) -> Config:
        top = ("listen", "database", "state", "workers", "admin", "limits", "shutdown", "log",
               "channels", "model_groups", "token_groups", "tokens", "secret")
        m = self.mapping(raw, "", top)
        if m is None:
            return Config()
        listen = self.section(m, "listen", Listen, {
            "host": self.string, "port": lambda v, p: self.integer(v, p, 1),
            "keepalive": self.duration})
        if listen.port > 65535:
            self.error("listen.port", f"must be at most 65535, got {listen.port}")
        database = self.section(m, "database", Database, {
            "path": self.string, "url": self.secret, "spool": self.string,
            "buffer": lambda v, p: self.integer(v, p, 1)})
        if database.url is not None and not database.url.startswith(_POSTGRES_SCHEMES):
            self.error("database.url", "must start with postgresql://")
        state = self.section(m, "state", State, {
            "redis": self.secret, "on_state_failure": self.choice(("closed", "open")),
            "lease": self.duration, "prefix": self.string})
        if state.lease <= 0:
            self.error("state.lease", "must be greater than 0")
        if state.redis is not None and not state.redis.startswith(_REDIS_SCHEMES):
            self.error("state.redis", "must start with redis://, rediss:// or unix://")
        workers = self.workers(m.get("workers"))
        if workers > 1 and state.redis is None:
            self.error("workers", f"{workers} workers need state.redis: each process would "
                                  "count quotas, rate limits and cooldowns on its own, so "
                                  "every limit would be multiplied by the number of workers")
        admin = self.section(m, "admin", Admin, {"key": self.secret})
        secret = self.field(m, "", "secret", self.secret, None)
        if secret is not None and len(secret) < 16:
            self.error("secret", "needs at least 16 characters")
        if admin.key == "":
            admin = Admin()
        limits = self.section(m, "limits", Limits, {
            "max_body": self.size, "body_timeout": self.duration,
            "sessions": lambda v, p: self.integer(v, p, 1),
            "max_response": self.size, "max_event": self.size, "write_timeout": self.duration,
            "max_header_bytes": self.size})
        shutdown = self.section(m, "shutdown", Shutdown, {"grace": self.duration})
        log = self.section(m, "log", Log, {
            "format": self.choice(("plain", "json")), "access": self.boolean})

        channels = self.unique("channels", [
            c for path, item in self.items(m.get("channels"), "channels")
            if (c := self.channel(item, path)) is not None])
        by_channel = {c.name: c for c, _ in channels}
        groups = self.unique("model_groups", [
            g for path, item in self.items(m.get("model_groups"), "model_groups")
            if (g := self.model_group(item, path, by_channel)) is not None])
        token_groups = self.unique("token_groups", [
            g for path, item in self.items(m.get("token_groups"), "token_groups")
            if (g := self.token_group(item, path)) is not None])
        by_token_group = {g.name: g for g, _ in token_groups}
        tokens = self.unique("tokens", [
            t for path, item in self.items(m.get("tokens"), "tokens")
            if (t := self.token(item, path, by_token_group)) is not None])

        tokens_by_sha256: dict[bytes, Token] = {}
        for token, path in tokens:
            other = tokens_by_sha256.setdefault(token.key_sha256, token)
            if other is not token:
                self.error(path, f"token '{token.name}' has the same key as '{other.name}'")

        return Config(
            listen=listen, database=database, state=state, workers=workers, admin=admin,
            limits=limits, shutdown=shutdown,
            log=log,
            channels=tuple(c for c, _ in channels),
            model_groups=tuple(g for g, _ in groups),
            token_groups=tuple(g for g, _ in token_groups),
            tokens=tuple(t for t, _ in tokens), secret=secret,
            warnings=tuple(self.warnings),
            routes=_routes([c for c, _ in channels], [g for g, _ in groups]),
            tokens_by_sha256=tokens_by_sha256,
            scrubber=Scrubber.from_channels(c for c, _ in channels),
        )

    def workers(self, value: Any) -> int:
        """``workers``: a whole number of processes, or ``auto`` for one per core."""
        if value is None:
            return 1
        if value == "auto":
            return os.cpu_count() or 1
        return self.integer(value, "workers", 1) or 1

    def lookup(self, table: Mapping[str, Any], name: str | None, path: str, what: str) -> Any:
        """``table[name]``, or None with a did-you-mean error when *name* is not there."""
        if name is None:
            return None
        found = table.get(name)
        if found is None:
            hint = difflib.get_close_matches(name, list(table), n=1)
            suffix = f"; did you mean '{hint[0]}'?" if hint else ""
            self.error(path, f"no {what} named '{name}'{suffix}")
        return found

    def unique(self, section: str, named: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
        seen: set[str] = set()
        for item, path in named:
            if item.name in seen:
                self.error(_join(path, "name"), f"duplicate {section} name '{item.name}'")
            seen.add(item.name)
        return named

    def channel(self, raw: Any, path: str) -> tuple[Channel, str] | None:
        keys = ("name", "type", "base_url", "keys", "headers", "forward_headers", "models",
                "timeout", "api_version", "enabled", "responses")
        m = self.mapping(raw, path, keys)
        if m is None:
            return None
        name = self.field(m, path, "name", self.string)
        kind = self.field(m, path, "type", self.choice(CHANNEL_TYPES))
        needs_upstream = kind in ("openai", "anthropic", "azure", "gemini")
        base_url = self.field(m, path, "base_url", self.string,
                              _MISSING if needs_upstream else "")
        if base_url and not base_url.startswith(("http://", "https://")):
            self.error(_join(path, "base_url"), "must start with http:// or https://")
        elif kind == "gemini" and base_url and base_url.rstrip("/").endswith(("/v1beta", "/v1")):
            self.error(_join(path, "base_url"), "a gemini base_url has no API version: "
                       "give it as Google's SDK takes it (https://generativelanguage.googleapis.com)"
                       "; the gateway appends /v1beta/models/{model}:…")
        keys_ = self.field(m, path, "keys", self.secrets, _MISSING if needs_upstream else ())
        if needs_upstream and keys_ is not None and not [k for k in keys_ if k]:
            self.error(_join(path, "keys"), "needs at least one non-empty key")
        api_version = self.field(m, path, "api_version", self.string,
                                 _MISSING if kind == "azure" else None)
        timeout_raw = self.mapping(m.get("timeout") or {}, _join(path, "timeout"),
                                   ("connect", "first_byte", "idle"))
        timeout = Timeouts()
        if timeout_raw:
            values = {k: self.duration(v, _join(path, f"timeout.{k}"))
                      for k, v in timeout_raw.items() if k in Timeouts.__slots__}
            timeout = Timeouts(**{k: v for k, v in values.items() if v})
        headers = self.field(m, path, "headers", self.headers, {})
        forward = self.field(m, path, "forward_headers", self.strings, ())
        for i, pattern in enumerate(forward or ()):
            problem = invalid_extra(pattern)
            if problem:
                self.error(f"{_join(path, 'forward_headers')}[{i}]", problem)
        models = self.field(m, path, "models", self.strings, ())
        enabled = self.field(m, path, "enabled", self.boolean, True)
        responses = self.field(m, path, "responses", self.responses_setting, None)
        if responses is not None and kind not in ("openai", "azure"):
            self.error(_join(path, "responses"), "only for openai and azure channels")
        if name is None or kind is None or None in (base_url, keys_, headers, models, enabled):
            return None
        if responses is None:
            responses = serves_responses_by_default(kind, base_url)
        return Channel(
            name=name, type=kind, base_url=base_url.rstrip("/"),
            keys=tuple(k for k in keys_ if k), headers=headers,
            forward_headers=tuple(p.lower() for p in forward or ()), models=models,
            timeout=timeout,
            api_version=api_version, enabled=enabled, responses=responses), path

    def model_group(self, raw: Any, path: str,
                    channels: dict[str, Channel]) -> tuple[ModelGroup, str] | None:
        m = self.mapping(raw, path, ("name", "targets", "retry", "cooldown", "price",
                                     "reasoning", "sticky", "rules", "aliases",
                                     "output_reserve"))
        if m is None:
            return None
        name = self.field(m, path, "name", self.string)
        targets = [t for p, item in self.items(m.get("targets"), _join(path, "targets"))
                   if (t := self.target(item, p, channels)) is not None]
        if "targets" not in m or not isinstance(m["targets"], list) or not m["targets"]:
            self.error(_join(path, "targets"), "needs at least one target")
        attempts = 3
        retry = self.mapping(m.get("retry") or {}, _join(path, "retry"), ("attempts",))
        if retry and "attempts" in retry:
            attempts = self.integer(retry["attempts"], _join(path, "retry.attempts"), 1) or 3
        cooldown = self.field(m, path, "cooldown", self.duration, 30.0)
        sticky = self.field(m, path, "sticky", self.sticky, 3600.0)
        price = None
        if m.get("price") is not None:
            price_path = _join(path, "price")
            p = self.mapping(m["price"], price_path, ("input", "output", "cached_input"))
            if p is not None:
                values = {k: self.number(p[k], _join(price_path, k)) for k in p
                          if k in Price.__slots__}
                if "input" not in p or "output" not in p:
                    self.error(price_path, "needs both input and output (USD per 1M tokens)")
                elif None not in values.values():
                    price = Price(**values)
        reasoning = self.field(m, path, "reasoning", self.boolean, True)
        aliases = self.field(m, path, "aliases", self.strings, ())
        rules = tuple(r for p, item in self.items(m.get("rules"), _join(path, "rules"))
                      if (r := self.rule(item, p, channels)) is not None)
        output_reserve = self.field(m, path, "output_reserve",
                                    lambda v, p: self.integer(v, p, 0), 4096)
        if (name is None or cooldown is None or reasoning is None or sticky is None
                or output_reserve is None):
            return None
        return ModelGroup(name=name, targets=tuple(targets), attempts=attempts,
                          cooldown=cooldown, price=price, reasoning=reasoning,
                          sticky_ttl=sticky, rules=rules, aliases=aliases or (),
                          output_reserve=output_reserve), path

    def rule(self, raw: Any, path: str, channels: dict[str, Channel]) -> Rule | None:
        m = self.mapping(raw, path, ("name", "when", "targets"))
        if m is None:
            return None
        name = self.field(m, path, "name", self.string, path.rsplit(".", 1)[-1])
        when_path = _join(path, "when")
        when = self.mapping(m.get("when"), when_path, _RULE_CONDITIONS)
        targets = [t for p, item in self.items(m.get("targets"), _join(path, "targets"))
                   if (t := self.target(item, p, channels)) is not None]
        if not isinstance(m.get("targets"), list) or not m["targets"]:
            self.error(_join(path, "targets"), "needs at least one target")
        if when is None:
            return None
        if not when:
            self.error(when_path, "needs at least one condition; expected one of "
                                  + ", ".join(_RULE_CONDITIONS))
        conditions: dict[str, Any] = {}
        for key, value in when.items():
            where = _join(when_path, str(key))
            if key == "prompt_tokens_over":
                conditions[key] = self.integer(value, where, 0)
            elif key in ("clients", "models"):
                items = self.strings(value, where)
                conditions[key] = None if items is None else (*(conditions.get(key) or ()),
                                                              *items)
            elif key == "background":
                if value is not True:
                    self.error(where, "only 'background: true' is meaningful (Claude Code's "
                                      "background calls ask for a *haiku* model)")
                conditions["models"] = (*(conditions.get("models") or ()), *BACKGROUND_MODELS)
            elif key in _RULE_CONDITIONS:
                conditions[key] = self.boolean(value, where)
        if name is None or not targets or None in conditions.values():
            return None
        return Rule(name=name, targets=tuple(targets), **conditions)

    def sticky(self, value: Any, path: str) -> float | None:
        """``true`` (one hour), ``false`` (off), or a duration."""
        if value is True:
            return 3600.0
        if value is False:
            return 0.0
        return self.duration(value, path)

    def target(self, raw: Any, path: str, channels: dict[str, Channel]) -> Target | None:
        m = self.mapping(raw, path, ("channel", "model", "weight", "priority", "max_context",
                                     "max_output"))
        if m is None:
            return None
        channel_name = self.field(m, path, "channel", self.string)
        model = self.field(m, path, "model", self.string)
        weight = self.field(m, path, "weight", self.positive, 1.0)
        priority = self.field(m, path, "priority", lambda v, p: self.integer(v, p, -(2**31)), 0)
        max_context = self.field(m, path, "max_context", lambda v, p: self.integer(v, p, 1), 0)
        max_output = self.field(m, path, "max_output", lambda v, p: self.integer(v, p, 1), 0)
        channel = self.lookup(channels, channel_name, _join(path, "channel"), "channel")
        if channel is None or model is None or weight is None or priority is None \
                or max_context is None or max_output is None:
            return None
        return Target(channel=channel, model=model, weight=weight, priority=priority,
                      max_context=max_context or None, max_output=max_output or None)

    def quotas(self, value: Any, path: str) -> tuple[Quota, ...]:
        entries = [(path, value)] if isinstance(value, dict) else self.items(value, path)
        out = []
        for p, raw in entries:
            m = self.mapping(raw, p, ("tokens", "requests", "cost", "period"))
            if m is None:
                continue
            period = self.field(m, p, "period", self.choice(PERIODS), "total")
            values = {"tokens": self.field(m, p, "tokens", self.integer, None),
                      "requests": self.field(m, p, "requests", self.integer, None),
                      "cost": self.field(m, p, "cost", self.number, None)}
            if not any(k in m for k in values):
                self.error(p, "a quota needs tokens, requests or cost")
            if period is not None:
                out.append(Quota(period=period, **values))
        return tuple(out)

    def rate_limit(self, value: Any, path: str) -> RateLimit | None:
        m = self.mapping(value, path, ("rpm", "tpm", "concurrent"))
        if m is None:
            return None
        return RateLimit(**{k: self.field(m, path, k, lambda v, p: self.integer(v, p, 1), None)
                            for k in ("rpm", "tpm", "concurrent")})

    def token_group(self, raw: Any, path: str) -> tuple[TokenGroup, str] | None:
        m = self.mapping(raw, path, ("name", "models", "quota", "rate_limit"))
        if m is None:
            return None
        name = self.field(m, path, "name", self.string)
        models = self.field(m, path, "models", self.strings, None)
        quotas = self.field(m, path, "quota", self.quotas, ())
        rate_limit = self.field(m, path, "rate_limit", self.rate_limit, None)
        if name is None:
            return None
        return TokenGroup(name=name, models=models, quotas=quotas, rate_limit=rate_limit), path

    def token(self, raw: Any, path: str,
              groups: dict[str, TokenGroup]) -> tuple[Token, str] | None:
        keys = ("name", "key", "key_sha256", "group", "models", "quota", "rate_limit",
                "expires", "enabled")
        m = self.mapping(raw, path, keys)
        if m is None:
            return None
        name = self.field(m, path, "name", self.string)
        digest = None
        if ("key" in m) == ("key_sha256" in m):
            self.error(path, "needs exactly one of key_sha256 or key")
        elif "key" in m:
            key = self.secret(m["key"], _join(path, "key"))
            if key is not None and len(key) < 8:
                self.error(_join(path, "key"), "must be at least 8 characters")
            elif key is not None:
                digest = hash_key(key)
                self.warnings.append(f"{_join(path, 'key')}: plaintext key; store key_sha256 "
                                     "instead (`coderouter token new` prints both)")
        else:
            hexed = self.string(m["key_sha256"], _join(path, "key_sha256"))
            if hexed is not None and not _HEX64.match(hexed):
                self.error(_join(path, "key_sha256"), "expected 64 hexadecimal characters")
            elif hexed is not None:
                digest = bytes.fromhex(hexed)
        group_name = self.field(m, path, "group", self.string, None)
        group = self.lookup(groups, group_name, _join(path, "group"), "token group")
        models = self.field(m, path, "models", self.strings, None)
        quotas = self.field(m, path, "quota", self.quotas, ())
        rate_limit = self.field(m, path, "rate_limit", self.rate_limit, None)
        expires = self.field(m, path, "expires", self.moment, None)
        enabled = self.field(m, path, "enabled", self.boolean, True)
        if name is None or digest is None or enabled is None:
            return None
        return Token(name=name, key_sha256=digest, group=group, models=models, quotas=quotas,
                     rate_limit=rate_limit, expires=expires, enabled=enabled), path


def _routes(channels: list[Channel], groups: list[ModelGroup]) -> dict[str, ModelGroup]:
    """Every routable name: channel-listed models first, explicit groups override them."""
    listed: dict[str, list[Target]] = {}
    for channel in channels:
        if channel.enabled:
            for model in channel.models:
                listed.setdefault(model, []).append(Target(channel=channel, model=model))
    routes = {name: ModelGroup(name=name, targets=tuple(targets))
              for name, targets in listed.items()}
    for group in groups:
        enabled = tuple(t for t in group.targets if t.channel.enabled)
        routes[group.name] = dataclasses.replace(group, targets=enabled)
    return routes


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any, secret: bool = False) -> str:
    """What *value* is, for an error message; a *secret* one is named by its type only."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if secret:
        return f"a {type(value).__name__} (value not shown)"
    return f"{type(value).__name__} {value!r}"
