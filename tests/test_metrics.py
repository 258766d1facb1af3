"""GET /metrics: exact values after known traffic, in-flight gauges, the admin key."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from coderouter.config import hash_key
from tests.conftest import (
    ALICE,
    BOB,
    UPSTREAM_KEY,
    UPSTREAM_KEY_2,
    Running,
    StartGateway,
    base_config,
)
from tests.fakes import FakeUpstream
from tests.service import until

AUTH = {"Authorization": f"Bearer {ALICE}"}
ADMIN_KEY = "cr-admin-0123456789abcdef"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and label set."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, metric: str, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


async def scrape(gateway: Running, headers: dict[str, str] | None = None) -> Samples:
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/metrics", headers=headers or {}) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/plain"
            return parse(await resp.text())


def two_channels(upstream_url: str, tmp_path: Path) -> dict[str, Any]:
    """smart: channel up (two keys) first, then up2."""
    config = base_config(upstream_url, tmp_path)
    config["channels"] = [
        {"name": "up", "type": "openai", "base_url": upstream_url,
         "keys": [UPSTREAM_KEY, UPSTREAM_KEY_2]},
        {"name": "up2", "type": "openai", "base_url": upstream_url, "keys": [UPSTREAM_KEY]}]
    config["model_groups"][0]["targets"] = [
        {"channel": "up", "model": "m", "priority": 0},
        {"channel": "up2", "model": "m", "priority": 1}]
    return config


async def chat(http: aiohttp.ClientSession, gateway: Running, model: str = "smart",
               stream: bool = False) -> int:
    async with http.post(gateway.url + "/v1/chat/completions", headers=AUTH,
                         json={"model": model, "stream": stream, "messages": []}) as resp:
        await resp.read()
        return resp.status


async def test_values_after_known_traffic(start_gateway: StartGateway, upstream: FakeUpstream,
                                          tmp_path: Path) -> None:
    """Requests, tokens, latency counts, retries, failovers, cooldowns, usage rows and reloads
    count exactly the traffic sent."""
    gateway = await start_gateway(two_channels(upstream.url, tmp_path))
    upstream.then().then().then(status=401).then().then(status=500).then()
    async with aiohttp.ClientSession() as http:
        assert await chat(http, gateway) == 200                 # up
        assert await chat(http, gateway, stream=True) == 200    # up, streamed
        assert await chat(http, gateway) == 200                 # up: a key refused, next key
        assert await chat(http, gateway) == 200                 # up fails: failover to up2
        assert await chat(http, gateway, model="made-up") == 404
    assert len(await gateway.rows()) == 5
    gateway.reconfigure({**two_channels(upstream.url, tmp_path), "log": {"access": False}})
    gateway.config_path.write_text("channels: 3\n")
    assert gateway.state.holder.reload("test") is False

    samples = await scrape(gateway)
    requests = {k: v for k, v in samples.items() if k[0] == "coderouter_requests_total"}
    assert requests == {
        ("coderouter_requests_total",
         frozenset({"model": "smart", "channel": "up", "status": "200"}.items())): 3.0,
        ("coderouter_requests_total",
         frozenset({"model": "smart", "channel": "up2", "status": "200"}.items())): 1.0,
        ("coderouter_requests_total",
         frozenset({"model": "other", "channel": "", "status": "404"}.items())): 1.0}
    expected = {
        ("coderouter_prompt_tokens_total", "up"): 33.0,
        ("coderouter_prompt_tokens_total", "up2"): 11.0,
        ("coderouter_cached_tokens_total", "up"): 9.0,
        ("coderouter_cached_tokens_total", "up2"): 3.0,
        ("coderouter_completion_tokens_total", "up"): 12.0,
        ("coderouter_completion_tokens_total", "up2"): 4.0}
    assert {(name, channel): value(samples, name, model="smart", channel=channel)
            for name, channel in expected} == expected
    assert [value(samples, f"coderouter_upstream_{h}_seconds_count", channel=c)
            for h in ("latency", "ttfb") for c in ("up", "up2")] == [3.0, 1.0, 3.0, 1.0]
    assert value(samples, "coderouter_upstream_retries_total", channel="up") == 1.0
    assert value(samples, "coderouter_upstream_retries_total", channel="up2") is None
    assert value(samples, "coderouter_upstream_failovers_total", channel="up2") == 1.0
    assert value(samples, "coderouter_upstream_failovers_total", channel="up") is None
    assert value(samples, "coderouter_cooldowns_total", channel="up", kind="key") == 1.0
    assert value(samples, "coderouter_cooldowns_total", channel="up", kind="target") == 1.0
    assert value(samples, "coderouter_upstream_failures_total", channel="up") == 2.0
    rows = await gateway.rows()
    for channel in ("up", "up2"):
        cost = sum(r["cost"] for r in rows if r["channel"] == channel)
        assert cost > 0
        assert value(samples, "coderouter_cost_usd_total", model="smart", channel=channel) \
            == pytest.approx(cost, rel=1e-9)
    assert value(samples, "coderouter_target_up", channel="up", model="m") == 0.0  # cooling
    assert value(samples, "coderouter_target_up", channel="up2", model="m") == 1.0
    assert value(samples, "coderouter_upstream_failures_total", channel="up2") is None
    assert value(samples, "coderouter_config_reloads_total", result="ok") == 1.0
    assert value(samples, "coderouter_config_reloads_total", result="failed") == 1.0
    assert value(samples, "coderouter_usage_rows_written_total") == 5.0
    assert value(samples, "coderouter_usage_rows_queued") == 0.0
    assert value(samples, "coderouter_usage_write_failures_total") == 0.0
    assert value(samples, "coderouter_requests_in_flight") == 0.0
    assert value(samples, "coderouter_streams_in_flight") == 0.0


async def test_in_flight_gauges_follow_a_stream(gateway: Running,
                                                upstream: FakeUpstream) -> None:
    """A stream held open counts as one request and one stream in flight, then none."""
    hold = asyncio.Event()
    upstream.then(pause=hold)
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/v1/chat/completions", headers=AUTH,
                             json={"model": "smart", "stream": True}) as resp:
            await resp.content.readuntil(b"\n\n")
            samples = await scrape(gateway)
            assert (value(samples, "coderouter_requests_in_flight"),
                    value(samples, "coderouter_streams_in_flight")) == (1.0, 1.0)
            hold.set()
            await resp.read()

    async def idle() -> bool:
        samples = await scrape(gateway)
        return value(samples, "coderouter_requests_in_flight") == 0.0
    await until(idle, "the stream to finish")
    assert value(await scrape(gateway), "coderouter_streams_in_flight") == 0.0


async def test_admin_key_guards_metrics(start_gateway: StartGateway, upstream: FakeUpstream,
                                        tmp_path: Path) -> None:
    """With admin.key set, /metrics answers 401 invalid_api_key without it, 200 with it."""
    gateway = await start_gateway({**base_config(upstream.url, tmp_path),
                                   "admin": {"key": ADMIN_KEY}})
    async with aiohttp.ClientSession() as http:
        for headers in ({}, AUTH, {"Authorization": f"Bearer {ADMIN_KEY}x"}):
            async with http.get(gateway.url + "/metrics", headers=headers) as resp:
                assert resp.status == 401
                assert (await resp.json())["error"]["code"] == "invalid_api_key"
    samples = await scrape(gateway, {"Authorization": f"Bearer {ADMIN_KEY}"})
    assert value(samples, "coderouter_config_reloads_total", result="ok") == 0.0


async def test_open_without_admin_key(gateway: Running) -> None:
    """Without admin.key, /metrics needs no key (bind it to loopback or firewall it)."""
    samples = await scrape(gateway)
    assert value(samples, "coderouter_requests_in_flight") == 0.0


async def test_refused_callers_are_counted_by_reason_and_logged_by_key_hash(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A wrong key, a model the token may not use and a spent quota each count under their
    reason, apart from upstream failures; each leaves one WARN line per key hash and reason a
    minute, naming the key's hash prefix, never the key."""
    caplog.set_level(logging.WARNING, logger="coderouter.refusals")
    config = base_config(upstream.url, tmp_path)
    config["tokens"][0]["quota"] = {"requests": 1, "period": "day"}
    gateway = await start_gateway(config)
    revoked = "sk-cr-revoked-0123456789abcdefghijkl"
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.post(gateway.url + "/v1/chat/completions", json={
                    "model": "smart"}, headers={"Authorization": f"Bearer {revoked}"}) as resp:
                assert resp.status == 401
        async with http.post(gateway.url + "/v1/chat/completions", json={"model": "smart"},
                             headers={"Authorization": f"Bearer {BOB}"}) as resp:
            assert resp.status == 403
        assert await chat(http, gateway) == 200
        assert await chat(http, gateway) == 429
    samples = await scrape(gateway)
    assert {reason: value(samples, "coderouter_refusals_total", reason=reason) for reason in (
        "invalid_api_key", "model_not_allowed", "insufficient_quota")} == {
        "invalid_api_key": 3.0, "model_not_allowed": 1.0, "insufficient_quota": 1.0}
    assert value(samples, "coderouter_upstream_failures_total", channel="up") is None
    lines = [r.getMessage() for r in caplog.records if r.name == "coderouter.refusals"]
    revoked_hash = hash_key(revoked).hex()[:12]
    assert lines[0] == (f"refused /v1/chat/completions for key sha256:{revoked_hash}: "
                        "invalid_api_key: invalid API key")
    assert lines[1].startswith(f"refused /v1/chat/completions for key "
                               f"sha256:{hash_key(BOB).hex()[:12]}: model_not_allowed: ")
    assert lines[2].startswith(f"refused /v1/chat/completions for key "
                               f"sha256:{hash_key(ALICE).hex()[:12]}: insufficient_quota: ")
    assert len(lines) == 3
    assert all(key not in caplog.text for key in (revoked, BOB, ALICE))


