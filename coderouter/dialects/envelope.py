"""Envelopes: opaque state sealed by the gateway so a client can carry it, opened only when
we minted it. Pure (the secret is given).

A thinking signature from Anthropic, a Responses ``encrypted_content``, a Gemini
``thoughtSignature``: a client of another dialect has no place for them, yet the upstream
needs them back on the next turn. The hub seals such state into a string the client's
dialect can hold (a thinking ``signature``, an ``encrypted_content``, a tool-call id), and
opens it when the client sends it back. A sealed string is::

    crenv1.<base64url(zlib(JSON))>.<base64url(HMAC-SHA256(secret, "crenv1." + body))[:22]>

Only a string with our tag and a valid MAC is opened; anything else is not ours and is never
sent to an upstream as if it were its own state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import zlib
from typing import Any

import orjson

TAG = "crenv1."
#: The most a sealed payload may inflate to (a thinking block is a few KB; this is generous).
MAX_OPENED = 1 << 20
_MAC_CHARS = 22  # 128 bits


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sealer:
    """Seals JSON values with one secret and opens only what that secret sealed."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("an envelope secret needs at least 16 bytes")
        self._key = hashlib.sha256(b"coderouter envelope\0" + secret).digest()

    def _mac(self, signed: str) -> str:
        return _b64(hmac.new(self._key, signed.encode(), hashlib.sha256).digest())[:_MAC_CHARS]

    def seal(self, value: Any) -> str:
        """*value* (JSON-serialisable) as a tagged, MAC'd string of URL-safe characters."""
        signed = TAG + _b64(zlib.compress(orjson.dumps(value), 6))
        return f"{signed}.{self._mac(signed)}"

    def open(self, text: str) -> Any:
        """The value sealed in *text*, or None when *text* is not an envelope we minted."""
        if not text.startswith(TAG):
            return None
        signed, dot, mac = text.rpartition(".")
        if not dot or len(mac) != _MAC_CHARS or not hmac.compare_digest(mac, self._mac(signed)):
            return None
        try:
            inflate = zlib.decompressobj()
            raw = inflate.decompress(_unb64(signed[len(TAG):]), MAX_OPENED)
            if inflate.unconsumed_tail:
                return None
            return orjson.loads(raw)
        except (ValueError, zlib.error):
            return None


def find(text: str) -> int:
    """Where an envelope starts inside *text* (a tool-call id carrying one after its own
    id and a dot), or -1."""
    at = text.find("." + TAG)
    return at + 1 if at != -1 else (0 if text.startswith(TAG) else -1)


#: Seals and opens the envelopes that carry foreign opaque state through callers. A random
#: secret until the app sets the configured one (`use_secret`).
_sealer = Sealer(secrets.token_bytes(32))


def use_secret(secret: bytes) -> None:
    """Seal and open envelopes with *secret* from now on; envelopes sealed with another
    secret no longer open (their state is dropped, never forwarded)."""
    global _sealer
    _sealer = Sealer(secret)


def sealer() -> Sealer:
    """The `Sealer` in use (see `use_secret`)."""
    return _sealer
