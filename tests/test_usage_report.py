"""Usage reporting: GET /admin/usage and `coderouter usage` over a database the gateway wrote."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import ALICE, BOB, Running, StartGateway
from tests.fakes import FakeClock, FakeUpstream
from tests.test_quotas import CAROL, at, call, limits_config

ADMIN = "sk-admin-0123456789abcdefghijklmnop"


async def admin_get(gateway: Running, query: str = "",
                    key: str | None = ADMIN) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with aiohttp.ClientSession() as http, http.get(
            f"{gateway.url}/admin/usage{query}", headers=headers) as resp:
        return resp.status, await resp.json()


def totals(requests: int, prompt: int, completion: int, cost: float,
           errors: int, refused: int = 0) -> dict[str, Any]:
    cached = prompt // 11 * 3  # the fake upstream reports 11 prompt tokens, 3 of them cached
    return {"requests": requests, "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, "cost": cost, "errors": errors,
            "cached_tokens": cached, "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0,
            "background_requests": 0, "background_cost": 0.0, "refused": refused,
            "cache_hit_ratio": round(cached / prompt, 4) if prompt else 0.0}


#: What the two days of traffic in `two_days` add up to, for each --by.
EXPECTED: dict[str, list[dict[str, Any]]] = {
    "token": [{"token": "alice", **totals(3, 22, 8, 0.035, 1)},
              {"token": "bob", **totals(1, 0, 0, 0.0, 0, refused=1)},
              {"token": "carol", **totals(1, 11, 4, 0.0175, 0)}],
    "group": [{"group": None, **totals(1, 0, 0, 0.0, 0, refused=1)},
              {"group": "team", **totals(4, 33, 12, 0.0525, 1)}],
    "model": [{"model": "smart", **totals(5, 33, 12, 0.0525, 1, refused=1)}],
    "channel": [{"channel": None, **totals(1, 0, 0, 0.0, 0, refused=1)},
                {"channel": "up", **totals(4, 33, 12, 0.0525, 1)}],
    "client": [{"client": "python", **totals(5, 33, 12, 0.0525, 1, refused=1)}],
    "day": [{"day": "2026-03-03", **totals(3, 33, 12, 0.0525, 0)},
            {"day": "2026-03-04", **totals(2, 0, 0, 0.0, 1, refused=1)}],
}
SECOND_DAY = [{"token": "alice", **totals(1, 0, 0, 0.0, 1)},
              {"token": "bob", **totals(1, 0, 0, 0.0, 0, refused=1)}]


@pytest.fixture
async def two_days(start_gateway: StartGateway, upstream: FakeUpstream,
                   tmp_path: Path) -> Running:
    """A gateway with an admin key that served two fake days of traffic.

    2026-03-03 10:00: alice twice and carol once, 15 tokens and 0.0175 USD each.
    2026-03-04 12:00 (now): alice's request answered 400 by the upstream; bob refused 403.
    """
    config = limits_config(upstream, tmp_path)
    config["admin"] = {"key": ADMIN}
    config["model_groups"][0]["price"] = {"input": 1000, "output": 2000, "cached_input": 500}
    clock = FakeClock(at("2026-03-03T10:00:00"))
    gateway = await start_gateway(config, clock=clock)
    assert [(await call(gateway, key))[0] for key in (ALICE, ALICE, CAROL)] == [200] * 3
    clock.now = at("2026-03-04T12:00:00")
    upstream.then(status=400, body=b'{"error": {"message": "bad"}}')
    assert [(await call(gateway, key))[0] for key in (ALICE, BOB)] == [400, 403]
    return gateway


@pytest.mark.parametrize("by", list(EXPECTED))
async def test_admin_usage_aggregates_by_each_key(two_days: Running, by: str) -> None:
    """GET /admin/usage?by=… totals every row, queued ones included, like the CLI's --json."""
    status, body = await admin_get(two_days, f"?by={by}")
    assert (status, body) == (200, {"by": by, "since": None, "until": None,
                                    "data": EXPECTED[by]})


