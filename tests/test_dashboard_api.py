"""The dashboard's JSON endpoints against the usage table: exact numbers, auth on every one."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from coderouter.dashboard.api import for_caller
from coderouter.usage import COLUMNS, Record
from tests import dashboard_data as data
from tests.conftest import ALICE, BOB, UPSTREAM_KEY, UPSTREAM_KEY_2, StartGateway, base_config
from tests.fakes import FakeClock, FakeUpstream

ADMIN = "cr-admin-dashboard-0123456789abcdef"
NOW = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC, a Wednesday
ADMIN_ROUTES = ["/admin/overview", "/admin/breakdown", "/admin/channels", "/admin/quotas",
                "/admin/requests", "/admin/config", "/admin/alerts"]
OWN_ROUTES = ["/me/overview", "/me/requests"]
SECRETS = [ADMIN, ALICE, BOB, UPSTREAM_KEY, UPSTREAM_KEY_2]


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def dead_url() -> str:
    """A loopback URL nobody listens on: connecting to it fails at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def dashboard_config(upstream_url: str, tmp_path: Path) -> dict[str, Any]:
    config = base_config(upstream_url, tmp_path)
    config["admin"] = {"key": ADMIN}
    config["channels"].append({"name": "dead", "type": "openai", "base_url": dead_url(),
                               "keys": [UPSTREAM_KEY, UPSTREAM_KEY_2]})
    config["model_groups"].append({"name": "flaky", "cooldown": "1h", "targets": [
        {"channel": "dead", "model": "dead-model", "priority": 0},
        {"channel": "up", "model": "upstream-model", "priority": 1}]})
    config["token_groups"][0]["quota"] = {"tokens": 1_000_000, "period": "month"}
    config["tokens"][0]["quota"] = {"requests": 500, "period": "day"}
    config["tokens"][1]["quota"] = {"cost": 0.05, "period": "total"}
    return config


async def start(start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
                clock: FakeClock) -> tuple[Any, list[dict[str, Any]]]:
    """A gateway on a usage table holding the known rows, at *clock*."""
    config = dashboard_config(upstream.url, tmp_path)
    known = data.known_rows(clock.now)
    data.write_rows(config["database"]["path"], known)
    gateway = await start_gateway(config, clock=clock)
    return gateway, known


def newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (-r["ts"], -r["id"]))


async def get(url: str, key: str | None = None, **params: Any) -> tuple[int, Any, bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers, params=params) as resp:
            raw = await resp.read()
            body = await resp.json(content_type=None) if raw[:1] in (b"{", b"[") else None
            return resp.status, body, raw


async def chat(url: str, key: str, model: str = "smart") -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/v1/chat/completions", headers={
                "Authorization": f"Bearer {key}"}, json={
                "model": model, "messages": [{"role": "user", "content": "hi"}]}) as resp:
            await resp.read()
            return resp.status


@pytest.mark.parametrize("name", ["24h", "7d", "30d"])
async def test_overview_equals_the_table(start_gateway: StartGateway, upstream: FakeUpstream,
                                         tmp_path: Path, name: str) -> None:
    """Every bucket and the totals of a preset range equal the table's rows summed by hand."""
    clock = FakeClock(NOW)
    gateway, _ = await start(start_gateway, upstream, tmp_path, clock)
    assert await chat(gateway.url, ALICE) == 200  # one real row on top of the known ones
    clock.now += 1
    status, body, _ = await get(gateway.url + "/admin/overview", ADMIN, range=name)
    assert status == 200
    rows = await gateway.rows()
    assert rows[-1]["request_id"] != "req_known_399"
    since, until, step = data.window(name, clock.now)
    expected = data.overview(rows, since, until, step)
    assert data.same(body["totals"], expected["totals"]), (body["totals"], expected["totals"])
    assert data.same(body["series"], expected["series"])
    assert (body["since"], body["until"], body["step"]) == (since, until, step)
    assert body["totals"]["requests"] > 20 and body["totals"]["refused"] > 0


