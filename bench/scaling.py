"""The price and the gain of scaling out: in-memory vs Redis state, one worker vs two.

    python -m bench.scaling [--seconds 10] [--connections 64]

Runs Code Router in front of the fake upstream (`bench.upstream`) three ways, one after the
other in one run: ``memory`` (workers 1, counters in the process), ``redis`` (workers 1,
`state.redis` on a redis-server started here) and ``redis-2w`` (workers 2, the same Redis).
The token has a daily quota and an rpm limit far from reach, so every request is admitted and
settled through the limiter. For each: wrk's req/s and latency, the gateway's CPU ms per
request (its whole process tree, from /proc), and redis-server's CPU ms per request.
Unpinned: with two workers the gateway needs both cores, which wrk and the upstream share, so
on a two-core machine the workers ratio is a floor, not the gateway's own scaling.
Prints a table and writes bench/results/scaling.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import load, procs
from .targets import GATEWAY_KEY, MODEL, REPO, UPSTREAM_KEY, coderouter_cmd

VARIANTS = {"memory": (1, False), "redis": (1, True), "redis-2w": (2, True)}


def config(port: int, upstream_port: int, db: Path, workers: int, redis: str | None) -> str:
    digest = hashlib.sha256(GATEWAY_KEY.encode()).hexdigest()
    state = f"state: {{redis: '{redis}'}}\n" if redis else ""
    return f"""listen: {{host: 127.0.0.1, port: {port}}}
database: {{path: {db}}}
log: {{access: false}}
workers: {workers}
{state}channels:
  - name: upstream
    type: openai
    base_url: http://127.0.0.1:{upstream_port}/v1
    keys: [{UPSTREAM_KEY}]
model_groups:
  - name: {MODEL}
    targets:
      - {{channel: upstream, model: gpt-bench}}
tokens:
  - name: bench
    key_sha256: {digest}
    quota: {{requests: 1000000000, period: day}}
    rate_limit: {{rpm: 1000000000}}
"""


def measure(p: procs.Procs, name: str, workdir: Path, upstream_port: int, redis_pid: int | None,
            redis_url: str | None, seconds: float, connections: int) -> dict[str, Any]:
    workers, shared = VARIANTS[name]
    tmp = workdir / name
    tmp.mkdir()
    port = procs.free_port()
    conf = tmp / "config.yaml"
    conf.write_text(config(port, upstream_port, tmp / "usage.sqlite", workers,
                           redis_url if shared else None))
    proc = p.start([*coderouter_cmd(), "serve", "-c", str(conf)], log=tmp / "log", cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {GATEWAY_KEY}"}
    procs.wait_http_ok(base + "/healthz", proc, timeout=60)
    time.sleep(1.0)  # the workers listen a moment after the first one answers
    script = load.wrk_script(tmp / "post.lua", {"model": MODEL, "messages": [
        {"role": "user", "content": "hello"}]}, headers)
    load.run_wrk(base + "/v1/chat/completions", script, connections, 2)  # warm-up
    gateway_before = procs.tree_cpu(proc.pid)
    redis_before = procs.tree_cpu(redis_pid) if redis_pid else 0.0
    result, _ = load.run_wrk(base + "/v1/chat/completions", script, connections, seconds)
    gateway_cpu = procs.tree_cpu(proc.pid) - gateway_before
    redis_cpu = (procs.tree_cpu(redis_pid) - redis_before) if redis_pid else 0.0
    p.stop(proc, grace=15)
    done = max(1, result.requests)
    return {"variant": name, "workers": workers, "rps": result.rps, "p50_ms": result.p50_ms,
            "p99_ms": result.p99_ms, "errors": result.errors, "non2xx": result.non2xx,
            "requests": result.requests,
            "gateway_cpu_ms_per_req": round(gateway_cpu * 1000 / done, 4),
            "redis_cpu_ms_per_req": round(redis_cpu * 1000 / done, 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", help="comma-separated variants (default: all)")
    args = parser.parse_args(argv)
    if not load.wrk_available() or shutil.which("redis-server") is None:
        print("needs wrk and redis-server (apt-get install -y wrk redis-server)",
              file=sys.stderr)
        return 1
    procs.raise_nofile()
    rows = []
    with procs.Procs() as p, tempfile.TemporaryDirectory(prefix="cr-scaling-") as work:
        workdir = Path(work)
        upstream = p.start([sys.executable, "-m", "bench.upstream", "--port", "0", "--chunks",
                            "20"], cwd=REPO, stdout_pipe=True)
        upstream_port = procs.read_port_line(upstream)
        redis_port = procs.free_port()
        redis = p.start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                         "--save", "", "--appendonly", "no", "--dir", str(workdir)])
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        time.sleep(0.5)
        for name in (args.only.split(",") if args.only else VARIANTS):
            rows.append(measure(p, name, workdir, upstream_port, redis.pid, redis_url,
                                args.seconds, args.connections))
            print(json.dumps(rows[-1]), flush=True)
    by = {r["variant"]: r for r in rows}
    if len(by) < len(VARIANTS):
        return 0
    ratios = {
        "workers2_vs_1_rps (redis)": round(by["redis-2w"]["rps"] / by["redis"]["rps"], 3),
        "redis_vs_memory_rps": round(by["redis"]["rps"] / by["memory"]["rps"], 3),
        "redis_vs_memory_gateway_cpu_per_req": round(
            by["redis"]["gateway_cpu_ms_per_req"] / by["memory"]["gateway_cpu_ms_per_req"], 3),
        "redis_vs_memory_total_cpu_per_req": round(
            (by["redis"]["gateway_cpu_ms_per_req"] + by["redis"]["redis_cpu_ms_per_req"])
            / by["memory"]["gateway_cpu_ms_per_req"], 3),
    }
    print(json.dumps(ratios, indent=1))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "scaling.json").write_text(json.dumps({"machine": procs.cpu_count(),
                                                  "rows": rows, "ratios": ratios}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
