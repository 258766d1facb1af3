"""The `coderouter` command: serve, check, token (new, list, disable, rotate), usage."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from . import __version__, prices_cli, tokens_cli
from .channels import kind_of
from .config import Config, load
from .errors import ConfigError
from .usage import (
    GROUPINGS,
    REPORT_FIELDS,
    DatabaseUnavailable,
    aggregate_query,
    parse_moment,
    report_rows,
)

log = logging.getLogger("coderouter")


def config_path(given: str | None) -> str:
    return given or os.environ.get("CODEROUTER_CONFIG") or "./config.yaml"


def _load_or_report(path: str) -> Config | None:
    try:
        config = load(path)
    except ConfigError as exc:
        print(f"{path}: invalid config", file=sys.stderr)
        for line in exc.located():
            print(f"  {line}", file=sys.stderr)
        return None
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return config


def cmd_check(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    config = _load_or_report(path)
    if config is None:
        return 1
    print(f"{path}: ok: {config.summary()}")
    if config.price_catalog is not None:
        print(f"  prices from {config.price_catalog} ({config.price_catalog_note})")
    for channel in config.channels:
        note = kind_of(channel).describe(channel)
        if note:
            print(f"  {note}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    path = config_path(args.config)
    config = _load_or_report(path)
    if config is None:
        return 1
    if config.workers > 1:
        from .workers import supervise
        listen = config.listen
        log.info("coderouter %s serving %s with %d workers on http://%s:%d (%s)", __version__,
                 path, config.workers, listen.host, listen.port, config.summary())
        return supervise(config.workers, lambda index: _serve_one(path, worker=True),
                         listen.host, listen.port)
    return _serve_one(path, worker=False)


def _serve_one(path: str, *, worker: bool) -> int:
    """Serve until stopped: the only process, or one of several workers on the same port."""
    from . import logs
    from .app import create_app
    from .config.reload import ConfigHolder
    from .serve import run

    holder = ConfigHolder.from_file(path)
    config = holder.current
    logs.setup(holder)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop
        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    app = create_app(holder, watch=True)
    listen = config.listen
    # What is loaded now lives as long as the process: the cyclic GC need not walk it again
    # and again under load (gc.freeze), and a request's short-lived cycles can wait longer.
    gc.freeze()
    gc.set_threshold(7000, 20, 20)
    banner = "" if worker else (f"coderouter {__version__} serving {path} on "
                                f"http://{listen.host}:{listen.port} ({config.summary()})")
    try:
        run(app, listen.host, listen.port, status=config.summary(),
            loop_factory=loop_factory, reuse_port=worker,
            banner=banner)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", listen.host, listen.port, exc.strerror or exc)
        return 1
    except DatabaseUnavailable as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    config = _load_or_report(path)
    if config is None:
        return 1
    now = time.time()
    try:
        since = parse_moment(args.since, now) if args.since else None
        until = parse_moment(args.until, now) if args.until else None
    except ValueError as exc:
        print(f"coderouter usage: {exc}", file=sys.stderr)
        return 2
    database = config.database.path
    if config.database.url is not None:
        from .usage.postgres import report
        try:
            report_ = asyncio.run(report(config.database, args.by, since, until))
        except DatabaseUnavailable as exc:
            print(f"coderouter usage: {exc}", file=sys.stderr)
            return 1
        _print_report(args, report_)
        return 0
    if not os.path.exists(database):
        print(f"no usage database at {database} yet", file=sys.stderr)
        rows: list[Any] = []
    else:
        sql, params = aggregate_query(args.by, since, until)
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            rows = db.execute(sql, params).fetchall()
    _print_report(args, report_rows(args.by, rows))
    return 0


def _print_report(args: argparse.Namespace, report: list[dict[str, Any]]) -> None:
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print_table(args.by, report)


def print_table(by: str, report: Sequence[dict[str, Any]]) -> None:
    headers = (by, *REPORT_FIELDS, "cache_hit_ratio")
    cells = [[_cell(item[h]) for h in headers] for item in report]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                    for i, (h, w) in enumerate(zip(headers, widths, strict=True))))
    for row in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    if not cells:
        print("(no requests in this span)")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def cmd_config_schema(args: argparse.Namespace) -> int:
    from .config.jsonschema import schema

    sys.stdout.write(orjson.dumps(schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coderouter", description=__doc__)
    parser.add_argument("--version", action="version", version=f"coderouter {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("-c", "--config", help="config file (default: $CODEROUTER_CONFIG, "
                                              "then ./config.yaml)")
        return p

    with_config(sub.add_parser("serve", help="run the gateway")).set_defaults(func=cmd_serve)
    with_config(sub.add_parser("check", help="validate a config")).set_defaults(func=cmd_check)
    tokens_cli.add_parsers(sub, with_config)
    prices_cli.add_parsers(sub, with_config)
    config = sub.add_parser("config", help="about the config file").add_subparsers(
        dest="action", required=True)
    config.add_parser("schema", help="print the config file's JSON Schema (for editors)"
                      ).set_defaults(func=cmd_config_schema)
    usage = with_config(sub.add_parser("usage", help="aggregate the usage table"))
    usage.add_argument("--since", help="e.g. 7d, 12h or 2026-11-01")
    usage.add_argument("--until")
    usage.add_argument("--by", choices=tuple(GROUPINGS), default="token")
    usage.add_argument("--json", action="store_true")
    usage.set_defaults(func=cmd_usage)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # the reader left (`coderouter usage | head`): stop quietly, as other CLI tools do,
        # and keep Python's exit-time flush of stdout from raising again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
