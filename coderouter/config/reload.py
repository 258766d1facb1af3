"""Live configuration: one reference to the running `Config`, swapped whole on a valid reload.

A reload is triggered by a change to the config file (`watch_config`, watchfiles) or by SIGHUP
(`install_sighup`). The new file is parsed and validated whole; an invalid file is logged with
every problem and the old config stays. ``listen`` and ``database`` need a restart: a reload
that changes them logs a warning and keeps the running values.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import watchfiles

from .. import systemd
from ..errors import ConfigError
from . import Config, parse
from .changes import describe

logger = logging.getLogger("coderouter.config.reload")

#: Settings that are bound at start-up; a reload only warns when they change.
RESTART_ONLY = ("listen", "database", "state", "workers")

#: How long the watcher waits before re-arming after its directory could not be watched.
REARM_DELAY = 1.0

OnSwap = Callable[[Config, Config], None]


@dataclass(frozen=True, slots=True)
class ReloadEvent:
    """The outcome of one reload attempt, for the dashboard: when, why, and what happened."""

    at: float  # unix seconds
    reason: str
    result: Literal["reloaded", "unchanged", "failed"]


@dataclass(slots=True, kw_only=True)
class _Prepared:
    """A reload's file, read and parsed off the loop: a new config, problems, or unchanged."""

    digest: bytes = b""
    config: Config | None = None
    error: ConfigError | None = None
    unchanged: bool = False


