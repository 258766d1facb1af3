"""Start, pin, watch and stop child processes; read CPU time and RSS from /proc.

Every child is started in its own session with PR_SET_PDEATHSIG=SIGTERM, tracked by a
`Procs` context manager that stops each process group (SIGTERM, then SIGKILL) on the way
out, so neither an error nor Ctrl-C leaves an orphan behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PR_SET_PDEATHSIG = 1
PROXY_CPU = 0
LOAD_CPU = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the harness dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def pinning_available() -> bool:
    return shutil.which("taskset") is not None and os.cpu_count() is not None \
        and (os.cpu_count() or 0) >= 2


def pin_self_to_load_cpu() -> bool:
    """Pin the harness (and so every child not re-pinned) to the load CPU."""
    if not pinning_available():
        return False
    os.sched_setaffinity(0, {LOAD_CPU})
    return True


def pinned(cmd: Sequence[str], cpu: int) -> list[str]:
    """*cmd* wrapped in `taskset -c CPU` when pinning is available."""
    return ["taskset", "-c", str(cpu), *cmd] if pinning_available() else list(cmd)


def raise_nofile(want: int = 65536) -> int:
    """Raise RLIMIT_NOFILE (inherited by children) as far as allowed; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(hard, target)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Procs:
    """Children started through it are stopped, group by group, when it closes."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self, cmd: Sequence[str], *, log: Path | None = None, cwd: Path | None = None,
              env: dict[str, str] | None = None,
              stdout_pipe: bool = False) -> subprocess.Popen[bytes]:
        out: int | object = subprocess.PIPE if stdout_pipe else subprocess.DEVNULL
        log_file = open(log, "ab") if log is not None else None  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                list(cmd), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=out if stdout_pipe else (log_file or subprocess.DEVNULL),  # type: ignore[arg-type]
                stderr=log_file or subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            if log_file is not None:
                log_file.close()
        self.children.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 5.0) -> int | None:
        """SIGTERM the child's process group, SIGKILL it after *grace* seconds."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(grace)
        # Whatever the leader left in its group (e.g. nginx workers) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.stdout is not None:
            proc.stdout.close()
        if proc in self.children:
            self.children.remove(proc)
        return proc.returncode

    def close(self) -> None:
        for proc in reversed(list(self.children)):
            self.stop(proc)


# -- /proc readings ----------------------------------------------------------------------


def _stat_fields(path: str) -> list[str] | None:
    try:
        with open(path, "rb") as f:
            raw = f.read().decode()
    except OSError:
        return None
    # comm may hold spaces and parentheses: split after the last ')'.
    close = raw.rfind(")")
    return [raw[raw.find("(") + 1:close], *raw[close + 2:].split()]


def _children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(f"/proc/{entry.name}/stat")
        if fields is not None:
            tree.setdefault(int(fields[2]), []).append(int(entry.name))
    return tree


def tree_pids(pid: int) -> list[int]:
    """*pid* and all its live descendants."""
    tree = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, ()))
    return out


def proc_cpu(pid: int) -> float:
    """utime+stime+cutime+cstime of one process, in seconds (0 when it is gone)."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    if fields is None:
        return 0.0
    # fields[0] is comm, so stat field N (1-based, pid = 1) is fields[N - 2].
    return sum(int(fields[i]) for i in (12, 13, 14, 15)) / CLK_TCK


def tree_cpu(pid: int) -> float:
    """CPU seconds of *pid* and its live descendants (reaped ones via cutime/cstime)."""
    return sum(proc_cpu(p) for p in tree_pids(pid))


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Per thread of *pid*: (comm, utime+stime seconds)."""
    out: dict[int, tuple[str, float]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(f"/proc/{pid}/task"):
            fields = _stat_fields(f"/proc/{pid}/task/{entry.name}/stat")
            if fields is not None:
                out[int(entry.name)] = (fields[0], (int(fields[12]) + int(fields[13])) / CLK_TCK)
    return out


def rss_bytes(pid: int) -> int:
    """VmRSS of one process in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    return sum(rss_bytes(p) for p in tree_pids(pid))


@dataclass(slots=True)
class CpuTimes:
    """Busy and total jiffies per CPU from /proc/stat."""

    busy: dict[int, int]
    total: dict[int, int]

    @classmethod
    def read(cls) -> CpuTimes:
        busy, total = {}, {}
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3].isdigit():
                    name, *vals = line.split()
                    nums = [int(v) for v in vals]
                    idle = nums[3] + (nums[4] if len(nums) > 4 else 0)
                    cpu = int(name[3:])
                    total[cpu] = sum(nums[:8])
                    busy[cpu] = total[cpu] - idle
        return cls(busy, total)

    def utilisation_since(self, before: CpuTimes) -> dict[int, float]:
        """Busy fraction per CPU between *before* and this reading."""
        return {cpu: round((self.busy[cpu] - before.busy.get(cpu, 0))
                           / max(1, self.total[cpu] - before.total.get(cpu, 0)), 3)
                for cpu in self.total}


# -- readiness ---------------------------------------------------------------------------


def wait_http_ok(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0,
                 headers: dict[str, str] | None = None,
                 accept: Callable[[int], bool] = lambda s: s == 200) -> None:
    """Poll GET *url* until it answers an accepted status; fail if *proc* exits first."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was ready")
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as resp:
                if accept(resp.status):
                    return
                last = resp.status
        except urllib.error.HTTPError as exc:
            if accept(exc.code):
                return
            last = exc.code
        except (OSError, ValueError) as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s (last: {last})")


def wait_tcp(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Wait until 127.0.0.1:*port* accepts a connection; fail if *proc* exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} not open after {timeout:.0f}s")


def read_port_line(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """Read `PORT <n>` from a child's stdout."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child exited ({proc.poll()}) before printing its port")
        if line.startswith(b"PORT "):
            return int(line.split()[1])
    raise RuntimeError("no PORT line in time")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so the harness cleans up as on Ctrl-C."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


class RssSampler:
    """Samples the RSS of a process tree in a background thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.pid))