async def test_custom_range_and_filters(start_gateway: StartGateway, upstream: FakeUpstream,
                                        tmp_path: Path) -> None:
    """since/until pick a custom range; token/model/channel/group narrow the rows."""
    clock = FakeClock(NOW)
    gateway, _ = await start(start_gateway, upstream, tmp_path, clock)
    rows = await gateway.rows()
    status, body, _ = await get(gateway.url + "/admin/overview", ADMIN,
                                since="2026-11-10", until="2026-11-15T12:00:00")
    assert status == 200
    assert (body["since"], body["until"]) == (utc("2026-11-10"), utc("2026-11-15T12:00:00"))
    assert body["step"] == 3 * 3600  # 5.5 days in at most 60 buckets
    expected = data.overview(rows, body["since"], body["until"], body["step"])
    assert data.same(body["totals"], expected["totals"]), (body["totals"], expected["totals"])
    assert data.same(body["series"], expected["series"])
    status, body, _ = await get(gateway.url + "/admin/overview", ADMIN, range="30d",
                                token="alice", model="smart", channel="up", group="team")
    since, until, step = data.window("30d", clock.now)
    expected = data.overview(rows, since, until, step, lambda r: (
        r["token"], r["model"], r["channel"], r["token_group"]) == ("alice", "smart", "up",
                                                                    "team"))
    assert data.same(body["totals"], expected["totals"]), (body["totals"], expected["totals"])
    assert data.same(body["series"], expected["series"])
    assert 0 < body["totals"]["requests"] < len(data.select(rows, since, until))


@pytest.mark.parametrize("by, column", [("model", "model"), ("channel", "channel"),
                                        ("token", "token"), ("group", "token_group"),
                                        ("session", "session"), ("client", "client")])
async def test_breakdown_equals_the_table(start_gateway: StartGateway, upstream: FakeUpstream,
                                          tmp_path: Path, by: str, column: str) -> None:
    """One item per value of the dimension, with its totals and timings, most requests first."""
    clock = FakeClock(NOW)
    gateway, _ = await start(start_gateway, upstream, tmp_path, clock)
    rows = await gateway.rows()
    status, body, _ = await get(gateway.url + "/admin/breakdown", ADMIN, by=by, range="7d")
    assert status == 200
    since, until, _ = data.window("7d", clock.now)
    picked = data.select(rows, since, until)
    values = {r[column] for r in picked}
    expected = [{"key": v, **data.sums([r for r in picked if r[column] == v])} for v in values]
    expected.sort(key=lambda item: (-item["requests"], str(item["key"])))
    assert data.same(body["data"], expected)
    assert body["by"] == by and len(body["data"]) >= 2 and body["others"] is None
    _, top, _ = await get(gateway.url + "/admin/breakdown", ADMIN, by=by, range="7d", limit=1)
    assert data.same(top["data"], expected[:1])
    rest = [r for r in picked if r[column] != expected[0]["key"]]
    assert data.same(top["others"], {"keys": len(expected) - 1, **data.sums(rest)})


