"""Quotas through a Redis outage (``on_state_failure: open``), against a real redis-server
killed or paused under a running gateway, with a usage table of realistic size.

This process's counters must be rebuilt before they admit anything: from the usage table,
plus what the process counted since, plus its own requests in flight. Otherwise a requests
quota of 10 let 14 calls through (13 with requests in flight when Redis went away).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
import pytest

from coderouter.usage import COLUMNS, Record, migrate, row_of
from tests.conftest import ALICE, StartGateway, base_config
from tests.fakes import Behaviour, FakeUpstream
from tests.servers import Redis
from tests.service import until

#: Rows of other callers over the last 30 days, besides alice's.
TABLE_ROWS = 300_000
#: alice's requests quota per day, and what her rows today already used of it.
QUOTA, USED = 10, 6


async def _build_table(path: Path, now: float) -> None:
    """A migrated usage table with `TABLE_ROWS` rows of 500 callers, and `USED` of alice's
    today, inserted in one transaction."""
    async with aiosqlite.connect(path) as db:
        await migrate(db)
    rows = [row_of(Record(ts=now - 60 - (i * 8.6) % (30 * 86400), request_id=f"r{i}",
                          endpoint="/v1/chat/completions", token=f"user{i % 500}",
                          token_group="others", model="smart", channel="up",
                          upstream_model="upstream-model", status=200, prompt_tokens=11,
                          completion_tokens=4, total_tokens=15, cost=0.00002,
                          usage_source="upstream", attempts=1))
            for i in range(TABLE_ROWS)]
    rows += [row_of(Record(ts=now - 30 - i, request_id=f"a{i}", endpoint="/v1/chat/completions",
                           token="alice", token_group="team", model="smart", channel="up",
                           status=200, total_tokens=15, usage_source="upstream", attempts=1))
             for i in range(USED)]
    insert = (f"INSERT INTO usage ({', '.join(COLUMNS)}) "
              f"VALUES ({', '.join('?' * len(COLUMNS))})")
    with sqlite3.connect(path) as db:
        db.executemany(insert, rows)


@pytest.fixture(scope="module")
def big_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("table") / "usage.sqlite"
    asyncio.run(_build_table(path, time.time()))
    return path


@pytest.fixture
def own_redis() -> Iterator[Redis]:
    """A Redis of this test's own, to kill or pause."""
    server = Redis()
    yield server
    if server.proc is not None:
        server.proc.send_signal(signal.SIGCONT)
    server.close()


def outage_config(upstream: FakeUpstream, tmp_path: Path, table: Path,
                  redis: Redis) -> dict[str, Any]:
    """alice may make `QUOTA` requests a day; the copied table says she made `USED` today."""
    shutil.copy(table, tmp_path / "usage.sqlite")
    config = base_config(upstream.url, tmp_path)
    config["state"] = {"redis": redis.url, "on_state_failure": "open", "lease": "3s"}
    config["tokens"][0]["quota"] = {"requests": QUOTA, "period": "day"}
    return config


async def post(http: aiohttp.ClientSession, url: str) -> int:
    async with http.post(url + "/v1/chat/completions", headers={
            "Authorization": f"Bearer {ALICE}"}, json={"model": "smart", "messages": []}) as r:
        await r.read()
        return r.status


def fail(redis: Redis, how: str) -> None:
    assert redis.proc is not None
    if how == "kill":
        redis.stop()
    else:  # a partition: the connection stays open, nothing answers
        redis.proc.send_signal(signal.SIGSTOP)


async def spaced(http: aiohttp.ClientSession, url: str, count: int) -> list[asyncio.Task[int]]:
    """*count* requests started 50 ms apart, each on its way before the last one ends."""
    tasks = []
    for _ in range(count):
        tasks.append(asyncio.create_task(post(http, url)))
        await asyncio.sleep(0.05)
    return tasks


@pytest.mark.parametrize("how", ["kill", "pause"])
async def test_a_redis_outage_lets_no_more_through_than_the_quota(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path, big_table: Path,
        own_redis: Redis, how: str) -> None:
    """Redis goes away with 4 of alice's 10 requests left: one request finds out, then 20
    more come 50 ms apart while the counters are rebuilt. 4 reach the upstream."""
    gateway = await start_gateway(outage_config(upstream, tmp_path, big_table, own_redis))
    quotas = gateway.state.quotas

    async def detected() -> bool:
        health = quotas.shared_health()
        return health is not None and not health.up
    async with aiohttp.ClientSession() as http:
        fail(own_redis, how)
        first = asyncio.create_task(post(http, gateway.url))
        await until(detected, "the gateway to find Redis gone")
        statuses = await asyncio.gather(first, *await spaced(http, gateway.url, 20))
    assert Counter(statuses) == {200: QUOTA - USED, 429: 21 - (QUOTA - USED)}
    assert len(upstream.seen) == QUOTA - USED
    rows = await gateway.rows()
    assert Counter(r["status"] for r in rows if r["token"] == "alice") == {
        200: QUOTA, 429: 21 - (QUOTA - USED)}


