"""Load generators: wrk for request rates and latency, an aiohttp client for SSE streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from . import procs

NONSTREAM_BODY = {"model": "bench", "max_tokens": 16,
                  "messages": [{"role": "user", "content": "Say hello to the benchmark."}]}
STREAM_BODY = {**NONSTREAM_BODY, "stream": True}
#: A Messages caller on the Chat channel: the gateway translates both ways.
MESSAGES_STREAM_BODY = STREAM_BODY


# -- wrk ------------------------------------------------------------------------------------

LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"bytes\\":%d," ..
    "\\"connect_errors\\":%d,\\"read_errors\\":%d,\\"write_errors\\":%d," ..
    "\\"timeouts\\":%d,\\"non2xx\\":%d,\\"mean_us\\":%.1f,\\"max_us\\":%d," ..
    "\\"p50_us\\":%d,\\"p90_us\\":%d,\\"p99_us\\":%d}\\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.timeout, e.status, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_script(path: Path, body: dict[str, object], headers: dict[str, str]) -> Path:
    """Write a wrk Lua script that POSTs *body* as JSON with *headers*."""
    lines = ['wrk.method = "POST"',
             f"wrk.body = [==[{json.dumps(body, separators=(',', ':'))}]==]",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n" + LUA_DONE)
    return path


@dataclass(slots=True)
class WrkResult:
    connections: int
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: int          # socket errors + timeouts
    non2xx: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def parse_wrk(output: str, connections: int) -> WrkResult:
    """Read the BENCHJSON line our Lua `done` prints (exact microseconds, not rounded text)."""
    for line in output.splitlines():
        if line.startswith("BENCHJSON "):
            d = json.loads(line[len("BENCHJSON "):])
            secs = d["duration_us"] / 1e6
            return WrkResult(
                connections=connections, requests=d["requests"], duration_s=round(secs, 3),
                rps=round(d["requests"] / secs, 1) if secs else 0.0,
                p50_ms=d["p50_us"] / 1000, p90_ms=d["p90_us"] / 1000, p99_ms=d["p99_us"] / 1000,
                mean_ms=round(d["mean_us"] / 1000, 3), max_ms=d["max_us"] / 1000,
                errors=d["connect_errors"] + d["read_errors"] + d["write_errors"] + d["timeouts"],
                non2xx=d["non2xx"])
    raise RuntimeError(f"no BENCHJSON line in wrk output:\n{output[-2000:]}")


def run_wrk(url: str, script: Path, connections: int, seconds: float,
            threads: int = 1) -> tuple[WrkResult, str]:
    """Run wrk pinned to the load CPU; return the parsed result and its raw output."""
    cmd = procs.pinned(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
                        "--timeout", "10s", "--latency", "-s", str(script), url], procs.LOAD_CPU)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60,
                         start_new_session=True)
    if out.returncode != 0:
        raise RuntimeError(f"wrk exited {out.returncode}: {out.stderr[-1000:]}")
    return parse_wrk(out.stdout, connections), out.stdout


# -- SSE streams ----------------------------------------------------------------------------


@dataclass(slots=True)
class StreamStat:
    """One stream as the caller saw it."""

    status: int
    ttfb_ms: float       # request start -> first read holding an SSE `data:` line
    total_ms: float
    reads: int           # distinct reads with data: > 1 means it arrived in pieces
    events: int          # `data:` events, [DONE] included
    done: bool           # ended with `data: [DONE]`
    usage_chunk: bool    # a `"choices":[]` usage chunk reached the caller
    delay_seen: bool     # the upstream echoed our x-bench-delay-ms (the header got through)
    error: str = ""


def _headers(base: dict[str, str], chunks: int, delay_ms: int) -> dict[str, str]:
    return {**base, "Content-Type": "application/json", "Accept-Encoding": "identity",
            "x-bench-chunks": str(chunks), "x-bench-delay-ms": str(delay_ms)}


async def one_stream(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                     body: bytes, delay_ms: int,
                     first_byte: Callable[[], None] | None = None) -> StreamStat:
    """POST one streaming request and read it to the end, timing every read."""
    start = time.perf_counter()
    ttfb = -1.0
    reads = 0
    buf = bytearray()
    status = 0
    notified = False
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            status = resp.status
            while True:
                data = await resp.content.readany()
                if not data:
                    break
                buf += data
                reads += 1
                if ttfb < 0 and b"data:" in buf:
                    ttfb = (time.perf_counter() - start) * 1000
                    if first_byte is not None:
                        notified = True
                        first_byte()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return StreamStat(status, ttfb, (time.perf_counter() - start) * 1000, reads, 0, False,
                          False, False, f"{type(exc).__name__}: {exc}")
    finally:
        if first_byte is not None and not notified:
            first_byte()  # a stream that failed before its first byte counts as settled
    total = (time.perf_counter() - start) * 1000
    text = bytes(buf)
    events = [e for e in text.replace(b"\r\n", b"\n").split(b"\n\n") if e.startswith(b"data:")]
    return StreamStat(
        status=status, ttfb_ms=ttfb, total_ms=total, reads=reads, events=len(events),
        done=bool(events) and events[-1].strip() == b"data: [DONE]",
        usage_chunk=b'"choices":[]' in text or b'"choices": []' in text,
        delay_seen=f"-d{delay_ms}\"".encode() in text,
        error="" if status == 200 else text[:200].decode(errors="replace"))


class _Countdown:
    """Sets its event once it has been called *n* times."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.event = asyncio.Event()
        if n <= 0:
            self.event.set()

    def __call__(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.event.set()


def _session(limit: int = 0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
        auto_decompress=False)


async def sequential_streams(url: str, headers: dict[str, str], n: int, chunks: int,
                             delay_ms: int, warmup: int = 20) -> list[StreamStat]:
    """*n* streams one after another over one keep-alive connection (after *warmup*)."""
    body = json.dumps(STREAM_BODY).encode()
    hdrs = _headers(headers, chunks, delay_ms)
    async with _session(limit=1) as session:
        for _ in range(warmup):
            await one_stream(session, url, hdrs, body, delay_ms)
        return [await one_stream(session, url, hdrs, body, delay_ms) for _ in range(n)]


async def concurrent_streams(url: str, headers: dict[str, str], n: int, chunks: int,
                             delay_ms: int, rounds: int = 1, warmup: bool = False,
                             on_all_open: Callable[[], None] | None = None,
                             open_timeout: float = 60.0) -> list[list[StreamStat]]:
    """*rounds* times, open *n* streams at once and read them all to the end; one list a round.

    With *warmup*, one more round first fills the connection pools and is not returned.
    *on_all_open* is called (once per kept round) when every stream has seen its first data
    or failed, or after *open_timeout* seconds.
    """
    body = json.dumps(STREAM_BODY).encode()
    hdrs = _headers(headers, chunks, delay_ms)
    out: list[list[StreamStat]] = []
    async with _session() as session:
        for r in range(rounds + int(warmup)):
            kept = r >= int(warmup)
            countdown = _Countdown(n)
            tasks = [asyncio.ensure_future(one_stream(session, url, hdrs, body, delay_ms,
                                                      countdown))
                     for _ in range(n)]
            if on_all_open is not None and kept:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(countdown.event.wait(), open_timeout)
                on_all_open()
            stats = await asyncio.gather(*tasks)
            if kept:
                out.append(list(stats))
    return out
