"""The agent matrix runs once per session; each case's test reads its verdict from it."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from tests.agents.agents import AGENTS
from tests.agents.matrix import Matrix, render, run_matrix

_REPORT: list[str] = []


@pytest.fixture(scope="session")
def matrix() -> Matrix:
    """Every control and case, run concurrently (bounded) against one gateway process.

    In CI (CI set) a missing agent install is a failure; elsewhere the matrix is skipped with
    the command that installs the agents. CODEROUTER_AGENTS=a,b runs only those agents' cases.
    """
    missing = [a.name for a in AGENTS.values() if not a.installed]
    if missing:
        message = (f"agent CLIs not installed ({', '.join(missing)}); "
                   "run `bash tests/agents/install.sh`")
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    only = os.environ.get("CODEROUTER_AGENTS")
    result = asyncio.run(run_matrix(only.split(",") if only else None))
    _REPORT.append(render(result))
    return result


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for report in _REPORT:
        terminalreporter.section("agent matrix (control: the agent against the fake LLM "
                                 "directly; gateway: through coderouter serve)")
        terminalreporter.write_line(report)
