"""Which target and key to try next: sticky sessions, priority tiers, weights, cooldowns.
Pure; clock injected.

Health outlives config reloads: cooldowns are keyed by channel name and model (targets) and by
channel name and key (keys), so an edited YAML does not forgive a failing upstream; session pins
are keyed by model group name and session, and name their target the same way.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .config import Channel, ModelGroup, Target
from .failures import FailedAttempts

log = logging.getLogger("coderouter.health")


@dataclass(slots=True)
class _Cooldown:
    until: float
    trial: bool = False  # a single trial request is in flight after the cooldown ended


@dataclass(slots=True)
class Pin:
    """Where a session was last served: a target's id and the channel key used."""

    target: tuple[str, str]
    key: str
    until: float
    #: When the pin was last told to the other processes (shared state), 0 when never.
    shared: float = 0.0


class Sticky:
    """Session pins: an LRU of at most *maximum* sessions, each kept for its group's TTL.

    A pin is refreshed by every success; an expired pin is as good as none, so the next
    request of that session is placed by weights and priorities again.
    """

    def __init__(self, maximum: int = 100_000) -> None:
        self.maximum = maximum
        self._pins: OrderedDict[tuple[str, str], Pin] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pins)

    def get(self, group: str, session: str, now: float) -> Pin | None:
        pin = self._pins.get((group, session))
        if pin is None:
            return None
        if now >= pin.until:
            del self._pins[(group, session)]
            return None
        return pin

    def pin(self, group: str, session: str, target: tuple[str, str], key: str,
            until: float, shared: float = 0.0) -> None:
        pins = self._pins
        pins[(group, session)] = Pin(target, key, until, shared)
        pins.move_to_end((group, session))
        while len(pins) > self.maximum:
            pins.popitem(last=False)


