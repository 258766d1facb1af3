"""Sticky sessions belong to their caller: a pin is keyed by token and session, so Bob naming
Alice's session id neither rides her pinned target and key nor moves her pin."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.conftest import ALICE, BOB, MakeUpstream, Running, StartGateway
from tests.test_sticky import three_targets


async def turn(http: aiohttp.ClientSession, gateway: Running, key: str, text: str) -> str:
    """The channel that served one turn of session ``shared`` sent with *key*."""
    async with http.post(gateway.url + "/v1/chat/completions", json={
            "model": "smart", "messages": [{"role": "user", "content": text}]},
            headers={"Authorization": f"Bearer {key}", "x-session-id": "shared"}) as resp:
        assert resp.status == 200, await resp.text()
    return str((await gateway.rows())[-1]["channel"])


async def test_another_token_naming_the_same_session_gets_its_own_pin(
        start_gateway: StartGateway, make_upstream: MakeUpstream, tmp_path: Path) -> None:
    upstreams = [await make_upstream() for _ in range(3)]
    config = three_targets(upstreams, tmp_path, weights=(1, 1000, 1000), cooldown=0)
    config["tokens"].append({"name": "bob", "key": BOB})
    only_c0 = {**config, "model_groups": [{**config["model_groups"][0], "targets": [
        config["model_groups"][0]["targets"][0]]}]}
    gateway = await start_gateway(only_c0)
    async with aiohttp.ClientSession() as http:
        assert await turn(http, gateway, ALICE, "alice 1") == "c0"  # Alice is pinned on c0
        gateway.reconfigure(config)  # c1 and c2 now take nearly every new session
        bob = [await turn(http, gateway, BOB, f"bob {n}") for n in range(5)]
        assert "c0" not in bob and len(set(bob)) == 1  # Bob's own pin, not Alice's
        assert await turn(http, gateway, ALICE, "alice 2") == "c0"
    assert [seen.json["messages"][0]["content"] for seen in upstreams[0].seen] == [
        "alice 1", "alice 2"]
    assert len({seen.headers["Authorization"] for seen in upstreams[0].seen}) == 1