async def test_admin_usage_since_and_until(two_days: Running) -> None:
    """since/until take a span before now or an ISO date (UTC), and the answer echoes them."""
    assert await admin_get(two_days, "?since=1d") == (200, {
        "by": "token", "since": "2026-03-03T12:00:00Z", "until": None, "data": SECOND_DAY})
    assert await admin_get(two_days, "?since=2026-03-04") == (200, {
        "by": "token", "since": "2026-03-04T00:00:00Z", "until": None, "data": SECOND_DAY})
    status, body = await admin_get(two_days, "?until=2026-03-04T00:00:00%2B00:00&by=day")
    assert (status, body["until"], body["data"]) == (
        200, "2026-03-04T00:00:00Z", EXPECTED["day"][:1])


@pytest.mark.parametrize(("query", "message"), [
    ("?by=week", "'by' must be one of token, group, model, channel, session, client, day, "
                 "got 'week'"),
    ("?since=yesterday", "'since': expected a span such as 7d or 12h, or a date such as "
                         "2026-11-01, got 'yesterday'"),
])
async def test_admin_usage_rejects_bad_parameters(two_days: Running, query: str,
                                                  message: str) -> None:
    """An unknown grouping or an unreadable moment is 400 invalid_request, naming it."""
    assert await admin_get(two_days, query) == (400, {"error": {
        "message": message, "type": "invalid_request_error", "code": "invalid_request",
        "param": None}})


@pytest.mark.parametrize("key", [None, "sk-admin-wrong", ALICE])
async def test_admin_usage_needs_the_admin_key(two_days: Running, key: str | None) -> None:
    """No key, a wrong key or a caller's key: 401 invalid_api_key."""
    assert await admin_get(two_days, key=key) == (401, {"error": {
        "message": "this route needs the admin key, sent as 'Authorization: Bearer KEY'",
        "type": "invalid_request_error", "code": "invalid_api_key", "param": None}})


async def test_admin_usage_is_404_without_an_admin_key(gateway: Running) -> None:
    """With no admin key configured the admin routes do not exist."""
    assert await admin_get(gateway) == (404, {"error": {
        "message": "/admin/usage is disabled: no admin key is configured",
        "type": "invalid_request_error", "code": "not_found", "param": None}})


def coderouter_usage(config: Path, *args: str) -> str:
    """Run ``python -m coderouter usage -c CONFIG ARGS`` and return its stdout."""
    done = subprocess.run([sys.executable, "-m", "coderouter", "usage", "-c", str(config),
                           *args], capture_output=True, text=True, check=True, timeout=60)
    return done.stdout


async def test_cli_usage_json_matches_admin_usage(two_days: Running) -> None:
    """`coderouter usage --by … --json` prints the same aggregation as GET /admin/usage."""
    await two_days.stop()
    for by, expected in EXPECTED.items():
        assert orjson.loads(coderouter_usage(two_days.config_path, "--by", by, "--json")) \
            == expected
    assert orjson.loads(coderouter_usage(two_days.config_path, "--since", "2026-03-04",
                                         "--json")) == SECOND_DAY


async def test_cli_usage_table(two_days: Running) -> None:
    """Without --json the totals are a plain aligned table."""
    await two_days.stop()
    assert coderouter_usage(two_days.config_path, "--by", "day") == (
        "day         requests  prompt_tokens  completion_tokens  total_tokens    cost  errors"
        "  cached_tokens  cache_write_5m_tokens  cache_write_1h_tokens  background_requests"
        "  background_cost  refused  cache_hit_ratio\n"
        "2026-03-03         3             33                 12            45  0.0525       0"
        "              9                      0                      0                    0"
        "           0.0000        0           0.2727\n"
        "2026-03-04         2              0                  0             0  0.0000       1"
        "              0                      0                      0                    0"
        "           0.0000        1           0.0000\n")
    assert coderouter_usage(two_days.config_path, "--since", "2030-01-01") == (
        "token  requests  prompt_tokens  completion_tokens  total_tokens  cost  errors"
        "  cached_tokens  cache_write_5m_tokens  cache_write_1h_tokens  background_requests"
        "  background_cost  refused  cache_hit_ratio\n"
        "(no requests in this span)\n")
