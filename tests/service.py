"""A real `python -m coderouter serve` process on a free loopback port, for service tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

TIMEOUT = 20.0


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Runs a command bound by file permissions even as root (CI runs as root): without the
#: capabilities that override them, a file's owner cannot write a file it made read-only.
AS_FILE_OWNER: tuple[str, ...] = (
    ("setpriv", "--bounding-set=-dac_override,-dac_read_search") if os.geteuid() == 0 else ())


def write_atomic(path: Path, text: str) -> None:
    """Save like an editor that writes a temporary file and renames it over *path*."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def until(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll async *predicate* until it holds; fail naming *what* after `TIMEOUT`."""
    deadline = time.monotonic() + TIMEOUT
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Process:
    """A running gateway process and what it printed to stderr."""

    proc: asyncio.subprocess.Process
    url: str
    config_path: Path
    config: dict[str, Any]
    stderr: list[str] = field(default_factory=list)

    def write_config(self, config: dict[str, Any], *, atomic: bool = True) -> None:
        """Save *config* as an operator would: by rename (*atomic*) or in place."""
        self.config = config
        text = yaml.safe_dump(config)
        if atomic:
            write_atomic(self.config_path, text)
        else:
            with self.config_path.open("w") as f:  # truncate, then write: a second event
                f.write(text)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def line(self, text: str) -> str:
        """The first stderr line containing *text*, waiting for it."""
        async def seen() -> bool:
            return any(text in line for line in self.stderr)
        await until(seen, f"a log line with {text!r}; got:\n" + "".join(self.stderr))
        return next(line for line in self.stderr if text in line)

    async def exit_code(self) -> int:
        return await asyncio.wait_for(self.proc.wait(), TIMEOUT)

    def rows(self) -> list[dict[str, Any]]:
        """Every usage row in the process's database."""
        with sqlite3.connect(self.config["database"]["path"]) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM usage ORDER BY id")]


@contextlib.asynccontextmanager
async def serving(config: dict[str, Any], tmp_path: Path,
                  env: dict[str, str] | None = None,
                  prefix: tuple[str, ...] = ()) -> AsyncIterator[Process]:
    """Start the gateway on *config* (listen is set here), wait for /healthz, kill it after.

    *prefix* runs the process through a wrapper command (e.g. `AS_FILE_OWNER`).
    """
    port = free_port()
    config = {**config, "listen": {**config.get("listen", {}), "host": "127.0.0.1", "port": port}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = await asyncio.create_subprocess_exec(
        *prefix, sys.executable, "-m", "coderouter", "serve", "-c", str(path),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})})
    served = Process(proc, f"http://127.0.0.1:{port}", path, config)

    async def read_stderr() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            served.stderr.append(raw.decode(errors="replace"))

    reader = asyncio.create_task(read_stderr())

    async def healthy() -> bool:
        if proc.returncode is not None:
            pytest.fail("coderouter serve exited:\n" + "".join(served.stderr))
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(served.url + "/healthz") as resp:
                    return resp.status == 200
        except aiohttp.ClientConnectionError:
            return False

    try:
        await until(healthy, "coderouter serve to answer /healthz")
        yield served
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await asyncio.wait_for(reader, TIMEOUT)
