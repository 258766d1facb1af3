"""The ``token_groups`` and ``tokens`` sections: callers' keys, models, quotas, rate limits."""

from __future__ import annotations

import re
from typing import Any

from .model import PERIODS, Quota, RateLimit, Token, TokenGroup, hash_key
from .readers import Reader, join

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def quotas(r: Reader, value: Any, path: str) -> tuple[Quota, ...]:
    entries = [(path, value)] if isinstance(value, dict) else r.items(value, path)
    out = []
    for p, raw in entries:
        m = r.mapping(raw, p, ("tokens", "requests", "cost", "period"))
        if m is None:
            continue
        period = r.field(m, p, "period", r.choice(PERIODS), "total")
        values = {"tokens": r.field(m, p, "tokens", r.integer, None),
                  "requests": r.field(m, p, "requests", r.integer, None),
                  "cost": r.field(m, p, "cost", r.number, None)}
        if not any(k in m for k in values):
            r.error(p, "a quota needs tokens, requests or cost")
        if period is not None:
            out.append(Quota(period=period, **values))
    return tuple(out)


def rate_limit(r: Reader, value: Any, path: str) -> RateLimit | None:
    m = r.mapping(value, path, ("rpm", "tpm", "concurrent"))
    if m is None:
        return None
    return RateLimit(**{k: r.field(m, path, k, lambda v, p: r.integer(v, p, 1), None)
                        for k in ("rpm", "tpm", "concurrent")})


def token_group(r: Reader, raw: Any, path: str) -> tuple[TokenGroup, str] | None:
    m = r.mapping(raw, path, ("name", "models", "quota", "rate_limit"))
    if m is None:
        return None
    name = r.field(m, path, "name", r.string)
    models = r.field(m, path, "models", r.strings, None)
    group_quotas = r.field(m, path, "quota", lambda v, p: quotas(r, v, p), ())
    limit = r.field(m, path, "rate_limit", lambda v, p: rate_limit(r, v, p), None)
    if name is None:
        return None
    return TokenGroup(name=name, models=models, quotas=group_quotas, rate_limit=limit), path


def token(r: Reader, raw: Any, path: str,
          groups: dict[str, TokenGroup]) -> tuple[Token, str] | None:
    keys = ("name", "key", "key_sha256", "group", "models", "quota", "rate_limit",
            "expires", "enabled")
    m = r.mapping(raw, path, keys)
    if m is None:
        return None
    name = r.field(m, path, "name", r.string)
    digest = _digest(r, m, path)
    group_name = r.field(m, path, "group", r.string, None)
    group = r.lookup(groups, group_name, join(path, "group"), "token group")
    models = r.field(m, path, "models", r.strings, None)
    token_quotas = r.field(m, path, "quota", lambda v, p: quotas(r, v, p), ())
    limit = r.field(m, path, "rate_limit", lambda v, p: rate_limit(r, v, p), None)
    expires = r.field(m, path, "expires", r.moment, None)
    enabled = r.field(m, path, "enabled", r.boolean, True)
    if name is None or digest is None or enabled is None:
        return None
    return Token(name=name, key_sha256=digest, group=group, models=models, quotas=token_quotas,
                 rate_limit=limit, expires=expires, enabled=enabled), path


def _digest(r: Reader, m: dict[str, Any], path: str) -> bytes | None:
    """The SHA-256 of the token's key, from ``key`` (plaintext) or ``key_sha256``."""
    if ("key" in m) == ("key_sha256" in m):
        r.error(path, "needs exactly one of key_sha256 or key")
        return None
    if "key" in m:
        key = r.secret(m["key"], join(path, "key"))
        if key is not None and len(key) < 8:
            r.error(join(path, "key"), "must be at least 8 characters")
            return None
        if key is None:
            return None
        r.warnings.append(f"{join(path, 'key')}: plaintext key; store key_sha256 "
                          "instead (`coderouter token new` prints both)")
        return hash_key(key)
    hexed = r.string(m["key_sha256"], join(path, "key_sha256"))
    if hexed is not None and not _HEX64.match(hexed):
        r.error(join(path, "key_sha256"), "expected 64 hexadecimal characters")
        return None
    return None if hexed is None else bytes.fromhex(hexed)
