"""Envelopes: opaque state sealed by the gateway so a client can carry it, opened only when
we minted it, for the channel and caller it was minted for. Pure (the secret is given).

A thinking signature from Anthropic, a Responses ``encrypted_content``, a Gemini
``thoughtSignature``: a client of another dialect has no place for them, yet the upstream
needs them back on the next turn. The hub seals such state into a string the client's
dialect can hold (a thinking ``signature``, an ``encrypted_content``, a tool-call id), and
opens it when the client sends it back. A sealed string is::

    crenv1.<base64url(nonce + ciphertext)>.<base64url(HMAC-SHA256(mac key, binding + "\0" +
    "crenv1." + base64url(nonce + ciphertext)))[:22]>

The ciphertext is zlib(JSON) XORed with SHAKE-256(encryption key + a random 12-byte nonce):
no one but the gateway reads what an envelope holds (a caller it reaches by other means
learns nothing of another's reasoning). The *binding* (`binding`: a digest of the issuing
channel's base URL, the identity of the key it was served with, and the caller's token) is
under the MAC and nowhere in the string: an envelope opens only for the same channel, key
and token it was sealed for, and is foreign state everywhere else. Only a string with our
tag and a valid MAC is opened; anything else is not ours and is never sent to an upstream as
if it were its own state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import zlib
from typing import Any

import orjson

TAG = "crenv1."
#: The most a sealed payload may inflate to (a thinking block is a few KB; this is generous).
MAX_OPENED = 1 << 20
_MAC_CHARS = 22  # 128 bits
_NONCE = 12


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def binding(base_url: str, key: str, token: str) -> str:
    """Who an envelope is for: the channel at *base_url* served with *key*, for the caller
    *token* (its name). A digest: neither the key nor the names can be read back from it."""
    key_identity = hashlib.sha256(key.encode()).digest()
    return hashlib.sha256(b"\0".join((base_url.encode(), key_identity, token.encode()))
                          ).hexdigest()[:32]


def caller_binding(token: str) -> str:
    """Who state any channel may be handed (a compaction summary) is for: the caller *token*
    alone."""
    return binding("", "", token)


class Sealer:
    """Seals JSON values with one secret and opens only what that secret sealed for the same
    binding."""

    __slots__ = ("_enc", "_key")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("an envelope secret needs at least 16 bytes")
        self._key = hashlib.sha256(b"coderouter envelope mac\0" + secret).digest()
        self._enc = hashlib.sha256(b"coderouter envelope enc\0" + secret).digest()

    def _mac(self, signed: str, bound: str = "") -> str:
        message = f"{bound}\0{signed}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())[:_MAC_CHARS]

    def _cipher(self, nonce: bytes, data: bytes) -> bytes:
        stream = hashlib.shake_256(self._enc + nonce).digest(len(data))
        mixed = int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")
        return mixed.to_bytes(len(data), "little")

    def seal(self, value: Any, bound: str = "") -> str:
        """*value* (JSON-serialisable) as a tagged, encrypted, MAC'd string of URL-safe
        characters that opens only for *bound* (`binding`; "" for the gateway's own state)."""
        nonce = os.urandom(_NONCE)
        signed = TAG + _b64(nonce + self._cipher(nonce, zlib.compress(orjson.dumps(value), 6)))
        return f"{signed}.{self._mac(signed, bound)}"

    def open(self, text: str, bound: str = "") -> Any:
        """The value sealed in *text* for *bound*, or None when *text* is not an envelope we
        minted for it."""
        if not text.startswith(TAG):
            return None
        signed, dot, mac = text.rpartition(".")
        if not dot or len(mac) != _MAC_CHARS \
                or not hmac.compare_digest(mac, self._mac(signed, bound)):
            return None
        try:
            sealed = _unb64(signed[len(TAG):])
            inflate = zlib.decompressobj()
            raw = inflate.decompress(self._cipher(sealed[:_NONCE], sealed[_NONCE:]),
                                     MAX_OPENED)
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
