"""Routing through real upstreams: priority, failover, cooldown, trial, key rotation."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import (
    ALICE,
    UPSTREAM_KEY,
    UPSTREAM_KEY_2,
    MakeUpstream,
    Running,
    StartGateway,
)
from tests.fakes import FakeUpstream


@pytest.fixture
async def backup(make_upstream: MakeUpstream) -> FakeUpstream:
    return await make_upstream()


def two_tier(primary: FakeUpstream, backup: FakeUpstream, tmp_path: Path,
             **group: Any) -> dict[str, Any]:
    return {
        "database": {"path": str(tmp_path / "usage.sqlite")},
        "channels": [
            {"name": "primary", "type": "openai", "base_url": primary.url,
             "keys": [UPSTREAM_KEY, UPSTREAM_KEY_2], "timeout": {"first_byte": "300ms"}},
            {"name": "backup", "type": "openai", "base_url": backup.url, "keys": ["kb"]},
        ],
        "model_groups": [{"name": "smart", "targets": [
            {"channel": "primary", "model": "p-model", "priority": 0},
            {"channel": "backup", "model": "b-model", "priority": 1}], **group}],
        "tokens": [{"name": "alice", "key": ALICE}],
    }


async def ask(gateway: Running, stream: bool = False,
              session: str | None = None) -> tuple[int, bytes]:
    """One chat request; each is a new session unless *session* names one."""
    headers = {"Authorization": f"Bearer {ALICE}", "x-session-id": session or uuid.uuid4().hex}
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/v1/chat/completions",
                             json={"model": "smart", "stream": stream},
                             headers=headers) as resp:
            return resp.status, await resp.read()


async def test_lower_priority_first_and_healthy_stays_put(
        start_gateway: StartGateway, upstream: FakeUpstream, backup: FakeUpstream,
        tmp_path: Path) -> None:
    """With both healthy, every request goes to priority 0."""
    gateway = await start_gateway(two_tier(upstream, backup, tmp_path))
    for _ in range(5):
        assert (await ask(gateway))[0] == 200
    assert len(upstream.seen) == 5 and backup.seen == []


@pytest.mark.parametrize("failure", [
    {"status": 500}, {"status": 503}, {"status": 429}, {"delay": 2},
])
async def test_failover_to_the_next_target(
        start_gateway: StartGateway, upstream: FakeUpstream, backup: FakeUpstream,
        tmp_path: Path, failure: dict[str, Any]) -> None:
    """5xx, 429 (on every key) and a first-byte timeout move on; the caller sees success."""
    gateway = await start_gateway(two_tier(upstream, backup, tmp_path))
    upstream.then(**failure).then(**failure)
    status, body = await ask(gateway)
    assert status == 200
    assert orjson.loads(body)["choices"][0]["message"]["content"] == "Hello from upstream!"
    assert backup.seen[0].json["model"] == "b-model"
    [row] = await gateway.rows()
    assert row["channel"] == "backup" and row["upstream_model"] == "b-model"
    assert row["status"] == 200
    expected_attempts = 3 if failure.get("status") == 429 else 2
    assert row["attempts"] == expected_attempts


async def test_key_refused_rotates_to_the_next_key(
        start_gateway: StartGateway, upstream: FakeUpstream, backup: FakeUpstream,
        tmp_path: Path) -> None:
    """A 401 on one key cools that key; the same channel is retried with its other key."""
    gateway = await start_gateway(two_tier(upstream, backup, tmp_path))
    upstream.then(status=401)
    assert (await ask(gateway))[0] == 200
    used = [s.headers["Authorization"] for s in upstream.seen]
    assert used[0] != used[1]
    assert {used[0], used[1]} == {f"Bearer {UPSTREAM_KEY}", f"Bearer {UPSTREAM_KEY_2}"}
    assert backup.seen == []
    # the refused key stays out of rotation during its cooldown
    for _ in range(3):
        assert (await ask(gateway))[0] == 200
    assert {s.headers["Authorization"] for s in upstream.seen[2:]} == {used[1]}


async def test_keys_rotate_round_robin(start_gateway: StartGateway, upstream: FakeUpstream,
                                       backup: FakeUpstream, tmp_path: Path) -> None:
    """Healthy keys of a channel take turns across sessions; a session keeps its key."""
    gateway = await start_gateway(two_tier(upstream, backup, tmp_path))
    for i in range(4):
        await ask(gateway, session=f"s{i}")
    used = [s.headers["Authorization"] for s in upstream.seen]
    assert used[0] != used[1] and used[0] == used[2] and used[1] == used[3]
    for _ in range(3):
        await ask(gateway, session="s1")
    assert [s.headers["Authorization"] for s in upstream.seen[4:]] == [used[1]] * 3


async def test_failing_target_is_skipped_then_tried_once(
        start_gateway: StartGateway, upstream: FakeUpstream, backup: FakeUpstream,
        tmp_path: Path) -> None:
    """After a failure the target cools down: skipped, then one trial request brings it back."""
    gateway = await start_gateway(two_tier(upstream, backup, tmp_path, cooldown="30s"))
    health = gateway.state.health
    now = [1000.0]
    health.clock = lambda: now[0]
    upstream.then(status=500)
    assert (await ask(gateway))[0] == 200
    assert (len(upstream.seen), len(backup.seen)) == (1, 1)
    for _ in range(3):
        assert (await ask(gateway))[0] == 200
    assert (len(upstream.seen), len(backup.seen)) == (1, 4)
    now[0] += 31
    assert (await ask(gateway))[0] == 200
    assert (len(upstream.seen), len(backup.seen)) == (2, 4)
    assert (await ask(gateway))[0] == 200
    assert (len(upstream.seen), len(backup.seen)) == (3, 4)


async def test_failed_trial_cools_down_again(
        start_gateway: StartGateway, upstream: FakeUpstream, backup: FakeUpstream,
        tmp_path: Path) -> None:
    """A trial request that fails puts the target back in cooldown."""
    gateway = await start_gateway(two_tier(upstream, backup, tmp_path, cooldown="10s"))
    now = [0.0]
    gateway.state.health.clock = lambda: now[0]
    upstream.then(status=500).then(status=502)
    await ask(gateway)
    now[0] += 11
    await ask(gateway)
    await ask(gateway)
    assert len(upstream.seen) == 2
    assert len(backup.seen) == 3


async def test_no_failover_once_a_stream_started(
        start_gateway: StartGateway, upstream: FakeUpstream, backup: FakeUpstream,
        tmp_path: Path) -> None:
    """A stream cut after its first event ends with an error event; the backup is not asked."""
    gateway = await start_gateway(two_tier(upstream, backup, tmp_path))
    upstream.then(cut_after=2)
    status, body = await ask(gateway, stream=True)
    assert status == 200
    assert backup.seen == []
    assert body.endswith(b'data: {"error":{"message":"upstream connection lost mid-stream",'
                         b'"type":"upstream_error","code":"upstream_error"}}\n\n')
    assert b"[DONE]" not in body
    [row] = await gateway.rows()
    assert (row["status"], row["channel"], row["attempts"]) == (502, "primary", 1)


async def test_stream_failing_before_its_first_byte_fails_over(
        start_gateway: StartGateway, upstream: FakeUpstream, backup: FakeUpstream,
        tmp_path: Path) -> None:
    """Headers sent but no event within first_byte: the next target serves the stream."""
    gateway = await start_gateway(two_tier(upstream, backup, tmp_path))
    upstream.then(first_chunk_delay=2)
    status, body = await ask(gateway, stream=True)
    assert status == 200 and body.endswith(b"data: [DONE]\n\n")
    assert len(backup.seen) == 1


async def test_every_target_failing_is_502_with_the_attempt_count(
        start_gateway: StartGateway, upstream: FakeUpstream, backup: FakeUpstream,
        tmp_path: Path) -> None:
    """All targets fail: 502 upstream_error; retry.attempts caps the upstream requests."""
    gateway = await start_gateway(two_tier(upstream, backup, tmp_path, retry={"attempts": 2}))
    upstream.default.status = 500
    backup.default.status = 500
    status, body = await ask(gateway)
    assert status == 502
    assert orjson.loads(body)["error"] == {
        "message": "upstream answered 500 (after 2 attempts)", "type": "upstream_error",
        "code": "upstream_error", "param": None}
    assert len(upstream.seen) + len(backup.seen) == 2
    status, body = await ask(gateway)
    assert status == 502
    assert orjson.loads(body)["error"]["message"].startswith(
        "every target of 'smart' is cooling down")
    assert len(upstream.seen) + len(backup.seen) == 2
    rows = await gateway.rows()
    assert [(r["status"], r["attempts"]) for r in rows] == [(502, 2), (502, 0)]
    assert rows[0]["error"] == "backup: upstream answered 500"


async def test_weights_split_traffic_within_a_tier(
        start_gateway: StartGateway, upstream: FakeUpstream, backup: FakeUpstream,
        tmp_path: Path) -> None:
    """Weight 3 against weight 1 in one tier: about three quarters go to the heavier."""
    config = two_tier(upstream, backup, tmp_path)
    config["model_groups"][0]["targets"] = [
        {"channel": "primary", "model": "p", "weight": 3},
        {"channel": "backup", "model": "b", "weight": 1}]
    gateway = await start_gateway(config)
    import random
    gateway.state.health.rng = random.Random(7)
    for _ in range(200):
        await ask(gateway)
    share = len(upstream.seen) / 200
    assert 0.65 < share < 0.85, share


async def test_channel_listed_models_are_routable(
        start_gateway: StartGateway, upstream: FakeUpstream, backup: FakeUpstream,
        tmp_path: Path) -> None:
    """A name in a channel's models list routes to it as is; a group of that name wins."""
    config = two_tier(upstream, backup, tmp_path)
    config["channels"][1]["models"] = ["gpt-4o", "smart"]
    gateway = await start_gateway(config)
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/v1/chat/completions", json={"model": "gpt-4o"},
                             headers={"Authorization": f"Bearer {ALICE}"}) as resp:
            assert resp.status == 200
    assert backup.seen[0].json["model"] == "gpt-4o"
    await ask(gateway)
    assert upstream.seen[0].json["model"] == "p-model"
