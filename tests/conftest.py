"""Fixtures: a fake upstream and the real gateway, each a real server on a loopback port."""

from __future__ import annotations

import itertools
import os
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from coderouter.app import create_app
from coderouter.config import hash_key
from coderouter.config.reload import ConfigHolder
from coderouter.state import GATEWAY, Gateway
from tests.fake_anthropic import FakeAnthropic
from tests.fakes import FakeUpstream
from tests.servers import Postgres, Redis

ALICE = "sk-cr-alice-0123456789abcdefghijklmnop"
BOB = "sk-cr-bob-0123456789abcdefghijklmnopqrs"
UPSTREAM_KEY = "sk-upstream-secret-key-1"
UPSTREAM_KEY_2 = "sk-upstream-secret-key-2"


@dataclass
class Running:
    """A gateway serving on loopback, with handles on its state and database."""

    url: str
    app: web.Application
    config_path: Path
    server: TestServer

    @property
    def state(self) -> Gateway:
        return self.app[GATEWAY]

    async def rows(self) -> list[dict[str, Any]]:
        """Every usage row so far, after flushing the writer's queue."""
        await self.state.writer.flush()
        with sqlite3.connect(self.state.holder.current.database.path) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM usage ORDER BY id")]

    async def stop(self) -> None:
        """Shut the gateway down as SIGTERM would: cleanup runs and the writer flushes."""
        await self.server.close()

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Write *config* and reload it, as an operator's edit would."""
        self.config_path.write_text(yaml.safe_dump(config))
        assert self.state.holder.reload("test")


def base_config(upstream_url: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "database": {"path": str(tmp_path / "usage.sqlite")},
        "channels": [{"name": "up", "type": "openai", "base_url": upstream_url,
                      "keys": [UPSTREAM_KEY], "headers": {"X-Channel": "up"},
                      "responses": True}],
        "model_groups": [{"name": "smart", "targets": [
            {"channel": "up", "model": "upstream-model"}],
            "price": {"input": 1.0, "output": 2.0, "cached_input": 0.5}}],
        "token_groups": [{"name": "team"}],
        "tokens": [{"name": "alice", "key_sha256": hash_key(ALICE).hex(), "group": "team"},
                   {"name": "bob", "key": BOB, "models": ["other-*"]}],
    }


MakeUpstream = Callable[[], Awaitable[FakeUpstream]]


@pytest.fixture
def make_upstream(aiohttp_server: Any) -> MakeUpstream:
    """Start another fake OpenAI upstream on loopback."""
    async def make() -> FakeUpstream:
        fake = FakeUpstream()
        server = await aiohttp_server(fake.app)
        fake.url = str(server.make_url("/v1"))
        return fake
    return make


@pytest.fixture
async def upstream(make_upstream: MakeUpstream) -> FakeUpstream:
    return await make_upstream()


StartGateway = Callable[..., Awaitable[Running]]


@pytest.fixture
def start_gateway(aiohttp_server: Any, tmp_path: Path) -> StartGateway:
    async def start(config: dict[str, Any], **options: Any) -> Running:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        app = create_app(ConfigHolder.from_file(str(path)), **options)
        server = await aiohttp_server(app)
        return Running(str(server.make_url("")), app, path, server)
    return start


@pytest.fixture
async def gateway(start_gateway: StartGateway, upstream: FakeUpstream,
                  tmp_path: Path) -> Running:
    return await start_gateway(base_config(upstream.url, tmp_path))


@pytest.fixture
async def anthropic_upstream(aiohttp_server: Any) -> FakeAnthropic:
    fake = FakeAnthropic()
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


def coding_config(upstream_url: str, anthropic_url: str, tmp_path: Path) -> dict[str, Any]:
    """`base_config` plus an anthropic channel, its group `claude`, and the mock as `mocked`."""
    config = base_config(upstream_url, tmp_path)
    config["channels"] += [
        {"name": "claude", "type": "anthropic", "base_url": anthropic_url,
         "keys": [UPSTREAM_KEY]},
        {"name": "mock", "type": "mock"}]
    config["model_groups"] += [
        {"name": "claude", "targets": [{"channel": "claude", "model": "claude-upstream"}],
         "price": {"input": 3.0, "output": 15.0, "cached_input": 0.3}},
        {"name": "mocked", "targets": [{"channel": "mock", "model": "mock-1"}]}]
    return config


@pytest.fixture
async def coding_gateway(start_gateway: StartGateway, upstream: FakeUpstream,
                         anthropic_upstream: FakeAnthropic, tmp_path: Path) -> Running:
    return await start_gateway(coding_config(upstream.url, anthropic_upstream.url, tmp_path))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """One PostgreSQL cluster for the session (see tests/servers.py)."""
    server = Postgres()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: Postgres, request: pytest.FixtureRequest) -> str:
    """A new, empty database in the session's cluster."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[-50:].lower()
    return postgres_server.database(f"{name}_{os.getpid()}_{next(_DATABASES)}")


_DATABASES = itertools.count()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    """One redis-server for the session; tests keep apart by key prefix (see tests/servers.py)."""
    server = Redis()
    yield server
    server.close()


def redis_state(server: Redis) -> dict[str, Any]:
    """A ``state:`` section on *server* with a prefix of its own (random: this module is also
    imported as ``tests.conftest``, with counters of its own)."""
    return {"redis": server.url, "prefix": f"t{os.getpid()}-{uuid.uuid4().hex[:12]}"}


@pytest.fixture(name="redis_state")
def redis_state_fixture(redis_server: Redis) -> dict[str, Any]:
    """A ``state:`` section on the session's Redis with a prefix of this test's own."""
    return redis_state(redis_server)
