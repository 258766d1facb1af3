"""Secrets out of upstream bytes: every credential the gateway sends, replaced wherever an
upstream's answer reaches a caller, a usage row or a log. Pure.

A `Scrubber` is built once per config generation from every channel key and every channel
``headers`` value (`from_channels`). Upstreams echo keys in error text ("Incorrect API key
provided: sk-...") and debug upstreams echo request headers, so each secret is replaced by
`REDACTED` in its raw spelling and in the spellings a JSON encoder may give it (``\\/`` for
``/``, ``\\"`` and ``\\\\``). The replacement holds no JSON-special character, so a scrubbed
JSON document stays valid.

Cost on the pass-through path: one ``in`` test per secret spelling over the bytes (C speed,
faster for long needles than a regular expression of many alternatives); the regular
expression runs only when a secret is present.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Protocol

REDACTED = "[REDACTED]"

#: Shorter values are not treated as secrets: a credential is never this short, and replacing
#: a word like ``true`` or a channel name in every answer would corrupt it.
MIN_SECRET = 8

#: Channel headers whose values are public protocol identifiers, not credentials.
PUBLIC_HEADERS = frozenset({
    "anthropic-version", "anthropic-beta", "openai-beta", "content-type", "accept",
    "user-agent", "http-referer", "referer", "x-title"})


class ChannelSecrets(Protocol):
    """What `Scrubber.from_channels` reads of a channel (a `config.Channel`)."""

    @property
    def keys(self) -> tuple[str, ...]: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


class Scrubber:
    """Replaces a fixed set of secrets in bytes and text."""

    __slots__ = ("_bytes", "_needles", "_text")

    def __init__(self, secrets: Iterable[str]) -> None:
        spellings: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET:
                spellings.update(_spellings(secret))
        ordered = sorted(spellings, key=len, reverse=True)  # longest first: no partial hits
        self._needles = tuple(s.encode() for s in ordered)
        self._bytes = re.compile(b"|".join(re.escape(s.encode()) for s in ordered)) \
            if ordered else None
        self._text = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None

    @classmethod
    def from_channels(cls, channels: Iterable[ChannelSecrets]) -> Scrubber:
        """A scrubber for every key and every non-public header value of *channels*."""
        secrets: list[str] = []
        for channel in channels:
            secrets.extend(channel.keys)
            secrets.extend(value for name, value in channel.headers.items()
                           if name.lower() not in PUBLIC_HEADERS)
        return cls(secrets)

    def __bool__(self) -> bool:
        return self._bytes is not None

    def clean(self, data: bytes) -> bytes:
        """*data* with every secret replaced; the same object when it holds none."""
        pattern = self._bytes
        if pattern is None:
            return data
        for needle in self._needles:
            if needle in data:
                return pattern.sub(_REDACTED_BYTES, data)
        return data

    def clean_text(self, text: str) -> str:
        """*text* with every secret replaced."""
        pattern = self._text
        return pattern.sub(REDACTED, text) if pattern is not None else text


_REDACTED_BYTES = REDACTED.encode()


def _spellings(secret: str) -> set[str]:
    """*secret* as sent, and as common JSON encoders may write it inside a string."""
    escaped = secret.replace("\\", "\\\\").replace('"', '\\"')
    return {secret, escaped, escaped.replace("/", "\\/")}


#: Shapes of common credentials, for text the gateway keeps that may quote anyone's secrets
#: (captured bodies): vendor API keys, cloud and forge tokens, bearer values, private keys.
_CREDENTIALS = re.compile(
    r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{20,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{22,}"
    r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|\bAIza[0-9A-Za-z_\-]{35}"
    r"|(?<=[Bb]earer )[A-Za-z0-9._~+/=\-]{16,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----")


def scrub_credentials(text: str) -> str:
    """*text* with every substring shaped like a common credential replaced by `REDACTED`."""
    return _CREDENTIALS.sub(REDACTED, text)
