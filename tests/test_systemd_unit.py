"""systemd/coderouter.service: hardened as documented, and accepted by systemd-analyze."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "coderouter.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not on PATH")


def directives(text: str) -> dict[str, list[str]]:
    """Every `Key=value` of the unit, values in order of appearance."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def local_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this venv's `coderouter` (or /bin/true)."""
    script = Path(sys.executable).parent / "coderouter"
    binary = str(script) if script.exists() else "/bin/true"
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={binary}", UNIT.read_text(), flags=re.M)
    copy = tmp_path / "coderouter.service"
    copy.write_text(text)
    return copy


class TestUnitSettings:
    @pytest.mark.parametrize(("key", "value"), [
        ("Type", "notify"), ("NotifyAccess", "main"),
        ("ExecStart", "/opt/coderouter/bin/coderouter serve"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Environment", "CODEROUTER_CONFIG=/etc/coderouter/config.yaml"),
        ("EnvironmentFile", "-/etc/coderouter/env"),
        ("DynamicUser", "yes"), ("StateDirectory", "coderouter"),
        ("ConfigurationDirectory", "coderouter"), ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"), ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""), ("AmbientCapabilities", ""),
        ("SystemCallArchitectures", "native"), ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"), ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"), ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"), ("LimitNOFILE", "65536"),
        ("Restart", "on-failure"), ("RestartSec", "2"), ("KillSignal", "SIGTERM"),
        ("TimeoutStopSec", "45"),
    ])
    def test_directive(self, key: str, value: str) -> None:
        """The unit sets each documented directive to its documented value."""
        assert value in directives(UNIT.read_text()).get(key, [])

    def test_stop_timeout_exceeds_default_grace(self) -> None:
        """systemd waits longer than the 30 s shutdown grace before SIGKILL."""
        from coderouter.config import Shutdown
        assert int(directives(UNIT.read_text())["TimeoutStopSec"][0]) > Shutdown().grace

    def test_comment_points_database_at_state_directory(self) -> None:
        """The unit documents the database path inside StateDirectory."""
        assert "database: {path: /var/lib/coderouter/coderouter.sqlite}" in UNIT.read_text()


@needs_analyze
class TestSystemdAnalyze:
    def test_verify_is_clean(self, tmp_path: Path) -> None:
        """`systemd-analyze verify` exits 0 and reports nothing about the unit."""
        copy = local_copy(tmp_path)
        result = subprocess.run([str(ANALYZE), "verify", str(copy)],
                                capture_output=True, text=True, timeout=60, check=False)
        about_unit = [line for line in result.stderr.splitlines() if copy.name in line]
        assert about_unit == []
        assert result.returncode == 0, result.stderr

    def test_security_exposure_is_low(self, tmp_path: Path) -> None:
        """`systemd-analyze security --offline` rates the unit's exposure at most 2.0 (OK)."""
        copy = local_copy(tmp_path)
        result = subprocess.run([str(ANALYZE), "security", "--offline=true", "--no-pager",
                                 str(copy)], capture_output=True, text=True, timeout=60,
                                check=False)
        if "--offline" in result.stderr and "unrecognized" in result.stderr:
            pytest.skip("this systemd-analyze has no --offline (needs systemd 250+)")
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
        assert match is not None, result.stdout + result.stderr
        assert float(match.group(1)) <= 2.0
