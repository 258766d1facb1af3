"""Reading a whole config document: `load(path)` and `parse(text)`.

Both raise `ConfigError` listing every problem at once, so an operator fixes the file in one go.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from typing import Any

import yaml

from ..errors import ConfigError
from ..scrub import Scrubber
from . import settings
from .channels import channel
from .groups import model_group, routes
from .model import Config, ModelGroup, Token, TokenGroup
from .prices import read_price_catalog, unpriced
from .readers import Reader
from .tokens import token, token_group
from .yamlload import YamlTooLarge, read_document

TOP_KEYS = ("listen", "database", "state", "workers", "admin", "limits", "shutdown", "log",
            "tracing", "capture", "channels", "model_groups", "token_groups", "tokens", "secret",
            "price_catalog")


def load(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate the config file at *path*."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError([("", f"cannot read {os.fspath(path)}: {exc.strerror}")]) from None
    return parse(text, environ)


def parse(text: str, environ: Mapping[str, str] | None = None) -> Config:
    """Validate a YAML document; raise `ConfigError` with every problem found."""
    try:
        parsed = read_document(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([("", f"invalid YAML: {where}{problem}")]) from None
    except YamlTooLarge as exc:
        raise ConfigError([("", f"refused: {exc}")]) from None
    except (RecursionError, MemoryError):
        raise ConfigError([("", "refused: the document nests too deeply")]) from None
    except Exception as exc:  # whatever else the loader meets: an error, never a traceback
        raise ConfigError([("", f"cannot load the YAML: {type(exc).__name__}: {exc}")]) \
            from None
    reader = Reader(os.environ if environ is None else environ)
    try:
        config = document(reader, {} if parsed.value is None else parsed.value)
    except RecursionError:
        raise ConfigError([("", "refused: the document nests too deeply")]) from None
    problems = [*parsed.duplicates, *reader.problems]
    if problems:
        raise ConfigError(problems, lines=parsed.lines)
    return config


def document(r: Reader, raw: Any) -> Config:
    """The `Config` of a whole YAML tree; problems are collected in *r*."""
    m = r.mapping(raw, "", TOP_KEYS)
    if m is None:
        return Config()
    listen, database = settings.listen(r, m), settings.database(r, m)
    state = settings.state(r, m)
    workers, admin = settings.workers(r, m, state), settings.admin(r, m)
    secret, limits = settings.secret(r, m), settings.limits(r, m)
    shutdown, log = settings.shutdown(r, m), settings.log(r, m)
    tracing, capture = settings.tracing(r, m), settings.capture(r, m)
    channels = r.unique("channels", [
        c for path, item in r.items(m.get("channels"), "channels")
        if (c := channel(r, item, path)) is not None])
    by_channel = {c.name: c for c, _ in channels}
    r.broken["channel"] = _names(m.get("channels")) - set(by_channel)
    catalog_path, catalog = read_price_catalog(r, m.get("price_catalog"))
    groups = r.unique("model_groups", [
        g for path, item in r.items(m.get("model_groups"), "model_groups")
        if (g := model_group(r, item, path, by_channel, catalog)) is not None])
    token_groups = r.unique("token_groups", [
        tg for path, item in r.items(m.get("token_groups"), "token_groups")
        if (tg := token_group(r, item, path)) is not None])
    by_token_group = {tg.name: tg for tg, _ in token_groups}
    r.broken["token group"] = _names(m.get("token_groups")) - set(by_token_group)
    tokens = r.unique("tokens", [
        t for path, item in r.items(m.get("tokens"), "tokens")
        if (t := token(r, item, path, by_token_group)) is not None])
    routable = routes([c for c, _ in channels], [g for g, _ in groups], catalog)
    _warn_unmatched_globs(r, routable, [g for g, _ in groups], [*token_groups, *tokens])
    if any(q.cost is not None for owner, _ in [*token_groups, *tokens] for q in owner.quotas):
        _warn_unpriced(r, routable, dict((g.name, p) for g, p in groups),
                       {c.name: p for c, p in channels})
    return Config(
        listen=listen, database=database, state=state, workers=workers, admin=admin,
        secret=secret, limits=limits, shutdown=shutdown, log=log, tracing=tracing,
        capture=capture,
        channels=tuple(c for c, _ in channels),
        model_groups=tuple(g for g, _ in groups),
        token_groups=tuple(g for g, _ in token_groups),
        tokens=tuple(t for t, _ in tokens),
        warnings=tuple(r.warnings), price_catalog=catalog_path,
        price_catalog_note=catalog.describe() if catalog is not None else None,
        routes=routable,
        tokens_by_sha256=_by_key(r, tokens),
        scrubber=Scrubber.from_channels(c for c, _ in channels),
    )


def _names(items: Any) -> set[str]:
    """The string ``name`` of each mapping in *items*, whatever else is wrong with them."""
    if not isinstance(items, list):
        return set()
    return {item["name"] for item in items
            if isinstance(item, dict) and isinstance(item.get("name"), str)}


def _warn_unmatched_globs(r: Reader, routable: Mapping[str, ModelGroup],
                          groups: list[ModelGroup],
                          owners: list[tuple[TokenGroup | Token, str]]) -> None:
    """Warn about an allow-list entry that names no routable model: a typo there silently
    refuses every request it was meant to allow."""
    aliases = [a for g in groups for a in g.aliases]
    for owner, path in owners:
        for i, pattern in enumerate(owner.models or ()):
            if any(fnmatch.fnmatchcase(name, pattern) for name in routable) or any(
                    fnmatch.fnmatchcase(alias, pattern) or fnmatch.fnmatchcase(pattern, alias)
                    for alias in aliases):  # globs that overlap ("claude-3*", "claude-*")
                continue
            r.warnings.append(f"{path}.models[{i}]: '{pattern}' matches no routable model")


def _warn_unpriced(r: Reader, routable: Mapping[str, ModelGroup], groups: dict[str, str],
                   channels: dict[str, str]) -> None:
    """Warn about each way a request can be served without a price while a cost quota
    exists: such a request costs $0, so it dodges the quota."""
    for name, target in unpriced(routable):
        where = groups.get(name) or channels.get(target.channel.name, "")
        r.warnings.append(
            f"{where}: '{name}' served by {target.channel.name}/{target.model} has no price, so "
            "a cost quota counts it as $0 (set price: on the group or target, or prices: on "
            "the channel)")


def _by_key(r: Reader, tokens: list[tuple[Token, str]]) -> dict[bytes, Token]:
    """Tokens by the SHA-256 of their key; two tokens with one key is an error."""
    found: dict[bytes, Token] = {}
    for item, path in tokens:
        other = found.setdefault(item.key_sha256, item)
        if other is not item:
            r.error(path, f"token '{item.name}' has the same key as '{other.name}'")
    return found
