"""Quota and config summaries for the dashboard, from the limiter and the live config. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..config import Config, Price, Quota, RateLimit
from ..config.reload import ConfigHolder

#: The dimensions a quota may limit, as its reports name them.
QUOTA_DIMENSIONS = ("tokens", "requests", "cost")


def quotas(config: Config, reports: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Every quota of every token and group, closest to its limit first.

    *reports* are the ``GET /v1/usage`` bodies of the config's tokens (from the limiter, or
    from Redis when the state is shared); a group's quotas appear once. Each item is one quota
    (scope, name, period) with its dimensions as in those bodies and ``fullness``: the largest
    ``(used + reserved) / limit`` of its dimensions.
    """
    items: dict[tuple[str, str, str], dict[str, Any]] = {}
    for report in reports:
        for quota in report["quotas"]:
            name = report["token"] if quota["scope"] == "token" else report["group"]
            items[(quota["scope"], name, quota["period"])] = {
                "name": name, **quota, "fullness": fullness(quota)}
    ordered = sorted(items.values(),
                     key=lambda item: (-item["fullness"], item["scope"], item["name"]))
    unlimited = sorted(t.name for t in config.tokens
                       if not t.quotas and (t.group is None or not t.group.quotas))
    return {"quotas": ordered, "unlimited_tokens": unlimited}


def fullness(report: dict[str, Any]) -> float:
    ratios = [(dim["used"] + dim["reserved"]) / dim["limit"] if dim["limit"] else 1.0
              for name in QUOTA_DIMENSIONS if (dim := report.get(name)) is not None]
    return round(max(ratios, default=0.0), 6)


def config_summary(holder: ConfigHolder) -> dict[str, Any]:
    """What the live config holds (never a key, header or base URL), and the last reload."""
    config = holder.current
    last = holder.last_reload
    return {
        "path": holder.path,
        "summary": config.summary(),
        "loaded_at": holder.loaded_at,
        "reloads_ok": holder.reloads_ok,
        "reloads_failed": holder.reloads_failed,
        "last_reload": None if last is None else {
            "at": last.at, "reason": last.reason, "result": last.result,
            "errors": [{"path": path or holder.path, "message": message}
                       for path, message in holder.problems] if last.result == "failed"
            else []},
        "channels": [{"name": c.name, "type": c.type, "enabled": c.enabled,
                      "keys": len(c.keys), "models": list(c.models)} for c in config.channels],
        "model_groups": [{
            "name": g.name, "attempts": g.attempts, "cooldown": g.cooldown,
            "targets": [{"channel": t.channel.name, "model": t.model, "priority": t.priority,
                         "weight": t.weight, "price": _price(t.price)} for t in g.targets],
            "price": _price(g.price)} for g in config.model_groups],
        "warnings": list(config.warnings),
        "token_groups": [{"name": g.name, "models": _list(g.models),
                          "quotas": [_quota(q) for q in g.quotas],
                          "rate_limit": _rate(g.rate_limit)} for g in config.token_groups],
        "tokens": [{"name": t.name, "group": t.group.name if t.group else None,
                    "models": _list(t.models), "enabled": t.enabled, "expires": t.expires,
                    "quotas": [_quota(q) for q in t.quotas], "rate_limit": _rate(t.rate_limit)}
                   for t in config.tokens],
    }


def _price(price: Price | None) -> dict[str, Any] | None:
    """USD per million tokens (the base rates; tiers are not shown)."""
    if price is None:
        return None
    return {"input": price.input, "output": price.output, "cached_input": price.cached_input,
            "cache_write_5m": price.cache_write_5m, "cache_write_1h": price.cache_write_1h}


def _list(items: tuple[str, ...] | None) -> list[str] | None:
    return None if items is None else list(items)


def _quota(quota: Quota) -> dict[str, Any]:
    return {"period": quota.period, "tokens": quota.tokens, "requests": quota.requests,
            "cost": quota.cost}


def _rate(limit: RateLimit | None) -> dict[str, Any] | None:
    if limit is None:
        return None
    return {"rpm": limit.rpm, "tpm": limit.tpm, "concurrent": limit.concurrent}
