"""Who is calling: caller tokens and the admin key.

A presented key is hashed with SHA-256 and looked up by digest, so lookup time depends on the
digest, never on how much of a real key the caller guessed.
"""

from __future__ import annotations

import fnmatch
import hmac
import time
from collections.abc import Mapping

from .config import Config, Token, hash_key
from .errors import InvalidApiKey, ModelNotAllowed, NotFound


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer``, ``x-api-key`` or ``api-key``."""
    auth = headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-api-key") or headers.get("api-key") or None


def authenticate(config: Config, headers: Mapping[str, str], now: float | None = None) -> Token:
    """The enabled, unexpired token whose key the caller presented; else `InvalidApiKey`."""
    return authenticate_key(config, presented_key(headers), now)


def gemini_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key of a Gemini API caller: ``x-goog-api-key``, the ``key`` query parameter, or
    any header `presented_key` reads."""
    return headers.get("x-goog-api-key") or query.get("key") or presented_key(headers)


def authenticate_key(config: Config, key: str | None, now: float | None = None) -> Token:
    """The enabled, unexpired token of *key*; else `InvalidApiKey`."""
    if key is None:
        raise InvalidApiKey("missing API key: send it as 'Authorization: Bearer KEY'")
    token = config.tokens_by_sha256.get(hash_key(key))
    if token is None:
        raise InvalidApiKey("invalid API key")
    if not token.enabled:
        raise InvalidApiKey("this API key is disabled")
    if token.expires is not None and (time.time() if now is None else now) >= token.expires:
        raise InvalidApiKey("this API key has expired")
    return token


def is_admin(config: Config, headers: Mapping[str, str]) -> bool:
    """Whether the caller sent the admin key (constant-time comparison)."""
    expected = config.admin.key
    if expected is None:
        return False
    key = presented_key(headers) or ""
    return hmac.compare_digest(key.encode(), expected.encode())


def require_admin(config: Config, headers: Mapping[str, str], route: str) -> None:
    """Pass the admin; `NotFound` when no admin key is configured, else `InvalidApiKey`."""
    if config.admin.key is None:
        raise NotFound(f"{route} is disabled: no admin key is configured")
    if not is_admin(config, headers):
        raise InvalidApiKey("this route needs the admin key, sent as 'Authorization: Bearer KEY'")


def allowed_models(token: Token) -> tuple[tuple[str, ...], ...]:
    """The glob lists a model name must match: the group's, then the token's."""
    lists = []
    if token.group is not None and token.group.models is not None:
        lists.append(token.group.models)
    if token.models is not None:
        lists.append(token.models)
    return tuple(lists)


def may_use(token: Token, model: str) -> bool:
    return all(any(fnmatch.fnmatchcase(model, pattern) for pattern in patterns)
               for patterns in allowed_models(token))


def check_model(token: Token, model: str) -> None:
    if not may_use(token, model):
        raise ModelNotAllowed(f"this API key may not use the model '{model}'")
