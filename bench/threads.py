"""Name a Python process's threads (via `py-spy dump`) so CPU can be charged to roles.

Python 3.11 does not give OS threads their Python names, so /proc only says `coderouter`
for each; py-spy reads the interpreter's thread list with native ids. Without py-spy,
every thread but the main one is `other` and the usage writer share is an upper bound.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROLES = (
    ("_connection_worker_thread", "usage writer (aiosqlite)"),
    ("aiosqlite", "usage writer (aiosqlite)"),
    ("uvloop_", "default executor"),
    ("ThreadPoolExecutor", "default executor"),
    ("asyncio_", "default executor"),
    ("AnyIO worker", "anyio worker"),
)
WRITER = "usage writer (aiosqlite)"
_THREAD_LINE = re.compile(r'^Thread (0x[0-9a-fA-F]+|\d+) \(([^)]*)\): "(.*)"\s*$')


def py_spy() -> str | None:
    """The py-spy executable, installing it into this interpreter's environment if needed."""
    local = Path(sys.executable).with_name("py-spy")
    found = str(local) if local.exists() else shutil.which("py-spy")
    if found is not None:
        return found
    print("  installing py-spy (names the gateway's threads)", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"],
                   capture_output=True, timeout=300, check=False)
    return str(local) if local.exists() else shutil.which("py-spy")


def parse_dump(text: str) -> dict[int, str]:
    """Native thread id -> Python thread name, from `py-spy dump` output."""
    names: dict[int, str] = {}
    for line in text.splitlines():
        m = _THREAD_LINE.match(line)
        if m and not m.group(1).startswith("0x"):
            names[int(m.group(1))] = m.group(3)
    return names


def python_thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> Python thread name for *pid*; empty when py-spy cannot tell."""
    exe = py_spy()
    if exe is None:
        return {}
    try:
        out = subprocess.run([exe, "dump", "--pid", str(pid)], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return parse_dump(out.stdout)


def role(tid: int, pid: int, comm: str, names: dict[int, str]) -> str:
    """The role of one thread: main, usage writer, default executor, or its name."""
    if tid == pid:
        return "main"
    name = names.get(tid, "")
    for needle, label in ROLES:
        if needle in name:
            return label
    return name or comm or "other"
