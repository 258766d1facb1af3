"""Run one agent once: a fresh temp dir and HOME, a timeout, and what came of it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from tests.agents.agents import Agent, Endpoint
from tests.agents.script import Step, Task

TAIL = 600


@dataclass
class Outcome:
    """What one agent run did: its exit, its output's tails, and the file it left."""

    exit_code: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    written: str | None  # the task file's content, None if it does not exist
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None


def task_for(root: Path, model: str) -> Task:
    """Two steps whose file contents name *model*, so a file cannot come from another run."""
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    return Task(str(work), (Step("hello.txt", f"written by {model} through the harness\n"),
                            Step("second.txt", f"second turn of {model} resumed\n")))


async def run_agent(agent: Agent, at: Endpoint, task: Task, step: int, root: Path,
                    timeout: float) -> Outcome:
    """Run *agent* on *task*'s *step* against *at* in *root* (home in root/home); kill it at
    *timeout*."""
    home = root / "home"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    launch = agent.prepare(at, task, home, step)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *launch.argv, cwd=task.workdir, env=launch.env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        code: int | None = proc.returncode
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = await proc.communicate()
        code = None
    finally:
        with contextlib.suppress(ProcessLookupError):  # and whatever it left running
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()
    seconds = time.monotonic() - started
    path = Path(task.path(step))
    written = path.read_text(errors="replace") if path.is_file() else None
    return Outcome(code, tail(out), tail(err), written, seconds)


def tail(raw: bytes) -> str:
    text = raw.decode(errors="replace").strip()
    return text[-TAIL:]
