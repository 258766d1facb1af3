"""The dashboard's alert strip: what needs the operator now. Pure.

Targets cooling down after failures (with the unix time their cooldown ends), channels whose
every key is cooling, quotas at or near their limit (`NEAR` full or more), and the last reload
when it failed (the old config serves).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..config import Config, Target
from ..config.reload import ConfigHolder
from ..routing import Health

#: A quota this full ((used + reserved) / limit) or more is shown.
NEAR = 0.9


def alerts(holder: ConfigHolder, health: Health, now: float,
           quotas: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every alert, in the order shown: failed reload, cooling targets, channels out of keys,
    full quotas.

    *quotas* are ``/admin/quotas`` items (with ``fullness``); *now* is unix time.
    """
    out: list[dict[str, Any]] = []
    last = holder.last_reload
    if last is not None and last.result == "failed":
        out.append({"kind": "reload", "at": last.at, "reason": last.reason,
                    "errors": len(holder.problems)})
    targets = every_target(holder.current)
    for target in targets:
        state, left = health.target_state(target)
        if state == "cooling" and target.channel.enabled:
            out.append({"kind": "cooling", "channel": target.channel.name,
                        "model": target.model, "until": now + left})
    out.extend(_channels_without_keys(targets, health, now))
    for quota in quotas:
        if quota["fullness"] >= NEAR:
            out.append({"kind": "quota", "scope": quota["scope"], "name": quota["name"],
                        "period": quota["period"], "fullness": quota["fullness"],
                        "resets_at": quota.get("resets_at")})
    return out


def _channels_without_keys(targets: Iterable[Target], health: Health,
                           now: float) -> Iterator[dict[str, Any]]:
    """A channel whose every key is cooling (each refused or rate-limited): nothing it serves
    can be tried until the first key is back, at ``until``."""
    seen: set[str] = set()
    for target in targets:
        channel = target.channel
        if channel.name in seen or not channel.keys or not channel.enabled:
            continue
        seen.add(channel.name)
        waits = [health.key_cooling(channel, index) for index in range(len(channel.keys))]
        if all(waits):
            yield {"kind": "keys", "channel": channel.name, "keys": len(waits),
                   "until": now + min(waits)}


def every_target(config: Config) -> list[Target]:
    """Every target of every group and of its rules, once each."""
    seen: dict[tuple[str, str], Target] = {}
    for group in config.routes.values():
        for target in (*group.targets, *(t for rule in group.rules for t in rule.targets)):
            seen.setdefault(target.id, target)
    return list(seen.values())
