"""The things measured: the fake upstream alone, nginx, Code Router, and optional peers.

Each `start_*` launches one proxy (pinned to the proxy CPU) in front of the upstream and
returns a `Target`: where to send requests, with which headers, and which pid to watch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import procs

REPO = Path(__file__).resolve().parent.parent
GATEWAY_KEY = "sk-cr-bench-0123456789abcdefghijklmnopqrstuvwxyz"
UPSTREAM_KEY = "sk-upstream-bench"
MODEL = "bench"


@dataclass(slots=True)
class Target:
    """One endpoint under test; *pid* is the process tree charged for CPU and RSS."""

    name: str
    base_url: str                      # e.g. http://127.0.0.1:8080 (no /v1)
    pid: int
    headers: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    usage_db: Path | None = None
    thread_names: dict[int, str] = field(default_factory=dict)   # tid -> Python thread name
    python: bool = False               # a Python process: name its threads with py-spy
    notes: list[str] = field(default_factory=list)
    gateway: bool = False              # Code Router: also measure a translated stream
    brief: bool = False                # request rates and CPU only, no stream tests
    helpers: list[subprocess.Popen[bytes]] = field(default_factory=list)  # stopped after it

    @property
    def url(self) -> str:
        return self.base_url + "/v1/chat/completions"

    @property
    def messages_url(self) -> str:
        return self.base_url + "/v1/messages"


class Skipped(Exception):
    """A target that cannot run here; the message says why."""


def start_upstream(p: procs.Procs, chunks: int) -> tuple[Target, int]:
    """The fake upstream on the load CPU; returns it as the `direct` target and its port."""
    proc = p.start(procs.pinned([sys.executable, "-m", "bench.upstream", "--port", "0",
                                 "--chunks", str(chunks)], procs.LOAD_CPU),
                   cwd=REPO, stdout_pipe=True)
    port = procs.read_port_line(proc)
    base = f"http://127.0.0.1:{port}"
    procs.wait_http_ok(base + "/healthz", proc)
    return Target("direct", base, proc.pid, {"Authorization": f"Bearer {UPSTREAM_KEY}"},
                  proc), port


def _tmp(workdir: Path, name: str) -> Path:
    d = workdir / name
    d.mkdir(parents=True, exist_ok=True)
    return d


# -- nginx ----------------------------------------------------------------------------------


def nginx_conf(tmp: Path, listen_port: int, upstream_port: int) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream fake {{
        server 127.0.0.1:{upstream_port};
        keepalive 512;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{listen_port} backlog=4096;
        keepalive_requests 1000000;
        location / {{
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
"""


def start_nginx(p: procs.Procs, workdir: Path, upstream_port: int) -> Target:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if nginx is None:
        raise Skipped("nginx not installed (apt-get install -y nginx)")
    tmp = _tmp(workdir, "nginx")
    port = procs.free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_conf(tmp, port, upstream_port))
    log = tmp / "stderr.log"
    proc = p.start(procs.pinned([nginx, "-p", str(tmp), "-c", str(conf), "-e",
                                 str(tmp / "error.log")], procs.PROXY_CPU), log=log)
    base = f"http://127.0.0.1:{port}"
    procs.wait_http_ok(base + "/healthz", proc)
    return Target("nginx", base, proc.pid, {"Authorization": f"Bearer {UPSTREAM_KEY}"},
                  proc, log)


# -- Code Router ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gateway:
    """Which Code Router to run: its source tree (a baseline is another commit's worktree)
    and where its limiter state lives."""

    name: str = "coderouter"
    source: Path = REPO
    redis: bool = False
    brief: bool = False


def coderouter_config(port: int, upstream_port: int, db: Path, redis: str | None = None) -> str:
    """The gateway config with the default features on: usage rows, access log, metrics,
    sticky sessions, scrubbing, and a token with a quota and rate limits (never reached)."""
    digest = hashlib.sha256(GATEWAY_KEY.encode()).hexdigest()
    state = f"state: {{redis: '{redis}'}}\n" if redis else ""
    return f"""listen: {{host: 127.0.0.1, port: {port}}}
database: {{path: {db}}}
{state}channels:
  - name: upstream
    type: openai
    base_url: http://127.0.0.1:{upstream_port}/v1
    keys: [{UPSTREAM_KEY}]
    forward_headers: ["x-bench-*"]
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


def coderouter_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("coderouter")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "coderouter"]


def start_redis(p: procs.Procs, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A throw-away redis-server on the load CPU; returns it and its URL."""
    if shutil.which("redis-server") is None:
        raise Skipped("redis-server not installed (apt-get install -y redis-server)")
    port = procs.free_port()
    proc = p.start(procs.pinned(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                                procs.LOAD_CPU))
    procs.wait_tcp(port, proc)
    return proc, f"redis://127.0.0.1:{port}/0"


def start_coderouter(p: procs.Procs, workdir: Path, upstream_port: int,
                     gateway: Gateway = Gateway()) -> Target:
    tmp = _tmp(workdir, gateway.name)
    helpers: list[subprocess.Popen[bytes]] = []
    redis_url = None
    if gateway.redis:
        redis, redis_url = start_redis(p, tmp)
        helpers.append(redis)
    port = procs.free_port()
    conf = tmp / "config.yaml"
    conf.write_text(coderouter_config(port, upstream_port, tmp / "usage.sqlite", redis_url))
    log = tmp / "gateway.log"
    env = {**os.environ, "PYTHONPATH": str(gateway.source)}
    cmd = [sys.executable, "-m", "coderouter"]
    check = subprocess.run([*cmd, "check", "-c", str(conf)], cwd=tmp, env=env,
                           capture_output=True, text=True, timeout=60)
    check_out = (check.stdout + check.stderr).strip()
    proc = p.start(procs.pinned([*cmd, "serve", "-c", str(conf)], procs.PROXY_CPU),
                   log=log, cwd=tmp, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        procs.wait_http_ok(base + "/healthz", proc, timeout=30)
    except RuntimeError as exc:
        tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
        for child in (proc, *helpers):
            p.stop(child)
        raise Skipped(f"coderouter serve did not become ready: {exc}; `coderouter check` said: "
                      f"{check_out[-300:]!r}; log tail: {tail!r}") from exc
    target = Target(gateway.name, base, proc.pid, {"Authorization": f"Bearer {GATEWAY_KEY}"},
                    proc, log, usage_db=tmp / "usage.sqlite", python=True, gateway=True,
                    brief=gateway.brief, helpers=helpers)
    if check.returncode != 0:
        target.notes.append(f"`coderouter check` exited {check.returncode}: {check_out[-300:]}")
    return target
