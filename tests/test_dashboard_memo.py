"""The dashboard's short-lived answers: long ranges are reused briefly, short ones never."""

from __future__ import annotations

import asyncio

import pytest

from coderouter.dashboard.memo import Memo, ttl_for
from tests.fakes import FakeClock


def test_ttl_by_range_length() -> None:
    """The 24 h view (up to 25 h) is never kept; 7 days for 10 s; 30 days for 30 s."""
    assert ttl_for(25 * 3600) == 0
    assert ttl_for(7 * 86400 + 6 * 3600) == 10
    assert ttl_for(30 * 86400 + 86400) == 30


async def test_kept_until_it_expires_then_computed_again() -> None:
    """Within its TTL an answer is reused; after it, or with TTL 0, it is computed anew."""
    clock = FakeClock(100.0)
    memo = Memo(clock=clock)
    calls = []

    async def compute() -> int:
        calls.append(clock.now)
        return len(calls)

    assert await memo.get("k", 30, compute) == 1
    clock.now += 29.9
    assert await memo.get("k", 30, compute) == 1
    assert await memo.get("other", 30, compute) == 2
    clock.now += 0.2
    assert await memo.get("k", 30, compute) == 3
    assert await memo.get("k", 0, compute) == 4
    assert await memo.get("k", 0, compute) == 5


async def test_concurrent_askers_share_one_computation_and_failures_are_not_kept() -> None:
    """Two callers asking at once wait for one query; a failed one is not kept."""
    memo = Memo(clock=FakeClock(0.0))
    release = asyncio.Event()
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "answer"

    first = asyncio.create_task(memo.get("k", 30, slow))
    second = asyncio.create_task(memo.get("k", 30, slow))
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(first, second) == ["answer", "answer"]
    assert calls == 1

    async def broken() -> str:
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError):
        await memo.get("bad", 30, broken)
    assert await memo.get("bad", 30, slow) == "answer"


async def test_size_is_bounded() -> None:
    memo = Memo(size=3, clock=FakeClock(0.0))

    async def one() -> int:
        return 1

    for key in range(10):
        await memo.get(key, 30, one)
    assert len(memo._kept) == 3
