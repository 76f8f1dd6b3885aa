"""Blocking rate limits: a token bucket (PostgREST) and a sliding window (Sheets).

A bucket of ``capacity`` refilled at ``rate`` tokens/s admits at most
``capacity + rate * T`` requests in any window of ``T`` seconds; a sliding window
admits at most ``limit`` in any ``window`` seconds. Callers reserve their slot first
and sleep off the wait afterwards, so waiters queue in order and a fake clock that
never advances cannot make ``acquire`` spin.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

# Google Sheets API: 60 read requests per minute per user. No minute, however placed,
# may hold more than 60: a sheet of up to 60 requests (about 300,000 rows of 17 columns
# at ~2 MB a response) is read at once, and a larger one gets a slot whenever a request
# of its first minute leaves the window. The window has a second to spare: requests
# sent 60 s apart can reach Google closer together.
SHEETS_LIMIT = 60
SHEETS_WINDOW = 61.0


class Limiter(Protocol):
    """What a guard needs of a rate limit."""

    def acquire(self) -> float:
        """Wait for a slot; return the seconds waited."""
        ...


def _refill(tokens: float, capacity: float, rate: float, elapsed: float) -> float:
    """Return the token count after ``elapsed`` seconds of refilling, capped at capacity."""
    return min(capacity, tokens + rate * max(0.0, elapsed))


def _wait_needed(available: float, requested: float, rate: float) -> float:
    """Return the seconds until ``available`` tokens grow to ``requested`` at ``rate``/s."""
    if available >= requested:
        return 0.0
    return (requested - available) / rate


class TokenBucket:
    """Limit calls to ``rate`` per second with bursts up to ``capacity``.

    ``rate`` of None or <= 0 means unlimited. The bucket starts full.
    """

    def __init__(
        self,
        rate: float | None,
        capacity: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.unlimited = rate is None or rate <= 0
        self.rate = 0.0 if self.unlimited or rate is None else float(rate)
        self.capacity = float(capacity) if capacity is not None else max(1.0, self.rate)
        if not self.unlimited and self.capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity}")
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._last = clock()

    def acquire(self, tokens: float = 1) -> float:
        """Take ``tokens``, sleeping until they are available; return the seconds waited."""
        if self.unlimited:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = _refill(self._tokens, self.capacity, self.rate, now - self._last)
            self._last = max(self._last, now)
            wait = _wait_needed(self._tokens, tokens, self.rate)
            # Reserve now (the balance may go negative): later callers wait behind us.
            self._tokens -= tokens
        if wait > 0:
            self._sleep(wait)
        return wait


class SlidingWindow:
    """Admit at most ``limit`` calls in any window of ``window`` seconds.

    The call after ``limit`` others waits until the oldest of them has left the
    window: a burst of ``limit`` at once, then each slot as it frees. Like the bucket,
    a caller reserves its slot first and sleeps off the wait afterwards.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"need limit >= 1 and window > 0, got {limit} in {window}s")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # When each of the last ``limit`` calls was admitted (a reserved one may be in
        # the future), oldest first.
        self._admitted: deque[float] = deque()

    def acquire(self) -> float:
        """Take a slot, sleeping until one is free; return the seconds waited."""
        with self._lock:
            now = self._clock()
            at = now
            if len(self._admitted) == self.limit:
                at = max(now, self._admitted.popleft() + self.window)
            self._admitted.append(at)
        wait = at - now
        if wait > 0:
            self._sleep(wait)
        return wait


def sheets_limit(
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SlidingWindow:
    """Return the limit that keeps Sheets reads to 60 in any minute."""
    return SlidingWindow(SHEETS_LIMIT, SHEETS_WINDOW, clock=clock, sleep=sleep)


def postgrest_bucket(
    rate: float | None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> TokenBucket:
    """Return a bucket for SYNC_RATE_LIMIT requests/s (burst = rate, at least 1)."""
    return TokenBucket(rate, clock=clock, sleep=sleep)
