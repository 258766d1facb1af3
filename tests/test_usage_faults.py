"""The usage database failing under the gateway: deleted, replaced, unwritable."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import ALICE, Running, StartGateway, base_config
from tests.fakes import FakeUpstream
from tests.service import AS_FILE_OWNER, free_port, serving, until
from tests.test_usage_report import ADMIN

AUTH = {"Authorization": f"Bearer {ALICE}"}


async def chat(url: str, n: int) -> list[int]:
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(n):
            async with http.post(url + "/v1/chat/completions", headers=AUTH,
                                 json={"model": "smart", "messages": []}) as resp:
                await resp.read()
                statuses.append(resp.status)
        return statuses


async def admin_usage(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(
            url + "/admin/usage", headers={"Authorization": f"Bearer {ADMIN}"}) as resp:
        return resp.status, await resp.json()


def request_count(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM usage").fetchone()[0])


async def test_deleted_database_is_recreated_with_its_rows(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Deleting the database file while serving: the next batch notices, puts the file back
    with every row written so far, logs it as critical, and later rows land there too."""
    gateway: Running = await start_gateway(base_config(upstream.url, tmp_path))
    path = Path(gateway.state.holder.current.database.path)
    assert await chat(gateway.url, 3) == [200] * 3
    await gateway.state.writer.flush()
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        name.unlink(missing_ok=True)
    assert await chat(gateway.url, 2) == [200] * 2
    with caplog.at_level(logging.CRITICAL, "coderouter.usage"):
        await gateway.state.writer.flush()
    assert any("was deleted while serving" in m for m in caplog.messages)
    await gateway.stop()
    assert request_count(path) == 5


async def test_replaced_database_is_followed(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A file renamed over the database (a restored backup): rows go to the new file."""
    gateway: Running = await start_gateway(base_config(upstream.url, tmp_path))
    path = Path(gateway.state.holder.current.database.path)
    assert await chat(gateway.url, 2) == [200] * 2
    await gateway.state.writer.flush()
    backup = tmp_path / "backup.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("VACUUM INTO ?", (str(backup),))
    os.replace(backup, path)
    assert await chat(gateway.url, 1) == [200]
    with caplog.at_level(logging.CRITICAL, "coderouter.usage"):
        await gateway.state.writer.flush()
    assert any("was replaced by another file" in m for m in caplog.messages)
    await gateway.stop()
    assert request_count(path) == 3


def unwritable_config(upstream_url: str, tmp_path: Path) -> dict[str, Any]:
    config = base_config(upstream_url, tmp_path)
    config["admin"] = {"key": ADMIN}
    return config


def test_serve_refuses_an_unwritable_database(tmp_path: Path) -> None:
    """A read-only database file: serve exits 1 before listening, saying what to fix."""
    path = tmp_path / "usage.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    path.chmod(0o444)
    config = unwritable_config("http://127.0.0.1:9/v1", tmp_path)
    config["listen"] = {"host": "127.0.0.1", "port": free_port()}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([*AS_FILE_OWNER, sys.executable, "-m", "coderouter", "serve", "-c",
                           str(tmp_path / "config.yaml")], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stderr
    assert f"the usage database {path} is not writable" in done.stderr
    assert "readonly database" in done.stderr
    assert "Traceback" not in done.stderr


async def test_read_only_database_recovers_when_permissions_are_fixed(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    """The database replaced by a read-only file while serving: requests are still answered,
    /admin/usage answers 503 with the reason, and once the file is writable again the kept
    rows land without a restart."""
    async with serving(unwritable_config(upstream.url, tmp_path), tmp_path,
                       prefix=AS_FILE_OWNER) as gw:
        path = tmp_path / "usage.sqlite"
        assert await chat(gw.url, 2) == [200] * 2
        assert (await admin_usage(gw.url))[0] == 200
        copy = tmp_path / "copy.sqlite"
        with sqlite3.connect(path) as db:
            db.execute("VACUUM INTO ?", (str(copy),))
        copy.chmod(0o444)
        os.replace(copy, path)
        assert await chat(gw.url, 3) == [200] * 3
        status, body = await admin_usage(gw.url)
        assert status == 503, body
        assert body["error"]["code"] == "storage_unavailable"
        assert "readonly database" in body["error"]["message"]
        assert "3 rows are kept in memory" in body["error"]["message"]
        await gw.line("was replaced by another file")
        path.chmod(0o644)

        async def written() -> bool:
            return request_count(path) == 5
        await until(written, "the kept rows to be written")
        status, body = await admin_usage(gw.url)
        assert status == 200 and body["data"][0]["requests"] == 5
