"""Caller mistakes the translators and endpoints read are 400s in the caller's dialect, each
with its usage row: never a 500 with a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import ALICE, Running, StartGateway, coding_config
from tests.fake_anthropic import FakeAnthropic
from tests.fakes import FakeUpstream

ADMIN = "sk-cr-admin-0123456789abcdefghijklmn"
USER = {"role": "user", "content": "hi"}


@pytest.fixture
async def mistaken(start_gateway: StartGateway, upstream: FakeUpstream,
                   anthropic_upstream: FakeAnthropic, tmp_path: Path) -> Running:
    config = coding_config(upstream.url, anthropic_upstream.url, tmp_path)
    config["admin"] = {"key": ADMIN}
    return await start_gateway(config)


async def post(gateway: Running, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + path, json=body, headers={
                "Authorization": f"Bearer {ALICE}", "anthropic-version": "2023-06-01"}) as resp:
            return resp.status, orjson.loads(await resp.read())


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/messages", {"model": "smart", "max_tokens": 5, "messages": [USER],
                      "tool_choice": {"type": []}}),
    ("/v1/chat/completions", {"model": "claude", "messages": [
        USER, {"role": "assistant", "content": [{"type": "text", "text": 5}]}, USER]}),
    ("/v1/responses", {"model": "claude", "input": "hi", "reasoning": {"effort": []}}),
], ids=["messages-tool-choice-type-list", "chat-text-part-number", "responses-effort-list"])
async def test_malformed_fields_are_400s_in_the_callers_dialect(
        mistaken: Running, path: str, body: dict[str, Any]) -> None:
    status, answer = await post(mistaken, path, body)
    assert status == 400, answer
    if path == "/v1/messages":
        assert answer["type"] == "error"
        assert answer["error"]["type"] == "invalid_request_error"
    else:
        assert answer["error"]["type"] == "invalid_request_error"
    rows = await mistaken.rows()
    assert [row["status"] for row in rows] == [400]


@pytest.mark.parametrize("query", ["before=18446744073709551616", "status=99999999999999999999",
                                   "before=-9223372036854775809"])
@pytest.mark.parametrize(("path", "key"), [("/me/requests", ALICE),
                                           ("/admin/requests", ADMIN)])
async def test_integers_beyond_64_bits_in_a_query_are_400s(
        mistaken: Running, path: str, key: str, query: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{mistaken.url}{path}?{query}",
                            headers={"Authorization": f"Bearer {key}"}) as resp:
            assert resp.status == 400, await resp.text()
            assert query.split("=")[0] in (await resp.json())["error"]["message"]
