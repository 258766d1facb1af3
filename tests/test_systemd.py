"""sd_notify: datagrams to $NOTIFY_SOCKET, path and abstract sockets, no-op without systemd."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from coderouter import systemd


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket bound in tmp_path and named by $NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def received(sock: socket.socket) -> str:
    """The next datagram, decoded."""
    return sock.recv(4096).decode()


class TestWithoutSystemd:
    def test_unset_is_a_no_op(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without $NOTIFY_SOCKET every helper returns False."""
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
        assert [systemd.notify("READY=1"), systemd.ready(), systemd.reloading(),
                systemd.stopping(), systemd.status("x")] == [False] * 5

    @pytest.mark.parametrize("value", ["", "relative.sock", "@", "vsock:2:1234"])
    def test_unsupported_address_is_a_no_op(self, value: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
        """An empty, relative, bare-@ or non-unix address sends nothing and returns False."""
        monkeypatch.setenv("NOTIFY_SOCKET", value)
        assert systemd.notify("READY=1") is False

    def test_nobody_listening_returns_false(self, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
        """A socket path with no listener fails quietly."""
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
        assert systemd.notify("READY=1") is False


class TestPathSocket:
    def test_notify_sends_state_verbatim(self, receiver: socket.socket) -> None:
        """notify() sends exactly one datagram holding the state."""
        assert systemd.notify("READY=1\nSTATUS=hi") is True
        assert received(receiver) == "READY=1\nSTATUS=hi"

    def test_ready(self, receiver: socket.socket) -> None:
        """ready() sends READY=1."""
        assert systemd.ready() is True
        assert received(receiver) == "READY=1"

    def test_ready_with_status(self, receiver: socket.socket) -> None:
        """ready(text) adds a STATUS line."""
        assert systemd.ready("serving on 127.0.0.1:8080") is True
        assert received(receiver) == "READY=1\nSTATUS=serving on 127.0.0.1:8080"

    def test_reloading_carries_monotonic_usec(self, receiver: socket.socket) -> None:
        """reloading() sends RELOADING=1 and the CLOCK_MONOTONIC time in microseconds."""
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert systemd.reloading() is True
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        first, second = received(receiver).split("\n")
        assert first == "RELOADING=1"
        key, usec = second.split("=")
        assert key == "MONOTONIC_USEC"
        assert before <= int(usec) <= after

    def test_stopping(self, receiver: socket.socket) -> None:
        """stopping() sends STOPPING=1."""
        assert systemd.stopping() is True
        assert received(receiver) == "STOPPING=1"

    def test_status_is_one_line(self, receiver: socket.socket) -> None:
        """status() flattens newlines so the text cannot inject another assignment."""
        assert systemd.status("draining\nREADY=1") is True
        assert received(receiver) == "STATUS=draining READY=1"


class TestAbstractSocket:
    def test_at_prefix_means_abstract_namespace(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """'@name' sends to the abstract socket named by a leading NUL byte."""
        name = f"coderouter-test-{uuid.uuid4().hex}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(b"\0" + name.encode())
            sock.settimeout(5)
            monkeypatch.setenv("NOTIFY_SOCKET", f"@{name}")
            assert systemd.ready() is True
            assert received(sock) == "READY=1"
