"""Health on its own: plan order, cooldown with one trial, key rotation. Clock injected."""

from __future__ import annotations

import random
from collections import Counter

from coderouter.config import Channel, ModelGroup, Target
from coderouter.routing import Health

A = Channel(name="a", type="openai", base_url="http://a", keys=("k1", "k2", "k3"))
B = Channel(name="b", type="openai", base_url="http://b", keys=("k",))


def group(*targets: Target) -> ModelGroup:
    return ModelGroup(name="g", targets=targets)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plan_orders_by_priority_then_weight() -> None:
    """Tier 0 always comes first; within a tier the heavier target leads more often."""
    health = Health(rng=random.Random(1))
    heavy, light = Target(channel=A, model="x", weight=9), Target(channel=B, model="y")
    low = Target(channel=B, model="z", priority=1)
    firsts = Counter(health.plan(group(low, light, heavy))[0].model for _ in range(1000))
    assert set(firsts) == {"x", "y"}
    assert 850 < firsts["x"] < 950
    assert all(health.plan(group(low, light, heavy))[2] is low for _ in range(100))


def test_cooldown_then_a_single_trial() -> None:
    """A failed target is refused until its cooldown ends, then admitted once."""
    clock = Clock()
    health = Health(clock)
    target = Target(channel=A, model="x")
    health.failed(target, 30)
    assert not health.acquire(target)
    assert health.retry_in([target]) == 30
    clock.now += 30
    assert health.acquire(target)
    assert not health.acquire(target)  # the trial is in flight
    health.succeeded(target)
    assert health.acquire(target) and health.acquire(target)


def test_abandoned_trial_frees_the_slot() -> None:
    """A trial whose caller went away lets the next request try."""
    clock = Clock()
    health = Health(clock)
    target = Target(channel=A, model="x")
    health.failed(target, 5)
    clock.now += 5
    assert health.acquire(target)
    health.release(target)
    assert health.acquire(target)


def test_zero_cooldown_never_skips() -> None:
    """cooldown: 0 disables skipping."""
    health = Health(Clock())
    target = Target(channel=A, model="x")
    health.failed(target, 0)
    assert health.acquire(target)


def test_keys_rotate_and_cool_down() -> None:
    """Keys take turns; a cooling key is skipped; none left gives None."""
    clock = Clock()
    health = Health(clock)
    assert [health.next_key(A) for _ in range(4)] == ["k1", "k2", "k3", "k1"]
    health.key_failed(A, "k2", 10)
    assert {health.next_key(A) for _ in range(6)} == {"k1", "k3"}
    health.key_failed(B, "k", 10)
    assert health.next_key(B) is None
    clock.now += 10
    assert health.next_key(B) == "k"
