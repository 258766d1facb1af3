"""Every way a request can be served has its price: a group's, a target's, a channel's per
model; `check` warns about a routable name without one while a cost quota exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from coderouter.config import parse
from tests.conftest import ALICE, MakeUpstream, StartGateway, coding_config
from tests.fake_anthropic import FakeAnthropic
from tests.fakes import FakeClock, FakeUpstream
from tests.test_quotas import START, call, quota_error

#: The fake upstream's usage: 11 prompt tokens (3 cached), 4 completion.
CHEAP = {"input": 1.0, "output": 2.0}
DEAR = {"input": 100.0, "output": 200.0, "cached_input": 10.0}
CHEAP_COST = (11 * 1.0 + 4 * 2.0) / 1e6
DEAR_COST = (8 * 100.0 + 3 * 10.0 + 4 * 200.0) / 1e6


def config(primary: FakeUpstream, backup: FakeUpstream, tmp_path: Path,
           **channel: Any) -> dict[str, Any]:
    """Group `smart` (priced CHEAP) on primary, failing over to backup priced DEAR."""
    return {
        "database": {"path": str(tmp_path / "usage.sqlite")},
        "channels": [
            {"name": "primary", "type": "openai", "base_url": primary.url, "keys": ["ka"]},
            {"name": "backup", "type": "openai", "base_url": backup.url, "keys": ["kb"],
             **channel}],
        "model_groups": [{"name": "smart", "price": CHEAP, "targets": [
            {"channel": "primary", "model": "p-model", "priority": 0},
            {"channel": "backup", "model": "b-model", "priority": 1}]}],
        "tokens": [{"name": "alice", "key": ALICE}],
    }


@pytest.mark.parametrize("where", ["target", "channel"])
async def test_a_failover_costs_what_the_target_that_answered_costs(
        start_gateway: StartGateway, make_upstream: MakeUpstream, tmp_path: Path,
        where: str) -> None:
    primary, backup = await make_upstream(), await make_upstream()
    if where == "target":
        settings = config(primary, backup, tmp_path)
        settings["model_groups"][0]["targets"][1]["price"] = DEAR
    else:
        settings = config(primary, backup, tmp_path, prices={"b-model": DEAR})
    gateway = await start_gateway(settings)
    assert (await call(gateway))[0] == 200
    primary.then(status=500)
    assert (await call(gateway))[0] == 200
    rows = await gateway.rows()
    assert [(r["channel"], r["cost"]) for r in rows] == [
        ("primary", pytest.approx(CHEAP_COST)), ("backup", pytest.approx(DEAR_COST))]


async def test_a_channel_model_called_directly_is_priced_and_counts_on_a_cost_quota(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Naming the upstream model directly no longer dodges a cost quota at $0."""
    settings = {
        "database": {"path": str(tmp_path / "usage.sqlite")},
        "channels": [{"name": "up", "type": "openai", "base_url": upstream.url, "keys": ["k"],
                      "models": ["direct"],
                      "prices": {"direct": {"input": 1000, "output": 2000}}}],
        "tokens": [{"name": "alice", "key": ALICE, "models": ["*"],
                    "quota": {"cost": 0.03, "period": "month"}}],
    }
    gateway = await start_gateway(settings, clock=FakeClock(START))
    body = {"model": "direct", "messages": [], "max_tokens": 1}
    assert [(await call(gateway, body=body))[0] for _ in range(2)] == [200, 200]
    status, _, refused = await call(gateway, body=body)
    assert (status, refused) == (429, quota_error(
        "token 'alice' has used its monthly cost quota (0.03); "
        "it resets at 2026-04-01T00:00:00Z"))
    assert [r["cost"] for r in await gateway.rows()] == [0.019, 0.019, 0.0]


CHECKED = """
channels:
  - {name: up, type: openai, base_url: "http://127.0.0.1:1/v1", keys: [k], models: [direct]}
model_groups:
  - name: smart
    price: {input: 1, output: 2}
    targets: [{channel: up, model: m}]
  - name: free
    targets: [{channel: up, model: m}]
tokens:
  - name: alice
    key_sha256: "0000000000000000000000000000000000000000000000000000000000000000"
    quota: {cost: 5}
"""


def test_check_warns_about_each_unpriced_routable_name_while_a_cost_quota_exists() -> None:
    assert parse(CHECKED).warnings == (
        "channels[0]: 'direct' served by up/direct has no price, so a cost quota counts it as "
        "$0 (set price: on the group or target, or prices: on the channel)",
        "model_groups[1]: 'free' served by up/m has no price, so a cost quota counts it as $0 "
        "(set price: on the group or target, or prices: on the channel)",
    )
    priced = yaml.safe_load(CHECKED)
    priced["channels"][0]["prices"] = {"direct": {"input": 1, "output": 2},
                                       "m": {"input": 1, "output": 2}}
    assert parse(yaml.safe_dump(priced)).warnings == ()
    without_quota = yaml.safe_load(CHECKED)
    del without_quota["tokens"][0]["quota"]
    assert parse(yaml.safe_dump(without_quota)).warnings == ()


def test_a_broken_channel_price_is_an_error_with_its_path() -> None:
    broken = yaml.safe_load(CHECKED)
    broken["channels"][0]["prices"] = {"direct": {"input": 1}}
    with pytest.raises(Exception, match=r"channels\[0\]\.prices\.direct: needs both input"):
        parse(yaml.safe_dump(broken))


async def test_cache_writes_are_billed_at_their_own_prices(
        start_gateway: StartGateway, upstream: FakeUpstream,
        anthropic_upstream: FakeAnthropic, tmp_path: Path) -> None:
    """Anthropic's 5-minute and 1-hour cache writes (3 and 4 of the fake's 132 prompt tokens)
    are billed at the group's cache_write_5m and cache_write_1h, and recorded in the row."""
    settings = coding_config(upstream.url, anthropic_upstream.url, tmp_path)
    settings["model_groups"][1]["price"] = {"input": 3.0, "output": 15.0, "cached_input": 0.3,
                                            "cache_write_5m": 5.0, "cache_write_1h": 7.0}
    gateway = await start_gateway(settings)
    body = {"model": "claude", "max_tokens": 64,
            "messages": [{"role": "user", "content": "Hello"}]}
    for stream in (False, True):
        status, _, _ = await call(gateway, body={**body, "stream": stream},
                                  path="/v1/messages")
        assert status == 200
    rows = await gateway.rows()
    assert [(r["cache_write_5m_tokens"], r["cache_write_1h_tokens"]) for r in rows] == [
        (3, 4), (3, 4)]
    cost = (25 * 3.0 + 100 * 0.3 + 3 * 5.0 + 4 * 7.0 + 15 * 15.0) / 1e6
    assert [r["cost"] for r in rows] == [pytest.approx(cost), pytest.approx(cost)]
