"""A dependency-free ``sd_notify``: tell systemd (Type=notify) that we are ready, reloading, ...

Every function is a no-op returning False when ``$NOTIFY_SOCKET`` is unset, so the gateway
calls them unconditionally. See sd_notify(3) for the protocol: one datagram of
newline-separated ``KEY=value`` assignments to an AF_UNIX socket.
"""

from __future__ import annotations

import logging
import os
import socket
import time

logger = logging.getLogger("coderouter.systemd")


def notify(state: str) -> bool:
    """Send *state* to ``$NOTIFY_SOCKET``; return True when the datagram was sent.

    A leading ``@`` names a socket in the abstract namespace. An unset or unsupported
    address, or a failed send, returns False (logged at debug): systemd is optional.
    """
    address = _address(os.environ.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        logger.debug("sd_notify to %r failed: %s", address, exc)
        return False
    return True


def _address(value: str) -> str | bytes | None:
    """Map ``$NOTIFY_SOCKET`` to a socket address: a path, or abstract bytes; else None."""
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def ready(status_text: str | None = None) -> bool:
    """Tell systemd start-up (or a reload) is complete, optionally with a status line."""
    return notify("READY=1" + (f"\nSTATUS={_one_line(status_text)}" if status_text else ""))


def reloading() -> bool:
    """Tell systemd a reload started; send `ready()` when it is done (Type=notify-reload)."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def stopping() -> bool:
    """Tell systemd the service is shutting down."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """Set the one-line status shown by ``systemctl status``."""
    return notify(f"STATUS={_one_line(text)}")


def _one_line(text: str) -> str:
    """Flatten *text* so it cannot start a new assignment in the datagram."""
    return " ".join(text.splitlines())
