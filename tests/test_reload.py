"""Live configuration: validated swaps, file watching (rename, in place, symlinks), SIGHUP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from coderouter.config import Config, Database, Listen, load
from coderouter.config.reload import ConfigHolder, install_sighup, watch_config, watched_paths
from coderouter.errors import ConfigError

LOGGER = "coderouter.config.reload"
TIMEOUT = 10.0


def config_text(model: str = "mock-1", *, port: int = 8080, db: str = "./cr.sqlite") -> str:
    """A minimal valid config serving *model*."""
    return (f"listen: {{host: 127.0.0.1, port: {port}}}\n"
            f"database: {{path: {db}}}\n"
            f"channels: [{{name: m, type: mock, models: [{model}]}}]\n")


INVALID = "channels: [{name: m, type: mokc, models: [mock-2]}]\ntokens: [{name: t}]\n"


def models(config: Config) -> set[str]:
    """The routable names of *config*."""
    return set(config.routes)


def write_atomic(path: Path, text: str) -> None:
    """Save like an editor that writes a temporary file then renames it over the target."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Poll *predicate* until it holds; fail naming *what* after a generous timeout."""
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def unchanged_count(caplog: pytest.LogCaptureFixture) -> int:
    """How many 'config unchanged' records the reload logger has written."""
    return sum(r.name == LOGGER and r.getMessage().startswith("config unchanged")
               for r in caplog.records)


async def barrier(holder: ConfigHolder, caplog: pytest.LogCaptureFixture) -> None:
    """Return once the watcher has handled an identical rewrite of the file.

    Events are handled in order, so everything written before the barrier has been seen. The
    rewrite does not change the content, so it swaps nothing and counts nothing.
    """
    data = Path(holder.path).read_bytes()
    seen = unchanged_count(caplog)
    deadline = time.monotonic() + TIMEOUT
    while unchanged_count(caplog) == seen:
        if time.monotonic() > deadline:
            pytest.fail("the watcher never reacted to a rewrite")
        Path(holder.path).write_bytes(data)
        for _ in range(20):
            await asyncio.sleep(0.02)
            if unchanged_count(caplog) > seen:
                return


@contextlib.asynccontextmanager
async def watching(holder: ConfigHolder,
                   caplog: pytest.LogCaptureFixture) -> AsyncIterator[asyncio.Event]:
    """Run `watch_config` on *holder*, armed, and stop it on the way out (it must stop)."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    stop = asyncio.Event()
    task = asyncio.create_task(watch_config(holder, stop, debounce_ms=100))
    try:
        await barrier(holder, caplog)
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT)


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    """A valid config file serving mock-1."""
    path = tmp_path / "config.yaml"
    path.write_text(config_text())
    return path


@pytest.fixture
def holder(cfg_path: Path) -> ConfigHolder:
    """A holder loaded from *cfg_path*."""
    return ConfigHolder.from_file(str(cfg_path))


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Messages the reload logger wrote at ERROR."""
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER and r.levelno == logging.ERROR]


# -- ConfigHolder.reload ------------------------------------------------------------------------