@pytest.mark.parametrize("how", ["kill", "pause"])
async def test_requests_in_flight_when_redis_fails_still_count(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path, big_table: Path,
        own_redis: Redis, how: str) -> None:
    """3 of alice's requests are at the upstream when Redis goes away: with 6 used, 1 more
    is admitted, not 4."""
    gateway = await start_gateway(outage_config(upstream, tmp_path, big_table, own_redis))
    hold = asyncio.Event()
    upstream.default = Behaviour(hold=hold)
    async with aiohttp.ClientSession() as http:
        held = [asyncio.create_task(post(http, gateway.url)) for _ in range(3)]

        async def at_upstream(count: int) -> bool:
            return upstream.in_flight == count
        await until(lambda: at_upstream(3), "3 requests at the upstream")
        fail(own_redis, how)
        later = await spaced(http, gateway.url, 10)

        async def decided() -> bool:
            return sum(t.done() for t in later) + upstream.in_flight - 3 == len(later)
        await until(decided, "every later request admitted or refused")
        hold.set()
        statuses = await asyncio.gather(*held, *later)
    assert Counter(statuses) == {200: 4, 429: 9}
    assert len(upstream.seen) == QUOTA - USED


async def test_requests_in_flight_survive_redis_restarting_empty(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path, big_table: Path,
        own_redis: Redis) -> None:
    """Redis restarts empty (no persistence) while 3 of alice's requests are at the upstream:
    rebuilt from the table (6 used), it holds them again, so 1 more is admitted, not 4, and
    their usage is counted when they finish. (Requests in the second after the failure is
    seen are refused with 503: closed mode.)"""
    config = outage_config(upstream, tmp_path, big_table, own_redis)
    config["state"]["on_state_failure"] = "closed"
    gateway = await start_gateway(config)
    hold = asyncio.Event()
    upstream.default = Behaviour(hold=hold)
    async with aiohttp.ClientSession() as http:
        held = [asyncio.create_task(post(http, gateway.url)) for _ in range(3)]

        async def at_upstream(count: int) -> bool:
            return upstream.in_flight == count
        await until(lambda: at_upstream(3), "3 requests at the upstream")
        own_redis.stop()
        own_redis.start()
        later = await spaced(http, gateway.url, 40)

        async def decided() -> bool:
            return sum(t.done() for t in later) + upstream.in_flight - 3 == len(later)
        await until(decided, "every later request admitted or refused")
        hold.set()
        statuses = await asyncio.gather(*held, *later)
        assert statuses.count(200) == 4 and statuses.count(429) > 0
        assert len(upstream.seen) == QUOTA - USED

        async def counted() -> bool:
            async with http.get(gateway.url + "/v1/usage",
                                headers={"Authorization": f"Bearer {ALICE}"}) as resp:
                report = await resp.json()
            return resp.status == 200 and report["quotas"][0]["requests"]["used"] == QUOTA
        await until(counted, "the 4 requests counted in Redis")


async def test_requests_admitted_during_an_outage_count_when_redis_comes_back_empty(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path, big_table: Path,
        own_redis: Redis) -> None:
    """Open mode: 3 requests admitted on this process's counters while Redis was down are
    still at the upstream when it comes back empty: rebuilt from the table (6 used), it holds
    them, so 1 more is admitted, not 4, and all 4 are counted when they finish."""
    gateway = await start_gateway(outage_config(upstream, tmp_path, big_table, own_redis))
    hold = asyncio.Event()
    upstream.default = Behaviour(hold=hold)
    async with aiohttp.ClientSession() as http:
        fail(own_redis, "kill")
        held = [asyncio.create_task(post(http, gateway.url)) for _ in range(3)]

        async def at_upstream(count: int) -> bool:
            return upstream.in_flight == count
        await until(lambda: at_upstream(3), "3 requests admitted during the outage")
        own_redis.start()
        later = await spaced(http, gateway.url, 40)

        async def decided() -> bool:
            return sum(t.done() for t in later) + upstream.in_flight - 3 == len(later)
        await until(decided, "every later request admitted or refused")
        hold.set()
        statuses = await asyncio.gather(*held, *later)
        assert statuses.count(200) == 4
        assert len(upstream.seen) == QUOTA - USED

        async def counted() -> bool:
            async with http.get(gateway.url + "/v1/usage",
                                headers={"Authorization": f"Bearer {ALICE}"}) as resp:
                report = await resp.json()
            return report["quotas"][0]["requests"]["used"] == QUOTA
        await until(counted, "the 4 requests counted in Redis")
