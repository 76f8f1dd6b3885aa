"""The run lock: at most one listing-sync run at a time on this machine.

``fcntl.flock`` on a file that is never deleted (deleting it would let a second
run lock a new inode while the first still holds the old one). The kernel drops
the lock when the holder dies, so there is no stale-lock cleanup. The holder's
pid is written into the file only so the refusal message can name it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from listing_sync.errors import SyncLockedError


class RunLock:
    """Hold an exclusive lock on ``path`` for the length of one run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Say whether this object holds the lock."""
        return self._fd is not None

    def acquire(
        self,
        wait: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        poll: float = 0.1,
    ) -> None:
        """Take the lock, waiting up to ``wait`` seconds; raise SyncLockedError if busy."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = clock() + wait if wait else None
            while not _try_lock(fd):
                now = clock()
                if deadline is None:
                    raise SyncLockedError(
                        f"another listing-sync run holds the lock {self.path} "
                        f"(pid {_holder(fd)}); try again later or pass --wait SECONDS"
                    )
                if now >= deadline:
                    # They already passed --wait: telling them to pass it would be wrong.
                    raise SyncLockedError(
                        f"another listing-sync run still holds the lock {self.path} "
                        f"(pid {_holder(fd)}) after waiting {wait:g}s; try again later "
                        "or wait longer"
                    )
                sleep(min(poll, deadline - now))
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays); do nothing if not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # no stale pid for the next refusal message
        finally:
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> RunLock:
        # Lets callers write ``lock.acquire(wait=30)`` and then ``with lock:``.
        if not self.held:
            self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    """Try to flock ``fd`` without blocking; say whether it worked."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def _holder(fd: int) -> str:
    """Return the pid written by the lock holder, or "unknown"."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return "unknown"
    return text if text.isdigit() else "unknown"
