"""What a channel kind is (the ``type:`` of a channel): where its upstream answers each
dialect, how it is authorised, what its config needs, and how one call is sent.

Each kind is a module of this package holding one `Kind` instance; `coderouter.channels.KINDS`
maps the ``type:`` names to them. A kind is data and a few small methods: everything the
request path needs to reach one vendor, and nothing about translating dialects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from multidict import CIMultiDict

from .forwarding import NEVER, policy

if TYPE_CHECKING:
    from ..config import Channel
    from .pool import Pools, Response


@dataclass(slots=True, kw_only=True)
class Call:
    """One upstream call, as the relay's attempt has prepared it."""

    channel: Channel
    #: The dialect the upstream is spoken to in, and the caller's (they differ on a translation).
    dialect: str
    caller_dialect: str
    #: The model the upstream is asked for (the target's).
    model: str
    #: The body as a dict (what the mock answers from) and as the bytes that are sent.
    body: dict[str, Any]
    data: bytes
    key: str
    #: The caller's query string, kept on a pass-through ("" on a translation).
    query: str
    stream: bool
    caller_headers: Iterable[tuple[str, str]]
    request_id: str
    #: W3C trace context of the attempt's span (``traceparent``), when tracing is on.
    trace_headers: Mapping[str, str] | None = None


class Kind:
    """A channel kind; each module of this package subclasses it once and names one instance.

    The defaults fit an OpenAI-compatible upstream; a kind overrides what differs.
    """

    #: The ``type:`` name in the config.
    name: ClassVar[str]
    #: The forwarding family (`forwarding.ALLOWED`) whose caller headers may reach it.
    family: ClassVar[str]
    #: Its ``gen_ai.provider.name`` in OpenTelemetry's GenAI conventions ("" : its name).
    provider: ClassVar[str] = ""
    #: Each dialect the upstream serves as it is, and the path appended to ``base_url``.
    paths: ClassVar[Mapping[str, str]]
    #: ``base_url`` and ``keys`` must be configured (every kind but the mock).
    needs_upstream: ClassVar[bool] = True
    #: ``api_version`` must be configured (Azure).
    needs_api_version: ClassVar[bool] = False
    #: The ``responses:`` setting means something for this kind (openai, azure).
    has_responses_setting: ClassVar[bool] = False
    #: A Responses upstream of this kind answers Codex's compaction request itself.
    compacts: ClassVar[bool] = True
    #: The ``betas:`` setting means something for this kind (anthropic): its default.
    default_betas: ClassVar[tuple[str, ...] | None] = None
    #: The price catalog's provider (genai-prices' id) whose prices a channel of this kind is
    #: billed at when its base_url matches no provider's own pattern; None: not priced there.
    price_provider: ClassVar[str | None] = None

    def __init__(self) -> None:
        self._native = tuple(self.paths)

    def __repr__(self) -> str:
        return f"<channel kind {self.name}>"

    def dialects(self, channel: Channel) -> tuple[str, ...]:
        """The dialects *channel*'s upstream serves natively (others are translated)."""
        return self._native

    # config

    def base_url_problem(self, base_url: str) -> str | None:
        """Why *base_url* is wrong for this kind, or None."""
        return None

    def responses_default(self, base_url: str) -> bool:
        """Whether a channel without ``responses:`` has the Responses API."""
        return False

    def describe(self, channel: Channel) -> str | None:
        """A line for ``coderouter check`` about what *channel* serves, or None."""
        return None

    # one call

    def url(self, call: Call) -> str:
        """The upstream URL of *call*; the caller's query string is kept."""
        url = call.channel.base_url + self.paths[call.dialect]
        return f"{url}?{call.query}" if call.query else url

    def restrict(self, headers: CIMultiDict[str], channel: Channel) -> None:
        """Narrow the forwarded caller *headers* to what *channel* allows (by default, as
        they are)."""

    def authorize(self, headers: CIMultiDict[str], key: str) -> None:
        """Put the channel *key* in *headers* as this kind's upstream reads it."""
        headers["Authorization"] = f"Bearer {key}"

    def headers(self, call: Call) -> CIMultiDict[str]:
        """The caller headers `forwarding` allows for the call, then the channel's auth,
        ``X-Request-Id`` and ``headers``."""
        channel = call.channel
        allowed = policy(self.family, call.caller_dialect, channel.forward_headers)
        names, prefixes = allowed.names, allowed.prefixes
        out: CIMultiDict[str] = CIMultiDict()
        for name, value in call.caller_headers:
            lower = name.lower()
            if lower in names or (prefixes and lower.startswith(prefixes)
                                  and lower not in NEVER):
                out.add(name, value)
        self.restrict(out, channel)
        self.authorize(out, call.key)
        out["Content-Type"] = "application/json"
        out["X-Request-Id"] = call.request_id
        if call.trace_headers:
            out.update(call.trace_headers)
        out.update(channel.headers)
        return out

    def send(self, pools: Pools, call: Call) -> Awaitable[Response]:
        """POST *call* on its channel's pool; await it for the upstream's response head."""
        channel = call.channel
        return pools.post(channel, self.url(call), call.data, self.headers(call),
                          channel.timeout.connect)  # redirects are never followed
