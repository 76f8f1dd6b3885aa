"""The run lock, contended by a real second process."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from listing_sync.errors import SyncLockedError
from listing_sync.resilience.lock import RunLock

REPO = Path(__file__).resolve().parents[1]

# Holds the lock until a line arrives on stdin, then releases it and exits.
CHILD = """
import sys
from pathlib import Path
from listing_sync.resilience.lock import RunLock

lock = RunLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
sys.stdin.readline()
lock.release()
"""


class Holder:
    """A child process holding the run lock."""

    def __init__(self, path: Path) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line != "locked\n":
            raise RuntimeError(f"child did not take the lock (exit {self.proc.poll()})")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        """Tell the child to release the lock and wait until it has exited."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "listing-sync.lock"


@pytest.fixture
def holder(lock_path: Path) -> Iterator[Holder]:
    h = Holder(lock_path)
    try:
        yield h
    finally:
        h.stop()


class FakeTime:
    """A monotonic clock moved only by sleep; sleeps are recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def locked_message(path: Path, pid: int) -> str:
    return (
        f"another listing-sync run holds the lock {path} (pid {pid}); "
        "try again later or pass --wait SECONDS"
    )


@pytest.mark.parametrize("wait", [None, 0, 0.0])
def test_busy_lock_fails_at_once(lock_path: Path, holder: Holder, wait: float | None) -> None:
    """Refuse at once, naming the holder's pid, when another process holds the lock."""
    lock = RunLock(lock_path)
    with pytest.raises(SyncLockedError) as info:
        lock.acquire(wait, sleep=pytest.fail)
    expected = (locked_message(lock_path, holder.pid), False, 75)
    assert expected == (str(info.value), lock.held, info.value.exit_code)


def test_wait_acquires_after_holder_releases(lock_path: Path, holder: Holder) -> None:
    """Poll until the other process releases, then take the lock and record our pid."""
    t = FakeTime()

    def sleep(seconds: float) -> None:
        t.sleep(seconds)
        if len(t.sleeps) == 2:
            holder.release()

    lock = RunLock(lock_path)
    lock.acquire(wait=5.0, clock=t.clock, sleep=sleep, poll=0.5)
    try:
        expected = ([0.5, 0.5], True, f"{os.getpid()}\n", 0)
        assert expected == (t.sleeps, lock.held, lock_path.read_text(), holder.proc.returncode)
    finally:
        lock.release()


def test_wait_gives_up_at_the_deadline(lock_path: Path, holder: Holder) -> None:
    """Poll every `poll` seconds, never past the deadline, then refuse."""
    t = FakeTime()
    with pytest.raises(SyncLockedError) as info:
        RunLock(lock_path).acquire(wait=1.0, clock=t.clock, sleep=t.sleep, poll=0.3)
    # They passed --wait already: the message must not tell them to pass it.
    message = (
        f"another listing-sync run still holds the lock {lock_path} (pid {holder.pid}) "
        "after waiting 1s; try again later or wait longer"
    )
    expected = ([0.3, 0.3, 0.3, 0.1], message)
    assert expected == (pytest.approx(t.sleeps), str(info.value))


def test_lock_is_freed_when_holder_dies(lock_path: Path, holder: Holder) -> None:
    """Take the lock once the holder is killed: the kernel drops it, no stale lock."""
    holder.stop()
    with RunLock(lock_path) as lock:
        assert lock.held


def test_second_lock_in_same_process_is_refused(lock_path: Path) -> None:
    """Refuse a second RunLock on the same file even within one process."""
    with RunLock(lock_path), pytest.raises(SyncLockedError) as info:
        RunLock(lock_path).acquire()
    expected = locked_message(lock_path, os.getpid())
    assert expected == str(info.value)


def test_lock_file_is_kept_with_safe_modes(lock_path: Path) -> None:
    """Create the directory 0700 and the file 0600, and keep the file after release."""
    with RunLock(lock_path):
        pass
    modes = (stat.S_IMODE(lock_path.parent.stat().st_mode), stat.S_IMODE(lock_path.stat().st_mode))
    expected = ((0o700, 0o600), True, "")
    assert expected == (modes, lock_path.exists(), lock_path.read_text())


def test_release_is_idempotent_and_relock_works(lock_path: Path) -> None:
    """Allow release when not held and acquiring again afterwards."""
    lock = RunLock(lock_path)
    lock.release()
    lock.acquire()
    lock.release()
    lock.release()
    lock.acquire()
    try:
        assert lock.held
    finally:
        lock.release()


def test_acquire_twice_on_one_object_is_a_bug(lock_path: Path) -> None:
    """Refuse to acquire a lock this object already holds."""
    lock = RunLock(lock_path)
    lock.acquire()
    try:
        with pytest.raises(RuntimeError):
            lock.acquire()
    finally:
        lock.release()


def test_context_manager_reuses_an_acquired_lock(lock_path: Path) -> None:
    """Enter a lock taken with acquire(wait=...) without locking twice."""
    lock = RunLock(lock_path)
    lock.acquire(wait=1.0, sleep=pytest.fail)
    with lock:
        assert lock.held
    assert not lock.held
