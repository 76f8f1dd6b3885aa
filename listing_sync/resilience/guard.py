"""The one retrying wrapper every remote call goes through.

One attempt = stop check, breaker admission, rate limit (then the stop check
again), the call, breaker bookkeeping. ``retry_with_backoff`` repeats attempts;
a refusal by the breaker ends the retries at once, because no call was made and
waiting here would only spend the run's budget.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from listing_sync.errors import (
    CircuitOpenError,
    PermanentError,
    SyncInterrupted,
    TransientError,
    is_quota,
)
from listing_sync.resilience.backoff import RetryPolicy, retry_with_backoff
from listing_sync.resilience.breaker import CircuitBreaker
from listing_sync.resilience.ratelimit import Limiter

T = TypeVar("T")


def _never() -> bool:
    return False


class Guard:
    """Call one dependency with interruption check, breaker, rate limit and retries.

    ``attempts`` counts attempts started (including ones refused before the call);
    ``calls_made`` counts calls that actually reached ``fn``; ``retries`` counts
    the backoff waits (a retry that recovered is only visible there and in debug logs).
    """

    def __init__(
        self,
        dependency: str,
        *,
        breaker: CircuitBreaker,
        limiter: Limiter | None,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        deadline: float | None = None,
        should_stop: Callable[[], bool] = _never,
        on_retry: Callable[[TransientError, int, float], None] | None = None,
    ) -> None:
        self.dependency = dependency
        self.breaker = breaker
        self.limiter = limiter
        self.policy = policy
        self.deadline = deadline
        self.attempts = 0
        self.calls_made = 0
        self.retries = 0
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self._should_stop = should_stop
        self._on_retry = on_retry

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the guard and return its result."""
        return retry_with_backoff(
            lambda: self._attempt(fn),
            policy=self.policy,
            sleep=self._sleep,
            clock=self._clock,
            rand=self._rand,
            deadline=self.deadline,
            on_retry=self._count_retry,
        )

    def _count_retry(self, exc: TransientError, attempt: int, wait: float) -> None:
        self.retries += 1
        if self._on_retry is not None:
            self._on_retry(exc, attempt, wait)

    def _attempt(self, fn: Callable[[], T]) -> T:
        self.attempts += 1
        if self._should_stop():
            raise SyncInterrupted("interrupted")
        self.breaker.before_call()
        if self.limiter is not None:
            self.limiter.acquire()
            # A stop during the wait for a token ends that wait: do not call after it.
            if self._should_stop():
                raise SyncInterrupted("interrupted")
        self.calls_made += 1
        try:
            result = fn()
        except CircuitOpenError:
            raise  # raised by a nested guard: this dependency was not reached
        except TransientError as exc:
            # Google's quota is not an outage: the dependency answered, and opening the
            # breaker would end the wait for the quota window (see RetryPolicy).
            if not is_quota(exc):
                self.breaker.record_failure()
            raise
        except PermanentError:
            # A 400 says nothing about the dependency's health (see on_permanent).
            self.breaker.record_permanent()
            raise
        self.breaker.record_success()
        return result
