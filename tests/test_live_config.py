"""What a reload means for the requests around it: tokens, in-flight streams, channel pools."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import ALICE, BOB, Running, base_config
from tests.fakes import FakeUpstream
from tests.service import until


def mock_only(config: dict[str, Any]) -> dict[str, Any]:
    """*config* with channel up replaced by a mock channel serving smart."""
    return {**config,
            "channels": [{"name": "local", "type": "mock"}],
            "model_groups": [{"name": "smart", "targets": [{"channel": "local",
                                                            "model": "mock-1"}]}]}


async def chat(http: aiohttp.ClientSession, gateway: Running, key: str,
               model: str = "smart") -> int:
    async with http.post(gateway.url + "/v1/chat/completions", json={"model": model},
                         headers={"Authorization": f"Bearer {key}"}) as resp:
        await resp.read()
        return resp.status


async def test_removed_or_disabled_token_refused_from_next_request(
        gateway: Running, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Once the reload is live, a removed token and a disabled token get 401."""
    config = base_config(upstream.url, tmp_path)
    async with aiohttp.ClientSession() as http:
        assert await chat(http, gateway, ALICE) == 200
        assert await chat(http, gateway, BOB, "other-x") == 404
        bob = {**config["tokens"][1], "enabled": False}
        gateway.reconfigure({**config, "tokens": [bob]})
        assert await chat(http, gateway, ALICE) == 401
        assert await chat(http, gateway, BOB, "other-x") == 401


async def test_stream_in_flight_finishes_on_its_config_and_pool(
        gateway: Running, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A reload that removes the stream's channel: the stream completes on it, new requests
    use the new config, and the old channel's pool closes only after the stream ends."""
    hold = asyncio.Event()
    upstream.then(pause=hold)
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/v1/chat/completions",
                             json={"model": "smart", "stream": True},
                             headers={"Authorization": f"Bearer {ALICE}"}) as resp:
            await resp.content.readuntil(b"\n\n")
            session = gateway.state.pools.names()["up"]
            gateway.reconfigure(mock_only(base_config(upstream.url, tmp_path)))
            assert await chat(http, gateway, ALICE) == 200
            assert not session.closed
            hold.set()
            body = await resp.read()
        assert body.endswith(b"data: [DONE]\n\n")

    async def closed() -> bool:
        return session.closed
    await until(closed, "the removed channel's pool to close")
    assert "up" not in gateway.state.pools.names()
    rows = await gateway.rows()
    assert [(r["channel"], r["status"], r["stream"]) for r in rows] == [
        ("local", 200, 0), ("up", 200, 1)]


async def test_idle_pool_of_removed_channel_closes_kept_one_stays(
        gateway: Running, upstream: FakeUpstream, tmp_path: Path) -> None:
    """With nothing in flight a dropped channel's pool closes at once; a kept one stays."""
    config = base_config(upstream.url, tmp_path)
    config["channels"].append({**config["channels"][0], "name": "up2"})
    config["model_groups"][0]["targets"].append({"channel": "up2", "model": "m", "priority": 1})
    gateway.reconfigure(config)
    async with aiohttp.ClientSession() as http:
        upstream.then(status=500)
        assert await chat(http, gateway, ALICE) == 200  # up fails over to up2: both pools
    pools = dict(gateway.state.pools.names())
    assert sorted(pools) == ["up", "up2"]
    config["channels"][1]["enabled"] = False
    gateway.reconfigure(config)

    async def closed() -> bool:
        return pools["up2"].closed
    await until(closed, "the disabled channel's pool to close")
    assert not pools["up"].closed
    assert list(gateway.state.pools.names()) == ["up"]
