"""One executor per journal: an advisory lock file beside it, holding the holder's pid.

flock, not the file's existence: the kernel releases the lock when its holder dies (even by kill -9), so a
crash never leaves a stale lock to clean up, and a second executor on the same files is refused at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from marketboss.errors import MarketBossError


class LockedError(MarketBossError):
    """Another executor holds the journal."""


class RunLock:
    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(
                f"{self.path}: another executor (pid {holder}) is running on these files; "
                "wait for it to finish (or stop it) before starting another"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock; the empty file stays (unlinking it would race)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def lock_path(trades_output: Path) -> Path:
    return trades_output.with_name(trades_output.stem + ".lock")
