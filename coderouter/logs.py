"""Logging for `coderouter serve`: plain or JSON lines on stderr, and the access log.

``log.format`` picks the shape of every line and ``log.access`` turns the access log on or off;
both are read from the live config, so a reload changes them. The access log writes one line
per forwarded request (every request that wrote a usage row) to the ``coderouter.access``
logger. It names the token, never a key: its fields all come from the usage row.

Plain: ``2026-11-25T10:00:00.123Z INFO coderouter.access: POST /v1/chat/completions 200 smart
openai 15 231.4 req_ab12 alice`` (method, path, status, model, channel, total tokens,
latency ms, request id, token; ``-`` when absent; values with spaces are JSON-quoted).
A request for a route the gateway does not serve gets a line too (``GET /v1/files 404 - - - -
req_cd34 -``): it writes no usage row, but an operator can see what a client tried.
JSON: one object per line with ``ts``, ``level``, ``logger`` and ``message``, or for the
access log the row's fields instead of a message.

The access log does not go through the `logging` module (a LogRecord, a Formatter and a
write per request cost more than the rest of the line): `AccessLog` formats each line once,
keeps it in a buffer and writes the buffer to stderr in one call at most `FLUSH_AFTER`
seconds later (sooner when `FLUSH_LINES` are waiting, and at shutdown). It still heeds the
``coderouter.access`` logger's level.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys
import time
from collections.abc import Callable
from typing import IO, Any

import orjson
from aiohttp import web

from .config.reload import ConfigHolder
from .usage import Record

ACCESS = logging.getLogger("coderouter.access")
#: Seconds an access line may wait in the buffer; lines waiting that make it write at once.
FLUSH_AFTER = 0.1
FLUSH_LINES = 512


def access_fields(record: Record) -> dict[str, Any]:
    """The fields of *record*'s access log line, in order."""
    return {"method": "POST", "path": record.endpoint, "status": record.status,
            "model": record.model, "channel": record.channel,
            "tokens": record.total_tokens, "latency_ms": record.latency_ms,
            "request_id": record.request_id, "token": record.token,
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens, "ttfb_ms": record.ttfb_ms,
            "attempts": record.attempts, "client_ip": record.client_ip, "error": record.error}


#: The fields of the plain line; JSON lines carry every field of `access_fields`.
PLAIN_FIELDS = ("method", "path", "status", "model", "channel", "tokens", "latency_ms",
                "request_id", "token")


def plain_line(fields: dict[str, Any]) -> str:
    """The plain access line: space-separated values, ``-`` for none."""
    return " ".join(_plain(fields[name]) for name in PLAIN_FIELDS)


def _plain(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    text = str(value)
    # every whitespace but the plain space is unprintable: one scan, not one per character
    if not text.isprintable() or " " in text or '"' in text:
        return orjson.dumps(text).decode()
    return text


_stamped: list[Any] = [-1, ""]  # the second last stamped, and its text up to the dot


def stamp(created: float) -> str:
    """*created* (unix seconds) as UTC ISO time to the millisecond: 2026-11-25T10:00:00.123Z."""
    second = int(created)
    if second != _stamped[0]:
        text = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _stamped[:] = [second, text]
    return f"{_stamped[1]}{min(999, round((created - second) * 1e6) // 1000):03d}Z"


def access_line(fields: dict[str, Any], created: float, json: bool) -> str:
    """The access line of *fields*, as the ``coderouter.access`` logger's lines look."""
    if json:
        return orjson.dumps({"ts": stamp(created), "level": "INFO", "logger": ACCESS.name,
                             **fields}).decode()
    return f"{stamp(created)} INFO {ACCESS.name}: {plain_line(fields)}"


class AccessLog:
    """A `Gateway` observer writing one access line per finished request, buffered.

    *stream* gives where the lines go when they are written (stderr as it is then).
    """

    def __init__(self, holder: ConfigHolder,
                 stream: Callable[[], IO[str]] = lambda: sys.stderr) -> None:
        self.holder = holder
        self.stream = stream
        self.lines: list[str] = []
        self.timer: asyncio.TimerHandle | None = None

    def __call__(self, record: Record) -> None:
        log = self.holder.current.log
        if log.access and ACCESS.isEnabledFor(logging.INFO):
            self.add(access_line(access_fields(record), time.time(), log.format == "json"))

    def unserved(self, method: str, path: str, status: int, request_id: str,
                 client_ip: str | None) -> None:
        """The access line of a request for a route or method the gateway does not serve."""
        log = self.holder.current.log
        if not log.access or not ACCESS.isEnabledFor(logging.INFO):
            return
        fields = access_fields(Record(ts=0.0, request_id=request_id, endpoint=path,
                                      status=status, client_ip=client_ip,
                                      error="no such route"))
        fields.update(method=method, tokens=None)
        self.add(access_line(fields, time.time(), log.format == "json"))

    def add(self, line: str) -> None:
        lines = self.lines
        lines.append(line)
        if len(lines) >= FLUSH_LINES:
            self.flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(FLUSH_AFTER, self.flush)

    def flush(self) -> None:
        """Write every waiting line now, in one write."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.lines:
            return
        text = "\n".join(self.lines) + "\n"
        self.lines.clear()
        stream = self.stream()
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: the lines are lost, not the loop
            pass


ACCESS_LOG = web.AppKey("access_log", AccessLog)


async def flush_at_stop(app: web.Application) -> None:
    """The last access lines are written before the process ends."""
    app[ACCESS_LOG].flush()


class Formatter(logging.Formatter):
    """Plain or JSON lines, as the live config's ``log.format`` says."""

    def __init__(self, holder: ConfigHolder) -> None:
        super().__init__()
        self.holder = holder

    def format(self, record: logging.LogRecord) -> str:
        when = stamp(record.created)
        if self.holder.current.log.format == "json":
            out: dict[str, Any] = {"ts": when, "level": record.levelname,
                                   "logger": record.name, "message": record.getMessage()}
            if record.exc_info:
                out["exception"] = self.formatException(record.exc_info)
            return orjson.dumps(out).decode()
        line = f"{when} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(holder: ConfigHolder, level: int = logging.INFO) -> None:
    """Send every log line to stderr through `Formatter`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter(holder))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
