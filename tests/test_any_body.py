"""Whatever a client sends, the gateway answers it: property-based, against the real
`coderouter serve` process, fake OpenAI and Anthropic upstreams and the mock channel behind it.

Hypothesis draws bodies of three kinds: any JSON value (or bytes that are not JSON), objects
made of the keys the APIs use with arbitrary values, and real agent bodies (Claude Code, Codex,
qwen-code, Gemini CLI) with one part replaced by an arbitrary value or removed. Each goes to
one POST route (the Gemini API's included) for a model on an OpenAI, Anthropic, Gemini or mock
channel, or one that does not exist. Every answer must be a non-500 status with an error body
in the caller's shape, the process must stay up, and every request must leave exactly one
usage row (checked once all examples ran, so the examples go at the speed of the gateway, not
of the database commits).
"""

from __future__ import annotations

import asyncio
import http.client
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ALICE, UPSTREAM_KEY, coding_config
from tests.fake_anthropic import FakeAnthropic
from tests.fake_gemini import FakeGemini
from tests.fakes import FakeUpstream
from tests.service import serving
from tests.test_agent_payloads import CODEX_BODY, QWEN_BODY, claude_code_body

ADMIN = "sk-cr-admin-0123456789abcdefghijklmn"
MODELS = ["smart", "claude", "mocked", "gem", "nope"]
ROUTES = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses",
          "/v1/messages", "/v1/messages/count_tokens", "/v1/messages?beta=true"] + [
    f"/v1beta/models/{model}:{method}" for model in MODELS
    for method in ("generateContent", "streamGenerateContent?alt=sse", "countTokens")]
KEYS = ["model", "messages", "role", "content", "type", "text", "tools", "tool_choice",
        "tool_calls", "function", "name", "arguments", "parameters", "input_schema", "input",
        "instructions", "system", "prompt", "stream", "stream_options", "include_usage",
        "max_tokens", "max_completion_tokens", "max_output_tokens", "thinking",
        "budget_tokens", "metadata", "user_id", "source", "data", "media_type", "image_url",
        "url", "tool_use_id", "tool_call_id", "id", "properties", "items", "output_config",
        "context_management", "reasoning", "temperature", "stop_sequences", "file",
        "contents", "parts", "systemInstruction", "generationConfig", "functionCall",
        "functionResponse", "inlineData", "thoughtSignature", "generateContentRequest",
        "signature", "encrypted_content", "thinking", "call_id", "tool_call_id"]
#: Strings shaped like the gateway's envelopes (forged: they never open), alone and after an id.
FORGED = ["crenv1.AAAA.AAAAAAAAAAAAAAAAAAAAAA", "toolu_1.crenv1.eJw.AAAAAAAAAAAAAAAAAAAAAA"]
GEMINI_CLI_BODY = {  # agents-wire.md §3.2
    "contents": [
        {"role": "user", "parts": [{"text": "Write hello.txt containing 'hi'"}]},
        {"role": "model", "parts": [
            {"thought": True, "text": "Use the write tool."},
            {"functionCall": {"name": "write_file", "args": {"file_path": "hello.txt",
                                                             "content": "hi"}},
             "thoughtSignature": "skip_thought_signature_validator"}]},
        {"role": "user", "parts": [{"functionResponse": {
            "id": "c1", "name": "write_file", "response": {"output": "written"}}}]}],
    "systemInstruction": {"parts": [{"text": "You are Gemini CLI."}]},
    "tools": [{"functionDeclarations": [{
        "name": "write_file", "description": "Writes a file.",
        "parametersJsonSchema": {"type": "object", "properties": {
            "file_path": {"type": "string"}, "content": {"type": ["string", "null"]}}}}]}],
    "generationConfig": {"temperature": 1, "topP": 0.95, "topK": 64,
                         "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 8192}},
}

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
           | st.sampled_from(MODELS + KEYS + FORGED + [
               "user", "assistant", "system", "tool", "image", "tool_use", "tool_result",
               "base64", "enabled", "redacted_thinking", "reasoning"]))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5),
    max_leaves=25)
api_shaped = st.fixed_dictionaries(
    {"model": st.sampled_from(MODELS)},
    optional={key: json_values for key in KEYS if key != "model"})
