"""Shared state in a real Redis: gateway processes that count every limit once, together."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from coderouter.estimate import estimate_tokens
from tests.conftest import ALICE, BOB, MakeUpstream, StartGateway, base_config
from tests.fakes import Behaviour, FakeUpstream
from tests.servers import Redis
from tests.service import Process, serving, until
from tests.test_dashboard_api import dead_url
from tests.test_quotas import CAROL
from tests.test_sticky import three_targets

PROCESSES = 3


def shared_config(upstream: FakeUpstream, tmp_path: Path, state: dict[str, Any],
                  ) -> dict[str, Any]:
    """alice: 10 requests a day; carol (team): 20 rpm; bob: 4 concurrent, any model."""
    config = base_config(upstream.url, tmp_path)
    config["state"] = state
    config["tokens"][0]["quota"] = {"requests": 10, "period": "day"}
    config["tokens"][1]["models"] = ["smart"]
    config["tokens"][1]["rate_limit"] = {"concurrent": 4}
    config["tokens"].append({"name": "carol", "key": CAROL, "group": "team",
                             "rate_limit": {"rpm": 20}})
    return config


@contextlib.asynccontextmanager
async def processes(config: dict[str, Any], tmp_path: Path,
                    count: int = PROCESSES) -> AsyncIterator[list[Process]]:
    """*count* gateway processes on one config (one database, one Redis), each on its port."""
    async with contextlib.AsyncExitStack() as stack:
        started = []
        for n in range(count):
            home = tmp_path / f"p{n}"
            home.mkdir()
            started.append(await stack.enter_async_context(serving(config, home)))
        yield started


async def post(http: aiohttp.ClientSession, url: str, key: str,
               body: dict[str, Any] | None = None) -> int:
    async with http.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json=body or {"model": "smart", "messages": []}) as resp:
        await resp.read()
        return resp.status


async def burst(urls: list[str], key: str, n: int,
                body: dict[str, Any] | None = None) -> Counter[int]:
    """*n* concurrent requests spread over *urls*; how many got each status."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        statuses = await asyncio.gather(*(post(http, urls[i % len(urls)], key, body)
                                          for i in range(n)))
    return Counter(statuses)


#: A request whose reservation (prompt estimate + max_tokens) is exactly the 15 tokens the
#: fake upstream reports, so settling neither frees nor takes room: admissions are exact.
EXACT = {"model": "smart", "messages": [], "max_tokens": 15 - estimate_tokens(
    {"model": "smart", "messages": []})}
DAVE = "sk-cr-dave-0123456789abcdefghijklmnopqr"
ADMIN = "cr-admin-shared-0123456789abcdef"
ERIN = "sk-cr-erin-0123456789abcdefghijklmnopqr"


async def test_limits_hold_across_processes(upstream: FakeUpstream, tmp_path: Path,
                                            redis_state: dict[str, Any]) -> None:
    """Three processes sharing Redis: 300 concurrent requests against a quota with room for 10
    admit exactly 10; 90 against 20 rpm admit 20; 30 held ones against 4 concurrent admit 4."""
    async with processes(shared_config(upstream, tmp_path, redis_state), tmp_path) as gws:
        urls = [gw.url for gw in gws]
        assert await burst(urls, ALICE, 300) == {200: 10, 429: 290}
        assert await burst(urls, CAROL, 90) == {200: 20, 429: 70}

        hold = asyncio.Event()
        upstream.default = Behaviour(hold=hold)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            held = [asyncio.create_task(post(http, urls[i % 3], BOB)) for i in range(4)]
            await until(lambda: _true(upstream.in_flight == 4), "4 requests at the upstream")
            refused = await asyncio.gather(*(post(http, urls[i % 3], BOB) for i in range(26)))
            hold.set()
            assert sorted(await asyncio.gather(*held)) == [200] * 4
        assert Counter(refused) == {429: 26}

        async def all_rows() -> bool:
            return len(gws[0].rows()) == 420
        await until(all_rows, "every process's rows")
        rows = gws[0].rows()
    by_token = Counter((r["token"], r["status"]) for r in rows)
    assert by_token == {("alice", 200): 10, ("alice", 429): 290, ("carol", 200): 20,
                        ("carol", 429): 70, ("bob", 200): 4, ("bob", 429): 26}


async def test_token_quota_and_tpm_hold_across_processes(
        upstream: FakeUpstream, tmp_path: Path, redis_state: dict[str, Any]) -> None:
    """Reservations count across processes: 150 concurrent requests of 15 tokens against a
    100-token quota admit 7 (the last one crosses it by no more than its reservation), and
    against 60 tokens per minute admit 4."""
    config = shared_config(upstream, tmp_path, redis_state)
    config["tokens"] += [
        {"name": "dave", "key": DAVE, "quota": {"tokens": 100, "period": "day"}},
        {"name": "erin", "key": ERIN, "rate_limit": {"tpm": 60}}]
    async with processes(config, tmp_path) as gws:
        urls = [gw.url for gw in gws]
        assert await burst(urls, DAVE, 150, EXACT) == {200: 7, 429: 143}
        assert await burst(urls, ERIN, 150, EXACT) == {200: 4, 429: 146}

        async def all_rows() -> bool:
            return len(gws[0].rows()) == 300
        await until(all_rows, "every process's rows")
        used = Counter()
        for row in gws[0].rows():
            used[row["token"]] += row["total_tokens"]
    assert used == {"dave": 105, "erin": 60}


