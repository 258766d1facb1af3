"""`coderouter token new|list|disable|rotate`: caller tokens managed by editing the config file.

Each edit keeps the file's comments and order (`config.edit`), is checked as `check` would
before it is written, and replaces the file in one rename, so a running gateway's live reload
picks it up whole. A key is printed once, to the operator; only its SHA-256 goes in the file.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import os
import secrets
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .config import Config, load, parse
from .config.edit import EditError, append_token, scalar, set_token_field
from .errors import ConfigError
from .usage import DatabaseUnavailable

_LAST_USED = "SELECT token, max(ts) FROM usage WHERE token IS NOT NULL GROUP BY token"
UNLIMITED = ("a token with no group and no models may use every model, without limit: "
             "give it --group or --models unless that is meant")


def new_key() -> tuple[str, str]:
    """A fresh caller key and its SHA-256 (hex)."""
    key = "sk-cr-" + secrets.token_urlsafe(32)
    return key, hashlib.sha256(key.encode()).hexdigest()


def cmd_new(args: argparse.Namespace) -> int:
    key, digest = new_key()
    models = [m for item in args.models or () for m in item.split(",") if m]
    fields = [("name", scalar(args.name or "NAME")), ("key_sha256", f'"{digest}"')]
    if args.group:
        fields.append(("group", scalar(args.group)))
    if models:
        fields.append(("models", "[" + ", ".join(scalar(m) for m in models) + "]"))
    if args.append:
        if not args.name:
            print("coderouter token new: --append needs --name", file=sys.stderr)
            return 2
        done = _edit(args.config, lambda text: append_token(text, fields))
        if done:
            return done
        print(f"token '{args.name}' added to {_path(args.config)}")
    print(f"key:        {key}")
    print(f"key_sha256: {digest}")
    if not args.group and not models:
        print(f"warning: {UNLIMITED}")
    if not args.append:
        print()
        print("# paste under tokens: in the config; give the key to the caller, keep only the "
              "hash")
        for i, (name, value) in enumerate(fields):
            print(f"  {'- ' if i == 0 else '  '}{name}: {value}")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    done = _edit(args.config, lambda text: set_token_field(text, args.name, "enabled", "false"))
    if not done:
        print(f"token '{args.name}' disabled in {_path(args.config)}")
    return done


def cmd_rotate(args: argparse.Namespace) -> int:
    key, digest = new_key()
    done = _edit(args.config, lambda text: set_token_field(
        text, args.name, "key_sha256", f'"{digest}"', replaces=("key",)))
    if done:
        return done
    print(f"token '{args.name}' has a new key in {_path(args.config)}; the old key is refused "
          "once the gateway reloads")
    print(f"key:        {key}")
    print(f"key_sha256: {digest}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    path = _path(args.config)
    try:
        config = load(path, _Lenient())
    except ConfigError as exc:
        _report(path, exc)
        return 1
    try:
        used = _last_used(config)
    except DatabaseUnavailable as exc:
        print(f"coderouter token list: {exc}", file=sys.stderr)
        return 1
    header = ("name", "group", "models", "enabled", "expires", "last_used")
    rows = [header] + [(
        t.name, t.group.name if t.group else "-",
        ",".join(t.models) if t.models is not None else ("(group's)" if t.group else "all"),
        "yes" if t.enabled else "no", _moment(t.expires), _moment(used.get(t.name)))
        for t in config.tokens]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _last_used(config: Config) -> dict[str, float]:
    if config.database.url is not None:
        from .usage.postgres import fetch_once
        rows = asyncio.run(fetch_once(config.database, _LAST_USED))
    elif os.path.exists(config.database.path):
        with sqlite3.connect(f"file:{config.database.path}?mode=ro", uri=True) as db:
            try:
                rows = db.execute(_LAST_USED).fetchall()
            except sqlite3.OperationalError:  # no usage table yet
                rows = []
    else:
        rows = []
    return {str(name): float(ts) for name, ts in rows}


def _moment(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _path(given: str | None) -> str:
    return given or os.environ.get("CODEROUTER_CONFIG") or "./config.yaml"


def _edit(given: str | None, change: Callable[[str], str]) -> int:
    """Apply *change* to the config file unless that adds a problem `check` would report;
    0, else an exit status after saying why. Problems the file already had (an environment
    variable this shell does not set) are not the edit's."""
    path = os.path.realpath(_path(given))  # a symlinked config: edit the file it points to
    try:
        with open(path, encoding="utf-8") as f:
            before = f.read()
        text = change(before)
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    except EditError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    had = _problems(before)
    added = [p for p in _problems(text) if p not in had]
    if added:
        _report(path, ConfigError(added), "the edit would make an invalid config; the file "
                                          "is unchanged")
        return 1
    _replace(path, text)
    return 0


def _problems(text: str) -> list[tuple[str, str]]:
    try:
        parse(text)
    except ConfigError as exc:
        return list(exc.problems)
    return []


class _Lenient(Mapping[str, str]):
    """The environment, with a stand-in for each variable this shell does not set: the
    token commands read tokens, not the channel keys the gateway's environment holds."""

    def __getitem__(self, name: str) -> str:
        return os.environ.get(name, f"unset-{name}")

    def get(self, name: str, default: Any = None) -> Any:
        return self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


def _report(path: str, exc: ConfigError, what: str = "invalid config") -> None:
    print(f"{path}: {what}", file=sys.stderr)
    for line in exc.located():
        print(f"  {line}", file=sys.stderr)


def _replace(path: str, text: str) -> None:
    """Write *text* to *path* in one rename, keeping the file's mode."""
    mode = os.stat(path).st_mode & 0o7777
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".coderouter-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def add_parsers(sub: Any, with_config: Callable[[argparse.ArgumentParser],
                                                 argparse.ArgumentParser]) -> None:
    """The ``token`` command and its actions, under *sub*."""
    token = sub.add_parser("token", help="caller keys").add_subparsers(dest="action",
                                                                       required=True)
    new = with_config(token.add_parser("new", help="a new key: printed, or --append'ed to "
                                                   "the config"))
    new.add_argument("--name")
    new.add_argument("--group", help="its token group")
    new.add_argument("--models", nargs="+", help="routable names (globs) it may use")
    new.add_argument("--append", action="store_true",
                     help="write the token into the config file (live reload picks it up)")
    new.set_defaults(func=cmd_new)
    with_config(token.add_parser("list", help="tokens with their last use")).set_defaults(
        func=cmd_list)
    for name, func, what in (("disable", cmd_disable, "refuse a token's key from now on"),
                             ("rotate", cmd_rotate, "a new key for a token; the old is refused")):
        action = with_config(token.add_parser(name, help=what))
        action.add_argument("name")
        action.set_defaults(func=func)
