"""``POST /v1/responses/compact`` (older Codex): passed through to a Responses channel, served
through one summarization call everywhere else; one usage row either way."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from tests import test_compaction
from tests.conftest import ALICE, Running
from tests.test_compaction import HISTORY, KINDS, SHELL, Upstreams, asked_for_summary, opened

#: test_compaction's gateway: a channel of every kind, a group per kind
upstreams = test_compaction.upstreams
gateway = test_compaction.gateway

COMPACTED = {"id": "resp_c1", "object": "response.compaction", "created_at": 1,
             "output": [HISTORY[1], {"type": "compaction", "id": "cmp_1",
                                     "encrypted_content": "gAAAAABopenai"}],
             "usage": {"input_tokens": 40, "output_tokens": 9, "total_tokens": 49}}


async def compact(gateway: Running, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(
            gateway.url + "/v1/responses/compact", json=body,
            headers={"Authorization": f"Bearer {ALICE}"}) as resp:
        return resp.status, orjson.loads(await resp.read())


async def test_passes_through_to_a_responses_channel(gateway: Running,
                                                     upstreams: Upstreams) -> None:
    upstreams.openai.then(body=orjson.dumps(COMPACTED))
    status, body = await compact(gateway, {"model": "smart", "input": HISTORY,
                                           "instructions": "be brief"})
    assert (status, body) == (200, COMPACTED)
    seen = upstreams.last("openai")
    assert seen.path == "/v1/responses/compact"
    assert seen.json == {"model": "upstream-model", "input": HISTORY, "instructions": "be brief"}
    (row,) = await gateway.rows()
    assert (row["status"], row["endpoint"], row["channel"]) == (
        200, "/v1/responses/compact", "up")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (40, 9)


@pytest.mark.parametrize("kind", list(KINDS))
async def test_served_through_a_summary_elsewhere(gateway: Running, upstreams: Upstreams,
                                                  kind: str) -> None:
    """The kept user messages, then one compaction item sealing the upstream's summary."""
    status, body = await compact(gateway, {"model": kind, "tools": [SHELL], "input": HISTORY})
    assert status == 200
    assert body["object"] == "response.compaction"
    *kept, item = body["output"]
    assert kept == [HISTORY[1]]  # the user message; not the developer one, nor tool calls
    assert item["type"] == "compaction" and item["id"].startswith("cmp_")
    summary, (prompt, completion) = KINDS[kind]
    assert opened(item) == summary
    assert (body["usage"]["input_tokens"], body["usage"]["output_tokens"]) == (
        prompt, completion)
    asked_for_summary(upstreams.last(kind))
    (row,) = await gateway.rows()
    assert (row["status"], row["endpoint"], row["channel"], row["usage_source"]) == (
        200, "/v1/responses/compact", kind, "upstream")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, completion)


async def test_mock_channel(gateway: Running) -> None:
    status, body = await compact(gateway, {"model": "mock", "input": HISTORY})
    assert status == 200
    assert opened(body["output"][-1]) is not None


async def test_errors_in_openai_shape(gateway: Running, upstreams: Upstreams) -> None:
    status, body = await compact(gateway, {"input": HISTORY})
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    upstreams.chat.then(status=400, body=b'{"error": {"message": "bad history"}}')
    status, body = await compact(gateway, {"model": "chat", "input": HISTORY})
    assert status == 400 and body["error"]["message"] == "bad history"
    rows = await gateway.rows()
    assert [r["status"] for r in rows] == [400, 400]