async def test_cooldown_in_one_process_is_seen_by_the_others(
        upstream: FakeUpstream, tmp_path: Path, redis_state: dict[str, Any]) -> None:
    """A target cooled by a failure in one process is skipped by the others at once."""
    config = shared_config(upstream, tmp_path, redis_state)
    config["model_groups"][0]["cooldown"] = "60s"
    config["model_groups"][0]["retry"] = {"attempts": 1}
    async with processes(config, tmp_path) as gws:
        upstream.then(status=500)
        async with aiohttp.ClientSession() as http:
            assert await post(http, gws[0].url, CAROL) == 502

            async def cooled_everywhere() -> bool:
                statuses = [await post(http, gw.url, CAROL) for gw in gws[1:]]
                return statuses == [502, 502]
            await until(cooled_everywhere, "the cooldown in the other processes")
            seen = len(upstream.seen)
            assert [await post(http, gw.url, CAROL) for gw in gws for _ in range(3)] == [
                502] * 9
        assert len(upstream.seen) == seen  # no process tries the cooling target


async def test_a_failed_attempt_shows_in_every_processs_channel_health(
        upstream: FakeUpstream, tmp_path: Path, redis_state: dict[str, Any]) -> None:
    """A request that failed over from a dead target in one process: every process's
    /admin/channels books that failure on the dead target."""
    config = shared_config(upstream, tmp_path, redis_state)
    config["admin"] = {"key": ADMIN}
    config["channels"].append({"name": "dead", "type": "openai", "base_url": dead_url(),
                               "keys": ["sk-dead-0123456789"]})
    config["model_groups"][0]["targets"] = [
        {"channel": "dead", "model": "dead-model", "priority": 0},
        {"channel": "up", "model": "upstream-model", "priority": 1}]
    async with processes(config, tmp_path) as gws:
        async with aiohttp.ClientSession() as http:
            assert await post(http, gws[0].url, CAROL) == 200

            async def dead_target(url: str) -> dict[str, Any]:
                async with http.get(url + "/admin/channels", headers={
                        "Authorization": f"Bearer {ADMIN}"}) as resp:
                    body = await resp.json()
                return body["groups"][0]["targets"][0]  # type: ignore[no-any-return]

            async def everywhere() -> bool:
                return [(await dead_target(gw.url))["errors"] for gw in gws] == [1] * len(gws)
            await until(everywhere, "the failure in every process's channel health")
            for gw in gws:
                dead = await dead_target(gw.url)
                assert (dead["channel"], dead["requests"], dead["errors"]) == ("dead", 1, 1)
                assert dead["last_error"]["error"] == \
                    "upstream connection failed: ClientConnectorError"


async def test_a_killed_process_releases_its_reservations_after_the_lease(
        upstream: FakeUpstream, tmp_path: Path, redis_state: dict[str, Any]) -> None:
    """kill -9 of a process holding bob's 4 concurrent slots: the others refuse bob until the
    lease runs out, then admit him; requests the dead process held are not counted twice."""
    config = shared_config(upstream, tmp_path, {**redis_state, "lease": "2s"})
    hold = asyncio.Event()
    upstream.default = Behaviour(hold=hold)
    async with processes(config, tmp_path, 2) as (victim, survivor):
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            held = [asyncio.create_task(post(http, victim.url, BOB)) for _ in range(4)]
            await until(lambda: _true(upstream.in_flight == 4), "4 requests at the upstream")
            victim.proc.send_signal(signal.SIGKILL)
            await victim.proc.wait()
            assert await post(http, survivor.url, BOB) == 429
            for task in held:
                with contextlib.suppress(aiohttp.ClientError):
                    await task
            hold.set()

            async def admitted() -> bool:
                return await post(http, survivor.url, BOB) == 200
            await until(admitted, "the dead process's reservations to expire")
            again = asyncio.Event()
            upstream.default = Behaviour(hold=again)
            tries = [asyncio.create_task(post(http, survivor.url, BOB)) for _ in range(10)]
            await until(lambda: _true(upstream.in_flight == 4), "4 slots in use again")
            await until(lambda: _true(sum(t.done() for t in tries) == 6), "6 refusals")
            again.set()
            assert Counter(await asyncio.gather(*tries)) == {200: 4, 429: 6}


async def _true(value: bool) -> bool:
    return value


@pytest.fixture
def own_redis() -> Any:
    """A Redis of this test's own, to stop and start."""
    server = Redis()
    yield server
    server.close()