async def test_requests_newest_first_filtered_whole_rows(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Rows come back whole, newest first, filtered, limited and paged by id."""
    clock = FakeClock(NOW)
    gateway, _ = await start(start_gateway, upstream, tmp_path, clock)
    assert await chat(gateway.url, ALICE) == 200
    rows = newest_first(await gateway.rows())
    status, body, _ = await get(gateway.url + "/admin/requests", ADMIN, limit=5)
    assert status == 200
    assert body["data"] == rows[:5]
    assert body["data"][0]["request_id"].startswith("req_") and body["data"][0]["status"] == 200
    _, page2, _ = await get(gateway.url + "/admin/requests", ADMIN, limit=5,
                            before=body["data"][-1]["id"])
    assert page2["data"] == rows[5:10]
    _, errors, _ = await get(gateway.url + "/admin/requests", ADMIN, errors=1, token="bob",
                             limit=500)
    assert errors["data"] == [r for r in rows if r["status"] >= 400 and r["token"] == "bob"]
    _, by_status, _ = await get(gateway.url + "/admin/requests", ADMIN, status=502,
                                model="claude", limit=500)
    assert by_status["data"] == [r for r in rows
                                 if r["status"] == 502 and r["model"] == "claude"]
    _, one, _ = await get(gateway.url + "/admin/requests", ADMIN, request_id="req_known_7")
    assert one["data"] == [r for r in rows if r["request_id"] == "req_known_7"]


async def test_quotas_sorted_by_closeness_with_used_from_the_table(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Each quota's used equals the table's rows of its period; the fullest comes first."""
    clock = FakeClock(NOW)
    gateway, _ = await start(start_gateway, upstream, tmp_path, clock)
    assert await chat(gateway.url, ALICE) == 200
    rows = await gateway.rows()
    status, body, _ = await get(gateway.url + "/admin/quotas", ADMIN)
    assert status == 200
    counted = [r for r in rows if r["attempts"] > 0]
    day_start, month_start = utc("2026-11-18"), utc("2026-11-01")
    alice_today = [r for r in counted if r["token"] == "alice" and r["ts"] >= day_start]
    team_month = [r for r in counted if r["token_group"] == "team" and r["ts"] >= month_start]
    bob_total = [r for r in counted if r["token"] == "bob"]
    by_name = {(q["scope"], q["name"]): q for q in body["quotas"]}
    assert by_name[("token", "alice")]["requests"] == {
        "limit": 500, "used": len(alice_today), "reserved": 0,
        "remaining": 500 - len(alice_today)}
    assert by_name[("token", "alice")]["resets_at"] == "2026-11-19T00:00:00Z"
    team_tokens = sum(r["total_tokens"] for r in team_month)
    assert by_name[("group", "team")]["tokens"]["used"] == team_tokens
    bob_cost = round(sum(r["cost"] for r in bob_total), 6)
    assert by_name[("token", "bob")]["cost"]["used"] == pytest.approx(bob_cost, abs=1e-6)
    assert by_name[("token", "bob")]["resets_at"] is None
    fullness = [q["fullness"] for q in body["quotas"]]
    assert fullness == sorted(fullness, reverse=True)
    assert body["quotas"][0]["fullness"] == pytest.approx(max(
        len(alice_today) / 500, team_tokens / 1_000_000, bob_cost / 0.05), abs=1e-6)
    assert body["unlimited_tokens"] == []


async def test_channels_show_a_cooling_target_and_keys_by_index(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A target that failed is cooling until its cooldown ends; keys are indices, never keys."""
    clock = FakeClock(NOW)
    gateway, known = await start(start_gateway, upstream, tmp_path, clock)
    assert await chat(gateway.url, ALICE, "flaky") == 200  # dead fails, up answers
    status, body, raw = await get(gateway.url + "/admin/channels", ADMIN, range="30d")
    assert status == 200
    groups = {g["name"]: g for g in body["groups"]}
    dead, up = groups["flaky"]["targets"]
    assert (dead["channel"], dead["state"]) == ("dead", "cooling")
    assert body["now"] + 3590 < dead["cooling_until"] <= body["now"] + 3600
    assert dead["keys"] == [{"index": 0, "state": "ready", "cooling_until": None},
                            {"index": 1, "state": "ready", "cooling_until": None}]
    assert (up["channel"], up["state"], up["cooling_until"]) == ("up", "healthy", None)
    rows = await gateway.rows()
    since, until, _ = data.window("30d", clock.now)
    on_up = [r for r in data.select(rows, since, until)
             if (r["channel"], r["upstream_model"]) == ("up", "upstream-model")]
    expected = data.sums(on_up)
    smart_up = groups["smart"]["targets"][0]
    assert {k: smart_up[k] for k in ("requests", "errors", "error_rate", "latency_p50",
                                     "latency_p95")} == {
        k: expected[k] for k in ("requests", "errors", "error_rate", "latency_p50",
                                 "latency_p95")}
    failed = [r for r in on_up if r["status"] >= 400]
    assert smart_up["last_error"]["error"] == failed[-1]["error"]
    assert known and all(secret.encode() not in raw for secret in SECRETS)


async def test_a_failed_attempt_counts_on_the_target_that_failed(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The dead target a request failed over from shows that request, its error and its last
    error, though the row is booked on the target that answered; its cooldown starts and ends
    with a WARN line saying why."""
    caplog.set_level(logging.WARNING, logger="coderouter.health")
    clock = FakeClock(NOW)
    gateway, _ = await start(start_gateway, upstream, tmp_path, clock)
    assert await chat(gateway.url, ALICE, "flaky") == 200
    clock.now += 60
    _, body, _ = await get(gateway.url + "/admin/channels", ADMIN, range="24h")
    dead, _ = {g["name"]: g for g in body["groups"]}["flaky"]["targets"]
    assert (dead["requests"], dead["errors"], dead["error_rate"]) == (1, 1, 1.0)
    assert dead["last_error"]["status"] == 502
    assert dead["last_error"]["error"] == \
        "upstream connection failed: ClientConnectorError"
    assert NOW <= dead["last_error"]["ts"] < NOW + 60
    started = [r for r in caplog.records if "cooling down" in r.getMessage()]
    assert [(r.levelname, r.getMessage()) for r in started] == [(
        "WARNING", "target dead/dead-model cooling down for 3600s: upstream connection "
        "failed: ClientConnectorError")]
    gateway.state.health.succeeded(gateway.state.holder.current.routes["flaky"].targets[0])
    assert caplog.records[-1].getMessage() == (
        "target dead/dead-model is back in service: a request succeeded after its cooldown")


async def test_a_request_no_target_answers_counts_once_per_target(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """When every target fails, the row tells the last failure; each target has one error."""
    clock = FakeClock(NOW)
    config = dashboard_config(upstream.url, tmp_path)
    config["model_groups"][-1]["targets"][1]["channel"] = "dead"
    config["model_groups"][-1]["targets"][1]["model"] = "other-model"
    gateway = await start_gateway(config, clock=clock)
    assert await chat(gateway.url, ALICE, "flaky") == 502
    clock.now += 60
    _, body, _ = await get(gateway.url + "/admin/channels", ADMIN, range="24h")
    targets = {g["name"]: g for g in body["groups"]}["flaky"]["targets"]
    assert [(t["model"], t["requests"], t["errors"]) for t in targets] == [
        ("dead-model", 1, 1), ("other-model", 1, 1)]


async def test_a_key_cooldown_logs_its_index_and_reason_never_the_key(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A refused channel key cools with a WARN naming its index; its end is logged too."""
    caplog.set_level(logging.WARNING, logger="coderouter.health")
    clock = FakeClock(NOW)
    config = dashboard_config(upstream.url, tmp_path)
    config["channels"][0]["keys"] = [UPSTREAM_KEY, UPSTREAM_KEY_2]
    gateway = await start_gateway(config, clock=clock)
    upstream.then(status=401)
    assert await chat(gateway.url, ALICE) == 200
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("key #")
    assert lines[0].endswith(" of channel up cooling down for 30s: upstream refused the "
                             "channel key (401)")
    health = gateway.state.health
    [channel] = [c for c in gateway.state.holder.current.channels if c.name == "up"]
    health.clock = lambda: time.monotonic() + 31
    assert health.next_key(channel) is not None and health.next_key(channel) is not None
    assert caplog.records[-1].getMessage() == \
        lines[0].split(" cooling")[0] + " is back in service: its cooldown ended"
    assert all(key not in caplog.text for key in (UPSTREAM_KEY, UPSTREAM_KEY_2))


async def test_rule_targets_appear_in_channel_health(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A group's rules list their own targets, with state and numbers."""
    clock = FakeClock(NOW)
    config = dashboard_config(upstream.url, tmp_path)
    config["model_groups"][0]["rules"] = [{"name": "long", "when": {"prompt_tokens_over": 1},
                                           "targets": [{"channel": "up", "model": "big"}]}]
    gateway = await start_gateway(config, clock=clock)
    assert await chat(gateway.url, ALICE) == 200
    clock.now += 60
    _, body, _ = await get(gateway.url + "/admin/channels", ADMIN, range="24h")
    smart = {g["name"]: g for g in body["groups"]}["smart"]
    [rule] = smart["rules"]
    assert rule["name"] == "long"
    assert [(t["channel"], t["model"], t["state"], t["requests"]) for t in rule["targets"]] \
        == [("up", "big", "healthy", 1)]


async def test_alerts_name_cooling_targets_full_quotas_and_a_failed_reload(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """/admin/alerts: a target cooling with the time it ends, a token at its quota, and the
    last reload while it is a failed one; nothing once all is well."""
    clock = FakeClock(NOW)
    config = dashboard_config(upstream.url, tmp_path)
    dave = "sk-cr-dave-0123456789abcdefghijklmnopq"
    config["tokens"].append({"name": "dave", "key": dave,
                             "quota": {"requests": 2, "period": "day"}})
    gateway = await start_gateway(config, clock=clock)
    _, body, _ = await get(gateway.url + "/admin/alerts", ADMIN)
    assert body["alerts"] == []
    assert await chat(gateway.url, ALICE, "flaky") == 200
    assert [await chat(gateway.url, dave) for _ in range(2)] == [200, 200]
    gateway.config_path.write_text("channels: 3\n")
    assert not gateway.state.holder.reload("test")
    status, body, raw = await get(gateway.url + "/admin/alerts", ADMIN)
    assert status == 200
    reload, cooling, quota = body["alerts"]
    assert (reload["kind"], reload["reason"], reload["errors"]) == ("reload", "test", 1)
    assert {k: cooling[k] for k in ("kind", "channel", "model")} == {
        "kind": "cooling", "channel": "dead", "model": "dead-model"}
    assert body["now"] + 3590 < cooling["until"] <= body["now"] + 3600
    assert {k: quota[k] for k in ("kind", "scope", "name", "period", "fullness")} == {
        "kind": "quota", "scope": "token", "name": "dave", "period": "day", "fullness": 1.0}
    assert dave.encode() not in raw
    upstream.then(status=429, headers={"Retry-After": "120"})  # up's only key cools
    assert await chat(gateway.url, ALICE) == 502
    _, body, _ = await get(gateway.url + "/admin/alerts", ADMIN)
    keys = [a for a in body["alerts"] if a["kind"] == "keys"]
    assert [(a["channel"], a["keys"]) for a in keys] == [("up", 1)]
    assert body["now"] + 110 < keys[0]["until"] <= body["now"] + 120
    gateway.config_path.write_text(yaml.safe_dump(config))
    gateway.state.holder.reload("test")  # the same config as before: unchanged, not failed
    gateway.state.health.succeeded(gateway.state.holder.current.routes["flaky"].targets[0])
    _, body, _ = await get(gateway.url + "/admin/alerts", ADMIN)
    assert [a["kind"] for a in body["alerts"]] == ["keys", "quota"]


async def test_channels_count_requests_and_streams_in_flight(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A request held by its upstream counts as in flight on its target; a stream as a stream."""
    clock = FakeClock(NOW)
    gateway, _ = await start(start_gateway, upstream, tmp_path, clock)
    hold = asyncio.Event()
    upstream.then(hold=hold).then(hold=hold)

    async def send(stream: bool) -> None:
        async with aiohttp.ClientSession() as http:
            async with http.post(gateway.url + "/v1/chat/completions", headers={
                    "Authorization": f"Bearer {ALICE}"}, json={
                    "model": "smart", "stream": stream,
                    "messages": [{"role": "user", "content": "hi"}]}) as resp:
                await resp.read()

    tasks = [asyncio.create_task(send(False)), asyncio.create_task(send(True))]
    while upstream.in_flight < 2:
        await asyncio.sleep(0.01)
    _, body, _ = await get(gateway.url + "/admin/channels", ADMIN)
    target = {g["name"]: g for g in body["groups"]}["smart"]["targets"][0]
    assert (target["in_flight"], target["streams"]) == (2, 1)
    hold.set()
    await asyncio.gather(*tasks)
    _, body, _ = await get(gateway.url + "/admin/channels", ADMIN)
    target = {g["name"]: g for g in body["groups"]}["smart"]["targets"][0]
    assert (target["in_flight"], target["streams"]) == (0, 0)


async def test_config_summary_and_last_reload(start_gateway: StartGateway,
                                              upstream: FakeUpstream, tmp_path: Path) -> None:
    """The summary of the live file; a failed reload lists every error with its YAML path."""
    clock = FakeClock(NOW)
    gateway, _ = await start(start_gateway, upstream, tmp_path, clock)
    status, body, raw = await get(gateway.url + "/admin/config", ADMIN)
    assert status == 200
    assert body["summary"] == "2 channels, 2 routable models, 1 token group, 2 tokens"
    assert body["last_reload"] is None and body["path"] == str(gateway.config_path)
    assert [c["name"] for c in body["channels"]] == ["up", "dead"]
    assert {c["name"]: c["keys"] for c in body["channels"]}["dead"] == 2
    assert all(secret.encode() not in raw for secret in SECRETS)
    assert upstream.url.encode() not in raw  # base URLs are not shown
    [target] = body["model_groups"][0]["targets"]
    assert target["price"] == {"input": 1.0, "output": 2.0, "cached_input": 0.5,
                               "cache_write_5m": None, "cache_write_1h": None}
    assert body["warnings"] == [w for w in gateway.state.holder.current.warnings]
    config = yaml.safe_load(gateway.config_path.read_text())
    config["model_groups"][0]["targets"][0]["channel"] = "nowhere"
    config["tokens"][0]["group"] = "nogroup"
    gateway.config_path.write_text(yaml.safe_dump(config))
    assert not gateway.state.holder.reload("test")
    _, body, _ = await get(gateway.url + "/admin/config", ADMIN)
    assert body["last_reload"]["result"] == "failed"
    assert body["last_reload"]["reason"] == "test"
    paths = [e["path"] for e in body["last_reload"]["errors"]]
    assert "model_groups[0].targets[0].channel" in paths
    assert "tokens[0].group" in paths
    assert body["reloads_failed"] == 1
    config["model_groups"][0]["targets"][0]["channel"] = "up"
    config["tokens"][0]["group"] = "team"
    config["tokens"].append({"name": "dave", "key_sha256": "ab" * 32})
    gateway.config_path.write_text(yaml.safe_dump(config))
    assert gateway.state.holder.reload("test")
    _, body, _ = await get(gateway.url + "/admin/config", ADMIN)
    assert body["last_reload"]["result"] == "reloaded" and body["last_reload"]["errors"] == []
    assert body["summary"].endswith("3 tokens") and body["loaded_at"] == body["last_reload"]["at"]


async def test_me_answers_only_about_the_callers_token(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """/me/overview and /me/requests hold only the calling token's rows, whatever is asked."""
    clock = FakeClock(NOW)
    gateway, _ = await start(start_gateway, upstream, tmp_path, clock)
    rows = await gateway.rows()
    status, body, raw = await get(gateway.url + "/me/overview", BOB, range="30d", token="alice")
    assert status == 200 and body["token"] == "bob"
    since, until, step = data.window("30d", clock.now)
    expected = data.overview(rows, since, until, step, lambda r: r["token"] == "bob")
    assert data.same(body["totals"], expected["totals"])
    assert data.same(body["series"], expected["series"])
    status, body, raw = await get(gateway.url + "/me/requests", BOB, token="alice", limit=500)
    assert status == 200
    channels = {r["channel"] for r in rows if r["channel"]}
    shown = [{k: v for k, v in r.items() if k not in ("channel", "upstream_model", "rule")}
             for r in newest_first(rows) if r["token"] == "bob"]
    for row in shown:  # the operator's "channel: " prefixes are not for the caller
        for name in channels:
            row["error"] = row["error"] and row["error"].replace(f"{name}: ", "")
    assert body["data"] == shown
    assert {r["token"] for r in body["data"]} == {"bob"}
    assert BOB.encode() not in raw
    assert any(r["channel"] for r in rows if r["token"] == "bob")


def test_a_callers_row_names_no_channel() -> None:
    """The operator's ``channel:`` prefixes leave a caller's error; other words stay."""
    row = {"id": 1, "channel": "up", "upstream_model": "m", "rule": "r", "status": 502,
           "error": "up: upstream answered 500; backup-2: upstream connection failed "
                    "(after 2 attempts)"}
    assert for_caller(row, ["up", "backup-2", "backup"]) == {
        "id": 1, "status": 502,
        "error": "upstream answered 500; upstream connection failed (after 2 attempts)"}


async def test_every_endpoint_needs_its_key(start_gateway: StartGateway,
                                            upstream: FakeUpstream, tmp_path: Path) -> None:
    """Admin endpoints: 401 without a key and with a token's key; /me ones: 401 without;
    no answer carries any key."""
    clock = FakeClock(NOW)
    gateway, _ = await start(start_gateway, upstream, tmp_path, clock)
    for route in ADMIN_ROUTES:
        for key in (None, ALICE, "wrong-key"):
            status, body, _ = await get(gateway.url + route, key)
            assert status == 401, (route, key)
            assert body["error"]["code"] == "invalid_api_key"
        status, _, raw = await get(gateway.url + route, ADMIN)
        assert status == 200
        assert not [secret for secret in SECRETS if secret.encode() in raw], route
    for route in OWN_ROUTES:
        for key in (None, "wrong-key", ADMIN):
            status, body, _ = await get(gateway.url + route, key)
            assert status == 401, (route, key)
            assert body["error"]["code"] == "invalid_api_key"
        status, _, raw = await get(gateway.url + route, ALICE)
        assert status == 200
        assert not [secret for secret in SECRETS if secret.encode() in raw], route


async def test_without_an_admin_key_the_dashboard_does_not_exist(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """No admin.key: /dashboard and every /admin endpoint are 404; /me still works."""
    gateway = await start_gateway(base_config(upstream.url, tmp_path))
    for route in ["/dashboard", *ADMIN_ROUTES]:
        status, body, _ = await get(gateway.url + route, ALICE)
        assert status == 404, route
        assert body["error"]["code"] == "not_found"
    status, _, raw = await get(gateway.url + "/me")
    assert status == 200 and b"<form" in raw
    assert (await get(gateway.url + "/me/overview", ALICE))[0] == 200


async def test_bad_parameters_are_400_with_the_reason(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Unknown range, bad dates, inverted range, bad by/limit/status: 400 naming the problem."""
    gateway, _ = await start(start_gateway, upstream, tmp_path, FakeClock(NOW))
    cases = [("/admin/overview", {"range": "1y"}, "'range' must be one of 24h, 7d, 30d"),
             ("/admin/overview", {"since": "yesterday"}, "'since': expected a span"),
             ("/admin/overview", {"since": "1d", "until": "2d"}, "'until' must be after"),
             ("/admin/breakdown", {"by": "colour"},
              "'by' must be one of model, channel, token, group, session, client"),
             ("/admin/requests", {"limit": "0"}, "'limit' must be between 1 and 500"),
             ("/admin/requests", {"status": "ok"}, "'status' must be an integer"),
             ("/me/overview", {"range": "2d"}, "'range' must be one of")]
    for route, params, message in cases:
        key = ALICE if route.startswith("/me") else ADMIN
        status, body, _ = await get(gateway.url + route, key, **params)
        assert status == 400, (route, params)
        assert message in body["error"]["message"]


async def test_pages_and_static_files(start_gateway: StartGateway, upstream: FakeUpstream,
                                      tmp_path: Path) -> None:
    """The pages are static HTML under a strict CSP; only the packaged files are served."""
    gateway, _ = await start(start_gateway, upstream, tmp_path, FakeClock(NOW))
    async with aiohttp.ClientSession() as http:
        for page in ("/dashboard", "/me"):
            async with http.get(gateway.url + page) as resp:
                html = await resp.text()
                assert resp.status == 200 and resp.content_type == "text/html"
                assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
                assert "<script src=\"/ui/" in html and "http" not in html.replace(
                    "http-equiv", "")
        for name in ("app.css", "common.js", "dashboard.js", "me.js", "chart.js"):
            async with http.get(gateway.url + "/ui/" + name) as resp:
                assert resp.status == 200, name
                text = (await resp.text()).replace('"http://www.w3.org/2000/svg"', "")
                assert "http://" not in text and "https://" not in text  # nothing from elsewhere
        for bad in ("/ui/nope.js", "/ui/..%2Fapi.py", "/ui/%2e%2e%2f__init__.py"):
            async with http.get(gateway.url + bad) as resp:
                assert resp.status == 404, bad


async def test_the_same_numbers_from_postgresql(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        postgres_server: Any, postgres_url: str, redis_state: dict[str, Any]) -> None:
    """With database.url and Redis-shared state the dashboard's SQL runs in PostgreSQL and
    answers what it answers on SQLite: overview, breakdown, channels, requests, quotas."""
    clock = FakeClock(NOW)
    config = dashboard_config(upstream.url, tmp_path)
    config["database"] = {"url": postgres_url, "spool": str(tmp_path / "spool")}
    config["state"] = redis_state
    gateway = await start_gateway(config, clock=clock)
    for row in data.known_rows(NOW):
        gateway.state.writer.add(Record(**row))
    assert await chat(gateway.url, ALICE) == 200
    clock.now += 1
    await gateway.state.writer.flush()
    fetched = await gateway.state.writer.fetch(
        f"SELECT id, {', '.join(COLUMNS)} FROM usage ORDER BY id", [])
    rows = [dict(zip(("id", *COLUMNS), row, strict=True)) for row in fetched]
    assert len(rows) == 401 and {r["client"] for r in rows} >= {"claude-code", "codex"}
    since, until, step = data.window("30d", clock.now)
    _, body, _ = await get(gateway.url + "/admin/overview", ADMIN, range="30d")
    expected = data.overview(rows, since, until, step)
    assert data.same(body["totals"], expected["totals"]), (body["totals"], expected["totals"])
    assert data.same(body["series"], expected["series"])
    _, body, _ = await get(gateway.url + "/admin/breakdown", ADMIN, range="30d", by="token")
    picked = data.select(rows, since, until)
    assert [item["key"] for item in body["data"]] == sorted(
        {r["token"] for r in picked}, key=lambda t: (-sum(r["token"] == t for r in picked), t))
    assert data.same(body["data"][0], {"key": body["data"][0]["key"], **data.sums(
        [r for r in picked if r["token"] == body["data"][0]["key"]])})
    _, body, _ = await get(gateway.url + "/admin/channels", ADMIN, range="30d")
    smart_up = {g["name"]: g for g in body["groups"]}["smart"]["targets"][0]
    on_up = [r for r in picked if (r["channel"], r["upstream_model"]) == ("up", "upstream-model")]
    assert (smart_up["requests"], smart_up["latency_p95"]) == (
        len(on_up), data.sums(on_up)["latency_p95"])
    assert smart_up["last_error"]["error"] == [r for r in on_up if r["status"] >= 400][-1]["error"]
    _, body, _ = await get(gateway.url + "/admin/requests", ADMIN, limit=5, token="bob")
    assert body["data"] == [r for r in newest_first(rows) if r["token"] == "bob"][:5]
    _, page2, _ = await get(gateway.url + "/admin/requests", ADMIN, limit=5, token="bob",
                            before=body["data"][-1]["id"])
    assert page2["data"] == [r for r in newest_first(rows) if r["token"] == "bob"][5:10]
    status, body, _ = await get(gateway.url + "/admin/quotas", ADMIN)
    assert status == 200
    alice = {(q["scope"], q["name"]): q for q in body["quotas"]}[("token", "alice")]
    assert alice["requests"]["used"] >= 1  # the real request, counted in Redis