AGENT_BODIES = [claude_code_body("smart"), claude_code_body("claude"), CODEX_BODY,
                {**CODEX_BODY, "model": "mocked"}, QWEN_BODY, {**QWEN_BODY, "model": "claude"},
                GEMINI_CLI_BODY]


def mutate(data: st.DataObject, value: Any) -> Any:
    """*value* with one node, drawn along a random path, replaced by any JSON or removed."""
    children = list(value.items()) if isinstance(value, dict) else (
        list(enumerate(value)) if isinstance(value, list) else [])
    if not children or data.draw(st.integers(0, 3)) == 0:
        return data.draw(json_values)
    key, child = data.draw(st.sampled_from(children))
    copy = dict(value) if isinstance(value, dict) else list(value)
    if data.draw(st.integers(0, 4)) == 0:
        del copy[key]
    else:
        copy[key] = mutate(data, child)
    return copy


def error_shape_holds(path: str, status: int, body: bytes) -> bool:
    """An error answer is shaped for the caller's API: Anthropic on /v1/messages*."""
    if status < 400:
        return True
    obj = orjson.loads(body)
    if path.startswith("/v1/messages"):
        return obj.get("type") == "error" and isinstance(obj["error"]["message"], str)
    return isinstance(obj["error"]["message"], str)


async def test_no_body_is_a_500_and_every_request_leaves_one_row(
        make_upstream: Any, anthropic_upstream: FakeAnthropic, aiohttp_server: Any,
        tmp_path: Path) -> None:
    upstream: FakeUpstream = await make_upstream()
    gemini = FakeGemini()
    gemini_url = str((await aiohttp_server(gemini.app)).make_url("")).rstrip("/")
    config = coding_config(upstream.url, anthropic_upstream.url, tmp_path)
    config["channels"].append({"name": "google", "type": "gemini", "base_url": gemini_url,
                               "keys": [UPSTREAM_KEY]})
    config["model_groups"].append(
        {"name": "gem", "targets": [{"channel": "google", "model": "gemini-2.5-flash"}]})
    config["admin"] = {"key": ADMIN}
    alice = config["tokens"][0]
    alice["quota"] = {"tokens": 10**12, "period": "day"}
    alice["rate_limit"] = {"rpm": 10**6, "tpm": 10**12, "concurrent": 100}
    async with serving(config, tmp_path) as gateway:
        port = int(gateway.url.rsplit(":", 1)[1])
        database = config["database"]["path"]
        await asyncio.to_thread(run_examples, port, database, gateway.proc)
        assert gateway.proc.returncode is None


def run_examples(port: int, database: str, proc: asyncio.subprocess.Process) -> None:
    """Hypothesis's examples, sent over one keep-alive connection from this worker thread."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    def send(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                assert proc.returncode is None, "the gateway process died"
                connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def rows_by_request() -> dict[str, int]:
        status, _ = send("GET", "/admin/usage", b"", {"Authorization": f"Bearer {ADMIN}"})
        assert status == 200  # the writer flushed every finished request's row
        with sqlite3.connect(database) as db:
            return dict(db.execute("SELECT request_id, COUNT(*) FROM usage GROUP BY request_id"))

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data(), path=st.sampled_from(ROUTES), kind=st.integers(0, 3))
    def example(data: st.DataObject, path: str, kind: int) -> None:
        if kind == 0:
            body = data.draw(json_values | st.binary(max_size=40).map(lambda b: b"\xff" + b))
        elif kind == 1:
            body = data.draw(api_shaped)
        else:
            body = mutate(data, data.draw(st.sampled_from(AGENT_BODIES)))
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        request_id = f"req_{uuid.uuid4().hex}"
        status, answer = send("POST", path, raw, {
            "Authorization": f"Bearer {ALICE}", "Content-Type": "application/json",
            "x-request-id": request_id, "anthropic-version": "2023-06-01"})
        assert status != 500 and 200 <= status < 600, (status, answer[:500])
        assert error_shape_holds(path, status, answer), (status, answer[:500])
        sent[request_id] = (path, raw)

    sent: dict[str, tuple[str, bytes]] = {}
    try:
        example()
        rows = rows_by_request()
    finally:
        connection.close()
    assert len(sent) >= 100
    wrong = {sent[rid]: rows.get(rid, 0) for rid in sent if rows.get(rid, 0) != 1}
    assert wrong == {}, "requests without exactly one usage row (request: rows)"
    assert set(rows) == set(sent)
