"""The ``model_groups`` section: routable names, their targets, prices, rules and stickiness."""

from __future__ import annotations

import dataclasses
from typing import Any

from .catalog import Catalog
from .model import Channel, ModelGroup, Rule, Target
from .prices import price as read_price
from .prices import priced
from .readers import Reader, join

GROUP_KEYS = ("name", "targets", "retry", "cooldown", "price", "reasoning", "sticky", "rules",
              "aliases", "output_reserve")
#: What a rule's ``when`` may test (see `rules.Traits`).
RULE_CONDITIONS = ("prompt_tokens_over", "reasoning", "images", "tools", "web_search",
                   "clients", "models", "background")
#: The model names Claude Code's background calls ask for (its small/fast model).
BACKGROUND_MODELS = ("*haiku*",)


def model_group(r: Reader, raw: Any, path: str, channels: dict[str, Channel],
                catalog: Catalog | None = None) -> tuple[ModelGroup, str] | None:
    m = r.mapping(raw, path, GROUP_KEYS)
    if m is None:
        return None
    name = r.field(m, path, "name", r.string)
    targets = _targets(r, m, path, channels)
    attempts = 3
    retry = r.mapping(m.get("retry") or {}, join(path, "retry"), ("attempts",))
    if retry and "attempts" in retry:
        attempts = r.integer(retry["attempts"], join(path, "retry.attempts"), 1) or 3
    cooldown = r.field(m, path, "cooldown", r.duration, 30.0)
    sticky_ttl = r.field(m, path, "sticky", lambda v, p: sticky(r, v, p), 3600.0)
    price = read_price(r, m.get("price"), join(path, "price"))
    reasoning = r.field(m, path, "reasoning", r.boolean, True)
    aliases = r.field(m, path, "aliases", r.strings, ())
    rules = tuple(found for p, item in r.items(m.get("rules"), join(path, "rules"))
                  if (found := rule(r, item, p, channels)) is not None)
    output_reserve = r.field(m, path, "output_reserve", lambda v, p: r.integer(v, p, 0), 4096)
    if None in (name, cooldown, reasoning, sticky_ttl, output_reserve):
        return None
    rules = tuple(dataclasses.replace(rule_, targets=priced(rule_.targets, price, catalog))
                  for rule_ in rules)
    return ModelGroup(name=name, targets=priced(targets, price, catalog), attempts=attempts,
                      cooldown=cooldown, price=price, reasoning=reasoning,
                      sticky_ttl=sticky_ttl, rules=rules, aliases=aliases or (),
                      output_reserve=output_reserve), path


def _targets(r: Reader, m: dict[str, Any], path: str,
             channels: dict[str, Channel]) -> list[Target]:
    targets = [t for p, item in r.items(m.get("targets"), join(path, "targets"))
               if (t := target(r, item, p, channels)) is not None]
    if not isinstance(m.get("targets"), list) or not m["targets"]:
        r.error(join(path, "targets"), "needs at least one target")
    return targets


def rule(r: Reader, raw: Any, path: str, channels: dict[str, Channel]) -> Rule | None:
    m = r.mapping(raw, path, ("name", "when", "targets"))
    if m is None:
        return None
    name = r.field(m, path, "name", r.string, path.rsplit(".", 1)[-1])
    when_path = join(path, "when")
    when = r.mapping(m.get("when"), when_path, RULE_CONDITIONS)
    targets = _targets(r, m, path, channels)
    if when is None:
        return None
    if not when:
        r.error(when_path, "needs at least one condition; expected one of "
                + ", ".join(RULE_CONDITIONS))
    conditions = _conditions(r, when, when_path)
    if name is None or not targets or None in conditions.values():
        return None
    return Rule(name=name, targets=tuple(targets), **conditions)


def _conditions(r: Reader, when: dict[str, Any], when_path: str) -> dict[str, Any]:
    conditions: dict[str, Any] = {}
    for key, value in when.items():
        where = join(when_path, str(key))
        if key == "prompt_tokens_over":
            conditions[key] = r.integer(value, where, 0)
        elif key in ("clients", "models"):
            items = r.strings(value, where)
            conditions[key] = None if items is None else (*(conditions.get(key) or ()),
                                                          *items)
        elif key == "background":
            if value is not True:
                r.error(where, "only 'background: true' is meaningful (Claude Code's "
                               "background calls ask for a *haiku* model)")
            conditions["models"] = (*(conditions.get("models") or ()), *BACKGROUND_MODELS)
        elif key in RULE_CONDITIONS:
            conditions[key] = r.boolean(value, where)
    return conditions


def sticky(r: Reader, value: Any, path: str) -> float | None:
    """``true`` (one hour), ``false`` (off), or a duration."""
    if value is True:
        return 3600.0
    if value is False:
        return 0.0
    return r.duration(value, path)


def target(r: Reader, raw: Any, path: str, channels: dict[str, Channel]) -> Target | None:
    m = r.mapping(raw, path, ("channel", "model", "weight", "priority", "max_context",
                              "max_output", "price"))
    if m is None:
        return None
    channel_name = r.field(m, path, "channel", r.string)
    model = r.field(m, path, "model", r.string)
    weight = r.field(m, path, "weight", r.positive, 1.0)
    priority = r.field(m, path, "priority", lambda v, p: r.integer(v, p, -(2**31)), 0)
    max_context = r.field(m, path, "max_context", lambda v, p: r.integer(v, p, 1), 0)
    max_output = r.field(m, path, "max_output", lambda v, p: r.integer(v, p, 1), 0)
    price = read_price(r, m.get("price"), join(path, "price"))
    channel = r.lookup(channels, channel_name, join(path, "channel"), "channel")
    if channel is None or None in (model, weight, priority, max_context, max_output):
        return None
    return Target(channel=channel, model=model, weight=weight, priority=priority,
                  max_context=max_context or None, max_output=max_output or None,
                  price=price)


def routes(channels: list[Channel], groups: list[ModelGroup],
           catalog: Catalog | None = None) -> dict[str, ModelGroup]:
    """Every routable name: channel-listed models first, explicit groups override them."""
    listed: dict[str, list[Target]] = {}
    for channel in channels:
        if channel.enabled:
            for model in channel.models:
                listed.setdefault(model, []).append(Target(channel=channel, model=model))
    found = {name: ModelGroup(name=name, targets=priced(targets, None, catalog))
             for name, targets in listed.items()}
    for group in groups:
        enabled = tuple(t for t in group.targets if t.channel.enabled)
        found[group.name] = dataclasses.replace(group, targets=enabled)
    return found
