"""Channel health for the dashboard: every target of every model group, now. Pure.

Built from the router's `Health` (cooldowns of targets and keys), the requests in flight and
the usage table's numbers over the chosen range. Keys are named by their index in the
channel's ``keys`` list, never shown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from ..config import Config, Target
from ..routing import Health
from ..usage import Record


class InFlight(Protocol):
    """What the dashboard reads of a request in flight (`proxy.Exchange`)."""

    record: Record

    @property
    def stream(self) -> bool: ...


def channel_health(config: Config, health: Health, now: float, in_flight: Iterable[InFlight],
                   stats: Mapping[tuple[str, str], Mapping[str, Any]]) -> dict[str, Any]:
    """Each routable name with its targets' state, keys, range numbers and requests in flight.

    *now* is unix time; cooldown ends are given as unix times.
    """
    requests: Counter[tuple[str, str]] = Counter()
    streams: Counter[tuple[str, str]] = Counter()
    for exchange in in_flight:
        record = exchange.record
        if record.channel is None or record.upstream_model is None:
            continue
        where = (record.channel, record.upstream_model)
        requests[where] += 1
        if exchange.stream:
            streams[where] += 1
    groups = []
    for name, group in sorted(config.routes.items()):
        targets = [_target(t, health, now, stats, requests[t.id], streams[t.id])
                   for t in group.targets]
        groups.append({"name": name, "cooldown": group.cooldown, "attempts": group.attempts,
                       "targets": targets})
    return {"now": now, "groups": groups}


def _target(target: Target, health: Health, now: float,
            stats: Mapping[tuple[str, str], Mapping[str, Any]], in_flight: int,
            streams: int) -> dict[str, Any]:
    channel = target.channel
    state, left = health.target_state(target)
    keys = []
    for index in range(len(channel.keys)):
        cooling = health.key_cooling(channel, index)
        keys.append({"index": index, "state": "cooling" if cooling else "ready",
                     "cooling_until": now + cooling if cooling else None})
    numbers = stats.get(target.id, {})
    return {
        "channel": channel.name, "type": channel.type, "model": target.model,
        "priority": target.priority, "weight": target.weight, "enabled": channel.enabled,
        "state": state if channel.enabled else "disabled",
        "cooling_until": now + left if state == "cooling" else None,
        "keys": keys,
        "requests": numbers.get("requests", 0), "errors": numbers.get("errors", 0),
        "error_rate": numbers.get("error_rate", 0.0),
        "latency_p50": numbers.get("latency_p50"), "latency_p95": numbers.get("latency_p95"),
        "last_error": numbers.get("last_error"),
        "in_flight": in_flight, "streams": streams,
    }