class Health:
    """Cooldowns of targets and channel keys, round-robin key rotation, session pins."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None, sessions: int = 100_000) -> None:
        self.clock = clock
        self.rng = rng or random.Random()
        self.sticky = Sticky(sessions)
        #: Called with (channel name, "target" | "key") when a cooldown starts.
        self.on_cooldown: Callable[[str, str], None] | None = None
        #: Called with ("target", (channel, model) | "key", (channel, key), seconds) when a
        #: cooldown starts, and with 0 seconds when a cooling target recovers: shared state
        #: passes them to the other processes, which `apply` them.
        self.on_change: Callable[[str, tuple[str, str], float], None] | None = None
        #: Called with (group, session, target id, key, ttl) when a session pin is new, moved
        #: or due for a refresh: shared state passes it on to the other processes.
        self.on_pin: Callable[[str, str, tuple[str, str], str, float], None] | None = None
        #: Failed attempts per target, for channel health (`failures`).
        self.failures = FailedAttempts()
        self._targets: dict[tuple[str, str], _Cooldown] = {}
        self._keys: dict[tuple[str, str], float] = {}
        self._rotation: dict[str, Iterator[int]] = {}

    def plan(self, group: ModelGroup, session: str | None = None,
             targets: tuple[Target, ...] | None = None,
             scope: str | None = None) -> list[Target]:
        """Return the targets to try, in order: the session's pinned target first when it has
        one, then lower priority first, weighted-random within a tier. *targets* defaults to
        the group's, *scope* (where pins are kept) to its name. Cooling targets stay in the
        plan; `acquire` decides at attempt time."""
        if targets is None:
            targets = group.targets
        if len(targets) == 1:
            return [targets[0]]
        rng = self.rng.random
        # Efraimidis-Spirakis: sorting by u ** (1 / w) draws a weighted order without replacement.
        order = sorted(targets, key=lambda t: (t.priority, -(rng() ** (1.0 / t.weight))))
        pin = self.sticky.get(scope or group.name, session, self.clock()) \
            if session is not None else None
        if pin is not None:
            for i, target in enumerate(order):
                if target.id == pin.target:
                    order.insert(0, order.pop(i))
                    break
        return order

    def pinned_key(self, scope: str, session: str | None, target: Target) -> str | None:
        """The key *session* was last served with on *target*, when it is pinned there."""
        if session is None:
            return None
        pin = self.sticky.get(scope, session, self.clock())
        return pin.key if pin is not None and pin.target == target.id else None

    def served(self, group: ModelGroup, session: str | None, target: Target, key: str,
               scope: str | None = None) -> None:
        """*target* answered *session* with *key*: clear its cooldown and (re)pin the session
        (in *scope*, by default the group's name).

        With `on_pin` set (shared state), a new or moved pin is passed on at once, a refreshed
        one again once half its TTL went by since it last was.
        """
        self.succeeded(target)
        ttl = group.sticky_ttl
        if session is None or ttl <= 0:
            return
        scope = scope or group.name
        now = self.clock()
        shared = 0.0
        if self.on_pin is not None:
            old = self.sticky.get(scope, session, now)
            shared = old.shared if old is not None else 0.0
            if (old is None or old.target != target.id or old.key != key
                    or now - shared >= ttl / 2):
                shared = now
                self.on_pin(scope, session, target.id, key, ttl)
        self.sticky.pin(scope, session, target.id, key, now + ttl, shared)

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
        """*target* answered: end its cooldown, if it had one."""
        if self._targets.pop(target.id, None) is None:
            return
        log.warning("target %s/%s is back in service: a request succeeded after its cooldown",
                    target.channel.name, target.model)
        if self.on_change is not None:
            self.on_change("target", target.id, 0.0)

    def failed(self, target: Target, cooldown: float, reason: str = "") -> None:
        """Put *target* in cooldown for *cooldown* seconds (a cooldown of 0 clears it);
        *reason*, the failure, goes to the WARN line."""
        if cooldown > 0:
            self._targets[target.id] = _Cooldown(self.clock() + cooldown)
            log.warning("target %s/%s cooling down for %gs: %s", target.channel.name,
                        target.model, cooldown, reason or "failed")
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

    def next_key(self, channel: Channel, prefer: str | None = None) -> str | None:
        """*prefer* when the channel has it and it is not cooling down, else the channel's next
        key in rotation that is not cooling down, or None. A channel without keys (the mock)
        needs none: ""."""
        keys = channel.keys
        if not keys:
            return ""
        if prefer is not None and prefer in keys and self._key_ready(channel, prefer):
            return prefer
        rotation = self._rotation.get(channel.name)
        if rotation is None:
            rotation = self._rotation[channel.name] = itertools.count()
        now = self.clock()
        start = next(rotation)
        for offset in range(len(keys)):
            key = keys[(start + offset) % len(keys)]
            if self._key_ready(channel, key, now):
                return key
        return None

    def _key_ready(self, channel: Channel, key: str, now: float | None = None) -> bool:
        """Whether *key* is not cooling; a cooldown found ended is forgotten, with a WARN."""
        until = self._keys.get((channel.name, key))
        if until is None:
            return True
        if (self.clock() if now is None else now) < until:
            return False
        del self._keys[(channel.name, key)]
        log.warning("key #%d of channel %s is back in service: its cooldown ended",
                    _index(channel, key), channel.name)
        return True

    def target_state(self, target: Target) -> tuple[str, float]:
        """``("healthy", 0)``, ``("cooling", seconds left)`` or ``("trial", 0)`` for *target*.

        A target whose cooldown ended and that no trial request has tried yet is ``healthy``:
        the next request will be its trial.
        """
        state = self._targets.get(target.id)
        if state is None:
            return "healthy", 0.0
        if state.trial:
            return "trial", 0.0
        left = state.until - self.clock()
        return ("cooling", left) if left > 0 else ("healthy", 0.0)

    def key_cooling(self, channel: Channel, index: int) -> float:
        """Seconds until key number *index* of *channel* may be used again (0 when usable)."""
        until = self._keys.get((channel.name, channel.keys[index]))
        return 0.0 if until is None else max(0.0, until - self.clock())

    def key_failed(self, channel: Channel, key: str, cooldown: float, reason: str = "") -> None:
        """Cool *key* of *channel* for *cooldown* seconds; *reason* goes to the WARN line,
        which names the key by its index, never the key."""
        if cooldown > 0:
            self._keys[(channel.name, key)] = self.clock() + cooldown
            log.warning("key #%d of channel %s cooling down for %gs: %s",
                        _index(channel, key), channel.name, cooldown, reason or "refused")
            if self.on_cooldown is not None:
                self.on_cooldown(channel.name, "key")
            if self.on_change is not None:
                self.on_change("key", (channel.name, key), cooldown)


def _index(channel: Channel, key: str) -> int:
    """*key*'s position in *channel*'s ``keys`` (-1 once a reload removed it)."""
    return channel.keys.index(key) if key in channel.keys else -1
