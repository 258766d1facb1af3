"""Server-sent events framing, the one home of it: where an event ends, its name and its data.
Pure. `sse.StreamMeter` cuts an upstream stream into whole events with it; the codecs read
each event's name and data with it.
"""

from __future__ import annotations

from collections.abc import Iterator


def last_boundary(buf: bytes | bytearray, start: int) -> int:
    """Index just past the last blank line at or after *start* (the end of the last complete
    event), or 0."""
    lf = buf.rfind(b"\n\n", start)
    crlf = buf.rfind(b"\r\n\r\n", start)
    return max(lf + 2 if lf != -1 else 0, crlf + 4 if crlf != -1 else 0)


def split_events(block: bytes) -> list[bytes]:
    """Split complete events, each keeping its terminating blank line."""
    sep = b"\r\n\r\n" if b"\r\n\r\n" in block else b"\n\n"
    parts = block.split(sep)
    events = [part + sep for part in parts[:-1]]
    if parts[-1]:
        events.append(parts[-1])
    return events


def _fields(event: bytes) -> tuple[str, list[bytes]]:
    """(``event:`` name or "", ``data:`` lines) of one event."""
    name, data = "", []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    return name, data


def data_of(event: bytes) -> bytes:
    """The joined ``data:`` lines of one event."""
    return b"\n".join(_fields(event)[1])


def events(block: bytes) -> Iterator[tuple[str, bytes]]:
    """Yield (event name, joined data) of each event in *block*; the name is "" when absent.

    *block* holds whole events (a last one may lack its blank line); comments and events
    without data are skipped.
    """
    for event in block.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = _fields(event)
        if data:
            yield name, b"\n".join(data)
