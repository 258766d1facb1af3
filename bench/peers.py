"""Optional peers: LiteLLM proxy (PyPI) and Portkey gateway (npm), installed on demand.

Both are installed outside the repository, under ~/.cache/coderouter-bench, and skipped with
the reason when the install or start fails. Neither writes to a database here: LiteLLM runs
with a master key and no DB, Portkey is stateless.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import procs
from .targets import MODEL, UPSTREAM_KEY, Skipped, Target

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "coderouter-bench"
LITELLM_KEY = "sk-litellm-bench-master"


def _install(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    print(f"  installing {what} (once, into {CACHE})", file=sys.stderr, flush=True)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Skipped(f"could not install {what}: {exc}") from exc
    if out.returncode != 0:
        raise Skipped(f"could not install {what}: {(out.stderr or out.stdout)[-300:]}")


# -- LiteLLM --------------------------------------------------------------------------------


def litellm_config(upstream_port: int) -> str:
    return f"""model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/gpt-bench
      api_base: http://127.0.0.1:{upstream_port}/v1
      api_key: {UPSTREAM_KEY}
litellm_settings:
  drop_params: true
  telemetry: false
general_settings:
  master_key: {LITELLM_KEY}
"""


def start_litellm(p: procs.Procs, workdir: Path, upstream_port: int) -> Target:
    venv = CACHE / "litellm-venv"
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        if not (venv / "bin" / "python").exists():
            _install([sys.executable, "-m", "venv", str(venv)], "a venv for LiteLLM")
        _install([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
                 "litellm[proxy] from PyPI")
    if not exe.exists():
        raise Skipped("litellm installed no `litellm` executable")
    tmp = workdir / "litellm"
    tmp.mkdir(exist_ok=True)
    conf = tmp / "config.yaml"
    conf.write_text(litellm_config(upstream_port))
    port = procs.free_port()
    log = tmp / "litellm.log"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "LITELLM_TELEMETRY": "False", "DISABLE_SCHEMA_UPDATE": "True"}
    proc = p.start(procs.pinned([str(exe), "--config", str(conf), "--host", "127.0.0.1",
                                 "--port", str(port), "--num_workers", "1"], procs.PROXY_CPU),
                   log=log, cwd=tmp, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        procs.wait_http_ok(base + "/health/liveliness", proc, timeout=120)
    except RuntimeError as exc:
        tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
        p.stop(proc)
        raise Skipped(f"litellm did not start: {exc}; log tail: {tail!r}") from exc
    return Target("litellm", base, proc.pid, {"Authorization": f"Bearer {LITELLM_KEY}"},
                  proc, log, python=True)


# -- Portkey --------------------------------------------------------------------------------


def start_portkey(p: procs.Procs, workdir: Path, upstream_port: int) -> Target:
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        raise Skipped("node/npm not installed (apt-get install -y nodejs npm)")
    home = CACHE / "portkey"
    script = home / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if not script.exists():
        home.mkdir(parents=True, exist_ok=True)
        _install([npm, "install", "--no-audit", "--no-fund", "@portkey-ai/gateway"],
                 "@portkey-ai/gateway from npm", cwd=home)
    if not script.exists():
        raise Skipped(f"@portkey-ai/gateway installed no {script.name}")
    tmp = workdir / "portkey"
    tmp.mkdir(exist_ok=True)
    port = procs.free_port()
    log = tmp / "portkey.log"
    proc = p.start(procs.pinned([node, str(script), f"--port={port}"], procs.PROXY_CPU),
                   log=log, cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    try:
        procs.wait_http_ok(base + "/", proc, timeout=60)
    except RuntimeError as exc:
        tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
        p.stop(proc)
        raise Skipped(f"portkey did not start: {exc}; log tail: {tail!r}") from exc
    headers = {"Authorization": f"Bearer {UPSTREAM_KEY}", "x-portkey-provider": "openai",
               "x-portkey-custom-host": f"http://127.0.0.1:{upstream_port}/v1"}
    return Target("portkey", base, proc.pid, headers, proc, log)
