"""The dashboard's alert strip: what needs the operator now. Pure.

Targets cooling down after failures (with the unix time their cooldown ends), quotas at or near
their limit (`NEAR` full or more), and the last reload when it failed (the old config serves).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..config import Config, Target
from ..config.reload import ConfigHolder
from ..routing import Health

#: A quota this full ((used + reserved) / limit) or more is shown.
NEAR = 0.9


def alerts(holder: ConfigHolder, health: Health, now: float,
           quotas: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every alert, in the order shown: failed reload, cooling targets, full quotas.

    *quotas* are ``/admin/quotas`` items (with ``fullness``); *now* is unix time.
    """
    out: list[dict[str, Any]] = []
    last = holder.last_reload
    if last is not None and last.result == "failed":
        out.append({"kind": "reload", "at": last.at, "reason": last.reason,
                    "errors": len(holder.problems)})
    for target in every_target(holder.current):
        state, left = health.target_state(target)
        if state == "cooling" and target.channel.enabled:
            out.append({"kind": "cooling", "channel": target.channel.name,
                        "model": target.model, "until": now + left})
    for quota in quotas:
        if quota["fullness"] >= NEAR:
            out.append({"kind": "quota", "scope": quota["scope"], "name": quota["name"],
                        "period": quota["period"], "fullness": quota["fullness"],
                        "resets_at": quota.get("resets_at")})
    return out


def every_target(config: Config) -> list[Target]:
    """Every target of every group and of its rules, once each."""
    seen: dict[tuple[str, str], Target] = {}
    for group in config.routes.values():
        for target in (*group.targets, *(t for rule in group.rules for t in rule.targets)):
            seen.setdefault(target.id, target)
    return list(seen.values())
