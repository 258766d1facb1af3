"""`workers: N`: several processes on one port, one Redis, one database, merged metrics."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.conftest import ALICE, BOB
from tests.fakes import FakeUpstream
from tests.service import Process, free_port, serving, until
from tests.test_shared import CAROL, burst, shared_config

WORKERS = 3


def children(pid: int) -> list[int]:
    """The live child processes of *pid*."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


async def fresh(url: str, key: str, n: int) -> Counter[int]:
    """*n* requests one after the other, each on a new connection (spread over workers)."""
    statuses: Counter[int] = Counter()
    for _ in range(n):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)
                                         ) as http, http.post(
                url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                json={"model": "smart", "messages": []}) as resp:
            await resp.read()
            statuses[resp.status] += 1
    return statuses


async def scrape(url: str) -> str:
    """/metrics, on a new connection (any worker may answer)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)
                                     ) as http, http.get(url + "/metrics") as resp:
        return await resp.text()


async def requests_total(url: str) -> float:
    text = await scrape(url)
    found = re.findall(r'^coderouter_requests_total\{[^}]*status="200"[^}]*\} (\S+)$', text,
                       re.M)
    return sum(float(v) for v in found)


async def stop(gw: Process) -> int:
    gw.signal(signal.SIGTERM)
    return await gw.exit_code()


async def test_workers_share_one_port_limits_metrics_and_reloads(
        upstream: FakeUpstream, tmp_path: Path, redis_state: dict[str, Any]) -> None:
    """workers: 3 on one port: 300 concurrent requests against room for 10 admit exactly 10;
    every scrape of /metrics counts every worker's requests; a config edit reaches every
    worker; SIGTERM stops them all with every row written."""
    config = {**shared_config(upstream, tmp_path, redis_state), "workers": WORKERS}
    async with serving(config, tmp_path) as gw:
        workers = children(gw.proc.pid)
        assert len(workers) == WORKERS
        assert await burst([gw.url], ALICE, 300) == {200: 10, 429: 290}
        assert await fresh(gw.url, CAROL, 30) == {200: 20, 429: 10}

        async def merged() -> bool:  # each worker publishes its state within a second
            return [await requests_total(gw.url) for _ in range(6)] == [30.0] * 6
        await until(merged, "every scrape to count the 30 requests of all workers")
        for _ in range(6):  # gauges are not summed over workers: quotas, targets up
            text = await scrape(gw.url)
            assert 'coderouter_quota_remaining{dimension="requests",name="alice",' \
                'period="day",scope="token"} 0.0' in text
            assert 'coderouter_quota_limit{dimension="requests",name="alice",' \
                'period="day",scope="token"} 10.0' in text
            assert 'coderouter_target_up{channel="up",model="upstream-model"} 1.0' in text

        edited = dict(gw.config)
        edited["tokens"] = [t for t in gw.config["tokens"] if t["name"] != "carol"]
        gw.write_config(edited)

        polls: Counter[int] = Counter()

        async def revoked() -> bool:
            statuses = await fresh(gw.url, CAROL, 9)
            polls.update(statuses)
            return statuses == {401: 9}
        await until(revoked, "every worker to drop carol")
        assert await fresh(gw.url, BOB, 6) == {200: 6}
        assert await stop(gw) == 0
        assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
        rows = gw.rows()
    assert Counter((r["token"], r["status"]) for r in rows) == {
        ("alice", 200): 10, ("alice", 429): 290, ("carol", 200): 20,
        ("carol", 429): 10 + polls[429], ("bob", 200): 6}  # 401s write no row


async def test_a_dead_worker_is_replaced(upstream: FakeUpstream, tmp_path: Path,
                                         redis_state: dict[str, Any]) -> None:
    """kill -9 of one worker: the supervisor starts another and the port answers as before
    (connections waiting in the dead worker's own accept queue are reset by the kernel)."""
    config = {**shared_config(upstream, tmp_path, redis_state), "workers": 2}
    async with serving(config, tmp_path) as gw:
        await gw.line("2 workers serving")
        first = children(gw.proc.pid)
        os.kill(first[0], signal.SIGKILL)

        async def replaced() -> bool:
            now = children(gw.proc.pid)
            return len(now) == 2 and first[0] not in now
        await until(replaced, "a new worker")
        await gw.line("exited unexpectedly")
        async def listening() -> bool:
            try:
                return await requests_total(gw.url) >= 0
            except aiohttp.ClientError:
                return False
        await until(listening, "the new worker")
        assert await fresh(gw.url, BOB, 10) == {200: 10}
        assert await stop(gw) == 0


async def test_a_worker_that_cannot_start_stops_them_all(tmp_path: Path,
                                                         redis_state: dict[str, Any]) -> None:
    """An unusable database: the workers fail before serving and serve exits 1."""
    config = shared_config(FakeUpstream(), tmp_path, redis_state)
    config["workers"] = 2
    config["database"] = {"path": str(tmp_path / "missing" / "usage.sqlite")}
    config["listen"] = {"host": "127.0.0.1", "port": free_port()}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "coderouter", "serve", "-c",
                         str(tmp_path / "config.yaml")], capture_output=True, text=True,
        timeout=60)
    assert done.returncode == 1
    assert "before serving: stopping" in done.stderr
