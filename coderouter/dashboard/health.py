"""Channel health for the dashboard: every target of every model group, now. Pure.

Built from the router's `Health` (cooldowns of targets and keys), the requests in flight, the
usage table's numbers over the chosen range and the failed attempts booked on each target
(`failures`: a row books its request on the target that answered). A group's rules list their
own targets. Keys are named by their index in the channel's ``keys`` list, never shown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from ..config import Config, Target
from ..failures import FailedAttempts
from ..routing import Health
from ..usage import Record


class InFlight(Protocol):
    """What the dashboard reads of a request in flight (`proxy.Exchange`)."""

    record: Record

    @property
    def stream(self) -> bool: ...


class Numbers:
    """A target's numbers over the range: its usage rows' and its failed attempts'."""

    def __init__(self, stats: Mapping[tuple[str, str], Mapping[str, Any]],
                 failures: FailedAttempts, since: float, until: float) -> None:
        self.stats, self.failures = stats, failures
        self.since, self.until = since, until

    def of(self, target: tuple[str, str]) -> dict[str, Any]:
        out = dict(self.stats.get(target, {}))
        failed, last = self.failures.between(target, self.since, self.until)
        requests = out.get("requests", 0) + failed
        errors = out.get("errors", 0) + failed
        out.update(requests=requests, errors=errors,
                   error_rate=round(errors / requests, 6) if requests else 0.0)
        known = out.get("last_error")
        if last is not None and (known is None or last["ts"] >= known["ts"]):
            out["last_error"] = last
        return out


def channel_health(config: Config, health: Health, now: float, in_flight: Iterable[InFlight],
                   numbers: Numbers) -> dict[str, Any]:
    """Each routable name with its targets' state, keys, range numbers and requests in
    flight, and its rules' targets likewise.

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

    def shaped(targets: Iterable[Target]) -> list[dict[str, Any]]:
        return [_target(t, health, now, numbers.of(t.id), requests[t.id], streams[t.id])
                for t in targets]

    groups = []
    for name, group in sorted(config.routes.items()):
        groups.append({"name": name, "cooldown": group.cooldown, "attempts": group.attempts,
                       "targets": shaped(group.targets),
                       "rules": [{"name": rule.name, "targets": shaped(rule.targets)}
                                 for rule in group.rules]})
    return {"now": now, "groups": groups}


def _target(target: Target, health: Health, now: float, numbers: Mapping[str, Any],
            in_flight: int, streams: int) -> dict[str, Any]:
    channel = target.channel
    state, left = health.target_state(target)
    keys = []
    for index in range(len(channel.keys)):
        cooling = health.key_cooling(channel, index)
        keys.append({"index": index, "state": "cooling" if cooling else "ready",
                     "cooling_until": now + cooling if cooling else None})
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
