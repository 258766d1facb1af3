"""``workers: N``: N processes serving one port (SO_REUSEPORT), supervised by the first one.

The supervisor forks the workers before any event loop or thread exists. It forwards SIGTERM,
SIGINT and SIGHUP to them (each drains and flushes its rows on its own, and each follows the
config file), starts a new worker when one dies unexpectedly, and tells systemd it is ready
once the port answers. A worker that fails before the port ever answered (an unusable
database, say) stops them all: the error is the worker's own log line. Metrics are merged
through prometheus-client's multiprocess mode in a temporary directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from types import FrameType

from . import systemd

log = logging.getLogger("coderouter")

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
#: A worker that keeps dying is restarted at most this often.
RESTART_DELAY = 1.0
READY_TIMEOUT = 60.0


def enable_multiprocess_metrics() -> str:
    """Point prometheus-client at a fresh directory shared by the workers; return it."""
    directory = tempfile.mkdtemp(prefix="coderouter-metrics-")
    os.environ[MULTIPROCESS_DIR] = directory
    from prometheus_client import values
    values.ValueClass = values.get_value_class()  # in case it was imported before
    return directory


def supervise(count: int, run_worker: Callable[[int], int], host: str, port: int) -> int:
    """Run *count* workers (``run_worker(index)`` in each) until a stop signal; exit code."""
    directory = enable_multiprocess_metrics()
    supervisor = _Supervisor(count, run_worker)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, supervisor.forward)
    for index in range(count):
        supervisor.spawn(index)
    try:
        supervisor.watch(host, port)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if supervisor.ready:
        systemd.stopping()
        log.info("stopped")
    return supervisor.code


class _Supervisor:
    """The workers by pid, and what the supervisor knows of them."""

    def __init__(self, count: int, run_worker: Callable[[int], int]) -> None:
        self.count = count
        self.run_worker = run_worker
        self.children: dict[int, int] = {}  # pid -> worker index
        self.stopping = False
        self.ready = False
        self.code = 0

    def forward(self, sig: int, frame: FrameType | None) -> None:
        """Pass signal *sig* to every worker; SIGTERM and SIGINT stop the supervisor too."""
        if sig in (signal.SIGTERM, signal.SIGINT):
            if not self.stopping:
                log.info("%s: stopping %d workers", signal.Signals(sig).name,
                         len(self.children))
            self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                os.environ.pop("NOTIFY_SOCKET", None)  # the supervisor speaks to systemd
                _stop_with_parent()
                code = self.run_worker(index)
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                os._exit(code)
        self.children[pid] = index

    def watch(self, host: str, port: int) -> None:
        """Wait on the workers until none is left: tell systemd once the port answers,
        replace one that dies, stop them all when one cannot start."""
        deadline = time.monotonic() + READY_TIMEOUT
        while self.children:
            if not self.ready and not self.stopping and _answers(host, port):
                self.ready = True
                systemd.ready(f"{self.count} workers")
                log.info("%d workers serving on http://%s:%d", self.count, host, port)
            pid, status = os.waitpid(-1, 0 if self.ready or self.stopping else os.WNOHANG)
            if pid == 0:
                if time.monotonic() > deadline:
                    log.error("the workers did not listen within %gs", READY_TIMEOUT)
                    self._fail()
                time.sleep(0.05)
                continue
            self._exited(pid, os.waitstatus_to_exitcode(status))

    def _exited(self, pid: int, exit_code: int) -> None:
        index = self.children.pop(pid, -1)
        _mark_dead(pid)
        if self.stopping or index == -1:
            return
        if not self.ready and exit_code > 0:  # it refused to start (killed ones are replaced)
            log.error("worker %d exited (%d) before serving: stopping", index, exit_code)
            self._fail()
            return
        log.error("worker %d (pid %d) exited unexpectedly (%d): starting another",
                  index, pid, exit_code)
        time.sleep(RESTART_DELAY)
        if not self.stopping:
            self.spawn(index)

    def _fail(self) -> None:
        self.code = 1
        self.forward(signal.SIGTERM, None)


def _stop_with_parent() -> None:
    """Ask Linux to send this worker SIGTERM when the supervisor dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), 0.2).close()
    except OSError:
        return False
    return True


def _mark_dead(pid: int) -> None:
    """Drop a dead worker's live gauges from the merged metrics (its counters stay)."""
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(pid)