class TestReloadSwaps:
    def test_valid_change_is_swapped_in(self, holder: ConfigHolder, cfg_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
        """A valid new file replaces the config, counts a success and logs the summary."""
        caplog.set_level(logging.INFO, logger=LOGGER)
        cfg_path.write_text(config_text("mock-2"))
        assert holder.reload("test") is True
        assert models(holder.current) == {"mock-2"}
        assert (holder.reloads_ok, holder.reloads_failed) == (1, 0)
        assert ("config reloaded (test): 1 channel, 1 routable model, 0 token groups, 0 tokens; "
                "channel m changed") in caplog.messages

    def test_reload_line_names_what_changed(self, holder: ConfigHolder, cfg_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
        """The reload's log line names the tokens and groups added, removed, disabled or
        changed, never a key or a price."""
        caplog.set_level(logging.INFO, logger=LOGGER)
        tokens = ("tokens:\n"
                  "  - {name: carol, key: carol-key-1234%s}\n"
                  "  - {name: dave, key: dave-key-12345}\n")
        cfg_path.write_text(config_text() + "token_groups: [{name: team}]\n"
                            + tokens % "")
        assert holder.reload("one") is True
        cfg_path.write_text(config_text() + "token_groups: [{name: team, models: [x]}]\n"
                            + tokens % ", enabled: false"
                            + "  - {name: erin, key: erin-key-123456}\n")
        assert holder.reload("two") is True
        line = next(m for m in caplog.messages if m.startswith("config reloaded (two)"))
        assert line.endswith("; token_group team changed, token carol disabled, +token erin")
        cfg_path.write_text(config_text("mock-2"))
        assert holder.reload("three") is True
        line = next(m for m in caplog.messages if m.startswith("config reloaded (three)"))
        assert line.endswith("; channel m changed, -token_group team, -token carol, "
                             "-token dave, -token erin")
        assert "key-" not in "\n".join(caplog.messages)

    def test_on_swap_sees_old_then_new(self, cfg_path: Path) -> None:
        """The swap hook receives the old and the new config before the swap."""
        calls: list[tuple[set[str], set[str], set[str]]] = []
        holder = ConfigHolder(str(cfg_path), load(cfg_path),
                              on_swap=lambda old, new: calls.append(
                                  (models(old), models(new), models(holder.current))))
        cfg_path.write_text(config_text("mock-2"))
        assert holder.reload("test") is True
        assert calls == [({"mock-1"}, {"mock-2"}, {"mock-1"})]

    def test_failing_swap_hook_keeps_old_config(self, cfg_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
        """A swap hook that raises leaves the old config live and counts a failure."""
        def hook(old: Config, new: Config) -> None:
            raise RuntimeError("boom")
        holder = ConfigHolder(str(cfg_path), load(cfg_path), on_swap=hook)
        cfg_path.write_text(config_text("mock-2"))
        assert holder.reload("test") is False
        assert models(holder.current) == {"mock-1"}
        assert (holder.reloads_ok, holder.reloads_failed) == (0, 1)
        assert any("swap hook raised" in line for line in error_lines(caplog))

    def test_config_warnings_are_logged(self, holder: ConfigHolder, cfg_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
        """Warnings of the new config (a plaintext key) are logged with the YAML path."""
        cfg_path.write_text(config_text() + "tokens: [{name: t, key: sk-cr-0123456789}]\n")
        assert holder.reload("test") is True
        assert any("tokens[0].key: plaintext key" in m for m in caplog.messages)


class TestReloadUnchanged:
    def test_same_bytes_are_not_swapped(self, holder: ConfigHolder,
                                        caplog: pytest.LogCaptureFixture) -> None:
        """Reloading identical content returns False, swaps nothing and counts nothing."""
        caplog.set_level(logging.DEBUG, logger=LOGGER)
        before = holder.current
        assert holder.reload("test") is False
        assert holder.current is before
        assert (holder.reloads_ok, holder.reloads_failed) == (0, 0)
        assert "config unchanged (test); keeping the current config" in caplog.messages

    def test_holder_without_digest_swaps_once(self, cfg_path: Path) -> None:
        """A holder built from a Config (hash unknown) swaps the first time, then not again."""
        holder = ConfigHolder(str(cfg_path), load(cfg_path))
        assert holder.reload("test") is True
        assert holder.reload("test") is False
        assert holder.reloads_ok == 1

    def test_reverting_to_live_content_is_a_no_op(self, holder: ConfigHolder, cfg_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
        """After a failed reload, restoring the live bytes swaps nothing and says so at INFO."""
        caplog.set_level(logging.INFO, logger=LOGGER)
        cfg_path.write_text(INVALID)
        assert holder.reload("test") is False
        assert holder.failing is True
        cfg_path.write_text(config_text())
        assert holder.reload("revert") is False
        assert holder.failing is False
        assert (holder.reloads_ok, holder.reloads_failed) == (0, 1)
        assert "config unchanged (revert); keeping the current config" in caplog.messages


class TestReloadRejects:
    def test_invalid_file_keeps_old_config(self, holder: ConfigHolder, cfg_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
        """An invalid file counts a failure and logs every problem with its YAML path."""
        cfg_path.write_text(INVALID)
        assert holder.reload("test") is False
        assert models(holder.current) == {"mock-1"}
        assert (holder.reloads_ok, holder.reloads_failed) == (0, 1)
        lines = error_lines(caplog)
        assert lines[0].startswith("config reload failed (test): 2 problems in ")
        assert "channels[0].type (line 1): expected one of openai, anthropic, azure, gemini, " \
            "mock, got 'mokc'" in lines[1:]
        assert "tokens[0] (line 2): needs exactly one of key_sha256 or key" in lines[1:]
        assert len(lines) == 3

    def test_yaml_syntax_error_names_the_file(self, holder: ConfigHolder, cfg_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
        """A problem without a YAML path (bad syntax) is logged against the file path."""
        cfg_path.write_text("channels: [\n")
        assert holder.reload("test") is False
        assert error_lines(caplog)[1].startswith(f"{cfg_path}: invalid YAML: line ")

    def test_empty_file_is_refused(self, holder: ConfigHolder, cfg_path: Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
        """An empty file (a truncated in-place write) does not replace a live config."""
        cfg_path.write_text("\n")
        assert holder.reload("test") is False
        assert models(holder.current) == {"mock-1"}
        assert "file is empty" in error_lines(caplog)[1]

    def test_missing_file_keeps_old_config(self, holder: ConfigHolder, cfg_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
        """A deleted file is a failed reload naming the file."""
        cfg_path.unlink()
        assert holder.reload("test") is False
        assert holder.reloads_failed == 1
        assert error_lines(caplog)[1] == f"{cfg_path}: cannot read {cfg_path}: " \
                                         "No such file or directory"

    def test_from_file_raises_on_invalid(self, cfg_path: Path) -> None:
        """Building a holder from an invalid file raises ConfigError with the YAML paths."""
        cfg_path.write_text(INVALID)
        with pytest.raises(ConfigError) as info:
            ConfigHolder.from_file(str(cfg_path))
        assert [p for p, _ in info.value.problems] == ["channels[0].type", "tokens[0]"]


class TestRestartOnlySettings:
    def test_listen_change_warns_and_keeps_running_value(
            self, holder: ConfigHolder, cfg_path: Path,
            caplog: pytest.LogCaptureFixture) -> None:
        """A new port is logged as needing a restart; the rest of the file is applied."""
        cfg_path.write_text(config_text("mock-2", port=9999))
        assert holder.reload("test") is True
        assert holder.current.listen == Listen(host="127.0.0.1", port=8080)
        assert models(holder.current) == {"mock-2"}
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == ["listen changed: restart to apply "
                            "(still using Listen(host='127.0.0.1', port=8080, keepalive=75.0))"]

    def test_database_change_warns_and_keeps_running_value(
            self, holder: ConfigHolder, cfg_path: Path,
            caplog: pytest.LogCaptureFixture) -> None:
        """A new database path is logged as needing a restart and not applied."""
        cfg_path.write_text(config_text(db="/elsewhere.sqlite"))
        assert holder.reload("test") is True
        assert holder.current.database == Database(path="./cr.sqlite")
        assert any(m.startswith("database changed: restart to apply") for m in caplog.messages)


# -- watched_paths ------------------------------------------------------------------------------


class TestWatchedPaths:
    def test_plain_file(self, cfg_path: Path) -> None:
        """A plain file: its directory, and only its own path matters."""
        dirs, names = watched_paths(str(cfg_path))
        assert dirs == {str(cfg_path.parent)}
        assert names == {str(cfg_path)}

    def test_symlink_to_other_directory(self, tmp_path: Path) -> None:
        """A symlinked file: both directories, the link and its target."""
        (tmp_path / "srv").mkdir()
        (tmp_path / "etc").mkdir()
        (tmp_path / "srv" / "config.yaml").write_text(config_text())
        (tmp_path / "etc" / "config.yaml").symlink_to(tmp_path / "srv" / "config.yaml")
        dirs, names = watched_paths(str(tmp_path / "etc" / "config.yaml"))
        assert dirs == {str(tmp_path / "etc"), str(tmp_path / "srv")}
        assert names == {str(tmp_path / "etc" / "config.yaml"),
                         str(tmp_path / "srv" / "config.yaml")}

    def test_kubernetes_data_link(self, tmp_path: Path) -> None:
        """A ConfigMap layout: the ..data link is a path that matters."""
        k8s_layout(tmp_path, "..2024_a", config_text())
        dirs, names = watched_paths(str(tmp_path / "config.yaml"))
        assert dirs == {str(tmp_path), str(tmp_path / "..2024_a")}
        assert {str(tmp_path / "..data"), str(tmp_path / "..2024_a" / "config.yaml")} <= names
        assert str(tmp_path / "..2024_a") not in names

    def test_relative_path(self, cfg_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A relative path is watched as the absolute path it names."""
        monkeypatch.chdir(cfg_path.parent)
        assert watched_paths("config.yaml") == watched_paths(str(cfg_path))


def k8s_layout(root: Path, version: str, text: str) -> None:
    """Lay out (or atomically update) a Kubernetes ConfigMap volume under *root*."""
    (root / version).mkdir()
    (root / version / "config.yaml").write_text(text)
    (root / "..data_tmp").symlink_to(version)
    os.replace(root / "..data_tmp", root / "..data")
    if not (root / "config.yaml").is_symlink():
        (root / "config.yaml").symlink_to("..data/config.yaml")


# -- watch_config -------------------------------------------------------------------------------


class TestWatchEditorSaves:
    async def test_in_place_rewrite(self, holder: ConfigHolder, cfg_path: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
        """Rewriting the file in place reloads it once."""
        async with watching(holder, caplog):
            cfg_path.write_text(config_text("mock-2"))
            await until(lambda: holder.reloads_ok == 1, "the reload")
            await barrier(holder, caplog)
        assert models(holder.current) == {"mock-2"}
        assert (holder.reloads_ok, holder.reloads_failed) == (1, 0)

    async def test_save_by_rename(self, holder: ConfigHolder, cfg_path: Path,
                                  caplog: pytest.LogCaptureFixture) -> None:
        """A temporary file renamed over the config (vim, sed -i, atomic save) reloads once."""
        async with watching(holder, caplog):
            write_atomic(cfg_path, config_text("mock-2"))
            await until(lambda: holder.reloads_ok == 1, "the reload")
            await barrier(holder, caplog)
        assert models(holder.current) == {"mock-2"}
        assert (holder.reloads_ok, holder.reloads_failed) == (1, 0)

    @pytest.mark.skipif(shutil.which("sed") is None, reason="sed is not installed")
    async def test_sed_in_place(self, holder: ConfigHolder, cfg_path: Path,
                                caplog: pytest.LogCaptureFixture) -> None:
        """`sed -i` (temporary file renamed over the config) reloads once."""
        async with watching(holder, caplog):
            proc = await asyncio.create_subprocess_exec(
                "sed", "-i", "s/mock-1/mock-2/", str(cfg_path))
            assert await proc.wait() == 0
            await until(lambda: holder.reloads_ok == 1, "the reload")
            await barrier(holder, caplog)
        assert models(holder.current) == {"mock-2"}
        assert holder.reloads_ok == 1

    @pytest.mark.skipif(shutil.which("vim") is None, reason="vim is not installed")
    @pytest.mark.parametrize("backupcopy", ["yes", "no"])
    async def test_vim_save(self, holder: ConfigHolder, cfg_path: Path, backupcopy: str,
                            caplog: pytest.LogCaptureFixture) -> None:
        """vim saving in place (backupcopy=yes) or by rename (backupcopy=no) reloads once."""
        inode = cfg_path.stat().st_ino
        async with watching(holder, caplog):
            proc = await asyncio.create_subprocess_exec(
                "vim", "-u", "NONE", "-i", "NONE", "-n", "-Es",
                "-c", f"set backupskip= backup backupcopy={backupcopy}",
                "-c", "%s/mock-1/mock-2/",
                "-c", "wq", str(cfg_path), stdin=asyncio.subprocess.DEVNULL)
            assert await proc.wait() == 0
            await until(lambda: holder.reloads_ok == 1, "the reload")
            await barrier(holder, caplog)
        assert models(holder.current) == {"mock-2"}
        assert holder.reloads_ok == 1
        assert cfg_path.with_name("config.yaml~").read_text() == config_text()
        assert (cfg_path.stat().st_ino != inode) == (backupcopy == "no")

    async def test_other_files_do_not_reload(self, holder: ConfigHolder, cfg_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
        """A change to another file in the directory is filtered out without reading the config."""
        caplog.set_level(logging.DEBUG, logger="watchfiles.main")
        reads: list[str] = []
        real_reload = holder.reload

        def spy(reason: str) -> bool:
            reads.append(reason)
            return real_reload(reason)

        def filtered_out() -> bool:
            return any(r.name == "watchfiles.main" and "filtered out" in r.getMessage()
                       and "other.yaml" in r.getMessage() for r in caplog.records)

        async with watching(holder, caplog):
            await barrier(holder, caplog)  # let pending barrier rewrites drain first
            holder.reload = spy  # type: ignore[method-assign]
            (cfg_path.parent / "other.yaml").write_text(INVALID)
            await until(filtered_out, "the watcher to see and drop other.yaml")
        assert reads == []
        assert holder.reloads_failed == 0

    async def test_invalid_then_fixed(self, holder: ConfigHolder, cfg_path: Path,
                                      caplog: pytest.LogCaptureFixture) -> None:
        """A broken save keeps the old config and logs YAML paths; the fix is then applied."""
        async with watching(holder, caplog):
            cfg_path.write_text(INVALID)
            await until(lambda: holder.reloads_failed == 1, "the failed reload")
            assert models(holder.current) == {"mock-1"}
            assert any(line.startswith("channels[0].type (line 1): ")
                       for line in error_lines(caplog))
            write_atomic(cfg_path, config_text("mock-3"))
            await until(lambda: holder.reloads_ok == 1, "the fixed reload")
        assert models(holder.current) == {"mock-3"}
        assert (holder.reloads_ok, holder.reloads_failed) == (1, 1)

    async def test_stops_when_asked(self, holder: ConfigHolder) -> None:
        """Setting the stop event ends the watcher."""
        stop = asyncio.Event()
        task = asyncio.create_task(watch_config(holder, stop))
        await asyncio.sleep(0)
        stop.set()
        await asyncio.wait_for(task, TIMEOUT)
        assert task.exception() is None


class TestWatchSymlinks:
    @pytest.fixture
    def linked(self, tmp_path: Path) -> tuple[ConfigHolder, Path]:
        """etc/config.yaml -> srv/config.yaml; returns the holder and the target."""
        (tmp_path / "srv").mkdir()
        (tmp_path / "etc").mkdir()
        target = tmp_path / "srv" / "config.yaml"
        target.write_text(config_text())
        (tmp_path / "etc" / "config.yaml").symlink_to(target)
        return ConfigHolder.from_file(str(tmp_path / "etc" / "config.yaml")), target

    async def test_target_replaced_by_rename(self, linked: tuple[ConfigHolder, Path],
                                             caplog: pytest.LogCaptureFixture) -> None:
        """Replacing the symlink's target in its own directory reloads once."""
        holder, target = linked
        async with watching(holder, caplog):
            write_atomic(target, config_text("mock-2"))
            await until(lambda: holder.reloads_ok == 1, "the reload")
            await barrier(holder, caplog)
        assert models(holder.current) == {"mock-2"}
        assert holder.reloads_ok == 1

    async def test_target_edited_in_place(self, linked: tuple[ConfigHolder, Path],
                                          caplog: pytest.LogCaptureFixture) -> None:
        """Rewriting the symlink's target in place reloads."""
        holder, target = linked
        async with watching(holder, caplog):
            target.write_text(config_text("mock-2"))
            await until(lambda: holder.reloads_ok == 1, "the reload")
        assert models(holder.current) == {"mock-2"}

    async def test_link_repointed_then_new_target_edited(
            self, linked: tuple[ConfigHolder, Path], tmp_path: Path,
            caplog: pytest.LogCaptureFixture) -> None:
        """Pointing the link into another directory reloads, and that directory is watched."""
        holder, _ = linked
        (tmp_path / "srv2").mkdir()
        new_target = tmp_path / "srv2" / "config.yaml"
        new_target.write_text(config_text("mock-2"))
        async with watching(holder, caplog):
            tmp_link = tmp_path / "etc" / ".config.yaml.new"
            tmp_link.symlink_to(new_target)
            os.replace(tmp_link, holder.path)
            await until(lambda: holder.reloads_ok == 1, "the repointed reload")
            await barrier(holder, caplog)
            write_atomic(new_target, config_text("mock-3"))
            await until(lambda: holder.reloads_ok == 2, "the new target's reload")
        assert models(holder.current) == {"mock-3"}

    async def test_kubernetes_data_swap(self, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
        """A ConfigMap update (new dir, ..data link swapped, old dir removed) reloads once each."""
        k8s_layout(tmp_path, "..2024_a", config_text())
        holder = ConfigHolder.from_file(str(tmp_path / "config.yaml"))
        async with watching(holder, caplog):
            k8s_layout(tmp_path, "..2024_b", config_text("mock-2"))
            shutil.rmtree(tmp_path / "..2024_a")
            await until(lambda: holder.reloads_ok == 1, "the first swap")
            await barrier(holder, caplog)
            assert models(holder.current) == {"mock-2"}
            k8s_layout(tmp_path, "..2024_c", config_text("mock-3"))
            shutil.rmtree(tmp_path / "..2024_b")
            await until(lambda: holder.reloads_ok == 2, "the second swap")
            await barrier(holder, caplog)
        assert models(holder.current) == {"mock-3"}
        assert (holder.reloads_ok, holder.reloads_failed) == (2, 0)


# -- SIGHUP -------------------------------------------------------------------------------------


class TestSighup:
    async def test_sighup_reloads(self, holder: ConfigHolder, cfg_path: Path,
                                  caplog: pytest.LogCaptureFixture) -> None:
        """SIGHUP to our own process reloads the file, with SIGHUP as the logged reason."""
        caplog.set_level(logging.INFO, logger=LOGGER)
        loop = asyncio.get_running_loop()
        install_sighup(loop, holder)
        try:
            cfg_path.write_text(config_text("mock-2"))
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: holder.reloads_ok == 1, "the SIGHUP reload")
        finally:
            loop.remove_signal_handler(signal.SIGHUP)
        assert models(holder.current) == {"mock-2"}
        assert any(m.startswith("config reloaded (SIGHUP): ") for m in caplog.messages)

    async def test_sighup_with_invalid_file_keeps_config(
            self, holder: ConfigHolder, cfg_path: Path,
            caplog: pytest.LogCaptureFixture) -> None:
        """SIGHUP with a broken file logs the problems and keeps serving the old config."""
        loop = asyncio.get_running_loop()
        install_sighup(loop, holder)
        try:
            cfg_path.write_text(INVALID)
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: holder.reloads_failed == 1, "the failed SIGHUP reload")
        finally:
            loop.remove_signal_handler(signal.SIGHUP)
        assert models(holder.current) == {"mock-1"}
        assert error_lines(caplog)[0].startswith("config reload failed (SIGHUP): 2 problems")
