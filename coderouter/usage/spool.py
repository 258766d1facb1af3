"""Usage rows parked on local disk while the database is down, until they are written.

Each process appends to its own file (one JSON array per line, fsynced per append) and holds
an exclusive `flock` on it while it lives. To write the rows back, a file is locked for
draining, read in batches, and after each batch the database committed, the byte offset
reached is saved beside it; the file is deleted once done. A file whose process died
(unlocked) is drained by any process using the same directory, from its saved offset, so a
row is never lost and, barring a crash between a commit and its offset save, never doubled.
Blocking I/O: call it from a thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import orjson

_SUFFIX = ".rows"


class Spool:
    """This process's spool file in *directory*, and the draining of every unlocked one."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self._file: BinaryIO | None = None
        #: Rows this process appended and has not drained yet.
        self.rows = 0

    def append(self, rows: Sequence[Sequence[Any]]) -> None:
        """Add *rows* to this process's file, durably."""
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"usage-{os.getpid()}-{uuid.uuid4().hex[:8]}{_SUFFIX}"
            file = path.open("ab")
            fcntl.flock(file, fcntl.LOCK_EX)
            self._file = file
        self._file.write(b"".join(orjson.dumps(list(row)) + b"\n" for row in rows))
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows += len(rows)

    def waiting(self) -> bool:
        """Whether any spool file may hold rows (this process's or another's)."""
        return self._file is not None or (
            self.directory.is_dir() and any(self.directory.glob(f"*{_SUFFIX}")))

    def release(self) -> None:
        """Close this process's file, leaving it for `drain` (by this or any process)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def drain(self, batch: int) -> Generator[tuple[list[tuple[Any, ...]], Any], None, None]:
        """Yield ``(rows, commit)`` from every unlocked file; call ``commit()`` once written.

        This process's own file is released first, so new rows go to a new file.
        """
        self.release()
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            with contextlib.ExitStack() as stack:
                try:
                    file = stack.enter_context(path.open("rb"))
                except FileNotFoundError:
                    continue  # drained by another process meanwhile
                try:
                    fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process's file, or one being drained
                if not path.exists():
                    continue
                yield from self._drain_file(path, file, batch)

    def _drain_file(self, path: Path, file: BinaryIO,
                    batch: int) -> Iterator[tuple[list[tuple[Any, ...]], Any]]:
        offset_path = path.with_suffix(".offset")
        with contextlib.suppress(FileNotFoundError, ValueError):
            file.seek(int(offset_path.read_text()))
        while True:
            rows = []
            for line in file:
                if line.endswith(b"\n"):  # a torn last line (crash mid-append) is skipped
                    rows.append(tuple(orjson.loads(line)))
                if len(rows) >= batch:
                    break
            if not rows:
                break
            end = file.tell()

            def commit(end: int = end, count: int = len(rows)) -> None:
                tmp = offset_path.with_suffix(".tmp")
                tmp.write_text(str(end))
                os.replace(tmp, offset_path)
                self.rows = max(0, self.rows - count)

            yield rows, commit
        path.unlink(missing_ok=True)
        offset_path.unlink(missing_ok=True)