async def test_redis_down_closed_refuses_then_rebuilds(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        own_redis: Redis) -> None:
    """on_state_failure closed: with Redis gone requests get 503 saying why; when it comes
    back empty, the counters are rebuilt from the usage table and the quota still holds."""
    config = shared_config(upstream, tmp_path, {"redis": own_redis.url})
    gateway = await start_gateway(config)
    async with aiohttp.ClientSession() as http:
        assert [await post(http, gateway.url, ALICE) for _ in range(6)] == [200] * 6
        own_redis.stop()
        async with http.post(gateway.url + "/v1/chat/completions",
                             headers={"Authorization": f"Bearer {ALICE}"},
                             json={"model": "smart", "messages": []}) as resp:
            body = await resp.json()
            assert resp.status == 503 and resp.headers["Retry-After"] == "1"
        assert body["error"]["code"] == "storage_unavailable"
        assert "shared state is unavailable (Redis: " in body["error"]["message"]
        own_redis.start()

        polls: list[int] = []

        async def back() -> bool:
            polls.append(await post(http, gateway.url, ALICE))
            return polls[-1] == 200
        await until(back, "Redis to be used again")
        assert [await post(http, gateway.url, ALICE) for _ in range(4)] == [200, 200, 200, 429]
    rows = await gateway.rows()
    assert Counter(r["status"] for r in rows) == {200: 10, 503: len(polls), 429: 1}


def test_check_refuses_workers_without_redis(tmp_path: Path) -> None:
    """`check` refuses several workers without shared state, saying why."""
    config = base_config("http://127.0.0.1:9/v1", tmp_path)
    config["workers"] = 2
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "coderouter", "check", "-c",
                           str(tmp_path / "config.yaml")], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1
    assert "  workers (line " in done.stderr
    assert ("): 2 workers need state.redis: each process would count quotas, rate "
            "limits and cooldowns on its own, so every limit would be multiplied by the "
            "number of workers") in done.stderr


async def test_redis_down_open_counts_locally_then_reconciles(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        own_redis: Redis) -> None:
    """on_state_failure open: with Redis unresponsive, requests are admitted against this
    process's counters, rebuilt from the usage table (the quota still holds); when it answers
    again, what was used meanwhile is added to Redis, so the shared counters are exact."""
    config = shared_config(upstream, tmp_path, {"redis": own_redis.url, "lease": "3s",
                                                "on_state_failure": "open"})
    gateway = await start_gateway(config)
    async with aiohttp.ClientSession() as http:
        assert [await post(http, gateway.url, ALICE) for _ in range(4)] == [200] * 4
        assert own_redis.proc is not None
        own_redis.proc.send_signal(signal.SIGSTOP)  # a partition: data kept, no answers
        try:
            # this process's counters start from the table: 4 used, room for 6
            statuses = [await post(http, gateway.url, ALICE) for _ in range(7)]
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        quotas = gateway.state.quotas

        async def reconciled() -> bool:
            health = quotas.shared_health()
            return health is not None and health.up and not health.pending
        await until(reconciled, "the local usage to reach Redis")
        async with http.get(gateway.url + "/v1/usage",
                            headers={"Authorization": f"Bearer {ALICE}"}) as resp:
            report = await resp.json()
        assert statuses == [200] * 6 + [429]
        assert report["quotas"][0]["requests"] == {"limit": 10, "used": 10, "reserved": 0,
                                                   "remaining": 0}
        assert await post(http, gateway.url, ALICE) == 429


async def test_session_pins_follow_the_session_across_processes(
        make_upstream: MakeUpstream, tmp_path: Path, redis_state: dict[str, Any]) -> None:
    """A session served by one process is pinned in the others too: its next request, made
    to another process, goes to the same target (20 sessions over weighted targets)."""
    upstreams = [await make_upstream() for _ in range(3)]
    config = {**three_targets(upstreams, tmp_path), "state": redis_state}
    sessions = [f"s{n}" for n in range(20)]
    async with processes(config, tmp_path, 2) as (first, second), aiohttp.ClientSession() as http:
        for session in sessions:
            assert await chat_in(http, first.url, session) == 200

        await asyncio.sleep(0.5)  # published pins arrive within moments (no way to observe)
        for session in sessions:
            assert await chat_in(http, second.url, session) == 200

        async def all_rows() -> bool:
            return len(first.rows()) == 40
        await until(all_rows, "both processes' rows")
        by_session: dict[str, list[str]] = {}
        for row in first.rows():
            by_session.setdefault(row["session"], []).append(row["channel"])
    assert len({channels[0] for channels in by_session.values()}) > 1  # weights spread them
    assert {s: len(set(channels)) for s, channels in by_session.items()} == {
        f"opencode:{s}": 1 for s in sessions}


async def chat_in(http: aiohttp.ClientSession, url: str, session: str) -> int:
    async with http.post(url + "/v1/chat/completions", headers={
            "Authorization": f"Bearer {ALICE}", "x-session-id": session},
            json={"model": "smart", "messages": [{"role": "user", "content": session}]}) as r:
        await r.read()
        return r.status
