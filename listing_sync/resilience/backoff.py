"""Retry with truncated exponential backoff and full jitter, honouring Retry-After.

The delay decisions are pure functions; ``retry_with_backoff`` is the only loop.
``sleep``, ``clock`` and ``rand`` are parameters so tests can record the schedule
instead of waiting it out.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import TypeVar

from listing_sync.errors import (
    CircuitOpenError,
    RemoteError,
    TransientError,
    UnavailableError,
    is_quota,
)

T = TypeVar("T")


def backoff_ceiling(attempt: int, base: float, cap: float) -> float:
    """Return the largest delay after failed attempt number ``attempt`` (1-based)."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    try:
        raw = base * 2.0 ** (attempt - 1)
    except OverflowError:  # absurd attempt numbers: the cap wins anyway
        return cap
    return min(cap, raw)


def full_jitter_delay(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Return a delay drawn uniformly from [0, ceiling) using ``rand`` in [0, 1)."""
    return rand() * backoff_ceiling(attempt, base, cap)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Turn a Retry-After header into seconds from ``now``; None if absent or unusable.

    Accepts delta-seconds or an HTTP-date; a date in the past means "now" (0.0).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        # Lenient about "1.5": some proxies send fractional seconds.
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry one remote call.

    ``attempts`` counts every call including the first; ``base``, ``cap`` and
    ``retry_after_cap`` are seconds. A quota error (Google's 429, which carries no
    Retry-After and clears when the per-minute window resets) is retried until
    ``quota_window`` seconds after the first one, whatever ``attempts`` says.
    """

    attempts: int = 3
    base: float = 1.0
    cap: float = 16.0
    retry_after_cap: float = 60.0
    quota_window: float = 70.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.base < 0 or self.cap < 0 or self.retry_after_cap < 0 or self.quota_window < 0:
            raise ValueError("base, cap and retry_after_cap must be >= 0")


def _wait_for(
    exc: TransientError, attempt: int, policy: RetryPolicy, rand: Callable[[], float]
) -> tuple[float, str]:
    """Return (seconds to wait, why) before the attempt after ``attempt``."""
    if exc.retry_after is not None:
        return min(max(0.0, exc.retry_after), policy.retry_after_cap), "Retry-After"
    return full_jitter_delay(attempt, policy.base, policy.cap, rand), "backoff"


def retry_with_backoff(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    rand: Callable[[], float] = random.random,
    deadline: float | None = None,
    on_retry: Callable[[TransientError, int, float], None] | None = None,
) -> T:
    """Call ``fn``, retrying transient failures; raise UnavailableError when out of tries.

    ``deadline`` is an absolute ``clock()`` time: a wait that would end after it is
    not started. ``on_retry(exc, failed_attempt, wait)`` runs before each sleep.
    PermanentError, CircuitOpenError (the breaker already said "not now") and
    anything that is not a RemoteError propagate at once.
    """
    attempt = 1
    first_quota: float | None = None  # when the first quota error of this call came
    while True:
        try:
            return fn()
        except RemoteError as exc:
            if not isinstance(exc, TransientError) or isinstance(exc, CircuitOpenError):
                raise
            waiting_out_quota = False
            if is_quota(exc):
                now = clock()
                first_quota = now if first_quota is None else first_quota
                waiting_out_quota = now - first_quota < policy.quota_window
            if attempt >= policy.attempts and not waiting_out_quota:
                raise UnavailableError(
                    f"{exc.dependency} unavailable after {attempt} attempts: {exc.message}",
                    dependency=exc.dependency,
                    status=exc.status,
                    code=exc.code,
                ) from exc
            wait, why = _wait_for(exc, attempt, policy, rand)
            if deadline is not None:
                now = clock()
                if now + wait > deadline:
                    left = max(0.0, deadline - now)
                    raise UnavailableError(
                        f"{exc.dependency} unavailable: the {why} wait of {wait:.1f}s before "
                        f"attempt {attempt + 1} would exceed the run's remaining budget "
                        f"({left:.1f}s left): {exc.message}",
                        dependency=exc.dependency,
                        status=exc.status,
                        code=exc.code,
                    ) from exc
            if on_retry is not None:
                on_retry(exc, attempt, wait)
            sleep(wait)
            attempt += 1
