"""Upstream client candidates side by side: `python -m bench.clients [--python PY] [--quick]`.

Each candidate runs in `bench.client_proxy` (the aiohttp server, the candidate as the
upstream client, nothing else) pinned to the proxy CPU in front of the fake upstream, and
gets the same measurements as a `bench.run` target (CPU per request and per stream from
/proc, TTFB, chunk by chunk, the sanity checks), with nginx in the same run as the yardstick.
*--python* is the interpreter that has the candidates installed (aiohttp, uvloop, httptools,
pyreqwest, aiosonic); a candidate that fails to start is reported, not fatal.
Writes bench/results/clients.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from . import procs, report, suite, targets

CANDIDATES = ("aiohttp", "lean", "pyreqwest", "aiosonic")


def start_candidate(p: procs.Procs, python: str, client: str, upstream_port: int
                    ) -> targets.Target:
    proc = p.start(procs.pinned([python, "-m", "bench.client_proxy", "--client", client,
                                 "--upstream", str(upstream_port)], procs.PROXY_CPU),
                   cwd=targets.REPO, stdout_pipe=True)
    port = procs.read_port_line(proc)
    base = f"http://127.0.0.1:{port}"
    procs.wait_http_ok(base + "/healthz", proc)
    return targets.Target(client, base, proc.pid,
                          {"Authorization": f"Bearer {targets.UPSTREAM_KEY}"}, proc)


COLUMNS = (
    ("CPU ms/req c32", ("nonstream_c32", "cpu_ms_per_req"), "{:.3f}"),
    ("CPU ms/req c128", ("nonstream_c128", "cpu_ms_per_req"), "{:.3f}"),
    ("CPU ms/stream", ("stream_c32", "cpu_ms_per_req"), "{:.3f}"),
    ("req/s c128", ("nonstream_c128", "rps"), "{:,.0f}"),
    ("added TTFB p50", ("ttfb_sequential", "added_ttfb_p50_ms"), "{:+.3f}"),
    ("added TTFB p99 200", ("ttfb_concurrent", "added_ttfb_p99_ms"), "{:+.2f}"),
    ("chunk by chunk", ("ttfb_concurrent", "chunk_by_chunk"), "{}"),
)


def summary(results: dict[str, Any]) -> str:
    nginx = results.get("nginx", {})
    base = report._num(report._get(nginx, "nonstream_c128", "cpu_ms_per_req"))
    rows = [["target", *[c[0] for c in COLUMNS], "x nginx c128", "sanity"]]
    for name, res in results.items():
        cells = [name]
        for _label, path, fmt in COLUMNS:
            v = report._get(res, *path)
            cells.append("-" if v is None else fmt.format(v))
        mine = report._num(report._get(res, "nonstream_c128", "cpu_ms_per_req"))
        cells.append(f"{mine / base:.2f}x" if mine is not None and base else "-")
        cells.append("; ".join(res.get("sanity_problems", [])) or "ok")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))
                     for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.clients")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="comma-separated candidates")
    args = parser.parse_args(argv)
    settings = suite.Settings.quick_run() if args.quick else suite.Settings()
    procs.pin_self_to_load_cpu()
    procs.raise_nofile(65536)
    wanted = args.only.split(",") if args.only else list(CANDIDATES)
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="crclients-") as tmp, procs.Procs() as p:
        workdir = Path(tmp)
        upstream, port = targets.start_upstream(p, settings.chunks)
        results["direct"] = suite.run_all(upstream, settings, workdir, [upstream.pid])
        starters = {"nginx": lambda: targets.start_nginx(p, workdir, port)}
        starters.update({c: (lambda c=c: start_candidate(p, args.python, c, port))
                         for c in wanted})
        for name, start in starters.items():
            try:
                target = start()
            except Exception as exc:  # a candidate that does not start is a finding
                skipped[name] = repr(exc)
                traceback.print_exc()
                continue
            try:
                results[name] = suite.run_all(target, settings, workdir, [upstream.pid])
            finally:
                assert target.proc is not None
                p.stop(target.proc)
    report.enrich(results)
    print(summary(results))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    out = targets.REPO / "bench" / "results" / "clients.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": report.machine(), "results": results,
                               "skipped": skipped}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
