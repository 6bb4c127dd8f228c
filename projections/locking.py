"""One lock for the writing transactions of every server process on one SQLite ledger.

SQLite lets one transaction write at a time and makes the others wait in its busy handler,
which sleeps and polls (1, 2, 5, 10 ms and longer); with several server processes writing
hundreds of small transactions a second, those sleeps become most of a request's latency.
Holding an advisory lock on a file beside the database around each writing transaction (the
log's save and the views' update that follows it) makes the processes queue in the kernel
instead, which hands the lock to the next one the moment it is released. It also keeps the
views' updates in log order: whoever saves next finds the views right behind its own events.

The lock orders our own processes only; SQLite's locks still guard correctness against any
other writer (``pledger import``, another tool). On PostgreSQL, or where ``fcntl`` does not
exist, it is a plain in-process lock.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # not on Windows: the in-process lock alone
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriteLock"]


class WriteLock:
    """Re-entrant within a thread; exclusive across the threads and processes sharing ``path``."""

    def __init__(self, path: Path | None = None) -> None:
        self._threads = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        if path is not None and fcntl is not None:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def __enter__(self) -> None:
        self._threads.acquire()
        self._depth += 1
        if self._depth == 1 and self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._depth -= 1
                self._threads.release()
                raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
