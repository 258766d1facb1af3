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
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Any

import orjson

from .config.reload import ConfigHolder
from .usage import Record

ACCESS = logging.getLogger("coderouter.access")


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
    if any(c.isspace() or not c.isprintable() or c == '"' for c in text):
        return orjson.dumps(text).decode()
    return text


def log_unserved(holder: ConfigHolder, method: str, path: str, status: int, request_id: str,
                 client_ip: str | None) -> None:
    """Write the access line of a request for a route or method the gateway does not serve."""
    if not holder.current.log.access or not ACCESS.isEnabledFor(logging.INFO):
        return
    fields = access_fields(Record(ts=0.0, request_id=request_id, endpoint=path, status=status,
                                  client_ip=client_ip, error="no such route"))
    fields.update(method=method, tokens=None)
    ACCESS.info(plain_line(fields), extra={"access": fields})


class AccessLog:
    """A `Gateway` observer writing one access line per finished request."""

    def __init__(self, holder: ConfigHolder) -> None:
        self.holder = holder

    def __call__(self, record: Record) -> None:
        if not self.holder.current.log.access or not ACCESS.isEnabledFor(logging.INFO):
            return
        fields = access_fields(record)
        ACCESS.info(plain_line(fields), extra={"access": fields})


class Formatter(logging.Formatter):
    """Plain or JSON lines, as the live config's ``log.format`` says."""

    def __init__(self, holder: ConfigHolder) -> None:
        super().__init__()
        self.holder = holder

    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created, dt.UTC)
        stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
        if self.holder.current.log.format == "json":
            out: dict[str, Any] = {"ts": stamp, "level": record.levelname,
                                   "logger": record.name}
            access = getattr(record, "access", None)
            if access is not None:
                out.update(access)
            else:
                out["message"] = record.getMessage()
            if record.exc_info:
                out["exception"] = self.formatException(record.exc_info)
            return orjson.dumps(out).decode()
        line = f"{stamp} {record.levelname} {record.name}: {record.getMessage()}"
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
