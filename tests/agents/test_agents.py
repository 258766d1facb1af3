"""Real coding agents through the real gateway: the matrix of agent x channel kind.

Each agent also runs straight against the fake LLM (its control): a control failure is a
harness bug, a case that fails only through the gateway is a gateway bug. Cases waiting for
other work are marked from their `Expect` in `matrix.CASES`.
"""

from __future__ import annotations

import pytest

from tests.agents.agents import AGENTS
from tests.agents.matrix import CASES, Case, Matrix

#: The whole matrix runs inside the first test's setup: 92 cases and 23 controls took 1072 s
#: with 3 jobs on 2 loaded cores (Kilo's runs are the slowest, about 80 s each there).
pytestmark = pytest.mark.timeout(1800)


def marks(case: Case) -> list[pytest.MarkDecorator]:
    if case.expect is None:
        return []
    return [pytest.mark.xfail(reason=case.expect.reason, strict=case.expect.strict)]


@pytest.mark.parametrize("agent", list(AGENTS))
def test_control(matrix: Matrix, agent: str) -> None:
    """The agent completes both steps against the fake LLM directly."""
    if agent not in matrix.controls:
        pytest.skip("not among CODEROUTER_AGENTS")
    run = matrix.controls[agent]
    assert run.ok, f"control failed (a harness bug): {run.cause}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=marks(c)) for c in CASES])
def test_through_gateway(matrix: Matrix, case: Case) -> None:
    """Through the gateway, for both steps (the second resumes the session): exit 0, the file
    written by a tool round trip, and a 200 usage row per request with the fake's usage."""
    if case.id not in matrix.cases:
        pytest.skip("not among CODEROUTER_AGENTS")
    run = matrix.cases[case.id]
    control = matrix.controls[case.agent]
    assert control.ok, f"control failed too (a harness bug): {control.cause}"
    assert run.ok, run.cause
