"""Turn per-target results into ratios, target verdicts, a text table and a Markdown table."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GATEWAY = "coderouter"
Result = dict[str, Any]


def machine() -> dict[str, Any]:
    """What ran the benchmark: CPU model, cores, kernel, Python, tool versions, commit."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr) \
            .strip() else ""

    repo = Path(__file__).resolve().parent.parent
    return {
        "cpu_model": model, "cores": os.cpu_count(), "kernel": platform.release(),
        "python": sys.version.split()[0], "implementation": platform.python_implementation(),
        "nginx": version(["nginx", "-v"]), "wrk": version(["wrk", "--version"]),
        "commit": version(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"]),
    }


def _get(res: Result | None, *path: str) -> Any:
    cur: Any = res
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
        return None
    return float(v)


# -- derived numbers ------------------------------------------------------------------------


def added_ttfb(results: dict[str, Result], test: str, stat: str) -> dict[str, float | None]:
    """Per target: its TTFB *stat* in *test* minus direct-to-upstream's, in ms."""
    base = _num(_get(results.get("direct"), test, stat))
    out: dict[str, float | None] = {}
    for name, res in results.items():
        v = _num(_get(res, test, stat))
        out[name] = round(v - base, 3) if v is not None and base is not None else None
    return out


def enrich(results: dict[str, Result]) -> None:
    """Add added-TTFB figures to every target's result, in place."""
    for test in ("ttfb_sequential", "ttfb_concurrent"):
        for stat in ("ttfb_p50_ms", "ttfb_p99_ms"):
            for name, v in added_ttfb(results, test, stat).items():
                if isinstance(results[name].get(test), dict):
                    results[name][test]["added_" + stat] = v


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    get: Callable[[Result], Any]
    fmt: str = "{:.1f}"
    ratio: bool = True       # show gateway/other for this row


def _path(*keys: str) -> Callable[[Result], Any]:
    return lambda r: _get(r, *keys)


def _rss_under_load(r: Result) -> Any:
    peaks = [_num(_get(r, k, "rss_peak_mb")) for k in r if k.startswith("nonstream_")]
    nums = [p for p in peaks if p is not None]
    return max(nums) if nums else None


ROWS: tuple[Row, ...] = (
    Row("req/s, 32 conns", _path("nonstream_c32", "rps"), "{:,.0f}"),
    Row("req/s, 128 conns", _path("nonstream_c128", "rps"), "{:,.0f}"),
    Row("p50 ms, 32 conns", _path("nonstream_c32", "p50_ms"), "{:.2f}"),
    Row("p99 ms, 32 conns", _path("nonstream_c32", "p99_ms"), "{:.2f}"),
    Row("p50 ms, 128 conns", _path("nonstream_c128", "p50_ms"), "{:.2f}"),
    Row("p99 ms, 128 conns", _path("nonstream_c128", "p99_ms"), "{:.2f}"),
    Row("CPU ms/req, 32 conns", _path("nonstream_c32", "cpu_ms_per_req"), "{:.3f}"),
    Row("CPU ms/req, 128 conns", _path("nonstream_c128", "cpu_ms_per_req"), "{:.3f}"),
    Row("streams/s, 32 conns (20 chunks)", _path("stream_c32", "rps"), "{:,.0f}"),
    Row("CPU ms/stream, 32 conns", _path("stream_c32", "cpu_ms_per_req"), "{:.3f}"),
    Row("streams/s, Messages caller on Chat (translated)", _path("messages_stream_c32", "rps"),
        "{:,.0f}"),
    Row("CPU ms/stream, translated, 32 conns", _path("messages_stream_c32", "cpu_ms_per_req"),
        "{:.3f}"),
    Row("TTFB p50 ms, 1 stream", _path("ttfb_sequential", "ttfb_p50_ms"), "{:.3f}"),
    Row("TTFB p99 ms, 1 stream", _path("ttfb_sequential", "ttfb_p99_ms"), "{:.3f}"),
    Row("added TTFB p50 ms, 1 stream", _path("ttfb_sequential", "added_ttfb_p50_ms"), "{:+.3f}",
        False),
    Row("added TTFB p99 ms, 1 stream", _path("ttfb_sequential", "added_ttfb_p99_ms"), "{:+.3f}",
        False),
    Row("TTFB p50 ms, 200 at once", _path("ttfb_concurrent", "ttfb_p50_ms"), "{:.2f}"),
    Row("TTFB p99 ms, 200 at once", _path("ttfb_concurrent", "ttfb_p99_ms"), "{:.2f}"),
    Row("added TTFB p99 ms, 200 at once", _path("ttfb_concurrent", "added_ttfb_p99_ms"),
        "{:+.2f}", False),
    Row("chunk by chunk, 200 at once", _path("ttfb_concurrent", "chunk_by_chunk"), "{}", False),
    Row("RSS MB idle", _path("rss_idle_mb"), "{:.1f}"),
    Row("RSS MB under load", _rss_under_load, "{:.1f}"),
    Row("RSS MB, 1000 streams open", _path("hold", "rss_peak_mb"), "{:.1f}"),
    Row("1000 streams completed", _path("hold", "ok"), "{}", False),
    Row("CPU0 ms/req incl. kernel, 128 conns", _path("nonstream_c128", "cpu0_ms_per_req"),
        "{:.3f}"),
    Row("usage writer CPU share, 128 conns", _path("nonstream_c128", "usage_writer_share"),
        "{:.1%}", False),
    Row("off-main-thread CPU share, 128 conns", _path("nonstream_c128", "off_main_thread_share"),
        "{:.1%}", False),
)


def _fmt(row: Row, v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    try:
        return row.fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def ratio(results: dict[str, Result], row: Row, other: str) -> str:
    g, o = _num(row.get(results.get(GATEWAY) or {})), _num(row.get(results.get(other) or {}))
    if not row.ratio or g is None or o is None or o == 0:
        return "-"
    return f"{g / o:.2f}x"


def compared(results: dict[str, Result]) -> list[str]:
    """The targets the gateway is divided by: direct, nginx and any baseline commit's gateway."""
    if GATEWAY not in results:
        return []
    return [o for o in results if o in ("direct", "nginx") or o.startswith(GATEWAY + "@")]


def table(results: dict[str, Result]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one column per target, then gateway/direct, /nginx and /baseline."""
    names = list(results)
    ratios = compared(results)
    header = ["metric", *names, *[f"{GATEWAY}/{o}" for o in ratios]]
    rows = [[row.label, *[_fmt(row, row.get(results[n])) for n in names],
             *[ratio(results, row, o) for o in ratios]] for row in ROWS]
    return header, rows


def text_table(results: dict[str, Result]) -> str:
    header, rows = table(results)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def markdown_table(results: dict[str, Result]) -> str:
    """The same table as GitHub Markdown, for pasting into BENCHMARKS.md."""
    header, rows = table(results)
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join([":---", *["---:"] * (len(header) - 1)]) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


# -- target verdicts ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    value: str
    limit: str
    verdict: str             # PASS | FAIL | N/A

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "value": self.value, "limit": self.limit,
                "verdict": self.verdict}


def _check(name: str, value: float | bool | None, limit: str,
           ok: Callable[[Any], bool], fmt: str = "{:.3f}") -> Check:
    if value is None:
        return Check(name, "-", limit, "N/A")
    shown = ("yes" if value else "no") if isinstance(value, bool) else fmt.format(value)
    return Check(name, shown, limit, "PASS" if ok(value) else "FAIL")


def _quotient(top: Result | None, bottom: Result | None, path: tuple[str, ...],
              bottom_path: tuple[str, ...] | None = None) -> float | None:
    """*top*'s figure at *path* divided by *bottom*'s (at *bottom_path*, default the same)."""
    a, b = _num(_get(top, *path)), _num(_get(bottom, *(bottom_path or path)))
    return a / b if a is not None and b else None


def checks(results: dict[str, Result]) -> list[Check]:
    """The gateway's targets, judged on this run's numbers."""
    g = results.get(GATEWAY)
    if g is None:
        return []
    ng = results.get("nginx")
    out: list[Check] = []
    out.append(Check("requests answered correctly (sanity)",
                     "; ".join(g.get("sanity_problems", [])) or "ok", "no problem",
                     "FAIL" if g.get("sanity_problems") else "PASS"))
    for c in (32, 128):
        mine = _num(_get(g, f"nonstream_c{c}", "cpu_ms_per_req"))
        theirs = _num(_get(ng, f"nonstream_c{c}", "cpu_ms_per_req"))
        rel = mine / theirs if mine is not None and theirs else None
        out.append(_check(f"CPU per non-stream request vs nginx, {c} conns", rel, "<= 5x",
                          lambda v: v <= 5, "{:.2f}x"))
    for c in (32, 128):
        bad = (_num(_get(g, f"nonstream_c{c}", "non2xx")) or 0) \
            + (_num(_get(g, f"nonstream_c{c}", "errors")) or 0)
        out.append(_check(f"wrk errors and non-2xx, {c} conns", bad, "0", lambda v: v == 0,
                          "{:.0f}"))
    out.append(_check("CPU per stream vs nginx, 32 conns",
                      _quotient(g, ng, ("stream_c32", "cpu_ms_per_req")), "<= 5x",
                      lambda v: v <= 5, "{:.2f}x"))
    out.append(_check("CPU per translated stream vs pass-through stream",
                      _quotient(g, g, ("messages_stream_c32", "cpu_ms_per_req"),
                                ("stream_c32", "cpu_ms_per_req")), "<= 2x",
                      lambda v: v <= 2, "{:.2f}x"))
    out.append(_check("CPU per request, Redis state vs in-memory, 128 conns",
                      _quotient(results.get(GATEWAY + "-redis"), g,
                                ("nonstream_c128", "cpu_ms_per_req")), "<= 1.2x",
                      lambda v: v <= 1.2, "{:.2f}x"))
    for base in (n for n in results if n.startswith(GATEWAY + "@")):
        for c in (32, 128):
            out.append(_check(f"CPU per request vs {base}, {c} conns",
                              _quotient(g, results[base], (f"nonstream_c{c}", "cpu_ms_per_req")),
                              "<= 1x (never slower)", lambda v: v <= 1, "{:.2f}x"))
    out.append(_check("added TTFB p50, one stream at a time",
                      _num(_get(g, "ttfb_sequential", "added_ttfb_p50_ms")), "<= 0.3 ms",
                      lambda v: v <= 0.3, "{:.3f} ms"))
    out.append(_check("added TTFB p99, 200 streams at once",
                      _num(_get(g, "ttfb_concurrent", "added_ttfb_p99_ms")), "<= 5 ms",
                      lambda v: v <= 5, "{:.2f} ms"))
    cc = _get(g, "ttfb_concurrent")
    out.append(_check("200 streams at once all arrive chunk by chunk",
                      _get(cc, "chunk_by_chunk"), "every stream", bool))
    out.append(_check("RSS idle", _num(g.get("rss_idle_mb")), "<= 40 MB", lambda v: v <= 40,
                      "{:.1f} MB"))
    hold = _get(g, "hold")
    out.append(_check("RSS with 1000 streams open", _num(_get(hold, "rss_peak_mb")),
                      "<= 60 MB", lambda v: v <= 60, "{:.1f} MB"))
    out.append(_check("1000 streams open at once all complete", _num(_get(hold, "ok")),
                      f"{_get(hold, 'n')}", lambda v: v == _get(hold, "n"), "{:.0f}"))
    writer = _num(_get(g, "nonstream_c128", "usage_writer_share"))
    label = "usage writer CPU share (aiosqlite thread, 128 conns)"
    if writer is None:  # no thread names: every non-main thread is an upper bound
        writer = _num(_get(g, "nonstream_c128", "off_main_thread_share"))
        label = "usage writer CPU share (upper bound: all non-main threads, 128 conns)"
    out.append(_check(label, writer, "< 5%", lambda v: v < 0.05, "{:.1%}"))
    return out


def checks_text(items: list[Check]) -> str:
    width = max((len(c.name) for c in items), default=0)
    return "\n".join(f"{c.verdict:<5} {c.name:<{width}}  {c.value:>12}  (target {c.limit})"
                     for c in items)


def checks_markdown(items: list[Check]) -> str:
    out = ["| target | value | limit | verdict |", "|:---|---:|:---|:---|"]
    out += [f"| {c.name} | {c.value} | {c.limit} | {c.verdict} |" for c in items]
    return "\n".join(out)


def ratios(results: dict[str, Result]) -> dict[str, dict[str, float]]:
    """Numeric gateway/direct and gateway/nginx ratios for every ratio row."""
    out: dict[str, dict[str, float]] = {}
    g = results.get(GATEWAY)
    if g is None:
        return out
    for other in compared(results):
        o = results[other]
        vals = {}
        for row in ROWS:
            gv, ov = _num(row.get(g)), _num(row.get(o))
            if row.ratio and gv is not None and ov:
                vals[row.label] = round(gv / ov, 3)
        out[f"{GATEWAY}/{other}"] = vals
    return out
