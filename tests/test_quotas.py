"""Quotas and rate limits through real HTTP: the gateway's clock is a FakeClock, nothing sleeps.

Every test runs against both backends (`start_gateway` below): this process's memory and a
real redis-server, with the same answers, messages, headers and reports.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from tests.conftest import ALICE, BOB, Running, StartGateway, base_config, redis_state
from tests.fake_anthropic import FakeAnthropic
from tests.fakes import Behaviour, FakeClock, FakeUpstream
from tests.servers import Redis

CAROL = "sk-cr-carol-0123456789abcdefghijklmnopq"


def at(text: str) -> float:
    """Unix time of an ISO datetime read as UTC."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


START = at("2026-03-04T12:00:00")  # a Wednesday
#: What the fake upstream reports for each answer (11 prompt of which 3 cached, 4 completion).
TOKENS = 15
RATE_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")


@pytest.fixture(params=["memory", "redis"])
def start_gateway(request: pytest.FixtureRequest, start_gateway: StartGateway) -> StartGateway:
    """The conftest's `start_gateway`, with its quotas in this process's memory or in Redis
    (each gateway started gets a Redis prefix of its own, as a fresh Redis would be)."""
    if request.param == "memory":
        return start_gateway
    server: Redis = request.getfixturevalue("redis_server")

    async def start(config: dict[str, Any], **options: Any) -> Running:
        return await start_gateway({"state": redis_state(server), **config}, **options)
    return start


def limits_config(upstream: FakeUpstream, tmp_path: Path, *, alice: dict[str, Any] | None = None,
                  team: dict[str, Any] | None = None) -> dict[str, Any]:
    """The base config plus carol in alice's group, with *alice* and *team* limits merged in.

    Its group reserves no output for requests without ``max_tokens`` (``output_reserve: 0``),
    so reservations are the prompt estimate plus ``max_tokens``; the reserve has its own tests.
    """
    config = base_config(upstream.url, tmp_path)
    config["model_groups"][0]["output_reserve"] = 0
    config["tokens"][0].update(alice or {})
    config["token_groups"][0].update(team or {})
    config["tokens"].append({"name": "carol", "key": CAROL, "group": "team"})
    return config


async def call(gateway: Running, key: str = ALICE, body: dict[str, Any] | None = None,
               path: str = "/v1/chat/completions") -> tuple[int, dict[str, str], Any]:
    """POST *body* (a minimal chat request by default); status, headers, JSON or SSE bytes."""
    body = {"model": "smart", "messages": []} if body is None else body
    async with aiohttp.ClientSession() as http, http.post(
            gateway.url + path, data=orjson.dumps(body),
            headers={"Authorization": f"Bearer {key}"}) as resp:
        raw = await resp.read()
        is_json = resp.content_type == "application/json"
        return resp.status, dict(resp.headers), orjson.loads(raw) if is_json else raw


async def own_usage(gateway: Running, key: str = ALICE) -> Any:
    async with aiohttp.ClientSession() as http, http.get(
            gateway.url + "/v1/usage", headers={"Authorization": f"Bearer {key}"}) as resp:
        assert resp.status == 200
        return await resp.json()


def quota_error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "insufficient_quota",
                      "code": "insufficient_quota", "param": None}}


def rate_error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "rate_limit_exceeded",
                      "code": "rate_limit_exceeded", "param": None}}


def ratelimit_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: headers[k] for k in RATE_HEADERS if k in headers}


def summary(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["token"], r["status"], r["attempts"], r["total_tokens"]) for r in rows]


# -- quotas -------------------------------------------------------------------------------------


