"""The access log line (plain and JSON), its switch, and the formatter."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import orjson
import pytest

from coderouter.config import parse
from coderouter.config.reload import ConfigHolder
from coderouter.logs import ACCESS_LOG, Formatter, access_fields, access_line, plain_line
from coderouter.usage import Record
from tests.conftest import ALICE, UPSTREAM_KEY, Running, base_config
from tests.fakes import FakeUpstream

ACCESS = "coderouter.access"


def record(**fields: object) -> Record:
    return Record(**{"ts": 1_700_000_000.0, "request_id": "req_1",
                     "endpoint": "/v1/chat/completions", **fields})  # type: ignore[arg-type]


def holder(fmt: str) -> ConfigHolder:
    return ConfigHolder("unused.yaml", parse(f"log: {{format: {fmt}}}\n"))


def log_record(message: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(ACCESS, logging.INFO, __file__, 1, message, None, None)
    rec.created = 1_700_000_000.25
    for name, value in extra.items():
        setattr(rec, name, value)
    return rec


class TestLine:
    def test_plain_fields_in_order(self) -> None:
        """method path status model channel tokens latency_ms request_id token."""
        rec = record(status=200, model="smart", channel="up", total_tokens=15,
                     latency_ms=231.44, token="alice")
        assert plain_line(access_fields(rec)) == \
            "POST /v1/chat/completions 200 smart up 15 231.4 req_1 alice"

    def test_absent_values_are_dashes_and_odd_ones_quoted(self) -> None:
        """None is '-'; a caller's model with spaces or a newline cannot forge a line."""
        rec = record(status=404, model='gpt 4\nPOST /x 200', token="alice")
        assert plain_line(access_fields(rec)) == \
            'POST /v1/chat/completions 404 "gpt 4\\nPOST /x 200" - 0 - req_1 alice'


class TestFormatter:
    def test_plain(self) -> None:
        """UTC ISO time, level, logger, message."""
        line = Formatter(holder("plain")).format(log_record("hello"))
        assert line == "2023-11-14T22:13:20.250Z INFO coderouter.access: hello"

    def test_json_access_line_carries_the_fields(self) -> None:
        """A JSON access line is the row's fields, not a message."""
        fields = access_fields(record(status=200, token="alice"))
        line = access_line(fields, 1_700_000_000.25, json=True)
        assert orjson.loads(line) == {"ts": "2023-11-14T22:13:20.250Z", "level": "INFO",
                                      "logger": ACCESS, **fields}

    def test_plain_access_line_looks_like_the_other_lines(self) -> None:
        """Same time stamp, level and logger name as a line through the formatter."""
        fields = access_fields(record(status=200, token="alice"))
        assert access_line(fields, 1_700_000_000.25, json=False) == \
            Formatter(holder("plain")).format(log_record(plain_line(fields)))

    def test_json_other_lines(self) -> None:
        line = Formatter(holder("json")).format(log_record("hello"))
        assert orjson.loads(line) == {"ts": "2023-11-14T22:13:20.250Z", "level": "INFO",
                                      "logger": ACCESS, "message": "hello"}


def access_lines(gateway: Running, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The access lines the gateway wrote to stderr so far (their messages)."""
    gateway.app[ACCESS_LOG].flush()
    marker = f" INFO {ACCESS}: "
    return [line.split(marker, 1)[1] for line in capsys.readouterr().err.splitlines()
            if marker in line]


@pytest.fixture(autouse=True)
def access_level(caplog: pytest.LogCaptureFixture) -> None:
    """The access logger at INFO, as `coderouter serve` sets it."""
    caplog.set_level(logging.INFO, logger=ACCESS)


async def test_one_line_per_request_without_keys(
        gateway: Running, capsys: pytest.CaptureFixture[str]) -> None:
    """Each request logs one access line naming the token; no key appears in any line."""
    async with aiohttp.ClientSession() as http:
        for model in ("smart", "nope"):
            async with http.post(gateway.url + "/v1/chat/completions", json={"model": model},
                                 headers={"Authorization": f"Bearer {ALICE}"}) as resp:
                await resp.read()
    gateway.app[ACCESS_LOG].flush()
    text = capsys.readouterr().err
    marker = f" INFO {ACCESS}: "
    lines = [line.split(marker, 1)[1] for line in text.splitlines() if marker in line]
    assert [line.split()[:6] for line in lines] == [
        ["POST", "/v1/chat/completions", "200", "smart", "up", "15"],
        ["POST", "/v1/chat/completions", "404", "nope", "-", "0"]]
    assert all(line.endswith(" alice") for line in lines)
    assert ALICE not in text
    assert UPSTREAM_KEY not in text


async def test_access_false_turns_it_off(gateway: Running, upstream: FakeUpstream,
                                         tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """log.access: false (here by a reload) writes no access lines."""
    gateway.reconfigure({**base_config(upstream.url, tmp_path), "log": {"access": False}})
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/v1/chat/completions", json={"model": "smart"},
                             headers={"Authorization": f"Bearer {ALICE}"}) as resp:
            assert resp.status == 200
    assert access_lines(gateway, capsys) == []


async def test_a_route_not_served_gets_an_access_line(
        gateway: Running, capsys: pytest.CaptureFixture[str]) -> None:
    """A request for an unknown path or method names method, path and status in the access
    log (and writes no row); the query string, which may carry a key, is left out."""
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/v1/files?key=secret",
                            headers={"x-request-id": "req_probe"}) as resp:
            assert resp.status == 404
        async with http.delete(gateway.url + "/v1/chat/completions") as resp:
            assert resp.status == 405
    lines = access_lines(gateway, capsys)
    assert lines[0] == "GET /v1/files 404 - - - - req_probe -"
    assert lines[1].split()[:3] == ["DELETE", "/v1/chat/completions", "405"]
    assert len(lines) == 2
    assert await gateway.rows() == []
