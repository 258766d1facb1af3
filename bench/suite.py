"""The measurements run against one target, returned as plain JSON-able dicts."""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from . import load, procs, threads
from .targets import Target

MB = 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """How long and how hard to push; `quick()` is the ~1 minute smoke run."""

    quick: bool = False
    brief: bool = False                # request rates and CPU only (no TTFB, no held streams)
    wrk_seconds: float = 10.0
    warmup_seconds: float = 2.0
    connections: tuple[int, ...] = (32, 128)
    stream_wrk_connections: int = 32
    chunks: int = 20
    seq_streams: int = 200
    seq_delay_ms: int = 1
    conc_streams: int = 200
    conc_delay_ms: int = 20
    conc_rounds: int = 5
    hold_streams: int = 1000
    hold_chunks: int = 3
    hold_delay_ms: int = 2000

    @classmethod
    def quick_run(cls) -> Settings:
        return cls(quick=True, wrk_seconds=3.0, warmup_seconds=1.0, seq_streams=100,
                   conc_rounds=2)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run *coro* on a fresh uvloop (asyncio when uvloop is missing)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of *values* (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


# -- sanity ---------------------------------------------------------------------------------


def sanity(target: Target) -> list[str]:
    """Problems with one plain and one streamed request; empty when both look right."""
    problems = []
    req = urllib.request.Request(
        target.url, data=json.dumps(load.NONSTREAM_BODY).encode(), method="POST",
        headers={**target.headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = json.loads(resp.read())
            if resp.status != 200 or body.get("object") != "chat.completion":
                problems.append(f"non-stream: status {resp.status}, body {str(body)[:200]}")
    except (OSError, ValueError) as exc:
        detail = exc.read()[:300] if isinstance(exc, urllib.error.HTTPError) else b""
        problems.append(f"non-stream: {exc} {detail!r}")
    stats = run_async(load.sequential_streams(target.url, target.headers, 1, 5, 0, warmup=0))
    s = stats[0]
    if s.status != 200 or not s.done or s.events != 6 or s.usage_chunk or s.error:
        problems.append(f"stream: status {s.status}, events {s.events} (want 6), done {s.done}, "
                        f"usage chunk leaked {s.usage_chunk}, error {s.error!r}")
    if target.gateway:
        problems += translated_sanity(target)
    return problems


def translated_sanity(target: Target) -> list[str]:
    """Problems with one Messages stream answered from the Chat upstream (translated)."""
    req = urllib.request.Request(
        target.messages_url, data=json.dumps(load.MESSAGES_STREAM_BODY).encode(),
        method="POST", headers={**target.headers, "Content-Type": "application/json",
                                "x-bench-chunks": "5", "x-bench-delay-ms": "0"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read()
    except (OSError, ValueError) as exc:
        return [f"messages stream: {exc}"]
    deltas = text.count(b"event: content_block_delta")
    if resp.status != 200 or not deltas or b"event: message_stop" not in text:
        return [f"messages stream: status {resp.status}, {deltas} text deltas, "
                f"ends {text[-120:]!r}"]
    return []


# -- wrk ------------------------------------------------------------------------------------


def measured_wrk(target: Target, script: Path, connections: int, seconds: float,
                 load_pids: list[int], url: str | None = None) -> dict[str, Any]:
    """One wrk run with the target's CPU, threads, RSS and both CPUs' busy share around it."""
    pid = target.pid
    cpu0, threads0, load0 = procs.tree_cpu(pid), procs.thread_cpu(pid), \
        sum(procs.tree_cpu(p) for p in load_pids)
    times0 = procs.CpuTimes.read()
    with procs.RssSampler(pid) as rss:
        result, _raw = load.run_wrk(url or target.url, script, connections, seconds)
    times1 = procs.CpuTimes.read()
    cpu1, threads1, load1 = procs.tree_cpu(pid), procs.thread_cpu(pid), \
        sum(procs.tree_cpu(p) for p in load_pids)
    cpu_s = cpu1 - cpu0
    out = result.as_dict()
    out["cpu_s"] = round(cpu_s, 3)
    out["cpu_ms_per_req"] = round(cpu_s * 1000 / result.requests, 4) if result.requests else None
    out["upstream_cpu_s"] = round(load1 - load0, 3)
    out["rss_peak_mb"] = round(rss.peak / MB, 1)
    out["cpu_busy"] = times1.utilisation_since(times0)
    per_thread = {tid: t - threads0.get(tid, (name, 0.0))[1]
                  for tid, (name, t) in threads1.items()}
    roles: dict[str, float] = {}
    for tid, spent in per_thread.items():
        r = threads.role(tid, pid, threads1[tid][0], target.thread_names)
        roles[r] = round(roles.get(r, 0.0) + spent, 3)
    in_process = sum(per_thread.values())
    out["threads"] = {r: t for r, t in roles.items() if t > 0}
    out["off_main_thread_share"] = round(max(0.0, 1 - roles.get("main", 0.0) / in_process), 4) \
        if in_process > 0 else None
    out["usage_writer_share"] = round(roles.get(threads.WRITER, 0.0) / in_process, 4) \
        if in_process > 0 and target.thread_names and target.usage_db is not None else None
    # The proxy CPU's whole busy time (softirq included) per request; the upstream is not there.
    busy0 = out["cpu_busy"].get(procs.PROXY_CPU) if target.name != "direct" else None
    out["cpu0_ms_per_req"] = round(busy0 * result.duration_s * 1000 / result.requests, 4) \
        if busy0 is not None and result.requests else None
    return out


def wrk_tests(target: Target, settings: Settings, workdir: Path,
              load_pids: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    plain = load.wrk_script(workdir / f"{target.name}-plain.lua", load.NONSTREAM_BODY,
                            target.headers)
    streamed = load.wrk_script(workdir / f"{target.name}-stream.lua", load.STREAM_BODY,
                               {**target.headers, "x-bench-chunks": str(settings.chunks),
                                "x-bench-delay-ms": "0"})
    load.run_wrk(target.url, plain, settings.connections[0], settings.warmup_seconds)
    if target.python:  # after the warm-up, so lazily started threads exist to be named
        target.thread_names = threads.python_thread_names(target.pid)
        out["thread_names"] = {str(k): v for k, v in target.thread_names.items()}
    for c in settings.connections:
        out[f"nonstream_c{c}"] = measured_wrk(target, plain, c, settings.wrk_seconds, load_pids)
    c = settings.stream_wrk_connections
    out[f"stream_c{c}"] = measured_wrk(target, streamed, c, settings.wrk_seconds, load_pids)
    if target.gateway:
        translated = load.wrk_script(workdir / f"{target.name}-messages.lua",
                                     load.MESSAGES_STREAM_BODY,
                                     {**target.headers, "x-bench-chunks": str(settings.chunks),
                                      "x-bench-delay-ms": "0"})
        out[f"messages_stream_c{c}"] = measured_wrk(target, translated, c, settings.wrk_seconds,
                                                    load_pids, target.messages_url)
    return out


# -- streams --------------------------------------------------------------------------------


def _ok(s: load.StreamStat) -> bool:
    return s.status == 200 and s.done and not s.error


def _per_round(rounds: list[list[load.StreamStat]], p: float) -> float:
    """Median over rounds of each round's TTFB percentile *p* (successful streams only)."""
    values = [percentile([s.ttfb_ms for s in r if _ok(s)], p) for r in rounds]
    values = sorted(v for v in values if not math.isnan(v))
    return values[len(values) // 2] if values else math.nan


def summarize_streams(rounds: list[list[load.StreamStat]], chunks: int, delay_ms: int,
                      wall_s: float) -> dict[str, Any]:
    """TTFB percentiles and the chunk-by-chunk verdict for one or more rounds of streams.

    With several rounds, `ttfb_p50_ms`/`ttfb_p99_ms` are the median of the per-round
    percentiles (one noisy round of the shared-CPU client does not decide the figure);
    `ttfb_p99_pooled_ms` is over all streams. A stream counts as chunk by chunk when it
    arrived in at least max(2, chunks // 2) distinct reads: a buffering proxy delivers it in
    one or two.
    """
    stats = [s for r in rounds for s in r]
    ok = [s for s in stats if _ok(s)]
    ttfb = [s.ttfb_ms for s in ok]
    reads = sorted(s.reads for s in ok)
    min_reads = max(2, chunks // 2)
    errors = sorted({s.error or f"status {s.status}" for s in stats if s not in ok})
    return {
        "n": len(stats), "ok": len(ok), "wall_s": round(wall_s, 3),
        "chunks": chunks, "delay_ms": delay_ms,
        "rounds": len(rounds),
        "ttfb_p50_ms": round(_per_round(rounds, 50), 3),
        "ttfb_p90_ms": round(_per_round(rounds, 90), 3),
        "ttfb_p99_ms": round(_per_round(rounds, 99), 3),
        "ttfb_p99_pooled_ms": round(percentile(ttfb, 99), 3),
        "ttfb_max_ms": round(max(ttfb), 3) if ttfb else None,
        "reads_min": reads[0] if reads else 0,
        "reads_median": reads[len(reads) // 2] if reads else 0,
        "chunk_by_chunk": bool(ok) and len(ok) == len(stats)
        and all(s.reads >= min_reads for s in ok),
        "event_count_wrong": sum(s.events != chunks + 1 for s in ok),
        "usage_chunk_leaked": sum(s.usage_chunk for s in ok),
        "delay_header_forwarded": bool(ok) and all(s.delay_seen for s in ok),
        "errors": errors[:5],
    }


def stream_tests(target: Target, settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    seq = run_async(load.sequential_streams(target.url, target.headers, settings.seq_streams,
                                            settings.chunks, settings.seq_delay_ms))
    out["ttfb_sequential"] = summarize_streams([seq], settings.chunks, settings.seq_delay_ms,
                                               time.perf_counter() - t0)
    t0 = time.perf_counter()
    with procs.RssSampler(target.pid) as rss:
        conc = run_async(load.concurrent_streams(
            target.url, target.headers, settings.conc_streams, settings.chunks,
            settings.conc_delay_ms, rounds=settings.conc_rounds, warmup=True))
    out["ttfb_concurrent"] = summarize_streams(conc, settings.chunks, settings.conc_delay_ms,
                                               time.perf_counter() - t0)
    out["ttfb_concurrent"]["rss_peak_mb"] = round(rss.peak / MB, 1)
    out["hold"] = hold_test(target, settings)
    return out


def hold_test(target: Target, settings: Settings) -> dict[str, Any]:
    """Open many slow streams at once; RSS when all are open, and the peak."""
    seen: dict[str, float] = {}

    def all_open() -> None:
        seen["rss_all_open_mb"] = round(procs.tree_rss(target.pid) / MB, 1)
        seen["open_after_s"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    with procs.RssSampler(target.pid) as rss:
        stats = run_async(load.concurrent_streams(
            target.url, target.headers, settings.hold_streams, settings.hold_chunks,
            settings.hold_delay_ms, on_all_open=all_open,
            open_timeout=settings.hold_delay_ms / 1000 * (settings.hold_chunks - 1)))
    out = summarize_streams(stats, settings.hold_chunks, settings.hold_delay_ms,
                            time.perf_counter() - t0)
    return {**out, **seen, "rss_peak_mb": round(rss.peak / MB, 1)}


def say(target: Target, what: str) -> None:
    print(f"  [{target.name}] {what}", file=sys.stderr, flush=True)


def run_all(target: Target, settings: Settings, workdir: Path,
            load_pids: list[int]) -> dict[str, Any]:
    """Every measurement for *target*, in a fixed order."""
    res: dict[str, Any] = {"name": target.name, "notes": list(target.notes)}
    say(target, "sanity")
    res["sanity_problems"] = sanity(target)
    time.sleep(0.5)
    res["rss_idle_mb"] = round(procs.tree_rss(target.pid) / MB, 1)
    if load.wrk_available():
        say(target, f"wrk {settings.connections} conns x {settings.wrk_seconds:g}s, then streams")
        res.update(wrk_tests(target, settings, workdir, load_pids))
    else:
        res["notes"].append("wrk not installed: no req/s, latency or CPU per request")
    if target.brief or settings.brief:
        return res
    say(target, "TTFB: sequential, concurrent, hold-open streams")
    res.update(stream_tests(target, settings))
    time.sleep(0.5)
    res["rss_idle_after_mb"] = round(procs.tree_rss(target.pid) / MB, 1)
    return res
