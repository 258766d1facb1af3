"""Reading a whole config document: `load(path)` and `parse(text)`.

Both raise `ConfigError` listing every problem at once, so an operator fixes the file in one go.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml

from ..errors import ConfigError
from ..scrub import Scrubber
from . import settings
from .channels import channel
from .groups import model_group, routes
from .model import Config, Token
from .readers import Reader
from .tokens import token, token_group
from .yamlload import YamlTooLarge, load_yaml

TOP_KEYS = ("listen", "database", "state", "workers", "admin", "limits", "shutdown", "log",
            "channels", "model_groups", "token_groups", "tokens", "secret")


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
        raw = load_yaml(text)
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
        config = document(reader, {} if raw is None else raw)
    except RecursionError:
        raise ConfigError([("", "refused: the document nests too deeply")]) from None
    if reader.problems:
        raise ConfigError(reader.problems)
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
    channels = r.unique("channels", [
        c for path, item in r.items(m.get("channels"), "channels")
        if (c := channel(r, item, path)) is not None])
    by_channel = {c.name: c for c, _ in channels}
    groups = r.unique("model_groups", [
        g for path, item in r.items(m.get("model_groups"), "model_groups")
        if (g := model_group(r, item, path, by_channel)) is not None])
    token_groups = r.unique("token_groups", [
        tg for path, item in r.items(m.get("token_groups"), "token_groups")
        if (tg := token_group(r, item, path)) is not None])
    by_token_group = {tg.name: tg for tg, _ in token_groups}
    tokens = r.unique("tokens", [
        t for path, item in r.items(m.get("tokens"), "tokens")
        if (t := token(r, item, path, by_token_group)) is not None])
    return Config(
        listen=listen, database=database, state=state, workers=workers, admin=admin,
        secret=secret, limits=limits, shutdown=shutdown, log=log,
        channels=tuple(c for c, _ in channels),
        model_groups=tuple(g for g, _ in groups),
        token_groups=tuple(g for g, _ in token_groups),
        tokens=tuple(t for t, _ in tokens),
        warnings=tuple(r.warnings),
        routes=routes([c for c, _ in channels], [g for g, _ in groups]),
        tokens_by_sha256=_by_key(r, tokens),
        scrubber=Scrubber.from_channels(c for c, _ in channels),
    )


def _by_key(r: Reader, tokens: list[tuple[Token, str]]) -> dict[bytes, Token]:
    """Tokens by the SHA-256 of their key; two tokens with one key is an error."""
    found: dict[bytes, Token] = {}
    for item, path in tokens:
        other = found.setdefault(item.key_sha256, item)
        if other is not item:
            r.error(path, f"token '{item.name}' has the same key as '{other.name}'")
    return found
