"""A blocking token bucket, and the two buckets the product uses.

A bucket of ``capacity`` refilled at ``rate`` tokens/s admits at most
``capacity + rate * T`` requests in any window of ``T`` seconds. Callers reserve
tokens first and sleep off the debt afterwards, so waiters queue in order and a
fake clock that never advances cannot make ``acquire`` spin.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Google Sheets API: 60 read requests per minute per user. 30 + 0.5 * 60 == 60, so
# no 60-second window, however placed, can hold more than 60 requests; the burst of
# 30 lets a large sheet (about 25 chunked reads for 100,000 rows) be read at once.
SHEETS_RATE = 0.5
SHEETS_CAPACITY = 30.0


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


def sheets_bucket(
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> TokenBucket:
    """Return a bucket that keeps Sheets reads under 60 per minute in any window."""
    return TokenBucket(SHEETS_RATE, SHEETS_CAPACITY, clock=clock, sleep=sleep)


def postgrest_bucket(
    rate: float | None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> TokenBucket:
    """Return a bucket for SYNC_RATE_LIMIT requests/s (burst = rate, at least 1)."""
    return TokenBucket(rate, clock=clock, sleep=sleep)
