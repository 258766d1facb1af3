"""The ``channels`` section: one upstream account (or the mock) per entry."""

from __future__ import annotations

from typing import Any, Literal

from ..channels import KINDS, Kind
from ..channels.body_rules import BodyRule, path_problem
from ..channels.forwarding import invalid_extra
from .model import Channel, Timeouts
from .prices import prices as read_prices
from .readers import MISSING, Reader, join, kind_of

CHANNEL_KEYS = ("name", "type", "base_url", "keys", "headers", "forward_headers", "models",
                "prices", "timeout", "api_version", "enabled", "responses", "body_rules",
                "betas")
#: The kinds whose channels take ``responses:``, for its error message.
_RESPONSES_KINDS = " and ".join(n for n, kind in KINDS.items() if kind.has_responses_setting)

#: The kinds whose channels take ``betas:``.
_BETAS_KINDS = " and ".join(n for n, kind in KINDS.items() if kind.default_betas is not None)

KindFields = tuple[str | None, tuple[str, ...] | None, str | None, bool | Literal["only"] | None]


def channel(r: Reader, raw: Any, path: str) -> tuple[Channel, str] | None:
    m = r.mapping(raw, path, CHANNEL_KEYS)
    if m is None:
        return None
    name = r.field(m, path, "name", r.string)
    type_name = r.field(m, path, "type", r.choice(tuple(KINDS)))
    kind = KINDS.get(type_name) if type_name is not None else None
    base_url, keys, api_version, responses = kind_fields(r, kind, m, path)
    timeout = _timeouts(r, m, path)
    headers = r.field(m, path, "headers", r.headers, {})
    forward = r.field(m, path, "forward_headers", r.strings, ())
    for i, pattern in enumerate(forward or ()):
        problem = invalid_extra(pattern)
        if problem:
            r.error(f"{join(path, 'forward_headers')}[{i}]", problem)
    models = r.field(m, path, "models", r.strings, ())
    prices = r.field(m, path, "prices", lambda v, p: read_prices(r, v, p), {})
    enabled = r.field(m, path, "enabled", r.boolean, True)
    body_rules = _body_rules(r, m.get("body_rules"), join(path, "body_rules"))
    betas = _betas(r, kind, m, path)
    if name is None or type_name is None or kind is None or base_url is None or keys is None \
            or None in (headers, models, prices, enabled):
        return None
    if responses is None:
        responses = kind.responses_default(base_url)
    return Channel(
        name=name, type=type_name, base_url=base_url.rstrip("/"),
        keys=tuple(k for k in keys if k), headers=headers,
        forward_headers=tuple(p.lower() for p in forward or ()), models=models,
        prices=prices, timeout=timeout,
        api_version=api_version, enabled=enabled, responses=responses,
        body_rules=body_rules, betas=betas), path


def _betas(r: Reader, kind: Kind | None, m: dict[str, Any], path: str) -> tuple[str, ...] | None:
    """``betas``: the caller ``anthropic-beta`` values the channel forwards (None: default)."""
    betas = r.field(m, path, "betas", r.strings, None)
    if betas is None:
        return None
    if kind is not None and kind.default_betas is None:
        r.error(join(path, "betas"), f"only for {_BETAS_KINDS} channels")
    for i, beta in enumerate(betas):
        if not beta or any(c.isspace() or c == "," for c in beta):
            r.error(f"{join(path, 'betas')}[{i}]", f"'{beta}' is not one beta name")
    return tuple(betas)


def kind_fields(r: Reader, kind: Kind | None, m: dict[str, Any], path: str) -> KindFields:
    """The fields whose presence and meaning depend on the channel's *kind* (its
    `channels.Kind` says): base_url, keys, api_version and responses (None where absent and
    not required)."""
    needs_upstream = kind is not None and kind.needs_upstream
    base_url = r.field(m, path, "base_url", r.string, MISSING if needs_upstream else "")
    if base_url and not base_url.startswith(("http://", "https://")):
        r.error(join(path, "base_url"), "must start with http:// or https://")
    elif kind is not None and base_url and (problem := kind.base_url_problem(base_url)):
        r.error(join(path, "base_url"), problem)
    keys = r.field(m, path, "keys", r.secrets, MISSING if needs_upstream else ())
    if needs_upstream and keys is not None and not [k for k in keys if k]:
        r.error(join(path, "keys"), "needs at least one non-empty key")
    api_version = r.field(m, path, "api_version", r.string,
                          MISSING if kind is not None and kind.needs_api_version else None)
    responses = r.field(m, path, "responses", lambda v, p: _responses(r, v, p), None)
    if responses is not None and kind is not None and not kind.has_responses_setting:
        r.error(join(path, "responses"), f"only for {_RESPONSES_KINDS} channels")
    return base_url, keys, api_version, responses


def _responses(r: Reader, value: Any, path: str) -> bool | Literal["only"] | None:
    """``responses``: true, false, or ``only`` (the Responses API and no Chat)."""
    if value == "only":
        return "only"
    if not isinstance(value, bool):
        r.error(path, f"expected true, false or only, got {kind_of(value)}")
        return None
    return value


def _body_rules(r: Reader, raw: Any, path: str) -> tuple[BodyRule, ...]:
    """``body_rules``: a list of ``{drop: PATH}`` or ``{set: PATH, value: ANY}``."""
    rules = (_body_rule(r, item, where) for where, item in r.items(raw, path))
    return tuple(rule for rule in rules if rule is not None)


def _body_rule(r: Reader, raw: Any, path: str) -> BodyRule | None:
    m = r.mapping(raw, path, ("drop", "set", "value"))
    if m is None:
        return None
    if ("drop" in m) == ("set" in m):
        r.error(path, "needs exactly one of drop or set")
        return None
    drop = "drop" in m
    if drop == ("value" in m):
        r.error(join(path, "value"), "only with set" if drop
                else "required with set (the field's new value)")
        return None
    op = "drop" if drop else "set"
    field_path = r.field(m, path, op, r.string)
    if field_path is None:
        return None
    if problem := path_problem(field_path):
        r.error(join(path, op), problem)
        return None
    return BodyRule(tuple(field_path.split(".")), drop, m.get("value"))


def _timeouts(r: Reader, m: dict[str, Any], path: str) -> Timeouts:
    timeout_raw = r.mapping(m.get("timeout") or {}, join(path, "timeout"),
                            ("connect", "first_byte", "idle"))
    if not timeout_raw:
        return Timeouts()
    values = {k: r.duration(v, join(path, f"timeout.{k}"))
              for k, v in timeout_raw.items() if k in Timeouts.__slots__}
    return Timeouts(**{k: v for k, v in values.items() if v})
