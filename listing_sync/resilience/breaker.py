"""A circuit breaker whose state lives in a store and is re-read on every decision.

Transitions are pure functions of (state, now); ``CircuitBreaker`` runs them inside
``BreakerStore.update`` so that several processes sharing a ``FileStore`` agree on
one state. Timestamps are wall-clock (``time.time()``) because they cross
processes; one in the future (clock stepped back) is clamped to now.

    closed --failures >= threshold--> open --timeout elapsed, one caller--> half_open
    half_open --success--> closed          half_open --failure--> open
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from listing_sync.errors import CircuitOpenError
from listing_sync.fsutil import atomic_write

R = TypeVar("R")
State = Literal["closed", "open", "half_open"]

FILE_VERSION = 1
_STATES: frozenset[str] = frozenset({"closed", "open", "half_open"})
# Names become file names: keep them to a safe alphabet.
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BreakerState:
    """One dependency's breaker: ``opened_at`` is when it opened or the trial started."""

    state: State = "closed"
    failures: int = 0
    opened_at: float | None = None


# --- pure transitions -------------------------------------------------------------


def clamp(s: BreakerState, now: float) -> BreakerState:
    """Pull an ``opened_at`` in the future back to ``now``."""
    if s.opened_at is not None and s.opened_at > now:
        return replace(s, opened_at=now)
    return s


def admit(s: BreakerState, now: float, timeout: float) -> tuple[BreakerState, bool, float | None]:
    """Decide whether a call may go ahead: return (new state, allowed, retry_at if refused)."""
    if s.state == "closed":
        return s, True, None
    # A missing opened_at cannot be waited out: treat the wait as over.
    retry_at = None if s.opened_at is None else s.opened_at + timeout
    if retry_at is not None and now < retry_at:
        # Open and cooling down, or half-open with a live trial elsewhere.
        return s, False, retry_at
    # Open and elapsed: this caller is the trial. Half-open with a trial older than
    # the timeout: that trial's process died, so this caller takes over.
    return BreakerState("half_open", s.failures, now), True, None


def on_success(s: BreakerState) -> BreakerState:
    """Close the breaker after a successful call."""
    return BreakerState()


def on_permanent(s: BreakerState) -> BreakerState:
    """Account for a permanent (4xx-style) failure.

    It neither trips nor resets a closed breaker's count: a bad request says
    nothing about the dependency's health. But a half-open trial that got an
    answer has shown the dependency is reachable, so it closes the breaker
    instead of leaving this run locked out until the trial times out.
    """
    return BreakerState() if s.state == "half_open" else s


def on_failure(s: BreakerState, now: float, threshold: int) -> BreakerState:
    """Count a transient failure; open the breaker when it is due."""
    failures = s.failures + 1
    if s.state == "half_open":
        return BreakerState("open", failures, now)
    if s.state == "open":
        # A call admitted before the breaker opened failed late: keep the original
        # opening time so the cool-down is not extended by stragglers.
        return replace(s, failures=failures)
    if failures >= threshold:
        return BreakerState("open", failures, now)
    return BreakerState("closed", failures, None)


# --- storage ----------------------------------------------------------------------


class BreakerStore(Protocol):
    """Where breaker states live; ``update`` is an atomic read-modify-write."""

    def load(self, name: str) -> BreakerState:
        """Return the current state of ``name`` (closed if never recorded)."""
        ...

    def update(self, name: str, fn: Callable[[BreakerState], tuple[BreakerState, R]]) -> R:
        """Apply ``fn`` to the current state atomically, store its new state, return its result."""
        ...

    def names(self) -> list[str]:
        """List the dependencies that have a stored state."""
        ...


class MemoryStore:
    """Keep breaker states in this process only."""

    def __init__(self) -> None:
        self._states: dict[str, BreakerState] = {}
        self._lock = threading.Lock()

    def load(self, name: str) -> BreakerState:
        """Return the current state of ``name``."""
        with self._lock:
            return self._states.get(name, BreakerState())

    def update(self, name: str, fn: Callable[[BreakerState], tuple[BreakerState, R]]) -> R:
        """Apply ``fn`` under the store's lock."""
        with self._lock:
            current = self._states.get(name, BreakerState())
            new, result = fn(current)
            if new != current:  # like FileStore: a name appears once something was recorded
                self._states[name] = new
            return result

    def names(self) -> list[str]:
        """List the dependencies seen so far."""
        with self._lock:
            return sorted(self._states)