async def test_alias_traffic_counts_under_its_group_and_quotas_show_what_is_left(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A request for an alias is labelled with the group that served it; each quota's limit
    and remaining amount are gauges, read at scrape time."""
    config = base_config(upstream.url, tmp_path)
    config["model_groups"][0]["aliases"] = ["smart-*"]
    config["tokens"][0]["quota"] = {"requests": 5, "period": "day"}
    config["token_groups"][0]["quota"] = {"tokens": 1000, "period": "month"}
    gateway = await start_gateway(config)
    async with aiohttp.ClientSession() as http:
        assert await chat(http, gateway, model="smart-latest") == 200
        assert await chat(http, gateway, model="smart") == 200
    samples = await scrape(gateway)
    assert value(samples, "coderouter_requests_total", model="smart", channel="up",
                 status="200") == 2.0
    assert value(samples, "coderouter_requests_total", model="other", channel="up",
                 status="200") is None
    labels = {"scope": "token", "name": "alice", "period": "day", "dimension": "requests"}
    assert value(samples, "coderouter_quota_limit", **labels) == 5.0
    assert value(samples, "coderouter_quota_remaining", **labels) == 3.0
    rows = await gateway.rows()
    labels = {"scope": "group", "name": "team", "period": "month", "dimension": "tokens"}
    assert value(samples, "coderouter_quota_remaining", **labels) == \
        1000 - sum(r["total_tokens"] for r in rows)