async def test_token_quota_then_group_quota_used_up(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """alice's own request quota refuses her third; then the group's token quota refuses carol."""
    gateway = await start_gateway(limits_config(
        upstream, tmp_path, alice={"quota": {"requests": 2, "period": "day"}},
        team={"quota": {"tokens": 40, "period": "day"}}), clock=FakeClock(START))
    assert [(await call(gateway))[0] for _ in range(2)] == [200, 200]
    status, headers, body = await call(gateway)
    assert (status, body) == (429, quota_error(
        "token 'alice' has used its daily request quota (2); it resets at 2026-03-05T00:00:00Z"))
    assert "Retry-After" not in headers and ratelimit_headers(headers) == {}

    assert (await call(gateway, CAROL))[0] == 200  # 30 used of 40: admitted, crosses to 45
    status, _, body = await call(gateway, CAROL)
    assert (status, body) == (429, quota_error(
        "token group 'team' has used its daily token quota (40); "
        "it resets at 2026-03-05T00:00:00Z"))
    status, _, body = await call(gateway)
    assert body["error"]["message"].startswith("token 'alice' has used its daily request")

    assert len(upstream.seen) == 3
    rows = await gateway.rows()
    assert summary(rows) == [("alice", 200, 1, 15), ("alice", 200, 1, 15), ("alice", 429, 0, 0),
                             ("carol", 200, 1, 15), ("carol", 429, 0, 0), ("alice", 429, 0, 0)]
    assert rows[4]["error"] == body_message(quota_error(
        "token group 'team' has used its daily token quota (40); "
        "it resets at 2026-03-05T00:00:00Z"))
    assert {r["ts"] for r in rows} == {START}


def body_message(body: dict[str, Any]) -> str:
    return str(body["error"]["message"])


async def test_sdk_sees_insufficient_quota(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The OpenAI SDK raises RateLimitError with code insufficient_quota, and retries nothing."""
    gateway = await start_gateway(limits_config(
        upstream, tmp_path, alice={"quota": {"requests": 0}}), clock=FakeClock(START))
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=ALICE,
                                  max_retries=0) as client:
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(model="smart", messages=[])
    assert refused.value.status_code == 429
    assert refused.value.code == "insufficient_quota"
    assert refused.value.body == quota_error(
        "token 'alice' has used its total request quota (0); it does not reset")["error"]
    assert upstream.seen == []


async def test_cost_quota_uses_the_model_group_price(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Cost is tokens x price (cached input at cached_input); a monthly cost cap refuses at 0.03."""
    config = limits_config(upstream, tmp_path,
                           alice={"quota": {"cost": 0.03, "period": "month"}})
    config["model_groups"][0]["price"] = {"input": 1000, "output": 2000, "cached_input": 500}
    gateway = await start_gateway(config, clock=FakeClock(START))
    assert [(await call(gateway))[0] for _ in range(2)] == [200, 200]  # 0.0175 each
    status, _, body = await call(gateway)
    assert (status, body) == (429, quota_error(
        "token 'alice' has used its monthly cost quota (0.03); "
        "it resets at 2026-04-01T00:00:00Z"))
    [quota] = (await own_usage(gateway))["quotas"]
    assert quota["cost"] == {"limit": 0.03, "used": 0.035, "reserved": 0.0, "remaining": 0}
    assert [r["cost"] for r in await gateway.rows()] == [0.0175, 0.0175, 0.0]


@pytest.mark.parametrize(("period", "last_moment", "resets"), [
    ("day", "2026-03-04T23:59:59.9", "2026-03-05T00:00:00"),
    ("week", "2026-03-08T23:59:59.9", "2026-03-09T00:00:00"),   # Monday
    ("month", "2026-03-31T23:59:59.9", "2026-04-01T00:00:00"),
])
async def test_quota_resets_at_the_utc_period_start(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path, period: str,
        last_moment: str, resets: str) -> None:
    """Used up, a quota refuses until the next UTC day, Monday or 1st of the month."""
    clock = FakeClock(START)
    gateway = await start_gateway(limits_config(
        upstream, tmp_path, alice={"quota": {"requests": 1, "period": period}}), clock=clock)
    assert (await call(gateway))[0] == 200
    clock.now = at(last_moment)
    status, _, body = await call(gateway)
    adjective = {"day": "daily", "week": "weekly", "month": "monthly"}[period]
    assert (status, body) == (429, quota_error(
        f"token 'alice' has used its {adjective} request quota (1); it resets at {resets}Z"))
    clock.now = at(resets)
    assert (await call(gateway))[0] == 200
    [quota] = (await own_usage(gateway))["quotas"]
    assert quota["requests"] == {"limit": 1, "used": 1, "reserved": 0, "remaining": 0}


async def test_total_quota_never_resets(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A quota without period is total: a year later it is still used up."""
    clock = FakeClock(START)
    gateway = await start_gateway(limits_config(
        upstream, tmp_path, alice={"quota": {"tokens": 10}}), clock=clock)
    assert (await call(gateway))[0] == 200
    clock.now += 400 * 86400
    status, _, body = await call(gateway)
    assert (status, body) == (429, quota_error(
        "token 'alice' has used its total token quota (10); it does not reset"))


async def test_messages_route_answers_quota_errors_anthropic_shaped(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """On /v1/messages a used-up quota is {"type": "error", "error": rate_limit_error}."""
    gateway = await start_gateway(limits_config(
        upstream, tmp_path, alice={"quota": {"requests": 0}}), clock=FakeClock(START))
    status, _, body = await call(gateway, body={"model": "smart", "max_tokens": 10,
                                                "messages": [{"role": "user", "content": "x"}]},
                                 path="/v1/messages")
    assert (status, body) == (429, {"type": "error", "error": {
        "type": "rate_limit_error",
        "message": "token 'alice' has used its total request quota (0); it does not reset"}})
    assert upstream.seen == []


# -- rate limits ----------------------------------------------------------------------------------


async def test_rpm_is_a_sliding_minute_with_retry_after_and_headers(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """rpm 2: a third request within the minute is refused until the first one is 60 s old."""
    clock = FakeClock(START)
    gateway = await start_gateway(limits_config(
        upstream, tmp_path, alice={"rate_limit": {"rpm": 2}}), clock=clock)
    status, headers, _ = await call(gateway)
    assert status == 200
    assert ratelimit_headers(headers) == {"x-ratelimit-limit-requests": "2",
                                          "x-ratelimit-remaining-requests": "1",
                                          "x-ratelimit-reset-requests": "1m0s"}
    clock.now = START + 20
    status, headers, _ = await call(gateway)
    assert (status, headers["x-ratelimit-remaining-requests"]) == (200, "0")
    clock.now = START + 30
    status, headers, body = await call(gateway)
    assert (status, body) == (429, rate_error(
        "token 'alice' reached its rate limit of 2 requests per minute; retry in 30s"))
    assert headers["Retry-After"] == "30"
    assert ratelimit_headers(headers) == {"x-ratelimit-limit-requests": "2",
                                          "x-ratelimit-remaining-requests": "0",
                                          "x-ratelimit-reset-requests": "50s"}
    clock.now = START + 59.5
    status, headers, _ = await call(gateway)
    assert (status, headers["Retry-After"]) == (429, "1")
    clock.now = START + 60
    status, headers, _ = await call(gateway)
    assert (status, headers["x-ratelimit-remaining-requests"]) == (200, "0")
    assert [r["status"] for r in await gateway.rows()] == [200, 200, 429, 429, 200]
    assert len(upstream.seen) == 3


async def test_sdk_sees_rate_limit_exceeded_with_retry_after(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The OpenAI SDK gets RateLimitError code rate_limit_exceeded and the Retry-After header."""
    gateway = await start_gateway(limits_config(
        upstream, tmp_path, alice={"rate_limit": {"rpm": 1}}), clock=FakeClock(START))
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=ALICE,
                                  max_retries=0) as client:
        raw = await client.chat.completions.with_raw_response.create(model="smart", messages=[])
        assert raw.headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(model="smart", messages=[])
    assert refused.value.code == "rate_limit_exceeded"
    assert refused.value.response.headers["retry-after"] == "60"


async def test_tpm_counts_settled_tokens_of_the_group_and_streams_carry_headers(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """tpm 40 shared by the group: 45 tokens in the minute refuse both tokens until 60 s pass."""
    clock = FakeClock(START)
    gateway = await start_gateway(limits_config(
        upstream, tmp_path, team={"rate_limit": {"tpm": 40}}), clock=clock)
    remaining = []
    for n, key in enumerate((ALICE, CAROL, ALICE)):
        clock.now = START + 10 * n
        stream = n == 1
        status, headers, body = await call(
            gateway, key, {"model": "smart", "messages": [], "stream": stream})
        assert status == 200
        remaining.append(headers["x-ratelimit-remaining-tokens"])
        if stream:
            assert headers["Content-Type"].startswith("text/event-stream")
            assert body.endswith(b"data: [DONE]\n\n")
            assert ratelimit_headers(headers) == {"x-ratelimit-limit-tokens": "40",
                                                  "x-ratelimit-remaining-tokens": "25",
                                                  "x-ratelimit-reset-tokens": "50s"}
    assert remaining == ["40", "25", "10"]  # at admission, before the request's own usage
    clock.now = START + 30
    for key in (ALICE, CAROL):
        status, headers, body = await call(gateway, key)
        assert (status, body) == (429, rate_error(
            "token group 'team' reached its rate limit of 40 tokens per minute; retry in 30s"))
        assert headers["Retry-After"] == "30"
        assert ratelimit_headers(headers) == {"x-ratelimit-limit-tokens": "40",
                                              "x-ratelimit-remaining-tokens": "0",
                                              "x-ratelimit-reset-tokens": "50s"}
    clock.now = START + 60
    status, headers, _ = await call(gateway, CAROL)
    assert (status, headers["x-ratelimit-remaining-tokens"]) == (200, "10")


async def test_tpm_reserves_max_tokens_while_in_flight(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A request in flight holds prompt estimate + max_tokens of the tpm until it settles."""
    gateway = await start_gateway(limits_config(
        upstream, tmp_path, alice={"rate_limit": {"tpm": 100}}), clock=FakeClock(START))
    release = asyncio.Event()
    upstream.then(hold=release)
    held = asyncio.create_task(call(gateway, body={"model": "smart", "messages": [],
                                                   "max_tokens": 100}))
    await until(lambda: upstream.in_flight == 1)
    status, headers, body = await call(gateway)
    assert (status, body["error"]["code"], headers["Retry-After"]) == (
        429, "rate_limit_exceeded", "1")
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    release.set()
    assert (await held)[0] == 200
    status, headers, _ = await call(gateway)
    assert (status, headers["x-ratelimit-remaining-tokens"]) == (200, "85")


async def test_concurrent_limit_counts_requests_in_flight(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """concurrent 2: a third request while two are in flight is refused with Retry-After 1."""
    gateway = await start_gateway(limits_config(
        upstream, tmp_path, alice={"rate_limit": {"concurrent": 2}}), clock=FakeClock(START))
    release = asyncio.Event()
    upstream.then(hold=release).then(hold=release)
    held = [asyncio.create_task(call(gateway)) for _ in range(2)]
    await until(lambda: upstream.in_flight == 2)
    status, headers, body = await call(gateway)
    assert (status, body) == (429, rate_error(
        "token 'alice' has 2 requests in flight, its concurrency limit; "
        "retry when one finishes"))
    assert headers["Retry-After"] == "1"
    assert ratelimit_headers(headers) == {}
    assert (await call(gateway, CAROL))[0] == 200  # a token limit, not the group's
    release.set()
    assert [(await task)[0] for task in held] == [200, 200]
    assert (await call(gateway))[0] == 200
    assert [r["status"] for r in await gateway.rows()] == [429, 200, 200, 200, 200]


async def until(condition: Any, timeout: float = 5.0) -> None:
    """Poll *condition* on the event loop until it holds (fails the test after *timeout*)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


# -- the burst --------------------------------------------------------------------------------


@pytest.mark.parametrize(("quota", "dimension", "reserved_each"), [
    ({"requests": 5}, "requests", 1),
    ({"tokens": 5 * 105}, "tokens", 105),  # each reserves 5 (prompt) + 100 (max_tokens)
])
async def test_burst_of_50_admits_only_what_the_quota_has_room_for(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        quota: dict[str, int], dimension: str, reserved_each: int) -> None:
    """50 concurrent requests against a group quota with room for 5: 5 reach the upstream."""
    gateway = await start_gateway(limits_config(
        upstream, tmp_path, team={"quota": {**quota, "period": "day"}}), clock=FakeClock(START))
    release = asyncio.Event()
    upstream.default = Behaviour(hold=release)
    body = {"model": "smart", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100}
    tasks = [asyncio.create_task(call(gateway, (ALICE, CAROL)[n % 2], body)) for n in range(50)]
    await until(lambda: sum(t.done() for t in tasks) == 45 and upstream.in_flight == 5)

    held = (await own_usage(gateway, CAROL))["quotas"][0][dimension]
    assert held == {"limit": 5 * reserved_each, "used": 0, "reserved": 5 * reserved_each,
                    "remaining": 0}
    release.set()
    results = await asyncio.gather(*tasks)
    statuses = [status for status, _, _ in results]
    assert (statuses.count(200), statuses.count(429)) == (5, 45)
    assert {body_message(b) for s, _, b in results if s == 429} == {
        f"token group 'team' has the rest of its daily {dimension[:-1]} quota "
        f"({5 * reserved_each}) reserved by requests in flight; retry when one finishes"}
    assert len(upstream.seen) == 5

    rows = await gateway.rows()
    assert sorted((r["status"], r["attempts"], r["total_tokens"]) for r in rows) == (
        [(200, 1, TOKENS)] * 5 + [(429, 0, 0)] * 45)
    settled = (await own_usage(gateway))["quotas"][0][dimension]
    used = 5 if dimension == "requests" else 5 * TOKENS
    assert settled == {"limit": 5 * reserved_each, "used": used, "reserved": 0,
                       "remaining": 5 * reserved_each - used}


# -- persistence and reload ---------------------------------------------------------------------


async def test_restart_with_the_same_database_neither_forgives_nor_double_counts(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Counters rebuilt from the usage file equal the live ones; unforwarded requests count 0."""
    clock = FakeClock(START)
    config = limits_config(upstream, tmp_path, alice={
        "quota": [{"requests": 4, "period": "day"}, {"tokens": 1000}],
        "rate_limit": {"rpm": 10}})
    gateway = await start_gateway(config, clock=clock)
    assert (await call(gateway))[0] == 200
    upstream.then(status=500)
    assert (await call(gateway))[0] == 502  # forwarded and failed: a request, no tokens
    status, _, body = await call(gateway)  # the target cools down: never forwarded
    assert (status, body["error"]["message"].startswith("every target of 'smart' is cooling"))\
        == (502, True)
    before = await own_usage(gateway)
    assert [q["requests"] or q["tokens"] for q in before["quotas"]] == [
        {"limit": 4, "used": 2, "reserved": 0, "remaining": 2},
        {"limit": 1000, "used": 15, "reserved": 0, "remaining": 985}]
    assert before["rate_limits"][0]["rpm"]["remaining"] == 8
    await gateway.stop()
    assert summary(await gateway.rows()) == [
        ("alice", 200, 1, 15), ("alice", 502, 1, 0), ("alice", 502, 0, 0)]

    clock.now = START + 5
    gateway = await start_gateway(config, clock=clock)
    after = await own_usage(gateway)
    assert after["quotas"] == before["quotas"]
    assert after["rate_limits"][0]["rpm"] == {"limit": 10, "remaining": 8, "resets_in": 60}
    assert [(await call(gateway))[0] for _ in range(3)] == [200, 200, 429]
    await gateway.stop()

    gateway = await start_gateway(config, clock=clock)
    status, _, body = await call(gateway)
    assert (status, body) == (429, quota_error(
        "token 'alice' has used its daily request quota (4); it resets at 2026-03-05T00:00:00Z"))
    assert [q["requests"] or q["tokens"] for q in (await own_usage(gateway))["quotas"]] == [
        {"limit": 4, "used": 4, "reserved": 0, "remaining": 0},
        {"limit": 1000, "used": 45, "reserved": 0, "remaining": 955}]


async def test_restart_on_another_day_counts_only_that_day(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Seeding uses the period start: yesterday's rows count for the month, not for today."""
    clock = FakeClock(START)
    config = limits_config(upstream, tmp_path, alice={"quota": [
        {"requests": 2, "period": "day"}, {"requests": 3, "period": "month"}]})
    gateway = await start_gateway(config, clock=clock)
    assert [(await call(gateway))[0] for _ in range(3)] == [200, 200, 429]
    await gateway.stop()
    clock.now = at("2026-03-05T08:00:00")
    gateway = await start_gateway(config, clock=clock)
    assert [q["requests"]["used"] for q in (await own_usage(gateway))["quotas"]] == [0, 2]
    status, _, body = await call(gateway)
    assert status == 200
    status, _, body = await call(gateway)
    assert (status, body) == (429, quota_error(
        "token 'alice' has used its monthly request quota (3); "
        "it resets at 2026-04-01T00:00:00Z"))


async def test_reload_lowering_a_limit_applies_at_the_next_request(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Usage counted under the old limit stays; the new limit refuses from the next request."""
    config = limits_config(upstream, tmp_path, alice={"quota": {"requests": 10, "period": "day"}})
    gateway = await start_gateway(config, clock=FakeClock(START))
    assert [(await call(gateway))[0] for _ in range(3)] == [200, 200, 200]
    config["tokens"][0]["quota"] = {"requests": 3, "period": "day"}
    config["token_groups"][0]["rate_limit"] = {"rpm": 100}
    gateway.reconfigure(config)
    status, headers, body = await call(gateway)
    assert (status, body) == (429, quota_error(
        "token 'alice' has used its daily request quota (3); it resets at 2026-03-05T00:00:00Z"))
    assert headers["x-ratelimit-remaining-requests"] == "97"  # the group saw 3 this minute
    config["tokens"][0]["quota"] = {"requests": 4, "period": "day"}
    gateway.reconfigure(config)
    assert [(await call(gateway))[0] for _ in range(2)] == [200, 429]
    [quota] = (await own_usage(gateway))["quotas"]
    assert quota["requests"] == {"limit": 4, "used": 4, "reserved": 0, "remaining": 0}


# -- GET /v1/usage --------------------------------------------------------------------------------


async def test_v1_usage_reports_quotas_and_rate_limits_of_token_and_group(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The exact body of GET /v1/usage after one request, twelve seconds later."""
    clock = FakeClock(START)
    gateway = await start_gateway(limits_config(
        upstream, tmp_path,
        alice={"quota": {"tokens": 1000, "period": "day"},
               "rate_limit": {"rpm": 60, "concurrent": 4}},
        team={"quota": {"requests": 100, "cost": 0.5, "period": "month"},
              "rate_limit": {"tpm": 10000}}), clock=clock)
    assert (await call(gateway))[0] == 200
    clock.now = START + 12
    assert await own_usage(gateway) == {
        "token": "alice", "group": "team",
        "quotas": [
            {"scope": "token", "period": "day", "resets_at": "2026-03-05T00:00:00Z",
             "tokens": {"limit": 1000, "used": 15, "reserved": 0, "remaining": 985},
             "requests": None, "cost": None},
            {"scope": "group", "period": "month", "resets_at": "2026-04-01T00:00:00Z",
             "tokens": None,
             "requests": {"limit": 100, "used": 1, "reserved": 0, "remaining": 99},
             # cost is reported to the microdollar: 0.0000175 shows as 0.000017
             "cost": {"limit": 0.5, "used": 0.000017, "reserved": 0.0,
                      "remaining": 0.499983}}],
        "rate_limits": [
            {"scope": "token", "rpm": {"limit": 60, "remaining": 59, "resets_in": 48},
             "tpm": None, "concurrent": {"limit": 4, "remaining": 4, "resets_in": None}},
            {"scope": "group", "rpm": None,
             "tpm": {"limit": 10000, "remaining": 9985, "resets_in": 48},
             "concurrent": None}]}
    assert await own_usage(gateway, BOB) == {"token": "bob", "group": None, "quotas": [],
                                             "rate_limits": []}


async def test_v1_usage_needs_a_key(gateway: Running) -> None:
    """GET /v1/usage without a valid key is 401 invalid_api_key."""
    async with aiohttp.ClientSession() as http, http.get(
            gateway.url + "/v1/usage", headers={"Authorization": "Bearer sk-cr-nope"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "invalid_api_key"


# -- what a request reserves, and who pays for a hang-up ----------------------------------------

#: A prompt of 4000 characters: 1000 tokens, plus 4 for its message.
LONG = {"model": "smart", "messages": [{"role": "user", "content": "x" * 4000}], "max_tokens": 10}
LONG_PROMPT = 1004


async def hang_up(gateway: Running, upstream: FakeUpstream, body: dict[str, Any]) -> None:
    """Send *body*, and leave once the upstream has it (the fake holds every answer)."""
    cancelled = upstream.cancelled
    task = asyncio.create_task(call(gateway, body=body))
    await until(lambda: upstream.in_flight == 1)
    task.cancel()
    await until(lambda: upstream.cancelled == cancelled + 1 and upstream.in_flight == 0)


async def test_a_caller_that_hangs_up_pays_its_prompt_estimate(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Two 1004-token prompts left before any answer use up a 2000-token quota (the upstream
    took and bills them): the third request is refused, not forwarded free."""
    gateway = await start_gateway(limits_config(
        upstream, tmp_path, alice={"quota": {"tokens": 2000, "period": "day"}}),
        clock=FakeClock(START))
    upstream.default = Behaviour(hold=asyncio.Event())
    for _ in range(2):
        await hang_up(gateway, upstream, LONG)
    await until_rows(gateway, 2)
    status, _, body = await call(gateway, body=LONG)
    assert (status, body) == (429, quota_error(
        "token 'alice' has used its daily token quota (2000); it resets at 2026-03-05T00:00:00Z"))
    assert len(upstream.seen) == 2
    rows = await gateway.rows()
    assert [(r["status"], r["prompt_tokens"], r["total_tokens"], r["usage_source"])
            for r in rows] == [(499, LONG_PROMPT, LONG_PROMPT, "estimated")] * 2 + [
        (429, 0, 0, "none")]
    assert (await own_usage(gateway))["quotas"][0]["tokens"]["used"] == 2 * LONG_PROMPT


async def until_rows(gateway: Running, count: int) -> None:
    """Wait until *count* requests have finished and settled."""
    async def finished() -> bool:
        return len(await gateway.rows()) >= count
    async with asyncio.timeout(5):
        while not await finished():
            await asyncio.sleep(0.01)


async def test_without_max_tokens_a_request_reserves_the_groups_output_reserve(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """No max_tokens: a request holds prompt + output_reserve (default 4096) while in flight,
    clamped to what the quota has left, so 30 concurrent requests against 1000 tokens send
    one upstream, not 30."""
    config = limits_config(upstream, tmp_path,
                           alice={"quota": {"tokens": 1000, "period": "day"}})
    del config["model_groups"][0]["output_reserve"]
    gateway = await start_gateway(config, clock=FakeClock(START))
    release = asyncio.Event()
    upstream.default = Behaviour(hold=release)
    body = {"model": "smart", "messages": [{"role": "user", "content": "hi"}]}
    tasks = [asyncio.create_task(call(gateway, body=body)) for _ in range(30)]
    await until(lambda: sum(t.done() for t in tasks) == 29 and upstream.in_flight == 1)
    held = (await own_usage(gateway))["quotas"][0]["tokens"]
    assert held == {"limit": 1000, "used": 0, "reserved": 1000, "remaining": 0}
    release.set()
    statuses = [status for status, _, _ in await asyncio.gather(*tasks)]
    assert (statuses.count(200), statuses.count(429)) == (1, 29)
    assert (await own_usage(gateway))["quotas"][0]["tokens"] == {
        "limit": 1000, "used": TOKENS, "reserved": 0, "remaining": 1000 - TOKENS}


async def test_output_reserve_is_set_per_model_group(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """``output_reserve: 100``: prompt 1 + 100 held by a request in flight without max_tokens."""
    config = limits_config(upstream, tmp_path,
                           alice={"quota": {"tokens": 10_000, "period": "day"}})
    config["model_groups"][0]["output_reserve"] = 100
    gateway = await start_gateway(config, clock=FakeClock(START))
    release = asyncio.Event()
    upstream.then(hold=release)
    task = asyncio.create_task(call(gateway, body={
        "model": "smart", "messages": [{"role": "user", "content": "hi"}]}))
    await until(lambda: upstream.in_flight == 1)
    assert (await own_usage(gateway))["quotas"][0]["tokens"]["reserved"] == 1 + 4 + 100
    release.set()
    assert (await task)[0] == 200


async def test_a_huge_max_tokens_is_refused_alone_and_locks_nobody_out(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """max_tokens 10^15 against a group's 1,000,000-token quota: refused, saying that this
    request alone asks for more than the quota, and nothing is reserved; max_tokens just
    under the quota is admitted, holds only what is left, and carol is told the truth."""
    gateway = await start_gateway(limits_config(
        upstream, tmp_path, team={"quota": {"tokens": 1_000_000, "period": "day"}}),
        clock=FakeClock(START))
    huge = {"model": "smart", "messages": [], "max_tokens": 10**15}
    status, _, body = await call(gateway, body=huge)
    assert (status, body) == (429, quota_error(
        f"this request alone asks for {10**15} tokens (its prompt and max_tokens), more than "
        "token group 'team' has in its daily token quota (1000000); ask for fewer output "
        "tokens"))
    assert (await call(gateway, CAROL))[0] == 200  # nothing was held
    release = asyncio.Event()
    upstream.then(hold=release)
    task = asyncio.create_task(call(gateway, body={**huge, "max_tokens": 999_999}))
    await until(lambda: upstream.in_flight == 1)
    held = (await own_usage(gateway))["quotas"][0]["tokens"]
    assert held == {"limit": 1_000_000, "used": TOKENS, "reserved": 1_000_000 - TOKENS,
                    "remaining": 0}
    status, _, body = await call(gateway, CAROL)
    assert (status, body) == (429, quota_error(
        "token group 'team' has the rest of its daily token quota (1000000) reserved by "
        "requests in flight; retry when one finishes"))
    release.set()
    assert (await task)[0] == 200
    assert (await call(gateway, CAROL))[0] == 200


async def test_a_huge_max_tokens_is_refused_by_a_cost_quota_too(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """At the group's price (2.0 per 1M output tokens) 10^9 output tokens cost 2000: more than
    a 50 cost quota ever allows."""
    gateway = await start_gateway(limits_config(
        upstream, tmp_path, alice={"quota": {"cost": 50, "period": "month"}}),
        clock=FakeClock(START))
    status, _, body = await call(gateway, body={"model": "smart", "messages": [],
                                                "max_tokens": 10**9})
    assert (status, body) == (429, quota_error(
        "this request alone asks for a cost of 2000 (its prompt and max_tokens), more than "
        "token 'alice' has in its monthly cost quota (50); ask for fewer output tokens"))
    assert upstream.seen == []


# -- count_tokens: free, but rate limited ------------------------------------------------------


async def test_count_tokens_is_free_but_keeps_rpm_and_concurrent(
        start_gateway: StartGateway, upstream: FakeUpstream, anthropic_upstream: FakeAnthropic,
        tmp_path: Path) -> None:
    """A token whose quota is spent may still count, within ``concurrent`` (2 of 6 concurrent
    calls reach the upstream) and ``rpm`` (the 4th call in a minute is refused)."""
    config = limits_config(upstream, tmp_path, alice={
        "quota": {"tokens": 1, "period": "day"}, "rate_limit": {"rpm": 3, "concurrent": 2}})
    config["channels"].append({"name": "claude", "type": "anthropic",
                               "base_url": anthropic_upstream.url, "keys": ["k"]})
    config["model_groups"].append(
        {"name": "claude", "targets": [{"channel": "claude", "model": "claude-upstream"}]})
    clock = FakeClock(START)
    gateway = await start_gateway(config, clock=clock)
    assert (await call(gateway))[0] == 200  # uses the quota up
    assert (await call(gateway))[0] == 429
    count = {"model": "claude", "messages": [{"role": "user", "content": "hi"}]}
    clock.now = START + 60
    release = asyncio.Event()
    for _ in range(2):
        anthropic_upstream.then(hold=release)
    tasks = [asyncio.create_task(call(gateway, body=count, path="/v1/messages/count_tokens"))
             for _ in range(6)]
    await until(lambda: sum(t.done() for t in tasks) == 4 and len(anthropic_upstream.seen) == 2)
    release.set()
    results = await asyncio.gather(*tasks)
    assert sorted(status for status, _, _ in results) == [200, 200, 429, 429, 429, 429]
    assert {body["error"]["message"] for status, _, body in results if status == 429} == {
        "token 'alice' has 2 requests in flight, its concurrency limit; retry when one finishes"}
    assert (await call(gateway, body=count, path="/v1/messages/count_tokens"))[0] == 200
    status, headers, body = await call(gateway, body=count, path="/v1/messages/count_tokens")
    assert (status, body["error"]["message"], headers["Retry-After"]) == (
        429, "token 'alice' reached its rate limit of 3 requests per minute; retry in 60s", "60")
    assert len(anthropic_upstream.seen) == 3