def _encode(name: str, s: BreakerState, now: float) -> bytes:
    """Serialise one state file."""
    doc = {
        "version": FILE_VERSION,
        "name": name,
        "state": s.state,
        "consecutive_failures": s.failures,
        "opened_at": s.opened_at,
        "updated_at": now,
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _decode(name: str, data: bytes) -> BreakerState:
    """Parse one state file; raise ValueError saying what is wrong with it."""
    if not data.strip():
        raise ValueError("file is empty")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if doc.get("version") != FILE_VERSION:
        raise ValueError(f"unknown version {doc.get('version')!r} (expected {FILE_VERSION})")
    if doc.get("name", name) != name:
        raise ValueError(f"holds the state of {doc.get('name')!r}")
    state = doc.get("state")
    failures = doc.get("consecutive_failures")
    opened_at = doc.get("opened_at")
    if state not in _STATES:
        raise ValueError(f"bad state {state!r}")
    if not isinstance(failures, int) or isinstance(failures, bool) or failures < 0:
        raise ValueError(f"bad consecutive_failures {failures!r}")
    if opened_at is not None and not _is_number(opened_at):
        raise ValueError(f"bad opened_at {opened_at!r}")
    if state != "closed" and opened_at is None:
        raise ValueError(f"state {state!r} without opened_at")
    return BreakerState(state, failures, None if opened_at is None else float(opened_at))


def _default_warn(message: str) -> None:
    _log.warning("%s", message)


class FileStore:
    """Keep breaker states in ``breaker-<name>.json`` files shared by every run.

    Each update holds ``fcntl.flock`` on ``breaker-<name>.lock`` (never deleted) and
    replaces the JSON file atomically, so a crash leaves the old or the new state.
    """

    def __init__(
        self,
        directory: Path,
        *,
        warn: Callable[[str], None] = _default_warn,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self._warn = warn
        self._clock = clock

    def path(self, name: str) -> Path:
        """Return the state file of ``name``."""
        return self.directory / f"breaker-{_checked(name)}.json"

    def lock_path(self, name: str) -> Path:
        """Return the lock file of ``name``."""
        return self.directory / f"breaker-{_checked(name)}.lock"

    def load(self, name: str) -> BreakerState:
        """Read the state of ``name``; a missing or unusable file reads as closed."""
        state, _ = self._read(name)
        return state

    def update(self, name: str, fn: Callable[[BreakerState], tuple[BreakerState, R]]) -> R:
        """Apply ``fn`` under the file lock and write the result if it changed."""
        with self._locked(name):
            current, needs_write = self._read(name)
            new, result = fn(current)
            # Skip the fsyncs when nothing changed: a closed breaker sees a success
            # on every call.
            if needs_write or new != current:
                self._write(name, new)
            return result

    def names(self) -> list[str]:
        """List the dependencies that have a state file."""
        if not self.directory.is_dir():
            return []
        found = []
        for p in self.directory.glob("breaker-*.json"):
            name = p.name[len("breaker-") : -len(".json")]
            if _NAME_RE.fullmatch(name):
                found.append(name)
        return sorted(found)

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        self._ensure_directory()
        # A fresh open file description per update: flock then also serialises
        # threads of this process, not only other processes.
        fd = os.open(self.lock_path(name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _read(self, name: str) -> tuple[BreakerState, bool]:
        """Return (state, whether the file must be rewritten)."""
        path = self.path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return BreakerState(), False
        try:
            state = _decode(name, data)
        except ValueError as exc:
            self._warn(f"breaker state file {path} is unusable ({exc}); treating {name} as closed")
            return BreakerState(), True
        clamped = clamp(state, self._clock())
        return clamped, clamped != state

    def _write(self, name: str, s: BreakerState) -> None:
        atomic_write(self.path(name), _encode(name, s, self._clock()), mode=0o600)


def _checked(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"breaker name {name!r} must match {_NAME_RE.pattern}")
    return name


# --- the breaker ------------------------------------------------------------------


def _local_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


class CircuitBreaker:
    """Stop calling a dependency after ``threshold`` consecutive transient failures.

    Call ``record_failure`` only for transient failures (timeouts, 429, 5xx): a
    permanent error such as a 400 or 404 says nothing about the dependency's
    health, so it must neither trip nor reset the breaker.
    """

    def __init__(
        self,
        name: str,
        store: BreakerStore,
        threshold: int,
        timeout: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1, got {threshold}")
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0, got {timeout}")
        self.name = name
        self.store = store
        self.threshold = threshold
        self.timeout = timeout
        self._clock = clock

    def before_call(self) -> None:
        """Raise CircuitOpenError unless a call may go ahead now."""
        now = self._clock()

        def decide(s: BreakerState) -> tuple[BreakerState, tuple[BreakerState, bool, float | None]]:
            new, allowed, retry_at = admit(clamp(s, now), now, self.timeout)
            return new, (new, allowed, retry_at)

        s, allowed, retry_at = self.store.update(self.name, decide)
        if allowed:
            return
        assert retry_at is not None  # admit always says when a refused caller may retry
        what = "is open" if s.state == "open" else "is half-open (a trial call is in progress)"
        raise CircuitOpenError(
            f"circuit breaker for {self.name} {what} after {s.failures} consecutive failures; "
            f"next try at {_local_iso(retry_at)} (in {math.ceil(max(0.0, retry_at - now))}s); "
            f"once {self.name} is fixed: listing-sync breaker reset {self.name}",
            dependency=self.name,
            retry_at=retry_at,
        )

    def record_success(self) -> None:
        """Close the breaker: the dependency answered."""
        self.store.update(self.name, lambda s: (on_success(s), None))

    def record_permanent(self) -> None:
        """Account for a permanent failure (see ``on_permanent``)."""
        self.store.update(self.name, lambda s: (on_permanent(s), None))

    def record_failure(self) -> None:
        """Count one transient failure (never a permanent one)."""
        now = self._clock()

        def fail(s: BreakerState) -> tuple[BreakerState, bool]:
            before = clamp(s, now)
            after = on_failure(before, now, self.threshold)
            return after, before.state != "open" and after.state == "open"

        if self.store.update(self.name, fail):
            # A human should know: later runs fail fast until it closes or is reset.
            _log.warning(
                "the %s circuit breaker opened after %d failures in a row; calls are refused "
                "for %gs (or: listing-sync breaker reset %s)",
                self.name,
                self.store.load(self.name).failures,
                self.timeout,
                self.name,
            )

    def state(self) -> BreakerState:
        """Return the stored state, clamped; an elapsed open state is shown as open."""
        return clamp(self.store.load(self.name), self._clock())

    def reset(self) -> None:
        """Force the breaker closed."""
        self.store.update(self.name, lambda s: (BreakerState(), None))
