#!/usr/bin/env python3
"""Benchmark Code Router against direct-to-upstream and nginx: `python bench/run.py`.

Flags: `--quick` (~1 minute smoke run), `--peers` (also LiteLLM proxy and Portkey gateway
when they can be installed), `--only NAME,...` (targets besides `direct`), `--baseline COMMIT`
(also that commit's gateway, from a temporary git worktree, side by side), `--out PATH`.
Prints a table and the gateway's target verdicts; writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import peers, procs, report, suite, targets

RESULTS = Path(__file__).resolve().parent / "results"
Starter = Callable[[procs.Procs, Path, int], targets.Target]
STARTERS: dict[str, Starter] = {
    "nginx": targets.start_nginx,
    "coderouter": targets.start_coderouter,
    "coderouter-redis": functools.partial(
        targets.start_coderouter,
        gateway=targets.Gateway("coderouter-redis", redis=True, brief=True)),
}
PEERS: dict[str, Starter] = {"litellm": peers.start_litellm, "portkey": peers.start_portkey}


def usage_rows(db: Path | None) -> int | None:
    """Rows in the gateway's usage table (read after it stopped and flushed)."""
    if db is None or not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM usage").fetchone()[0])
    except sqlite3.Error:
        return None


def measure(p: procs.Procs, name: str, start: Starter, workdir: Path, upstream_port: int,
            settings: suite.Settings, load_pids: list[int]) -> dict[str, Any]:
    """Start one proxy, run the suite on it, stop it (it never shares the CPU with another)."""
    print(f"[{name}] starting", file=sys.stderr, flush=True)
    target = start(p, workdir, upstream_port)
    try:
        res = suite.run_all(target, settings, workdir, load_pids)
    finally:
        if target.proc is not None:
            code = p.stop(target.proc, grace=15)
            print(f"[{name}] stopped (exit {code})", file=sys.stderr, flush=True)
        for helper in target.helpers:
            p.stop(helper)
    rows = usage_rows(target.usage_db)
    if rows is not None:
        res["usage_rows_after_stop"] = rows
    if target.log is not None and target.log.exists():
        RESULTS.mkdir(exist_ok=True)
        shutil.copy(target.log, RESULTS / f"{name}.log")
    return res


@contextlib.contextmanager
def baseline_source(commit: str | None, workdir: Path) -> Iterator[tuple[str, Path] | None]:
    """A detached git worktree of *commit* (removed afterwards), named `coderouter@<short>`."""
    if commit is None:
        yield None
        return
    git = ["git", "-C", str(targets.REPO)]
    short = subprocess.run([*git, "rev-parse", "--short", commit], check=True,
                           capture_output=True, text=True).stdout.strip()
    tree = workdir / f"baseline-{short}"
    subprocess.run([*git, "worktree", "add", "--detach", str(tree), commit], check=True,
                   capture_output=True)
    try:
        yield f"{report.GATEWAY}@{short}", tree
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(tree)], capture_output=True)


def wanted_targets(args: argparse.Namespace) -> dict[str, Starter]:
    wanted = dict(STARTERS)
    if args.peers:
        wanted.update(PEERS)
    if args.only:
        only = {n.strip() for n in args.only.split(",")}
        wanted = {n: s for n, s in {**STARTERS, **PEERS}.items() if n in only}
    return wanted


def with_baseline(wanted: dict[str, Starter], baseline: tuple[str, Path] | None
                  ) -> dict[str, Starter]:
    """*wanted* with the baseline gateway measured right after Code Router."""
    if baseline is None:
        return wanted
    name, tree = baseline
    start = functools.partial(targets.start_coderouter,
                              gateway=targets.Gateway(name, source=tree))
    out: dict[str, Starter] = {}
    for key, value in wanted.items():
        out[key] = value
        if key == report.GATEWAY:
            out[name] = start
    out.setdefault(name, start)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = suite.Settings.quick_run() if args.quick else suite.Settings()
    if args.brief:
        settings = dataclasses.replace(settings, brief=True)
    notes: list[str] = []
    if not procs.pin_self_to_load_cpu():
        notes.append("no CPU pinning: taskset missing or fewer than 2 CPUs")
    nofile = procs.raise_nofile(65536)
    if nofile < 4 * settings.hold_streams:
        notes.append(f"RLIMIT_NOFILE is only {nofile}")
    wanted = wanted_targets(args)
    quiet0 = procs.CpuTimes.read()
    time.sleep(1.0)
    background = procs.CpuTimes.read().utilisation_since(quiet0)
    if max(background.values(), default=0.0) > 0.1:
        notes.append(f"machine not quiet before the run (CPU busy {background}): "
                     "numbers will be noisy")
        print(f"warning: {notes[-1]}", file=sys.stderr, flush=True)
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="crbench-") as tmp, \
            baseline_source(args.baseline, Path(tmp)) as baseline, procs.Procs() as p:
        workdir = Path(tmp)
        wanted = with_baseline(wanted, baseline)
        print("[direct] starting fake upstream", file=sys.stderr, flush=True)
        upstream, port = targets.start_upstream(p, settings.chunks)
        load_pids = [upstream.pid]
        results["direct"] = suite.run_all(upstream, settings, workdir, load_pids)
        for name, start in wanted.items():
            try:
                results[name] = measure(p, name, start, workdir, port, settings, load_pids)
            except targets.Skipped as exc:
                skipped[name] = str(exc)
                print(f"[{name}] SKIPPED: {exc}", file=sys.stderr, flush=True)
            except Exception as exc:  # one broken target must not lose the others' numbers
                skipped[name] = f"error: {exc!r}"
                traceback.print_exc()
    report.enrich(results)
    return {
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - t0, 1),
        "machine": report.machine(),
        "settings": {k: getattr(settings, k) for k in settings.__slots__},
        "pinning": {"proxy_cpu": procs.PROXY_CPU, "load_cpu": procs.LOAD_CPU,
                    "enabled": not any("pinning" in n for n in notes)},
        "background_cpu_busy": background,
        "notes": notes,
        "skipped": skipped,
        "results": results,
        "ratios": report.ratios(results),
        "checks": [c.as_dict() for c in report.checks(results)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark Code Router (see bench/README.md).")
    parser.add_argument("--quick", action="store_true", help="~1 minute smoke run")
    parser.add_argument("--peers", action="store_true",
                        help="also LiteLLM proxy (PyPI) and Portkey gateway (npm)")
    parser.add_argument("--only", help="comma-separated targets besides direct, e.g. nginx")
    parser.add_argument("--brief", action="store_true",
                        help="request rates and CPU only: no TTFB or held-stream tests")
    parser.add_argument("--baseline", metavar="COMMIT",
                        help="also run this commit's gateway (git worktree) side by side")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    try:
        with procs.sigterm_as_interrupt():
            data = run(args)
    except KeyboardInterrupt:
        print("interrupted; every child process was stopped", file=sys.stderr)
        return 130
    results = data["results"]
    print()
    print(report.text_table(results))
    for name, why in data["skipped"].items():
        print(f"\nskipped {name}: {why}")
    items = report.checks(results)
    if items:
        print("\nCode Router targets:")
        print(report.checks_text(items))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"\nsaved {args.out} ({data['duration_s']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
