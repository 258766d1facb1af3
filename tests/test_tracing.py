"""OpenTelemetry traces (``tracing:``), read field by field at a real OTLP/HTTP receiver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import ALICE, Running, StartGateway, base_config
from tests.fakes import FakeUpstream
from tests.otlp_receiver import Receiver
from tests.service import until
from tests.test_dashboard_api import dead_url

SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


@pytest.fixture
async def receiver(aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # export within 50 ms, not 5 s
    found = Receiver()
    server = await aiohttp_server(found.app())
    found.url = str(server.make_url("/v1/traces"))  # type: ignore[attr-defined]
    return found


def traced_config(upstream: FakeUpstream, tmp_path: Path, receiver: Any) -> dict[str, Any]:
    """smart: a dead channel first, then the fake upstream."""
    config = base_config(upstream.url, tmp_path)
    config["tracing"] = {"endpoint": receiver.url, "service_name": "router-under-test",
                         "headers": {"x-collector-auth": "collector-secret"}}
    config["channels"].append({"name": "dead", "type": "anthropic", "base_url": dead_url(),
                               "keys": ["sk-ant-dead"]})
    config["model_groups"][0]["targets"] = [
        {"channel": "dead", "model": "claude-dead", "priority": 0},
        {"channel": "up", "model": "upstream-model", "priority": 1}]
    return config


async def chat(gateway: Running, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http, http.post(
            gateway.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {ALICE}", **(headers or {})},
            json={"model": "smart", "messages": [{"role": "user", "content": "hi"}]}) as resp:
        await resp.read()
        return resp.status


async def test_a_request_and_its_attempts_arrive_as_spans_in_the_callers_trace(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        receiver: Any) -> None:
    """One SERVER span per request with the GenAI attributes, in the trace the caller's
    traceparent names; a CLIENT span per attempt under it, the failed one marked so."""
    gateway = await start_gateway(traced_config(upstream, tmp_path, receiver))
    assert await chat(gateway, {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}) == 200

    async def three() -> bool:
        return len(receiver.spans) >= 3
    await until(three, "three spans at the receiver")
    [row] = await gateway.rows()
    failed, answered, request = sorted(
        receiver.spans, key=lambda s: (s.kind == SERVER, s.attributes.get(
            "coderouter.attempt") != "first"))
    assert (request.name, request.kind) == ("chat smart", SERVER)
    assert (request.trace_id, request.parent_span_id) == (TRACE_ID, PARENT_ID)
    assert request.resource["service.name"] == "router-under-test"
    assert request.scope == "coderouter"
    assert {k: request.attributes.get(k) for k in (
        "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
        "gen_ai.response.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
        "http.response.status_code", "coderouter.request_id", "coderouter.token",
        "coderouter.attempts")} == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "smart", "gen_ai.response.model": "upstream-model",
        "gen_ai.usage.input_tokens": row["prompt_tokens"],
        "gen_ai.usage.output_tokens": row["completion_tokens"],
        "http.response.status_code": 200, "coderouter.request_id": row["request_id"],
        "coderouter.token": "alice", "coderouter.attempts": 2}
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert request.status_code != ERROR
    for span in (failed, answered):
        assert (span.kind, span.trace_id, span.parent_span_id) == (
            CLIENT, TRACE_ID, request.span_id)
    assert (failed.name, failed.attributes) == ("chat claude-dead", {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-dead", "coderouter.channel": "dead",
        "coderouter.attempt": "first", "error.type": "upstream_error"})
    assert (failed.status_code, failed.status_message) == (
        ERROR, "upstream connection failed: ClientConnectorError")
    assert (answered.name, answered.attributes) == ("chat upstream-model", {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "upstream-model", "coderouter.channel": "up",
        "coderouter.attempt": "failover"})
    assert answered.status_code != ERROR
    assert upstream.seen[-1].headers["traceparent"] == f"00-{TRACE_ID}-{answered.span_id}-01"
    assert receiver.requests[0]["x-collector-auth"] == "collector-secret"
    assert receiver.requests[0]["Content-Type"] == "application/x-protobuf"
    await gateway.stop()


async def test_without_traceparent_a_trace_starts_and_failures_are_errors(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        receiver: Any) -> None:
    """No traceparent: a new trace, the request span a root; a request no target answers is
    an error span with its status."""
    config = traced_config(upstream, tmp_path, receiver)
    config["model_groups"][0]["targets"] = config["model_groups"][0]["targets"][:1]
    gateway = await start_gateway(config)
    assert await chat(gateway) == 502

    async def two() -> bool:
        return len(receiver.spans) >= 2
    await until(two, "two spans at the receiver")
    attempt, request = sorted(receiver.spans, key=lambda s: s.kind == SERVER)
    assert request.parent_span_id == "" and len(request.trace_id) == 32
    assert attempt.trace_id == request.trace_id and attempt.parent_span_id == request.span_id
    assert request.status_code == ERROR
    assert request.attributes["http.response.status_code"] == 502
    assert request.attributes["error.type"] == "502"
    assert "gen_ai.response.model" not in request.attributes
    await gateway.stop()


def test_no_tracing_imports_nothing_of_opentelemetry(tmp_path: Path) -> None:
    """Off (no tracing.endpoint), a gateway built and serving imports no OpenTelemetry."""
    config = tmp_path / "config.yaml"
    config.write_text(f"database: {{path: {tmp_path / 'usage.sqlite'}}}\n"
                      "channels: [{name: mock, type: mock}]\n")
    script = (
        "import sys\n"
        "from coderouter.app import create_app\n"
        "from coderouter.config.reload import ConfigHolder\n"
        f"create_app(ConfigHolder.from_file({str(config)!r}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n")
    root = str(Path(__file__).parent.parent)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": root}, timeout=60)
    assert out.stdout.strip() == "[]"


def test_tracing_without_the_extra_says_what_to_install(tmp_path: Path) -> None:
    """tracing.endpoint set but the SDK missing: a clear RuntimeError, not an import trace."""
    config = tmp_path / "config.yaml"
    config.write_text(f"database: {{path: {tmp_path / 'usage.sqlite'}}}\n"
                      "tracing: {endpoint: 'http://127.0.0.1:4318/v1/traces'}\n")
    script = (
        "import sys\n"
        "sys.modules['opentelemetry.sdk'] = None  # as if the otel extra were not installed\n"
        "from coderouter.app import create_app\n"
        "from coderouter.config.reload import ConfigHolder\n"
        "try:\n"
        f"    create_app(ConfigHolder.from_file({str(config)!r}))\n"
        "except RuntimeError as exc:\n"
        "    print(exc)\n")
    root = str(Path(__file__).parent.parent)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": root}, timeout=60)
    assert out.stdout.strip() == \
        "tracing.endpoint needs the OpenTelemetry SDK: pip install 'coderouter[otel]'"
