"""Which caller headers reach an upstream: an allow-list per dialect family. Pure.

A caller's headers are forwarded only to an upstream of its own dialect family (an OpenAI SDK's
to an OpenAI-compatible channel, Claude Code's to an Anthropic one), and only those on that
family's list: what coding agents need (API versions and betas, session ids for the
upstream's cache affinity, SDK identification). A translated request carries none of the
caller's headers: ``anthropic-*`` or ``x-stainless-*`` mean nothing to another vendor. A
channel's ``forward_headers`` passes more, always (the operator's choice); credentials, cookies,
``Host`` and hop-by-hop headers are never forwarded, whatever a list says.

Everything else stays behind, in particular headers that pick the account, project or
billing on the operator's key (``OpenAI-Organization``, ``OpenAI-Project``,
``x-goog-user-project``) and client-address claims (``X-Forwarded-For``, ``Forwarded``,
``X-Real-IP``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from ..dialects.registry import DIALECTS

#: Caller headers forwarded to an upstream of the caller's own dialect family. Lower case; a
#: trailing ``*`` makes a prefix.
ALLOWED: dict[str, tuple[str, ...]] = {
    "openai": (
        "user-agent", "openai-beta", "x-stainless-*",
        # Codex CLI: session and turn identity, subagent kind (upstream cache affinity)
        "session-id", "session_id", "thread-id", "thread_id", "conversation_id",
        "originator", "x-codex-*", "x-openai-subagent", "x-client-request-id",
        # opencode and others: session affinity
        "x-session-affinity", "x-session-id"),
    "anthropic": (
        # every anthropic-* (versions and betas change with Claude Code releases)
        "user-agent", "anthropic-*", "x-stainless-*", "x-app",
        "x-claude-code-*", "x-session-affinity", "x-session-id"),
    "gemini": ("user-agent", "x-goog-api-client"),
}

#: The dialect family each caller route speaks (its `Dialect.family`).
DIALECT_FAMILY: dict[str, str] = {name: d.family for name, d in DIALECTS.items()}

_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "proxy-connection"})
#: Never forwarded, even when listed: credentials, cookies, Host, framing and encoding (the
#: gateway sets its own), and our own request id.
NEVER = _HOP_BY_HOP | frozenset({
    "authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie", "host",
    "content-length", "content-encoding", "content-type", "accept-encoding", "x-request-id"})


class Policy:
    """The caller headers one (channel, caller dialect) pair forwards."""

    __slots__ = ("names", "prefixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        lowered = {p.lower() for p in patterns}
        self.names = frozenset(p for p in lowered if not p.endswith("*")) - NEVER
        self.prefixes = tuple(p[:-1] for p in lowered if p.endswith("*"))

    def allows(self, lower_name: str) -> bool:
        """Whether the header named *lower_name* (lower case) is forwarded."""
        if lower_name in self.names:
            return True
        return bool(self.prefixes) and lower_name.startswith(self.prefixes) \
            and lower_name not in NEVER


@functools.lru_cache(maxsize=1024)
def policy(family: str, dialect: str | None, extra: tuple[str, ...] = ()) -> Policy:
    """The forwarding policy of a channel of *family* (its kind's) serving a *dialect* caller,
    plus the channel's *extra* ``forward_headers``."""
    same = DIALECT_FAMILY.get(dialect or "") == family
    return Policy((*(ALLOWED.get(family, ()) if same else ()), *extra))


def steering(extra: tuple[str, ...], caller: Iterable[tuple[str, str]]) -> list[str]:
    """The caller headers (names as sent) that only the channel's *extra* list let through.

    An upstream 401/403 on a request that carried one of them may be the caller's doing (an
    organisation the key does not belong to), not a bad key.
    """
    if not extra:
        return []
    only = Policy(extra)
    return [name for name, _ in caller if only.allows(name.lower())]


def invalid_extra(pattern: str) -> str | None:
    """Why *pattern* cannot be a ``forward_headers`` entry, or None when it can."""
    lower = pattern.lower()
    if not lower or lower == "*" or any(c.isspace() or c in ":," for c in lower):
        return f"'{pattern}' is not a header name (or a prefix ending in *)"
    if lower in NEVER:
        return f"'{pattern}' is never forwarded (credentials, cookies, Host, framing)"
    return None
