"""Which target and key to try next: priority tiers, weights, cooldowns. Pure; clock injected.

Health outlives config reloads: cooldowns are keyed by channel name and model (targets) and by
channel name and key (keys), so an edited YAML does not forgive a failing upstream.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .config import Channel, ModelGroup, Target


@dataclass(slots=True)
class _Cooldown:
    until: float
    trial: bool = False  # a single trial request is in flight after the cooldown ended


class Health:
    """Cooldowns of targets and channel keys, and round-robin key rotation."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.clock = clock
        self.rng = rng or random.Random()
        #: Called with (channel name, "target" | "key") when a cooldown starts.
        self.on_cooldown: Callable[[str, str], None] | None = None
        #: Called with ("target", (channel, model) | "key", (channel, key), seconds) when a
        #: cooldown starts, and with 0 seconds when a cooling target recovers: shared state
        #: passes them to the other processes, which `apply` them.
        self.on_change: Callable[[str, tuple[str, str], float], None] | None = None
        self._targets: dict[tuple[str, str], _Cooldown] = {}
        self._keys: dict[tuple[str, str], float] = {}
        self._rotation: dict[str, Iterator[int]] = {}

    def plan(self, group: ModelGroup) -> list[Target]:
        """Return *group*'s targets in the order to try: lower priority first, weighted-random
        within a tier. Cooling targets stay in the plan; `acquire` decides at attempt time."""
        targets = group.targets
        if len(targets) == 1:
            return [targets[0]]
        rng = self.rng.random
        # Efraimidis-Spirakis: sorting by u ** (1 / w) draws a weighted order without replacement.
        return sorted(targets, key=lambda t: (t.priority, -(rng() ** (1.0 / t.weight))))

    def acquire(self, target: Target) -> bool:
        """Whether *target* may be tried now; after a cooldown, only one trial request may."""
        state = self._targets.get(target.id)
        if state is None:
            return True
        if state.trial or self.clock() < state.until:
            return False
        state.trial = True
        return True

    def retry_in(self, targets: list[Target]) -> float:
        """Seconds until the first of *targets* may be tried: its own cooldown, and the
        soonest end of its channel's key cooldowns when every key is cooling (0 when free)."""
        now = self.clock()
        waits = []
        for target in targets:
            state = self._targets.get(target.id)
            wait = max(0.0, state.until - now) if state else 0.0
            keys = target.channel.keys
            if keys:
                ends = [self._keys.get((target.channel.name, key), 0.0) for key in keys]
                wait = max(wait, min(ends) - now)
            waits.append(wait)
        return max(0.0, min(waits, default=0.0))

    def succeeded(self, target: Target) -> None:
        if self._targets.pop(target.id, None) is not None and self.on_change is not None:
            self.on_change("target", target.id, 0.0)

    def failed(self, target: Target, cooldown: float) -> None:
        """Put *target* in cooldown for *cooldown* seconds (a cooldown of 0 clears it)."""
        if cooldown > 0:
            self._targets[target.id] = _Cooldown(self.clock() + cooldown)
            if self.on_cooldown is not None:
                self.on_cooldown(target.channel.name, "target")
        else:
            self._targets.pop(target.id, None)
        if self.on_change is not None:
            self.on_change("target", target.id, max(0.0, cooldown))

    def apply(self, kind: str, ident: tuple[str, str], seconds: float) -> None:
        """A cooldown started (or, with 0 *seconds*, ended) by another process."""
        if kind == "key":
            if seconds > 0:
                self._keys[ident] = self.clock() + seconds
        elif seconds > 0:
            self._targets[ident] = _Cooldown(self.clock() + seconds)
        else:
            self._targets.pop(ident, None)

    def release(self, target: Target) -> None:
        """End a trial that neither succeeded nor failed (the caller went away)."""
        state = self._targets.get(target.id)
        if state is not None:
            state.trial = False

    def next_key(self, channel: Channel) -> str | None:
        """The channel's next key in rotation that is not cooling down, or None."""
        keys = channel.keys
        if not keys:
            return None
        rotation = self._rotation.get(channel.name)
        if rotation is None:
            rotation = self._rotation[channel.name] = itertools.count()
        now = self.clock()
        start = next(rotation)
        for offset in range(len(keys)):
            key = keys[(start + offset) % len(keys)]
            until = self._keys.get((channel.name, key))
            if until is None or now >= until:
                return key
        return None

    def key_failed(self, channel: Channel, key: str, cooldown: float) -> None:
        if cooldown > 0:
            self._keys[(channel.name, key)] = self.clock() + cooldown
            if self.on_cooldown is not None:
                self.on_cooldown(channel.name, "key")
            if self.on_change is not None:
                self.on_change("key", (channel.name, key), cooldown)
