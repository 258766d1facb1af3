"""Reasoning effort <-> thinking budget, for dialects that carry only one of them. Pure.

Buckets follow LiteLLM's (1024/2048/4096/8192/16384 tokens), so a budget Claude Code sends
lands on the effort a Chat or Responses upstream understands, and back.
"""

from __future__ import annotations

from .ir import Effort, ReasoningConfig

#: The least budget each effort stands for, smallest first.
_BUDGETS: tuple[tuple[Effort, int], ...] = (
    ("minimal", 512), ("low", 1024), ("medium", 2048), ("high", 4096), ("xhigh", 8192),
    ("max", 16384))
_BUDGET_OF: dict[str, int] = dict(_BUDGETS)
#: Anthropic's least thinking budget.
MIN_BUDGET = 1024


def effort_of_budget(budget: int) -> Effort:
    """The effort a thinking budget stands for: >=1024 low ... >=16384 max, less minimal."""
    effort: Effort = "minimal"
    for name, least in _BUDGETS:
        if budget >= least:
            effort = name
    return effort


def budget_of_effort(effort: Effort) -> int:
    """The thinking budget an effort stands for (at least Anthropic's minimum)."""
    return max(MIN_BUDGET, _BUDGET_OF.get(effort, _BUDGET_OF["medium"]))


def effort(config: ReasoningConfig) -> Effort | None:
    """The effort of *config*, from its budget when it has none; None when unsaid."""
    if not config.enabled:
        return "none"
    if config.effort is not None:
        return config.effort
    if config.budget is not None:
        return effort_of_budget(config.budget)
    return None


def budget(config: ReasoningConfig) -> int | None:
    """The budget of *config*, from its effort when it has none; None when thinking is off."""
    if not config.enabled or config.effort == "none":
        return None
    if config.budget is not None:
        return max(MIN_BUDGET, config.budget)
    return budget_of_effort(config.effort or "medium")