class ConfigHolder:
    """One reference to the live Config; a reload parses and validates whole, then swaps it."""

    def __init__(self, path: str, config: Config, on_swap: OnSwap | None = None) -> None:
        """Hold *config*, loaded from *path*; *on_swap(old, new)* runs before each swap."""
        self.path = path
        self.current = config
        self.on_swap = on_swap
        self.reloads_ok = 0
        self.reloads_failed = 0
        #: sha256 of the bytes behind ``current``; None until known, so the first reload swaps.
        self.digest: bytes | None = None
        #: True while the file on disk is a version that failed to load.
        self.failing = False
        #: The (yaml_path, message) problems of the last failed reload; empty after a success.
        self.problems: list[tuple[str, str]] = []
        #: When the live config was loaded (unix seconds), and the last reload's outcome.
        self.loaded_at = time.time()
        self.last_reload: ReloadEvent | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_file(cls, path: str, on_swap: OnSwap | None = None) -> ConfigHolder:
        """Load *path* and remember its content hash; raise `ConfigError` when it is invalid."""
        data = _read(path)
        holder = cls(path, parse(_decode(data)), on_swap)
        holder.digest = hashlib.sha256(data).digest()
        return holder

    def reload(self, reason: str) -> bool:
        """Re-read the file and swap in the new config; return True when a new config is live.

        An unreadable, empty or invalid file logs its problems (also kept in ``problems``),
        counts a failure and keeps the current config. Content identical to the live config's
        is not swapped (False). A changed file is bracketed by sd_notify RELOADING=1 and
        READY=1, so ``systemctl reload`` waits for it. Parses on the calling thread: the
        server uses `areload`.
        """
        return self._finish(reason, self._prepare())

    async def areload(self, reason: str) -> bool:
        """`reload`, with reading and parsing in a worker thread so the event loop keeps
        serving while a large file is parsed; the swap itself runs on the loop. Reloads run
        one at a time, in the order asked."""
        async with self._lock:
            return self._finish(reason, await asyncio.to_thread(self._prepare))

    def _prepare(self) -> _Prepared:
        """Read and parse the file; touches no state, so it may run on any thread."""
        try:
            data = _read(self.path)
            digest = hashlib.sha256(data).digest()
            if digest == self.digest:
                return _Prepared(digest=digest, unchanged=True)
            if not data.strip():
                raise ConfigError([("", "file is empty; refusing to reload to an empty config")])
            with _gc_paused():
                return _Prepared(digest=digest, config=parse(_decode(data)))
        except ConfigError as exc:
            return _Prepared(error=exc)
        except Exception as exc:  # never let a reload kill the watcher or the server
            logger.exception("config reload failed unexpectedly")
            return _Prepared(error=ConfigError([("", f"the reload failed: {type(exc).__name__}")]))

    def _finish(self, reason: str, prepared: _Prepared) -> bool:
        if prepared.unchanged:
            self._unchanged(reason)
            return False
        if prepared.config is None:
            assert prepared.error is not None
            self._failed(reason, prepared.error)
            return False
        systemd.reloading()
        try:
            return self._swap(reason, prepared.config, prepared.digest)
        finally:
            systemd.ready(self.current.summary())

    def _swap(self, reason: str, new: Config, digest: bytes) -> bool:
        """Keep restart-only settings, run the swap hook, then replace ``current``."""
        old = self.current
        for warning in new.warnings:
            logger.warning("%s: %s", self.path, warning)
        for name in RESTART_ONLY:
            if getattr(new, name) != getattr(old, name):
                logger.warning("%s changed: restart to apply (still using %s)",
                               name, getattr(old, name))
        new = dataclasses.replace(new, **{name: getattr(old, name) for name in RESTART_ONLY})
        if self.on_swap is not None:
            try:
                self.on_swap(old, new)
            except Exception:
                logger.exception("config reload failed (%s): swap hook raised; "
                                 "keeping the current config", reason)
                self.reloads_failed += 1
                self.failing = True
                self.problems = [("", "the reload hook failed; see the log")]
                self.last_reload = ReloadEvent(time.time(), reason, "failed")
                return False
        self.current = new
        self.failing = False
        self.problems = []
        self.digest = digest
        self.reloads_ok += 1
        self.loaded_at = time.time()
        self.last_reload = ReloadEvent(self.loaded_at, reason, "reloaded")
        logger.info("config reloaded (%s): %s; %s", reason, new.summary(),
                    ", ".join(describe(old, new)) or "no channel, group or token changed")
        return True

    def _unchanged(self, reason: str) -> None:
        """Log (at INFO after a failure, else DEBUG) that the file matches the live config."""
        level = logging.INFO if self.failing else logging.DEBUG
        self.failing = False
        self.problems = []
        self.last_reload = ReloadEvent(time.time(), reason, "unchanged")
        logger.log(level, "config unchanged (%s); keeping the current config", reason)

    def _failed(self, reason: str, error: ConfigError) -> None:
        """Log every problem on its own line and count the failure."""
        problems = error.problems
        self.reloads_failed += 1
        self.failing = True
        self.problems = list(problems)
        self.last_reload = ReloadEvent(time.time(), reason, "failed")
        logger.error("config reload failed (%s): %d problem%s in %s; keeping the current config",
                     reason, len(problems), "" if len(problems) == 1 else "s", self.path)
        for yaml_path, message in problems:
            line = error.line_of(yaml_path)
            where = f"{yaml_path} (line {line})" if yaml_path and line else yaml_path
            logger.error("%s: %s", where or self.path, message)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a large document's new objects would set off full
    collections that walk the whole heap while holding the GIL, stalling the event loop. The
    parse makes no cycles; reference counting frees what it drops."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read(path: str) -> bytes:
    """Return the file's bytes; raise `ConfigError` naming the file when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([("", f"cannot read {path}: {exc.strerror}")]) from None


def _decode(data: bytes) -> str:
    """Decode UTF-8; raise `ConfigError` for anything else."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([("", f"not UTF-8 text: byte {exc.start}")]) from None


# -- watching the file --------------------------------------------------------------------------


