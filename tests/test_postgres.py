"""Usage rows in a real PostgreSQL (`database.url`): writes, reads, quota seed, outages."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from coderouter.config import Database
from coderouter.usage import COLUMNS, DatabaseUnavailable, Record, row_of
from coderouter.usage.postgres import PostgresWriter
from coderouter.usage.schema import MIGRATIONS
from coderouter.usage.spool import Spool
from tests.conftest import ALICE, StartGateway, base_config
from tests.fakes import FakeUpstream
from tests.servers import Postgres
from tests.service import free_port, until
from tests.test_usage_report import ADMIN

AUTH = {"Authorization": f"Bearer {ALICE}"}


def pg_config(upstream: FakeUpstream, tmp_path: Path, url: str,
              **database: Any) -> dict[str, Any]:
    config = base_config(upstream.url, tmp_path)
    config["database"] = {"url": url, "spool": str(tmp_path / "spool"), **database}
    config["admin"] = {"key": ADMIN}
    return config


async def chat(http: aiohttp.ClientSession, url: str) -> int:
    async with http.post(url + "/v1/chat/completions", headers=AUTH,
                         json={"model": "smart", "messages": []}) as resp:
        await resp.read()
        return resp.status


def pg_rows(server: Postgres, url: str) -> int:
    return int(server.sql("SELECT count(*) FROM usage", url.rsplit("/", 1)[1]))


async def test_rows_reports_and_quota_seed(start_gateway: StartGateway, upstream: FakeUpstream,
                                           tmp_path: Path, postgres_server: Postgres,
                                           postgres_url: str) -> None:
    """Rows land in PostgreSQL with the full schema; /admin/usage and `coderouter usage` read
    them; a restarted gateway rebuilds the quota from them (the 4th request of 3 is refused)."""
    config = pg_config(upstream, tmp_path, postgres_url)
    config["tokens"][0]["quota"] = {"requests": 3, "period": "day"}
    gateway = await start_gateway(config)
    async with aiohttp.ClientSession() as http:
        assert [await chat(http, gateway.url) for _ in range(3)] == [200] * 3
        async with http.get(gateway.url + "/admin/usage",
                            headers={"Authorization": f"Bearer {ADMIN}"}) as resp:
            body = await resp.json()
    assert body["data"] == [{"token": "alice", "requests": 3, "prompt_tokens": 33,
                             "completion_tokens": 12, "total_tokens": 45, "cost": 5.2e-05,
                             "errors": 0, "cached_tokens": 9, "cache_write_5m_tokens": 0,
                             "background_requests": 0, "background_cost": 0.0, "refused": 0,
                             "cache_write_1h_tokens": 0, "cache_hit_ratio": 0.2727}]
    await gateway.stop()
    db = postgres_url.rsplit("/", 1)[1]
    assert postgres_server.sql(
        "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM "
        "information_schema.columns WHERE table_name = 'usage'", db) == ",".join(
        sorted(["id", *COLUMNS]))
    assert postgres_server.sql("SELECT max(version) FROM schema_migrations", db) == str(
        len(MIGRATIONS))
    assert postgres_server.sql("SELECT request_id IS NOT NULL, status, total_tokens, "
                               "channel FROM usage ORDER BY id LIMIT 1", db) == "t|200|15|up"

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "coderouter", "usage", "--json", "-c",
                           str(tmp_path / "config.yaml")], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout) == body["data"]

    again = await start_gateway(config)
    async with aiohttp.ClientSession() as http:
        assert await chat(http, again.url) == 429


async def test_postgres_down_under_load_loses_no_row(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        postgres_server: Postgres, postgres_url: str) -> None:
    """PostgreSQL stopped under load: every request is answered, rows past the memory bound
    are spooled to disk, and once it is back every row is written exactly once."""
    gateway = await start_gateway(pg_config(upstream, tmp_path, postgres_url, buffer=25))
    writer = gateway.state.writer
    assert isinstance(writer, PostgresWriter)
    writer.interval = 0.05
    total, answered, statuses = 360, 0, []
    stopped, spooled, refused = asyncio.Event(), 0, {}

    async def client(http: aiohttp.ClientSession, share: int) -> None:
        nonlocal answered
        for _ in range(share):
            statuses.append(await chat(http, gateway.url))
            answered += 1

    async def outage() -> None:
        nonlocal spooled
        await until(lambda: _true(answered >= 60), "60 answers")
        await asyncio.to_thread(postgres_server.stop)
        stopped.set()
        await until(lambda: _true(writer.spooled > 0), "rows spooled to disk")
        spooled = writer.spooled
        async with aiohttp.ClientSession() as http, http.get(
                gateway.url + "/admin/usage",
                headers={"Authorization": f"Bearer {ADMIN}"}) as resp:
            refused.update(status=resp.status, **(await resp.json())["error"])
        await asyncio.to_thread(postgres_server.start)

    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(outage(), *(client(http, total // 6) for _ in range(6)))
    finally:
        if not stopped.is_set() or postgres_server_down(postgres_server):
            await asyncio.to_thread(postgres_server.start)
    assert statuses == [200] * total
    assert spooled > 0 and writer.failures > 0
    assert refused["status"] == 503 and refused["code"] == "storage_unavailable"
    assert "spooled to disk, written when it recovers" in refused["message"]

    async def all_written() -> bool:
        return await asyncio.to_thread(pg_rows, postgres_server, postgres_url) == total
    await until(all_written, f"{total} rows in PostgreSQL")
    await gateway.stop()
    db = postgres_url.rsplit("/", 1)[1]
    assert postgres_server.sql("SELECT count(DISTINCT request_id) FROM usage", db) == str(total)
    assert not list((tmp_path / "spool").glob("*.rows"))


def postgres_server_down(server: Postgres) -> bool:
    try:
        server.sql("SELECT 1")
    except subprocess.CalledProcessError:
        return True
    return False


async def _true(value: bool) -> bool:
    return value


async def test_spool_of_a_dead_process_is_written_at_start(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        postgres_server: Postgres, postgres_url: str) -> None:
    """Rows a process spooled before it died are written by the next one using the spool."""
    spool = Spool(str(tmp_path / "spool"))
    spool.append([row_of(Record(ts=1000.0 + n, request_id=f"old{n}", endpoint="/v1/messages",
                                status=200, token="alice")) for n in range(7)])
    spool.release()
    gateway = await start_gateway(pg_config(upstream, tmp_path, postgres_url))
    await gateway.state.writer.flush()
    db = postgres_url.rsplit("/", 1)[1]
    assert postgres_server.sql("SELECT string_agg(request_id, ',' ORDER BY ts) FROM usage",
                               db) == ",".join(f"old{n}" for n in range(7))
    assert not list((tmp_path / "spool").glob("*.rows"))


async def test_unreachable_postgres_refuses_to_start_without_the_password(
        tmp_path: Path) -> None:
    """No server at the URL: open fails saying where, with the password masked."""
    url = f"postgresql://coder:s3cret-pw@127.0.0.1:{free_port()}/usage"
    writer = PostgresWriter(Database(url=url, spool=str(tmp_path)))
    with pytest.raises(DatabaseUnavailable) as raised:
        await writer.open()
    message = str(raised.value)
    assert f"postgresql://coder:***@127.0.0.1:{url.split(':')[3]}" in message
    assert "s3cret-pw" not in message
