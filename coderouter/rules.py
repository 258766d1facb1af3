"""What a request needs, and which of a model group's rules it meets. Pure.

Traits are read from the body as the caller sent it, by its dialect's facts, each from the
field that means it in that dialect (an image part, a server web-search tool, the reasoning
setting): a look-alike in a tool schema or metadata is no trait.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from .config import ModelGroup, Rule
from .config.groups import BACKGROUND_MODELS
from .dialects.dialect import Dialect


@dataclass(slots=True, frozen=True)
class Traits:
    model: str
    prompt_tokens: int
    reasoning: bool
    images: bool
    tools: bool
    web_search: bool
    client: str | None


def traits(dialect: Dialect, payload: dict[str, Any], prompt_tokens: int,
           client: str | None) -> Traits:
    """The traits of a *dialect* request's parsed *payload*."""
    return Traits(
        model=dialect.model(payload),
        prompt_tokens=prompt_tokens,
        reasoning=dialect.asks_reasoning(payload),
        images=dialect.has_images(payload),
        tools=dialect.offers_tools(payload),
        web_search=dialect.asks_web_search(payload),
        client=client,
    )


def matches(rule: Rule, t: Traits) -> bool:
    """Whether every condition *rule* states holds for *t*."""
    return ((rule.prompt_tokens_over is None or t.prompt_tokens > rule.prompt_tokens_over)
            and (rule.reasoning is None or rule.reasoning == t.reasoning)
            and (rule.images is None or rule.images == t.images)
            and (rule.tools is None or rule.tools == t.tools)
            and (rule.web_search is None or rule.web_search == t.web_search)
            and (rule.clients is None or (t.client is not None and any(
                fnmatch.fnmatchcase(t.client, c) for c in rule.clients)))
            and (rule.models is None or any(
                fnmatch.fnmatchcase(t.model, m) for m in rule.models)))


#: How the system prompts of agents' title-generation calls begin (lower case): opencode's.
TITLE_PROMPTS = ("you are a title generator",)


def is_background(model: str, system: Any) -> bool:
    """Whether a request is an agent's background call, not a turn of the user's work: it
    asks for Claude Code's small/fast model (its titles, topic and command classifiers and
    summaries) or its system prompt is a title generator's."""
    if any(fnmatch.fnmatchcase(model, glob) for glob in BACKGROUND_MODELS):
        return True
    text = _first_text(system)
    return text is not None and text.lstrip().lower().startswith(TITLE_PROMPTS)


def _first_text(value: Any, depth: int = 0) -> str | None:
    """The first text of a system prompt: a string, or the first of its parts or blocks."""
    if isinstance(value, str):
        return value
    if depth > 3:
        return None
    if isinstance(value, dict):
        return _first_text(value.get("text", value.get("parts", value.get("content"))),
                           depth + 1)
    if isinstance(value, list) and value:
        return _first_text(value[0], depth + 1)
    return None


def first_rule(group: ModelGroup, t: Traits) -> Rule | None:
    """The first of *group*'s rules that *t* meets, or None (the group's own targets)."""
    for rule in group.rules:
        if matches(rule, t):
            return rule
    return None
