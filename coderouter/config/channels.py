"""The ``channels`` section: one upstream account (or the mock) per entry."""

from __future__ import annotations

from typing import Any, Literal

from ..channels.forwarding import invalid_extra
from .model import CHANNEL_TYPES, Channel, Timeouts, serves_responses_by_default
from .readers import MISSING, Reader, join, kind_of

CHANNEL_KEYS = ("name", "type", "base_url", "keys", "headers", "forward_headers", "models",
                "timeout", "api_version", "enabled", "responses")
#: Kinds that call an upstream over HTTP: they need a base_url and keys.
_UPSTREAM_KINDS = ("openai", "anthropic", "azure", "gemini")
_RESPONSES_KINDS = ("openai", "azure")

KindFields = tuple[str | None, tuple[str, ...] | None, str | None, bool | Literal["only"] | None]


def channel(r: Reader, raw: Any, path: str) -> tuple[Channel, str] | None:
    m = r.mapping(raw, path, CHANNEL_KEYS)
    if m is None:
        return None
    name = r.field(m, path, "name", r.string)
    kind = r.field(m, path, "type", r.choice(CHANNEL_TYPES))
    base_url, keys, api_version, responses = kind_fields(r, kind, m, path)
    timeout = _timeouts(r, m, path)
    headers = r.field(m, path, "headers", r.headers, {})
    forward = r.field(m, path, "forward_headers", r.strings, ())
    for i, pattern in enumerate(forward or ()):
        problem = invalid_extra(pattern)
        if problem:
            r.error(f"{join(path, 'forward_headers')}[{i}]", problem)
    models = r.field(m, path, "models", r.strings, ())
    enabled = r.field(m, path, "enabled", r.boolean, True)
    if name is None or kind is None or base_url is None or keys is None \
            or None in (headers, models, enabled):
        return None
    if responses is None:
        responses = serves_responses_by_default(kind, base_url)
    return Channel(
        name=name, type=kind, base_url=base_url.rstrip("/"),
        keys=tuple(k for k in keys if k), headers=headers,
        forward_headers=tuple(p.lower() for p in forward or ()), models=models,
        timeout=timeout,
        api_version=api_version, enabled=enabled, responses=responses), path


def kind_fields(r: Reader, kind: str | None, m: dict[str, Any], path: str) -> KindFields:
    """The fields whose presence and meaning depend on the channel's kind: base_url, keys,
    api_version and responses (None where absent and not required)."""
    needs_upstream = kind in _UPSTREAM_KINDS
    base_url = r.field(m, path, "base_url", r.string, MISSING if needs_upstream else "")
    if base_url and not base_url.startswith(("http://", "https://")):
        r.error(join(path, "base_url"), "must start with http:// or https://")
    elif kind == "gemini" and base_url and base_url.rstrip("/").endswith(("/v1beta", "/v1")):
        r.error(join(path, "base_url"), "a gemini base_url has no API version: "
                "give it as Google's SDK takes it (https://generativelanguage.googleapis.com)"
                "; the gateway appends /v1beta/models/{model}:…")
    keys = r.field(m, path, "keys", r.secrets, MISSING if needs_upstream else ())
    if needs_upstream and keys is not None and not [k for k in keys if k]:
        r.error(join(path, "keys"), "needs at least one non-empty key")
    api_version = r.field(m, path, "api_version", r.string,
                          MISSING if kind == "azure" else None)
    responses = r.field(m, path, "responses", lambda v, p: _responses(r, v, p), None)
    if responses is not None and kind not in _RESPONSES_KINDS:
        r.error(join(path, "responses"), "only for openai and azure channels")
    return base_url, keys, api_version, responses


def _responses(r: Reader, value: Any, path: str) -> bool | Literal["only"] | None:
    """``responses``: true, false, or ``only`` (the Responses API and no Chat)."""
    if value == "only":
        return "only"
    if not isinstance(value, bool):
        r.error(path, f"expected true, false or only, got {kind_of(value)}")
        return None
    return value


def _timeouts(r: Reader, m: dict[str, Any], path: str) -> Timeouts:
    timeout_raw = r.mapping(m.get("timeout") or {}, join(path, "timeout"),
                            ("connect", "first_byte", "idle"))
    if not timeout_raw:
        return Timeouts()
    values = {k: r.duration(v, join(path, f"timeout.{k}"))
              for k, v in timeout_raw.items() if k in Timeouts.__slots__}
    return Timeouts(**{k: v for k, v in values.items() if v})