def watched_paths(path: str) -> tuple[frozenset[str], frozenset[str]]:
    """Return (directories to watch, file paths that matter) for the config at *path*.

    The paths that matter are the config path, every symlink met while resolving it (so a
    Kubernetes ``..data`` swap counts) and the resolved target, each also spelled through its
    directory's real path (events name the watched directory as the OS resolved it). The
    directories are the existing real directories holding them, each watched non-recursively.
    """
    chain = _link_chain(os.path.abspath(path))
    chain.add(os.path.realpath(path))
    names = set(chain)
    dirs: set[str] = set()
    for name in chain:
        real_dir = os.path.realpath(os.path.dirname(name))
        names.add(os.path.join(real_dir, os.path.basename(name)))
        if os.path.isdir(real_dir):
            dirs.add(real_dir)
    return frozenset(dirs), frozenset(names)


def _link_chain(path: str, max_links: int = 40) -> set[str]:
    """Return absolute *path* and every lexical path of a symlink followed while resolving it."""
    chain = {path}
    for _ in range(max_links):
        link = _first_link(path)
        if link is None:
            break
        rest = os.path.relpath(path, link)
        target = os.path.join(os.path.dirname(link), os.readlink(link))
        path = os.path.normpath(os.path.join(target, rest))
        chain.update((link, path))
    return chain


def _first_link(path: str) -> str | None:
    """Return the shortest prefix of absolute *path* that is a symlink, or None."""
    parts = Path(path).parts
    for i in range(2, len(parts) + 1):
        prefix = os.path.join(*parts[:i])
        if os.path.islink(prefix):
            return prefix
    return None


async def watch_config(holder: ConfigHolder, stop: asyncio.Event, debounce_ms: int = 200) -> None:
    """Reload *holder* whenever its file (or a symlink leading to it) changes, until *stop*.

    Editor saves by rename, in-place rewrites and symlink swaps each cause one reload; the
    content hash check in `ConfigHolder.reload` drops repeats. When a symlink comes to point
    into another directory the watch is re-armed, and the file re-read once to catch a change
    made while no watch was armed.
    """
    rearmed = missing = False
    while not stop.is_set():
        dirs, names = watched_paths(holder.path)
        if not os.path.isdir(os.path.dirname(os.path.abspath(holder.path))):
            if not missing:
                logger.warning("cannot watch %s: its directory is missing; retrying", holder.path)
            missing = True
            await _wait(stop, REARM_DELAY)
            continue
        missing = False
        if rearmed:
            await holder.areload("file changed")
        rearmed = True
        try:
            await _watch_until_moved(holder, stop, dirs, names, debounce_ms)
        except OSError as exc:
            logger.warning("watching %s failed (%s); re-arming", holder.path, exc)
            await _wait(stop, REARM_DELAY)
        except Exception:  # the watcher must outlive anything: a revocation may be next
            logger.exception("watching %s failed; re-arming", holder.path)
            await _wait(stop, REARM_DELAY)


async def _watch_until_moved(holder: ConfigHolder, stop: asyncio.Event, dirs: frozenset[str],
                             names: frozenset[str], debounce_ms: int) -> None:
    """Watch *dirs* for changes to *names*; return on *stop* or when the watch set changes."""
    logger.debug("watching %s in %s", holder.path, ", ".join(sorted(dirs)))

    def relevant(_change: watchfiles.Change, changed: str) -> bool:
        return os.path.normpath(changed) in names

    async for _changes in watchfiles.awatch(
            *sorted(dirs), watch_filter=relevant, debounce=debounce_ms, step=50,
            stop_event=stop, recursive=False):
        await holder.areload("file changed")
        if watched_paths(holder.path) != (dirs, names):
            return


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep up to *seconds*, returning early when *stop* is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def install_sighup(loop: asyncio.AbstractEventLoop, holder: ConfigHolder) -> None:
    """Make SIGHUP reload *holder* on *loop* (``systemctl reload`` sends it)."""
    pending: set[asyncio.Task[bool]] = set()

    def on_sighup() -> None:
        task = loop.create_task(holder.areload("SIGHUP"))
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
