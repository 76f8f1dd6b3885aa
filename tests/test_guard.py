"""Guard: stop check, breaker, rate limit and retries around one call, with fakes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from listing_sync.errors import (
    CircuitOpenError,
    PermanentError,
    SyncInterrupted,
    TransientError,
    UnavailableError,
)
from listing_sync.resilience.backoff import RetryPolicy
from listing_sync.resilience.breaker import BreakerState, CircuitBreaker, MemoryStore
from listing_sync.resilience.guard import Guard
from listing_sync.resilience.ratelimit import TokenBucket

T0 = 1_700_000_000.0


class FakeTime:
    """One fake clock for breaker, limiter and backoff; sleeps are recorded."""

    def __init__(self) -> None:
        self.now = T0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def transient(retry_after: float | None = None) -> TransientError:
    return TransientError("503", dependency="postgrest", status=503, retry_after=retry_after)


def permanent() -> PermanentError:
    return PermanentError("400 bad row", dependency="postgrest", status=400, code="22P02")


class Script:
    """Raise the given exceptions in order, then return "ok"; count calls."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def make_guard(
    t: FakeTime,
    *,
    attempts: int = 3,
    threshold: int = 5,
    limiter: TokenBucket | None = None,
    deadline: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_retry: Callable[[TransientError, int, float], None] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Guard:
    breaker = CircuitBreaker("postgrest", MemoryStore(), threshold, 60.0, clock=t.clock)
    return Guard(
        "postgrest",
        breaker=breaker,
        limiter=limiter,
        policy=RetryPolicy(attempts=attempts),
        sleep=sleep or t.sleep,
        clock=t.clock,
        rand=lambda: 1.0,
        deadline=deadline,
        should_stop=should_stop,
        on_retry=on_retry,
    )


def counts(guard: Guard, fn: Script, t: FakeTime) -> tuple[int, int, int, list[float]]:
    return guard.attempts, guard.calls_made, fn.calls, t.sleeps


def test_first_success() -> None:
    """Call once, never sleep, leave the breaker closed."""
    t, fn = FakeTime(), Script()
    guard = make_guard(t)
    result = guard.call(fn)
    expected = ("ok", (1, 1, 1, []), BreakerState())
    assert expected == (result, counts(guard, fn, t), guard.breaker.state())


def test_transient_failures_are_retried_then_succeed() -> None:
    """Retry twice with 1 s and 2 s waits, report each retry, and close the breaker."""
    t, errors = FakeTime(), [transient(), transient()]
    fn = Script(*errors)
    events: list[tuple[TransientError, int, float]] = []
    guard = make_guard(t, on_retry=lambda e, n, w: events.append((e, n, w)))
    result = guard.call(fn)
    expected = (
        "ok",
        (3, 3, 3, [1.0, 2.0]),
        [(errors[0], 1, 1.0), (errors[1], 2, 2.0)],
        BreakerState(),
    )
    assert expected == (result, counts(guard, fn, t), events, guard.breaker.state())


def test_exhausted_retries_count_breaker_failures() -> None:
    """Give up after all attempts with UnavailableError, one breaker failure per call."""
    t = FakeTime()
    fn = Script(transient(), transient(), transient())
    guard = make_guard(t)
    with pytest.raises(UnavailableError):
        guard.call(fn)
    expected = ((3, 3, 3, [1.0, 2.0]), BreakerState("closed", 3))
    assert expected == (counts(guard, fn, t), guard.breaker.state())


def test_open_breaker_stops_retrying_at_once() -> None:
    """Stop on the attempt the breaker refuses, without calling or sleeping again."""
    t = FakeTime()
    fn = Script(*(transient() for _ in range(5)))
    guard = make_guard(t, attempts=5, threshold=2)
    with pytest.raises(CircuitOpenError):
        guard.call(fn)
    expected = ((3, 2, 2, [1.0, 2.0]), "open")
    assert expected == (counts(guard, fn, t), guard.breaker.state().state)


def test_open_breaker_refuses_without_calling() -> None:
    """Refuse the next call outright while the breaker is open."""
    t = FakeTime()
    guard = make_guard(t, attempts=1, threshold=1)
    with pytest.raises(UnavailableError):
        guard.call(Script(transient()))
    fn = Script()
    with pytest.raises(CircuitOpenError):
        guard.call(fn)
    expected = (2, 1, 0, [])
    assert expected == counts(guard, fn, t)


def test_permanent_error_is_not_retried_and_leaves_breaker_alone() -> None:
    """Raise a permanent error after one call with the breaker's count unchanged."""
    t = FakeTime()
    guard = make_guard(t, attempts=1)
    with pytest.raises(UnavailableError):
        guard.call(Script(transient()))
    fn = Script(permanent())
    with pytest.raises(PermanentError):
        guard.call(fn)
    expected = ((2, 2, 1, []), BreakerState("closed", 1))
    assert expected == (counts(guard, fn, t), guard.breaker.state())


def test_foreign_exception_propagates_untouched() -> None:
    """Let a bug in fn through at once without retry or breaker bookkeeping."""
    t = FakeTime()
    bug = KeyError("property_number")
    fn = Script(bug)
    guard = make_guard(t)
    with pytest.raises(KeyError) as info:
        guard.call(fn)
    expected = (bug, (1, 1, 1, []), BreakerState())
    assert expected == (info.value, counts(guard, fn, t), guard.breaker.state())


def test_stop_requested_before_first_call() -> None:
    """Raise SyncInterrupted without calling when a stop was requested."""
    t, fn = FakeTime(), Script()
    guard = make_guard(t, should_stop=lambda: True)
    with pytest.raises(SyncInterrupted):
        guard.call(fn)
    expected = (1, 0, 0, [])
    assert expected == counts(guard, fn, t)


def test_stop_requested_during_backoff() -> None:
    """Stop before the retry when SIGTERM arrived while waiting."""
    t = FakeTime()
    fn = Script(transient(), transient())
    stop = {"requested": False}

    def sleep(seconds: float) -> None:
        t.sleep(seconds)
        stop["requested"] = True

    guard = make_guard(t, should_stop=lambda: stop["requested"], sleep=sleep)
    with pytest.raises(SyncInterrupted):
        guard.call(fn)
    expected = (2, 1, 1, [1.0])
    assert expected == counts(guard, fn, t)


def test_limiter_paces_calls() -> None:
    """Wait for the rate limiter before each call after the burst."""
    t = FakeTime()
    bucket = TokenBucket(1.0, 1.0, clock=t.clock, sleep=t.sleep)
    guard = make_guard(t, limiter=bucket)
    fn = Script()
    for _ in range(3):
        guard.call(fn)
    expected = (3, 3, 3, [1.0, 1.0])
    assert expected == counts(guard, fn, t)


def test_stop_requested_during_rate_limit_wait() -> None:
    """Do not call after a wait for a token that a SIGTERM cut short."""
    t = FakeTime()
    stop = {"requested": False}

    def sleep(seconds: float) -> None:
        t.sleep(seconds)
        stop["requested"] = True

    bucket = TokenBucket(1.0, 1.0, clock=t.clock, sleep=sleep)
    guard = make_guard(t, limiter=bucket, should_stop=lambda: stop["requested"])
    fn = Script()
    guard.call(fn)
    with pytest.raises(SyncInterrupted):
        guard.call(fn)
    expected = (2, 1, 1, [1.0])
    assert expected == counts(guard, fn, t)


def test_refused_call_does_not_spend_rate_limit_tokens() -> None:
    """Ask the breaker before the limiter, so a refusal costs no token."""
    t = FakeTime()
    bucket = TokenBucket(1.0, 1.0, clock=t.clock, sleep=t.sleep)
    guard = make_guard(t, attempts=1, threshold=1, limiter=bucket)
    with pytest.raises(UnavailableError):
        guard.call(Script(transient()))
    with pytest.raises(CircuitOpenError):
        guard.call(Script())
    expected = 0.0
    t.now += 1.0
    assert expected == bucket.acquire()


def test_retry_after_is_honoured() -> None:
    """Wait the server's Retry-After instead of the backoff delay."""
    t = FakeTime()
    fn = Script(transient(retry_after=5.0))
    guard = make_guard(t)
    guard.call(fn)
    expected = (2, 2, 2, [5.0])
    assert expected == counts(guard, fn, t)


def test_deadline_stops_retries_without_sleeping() -> None:
    """Give up with UnavailableError when Retry-After would outlast the run budget."""
    t = FakeTime()
    fn = Script(transient(retry_after=30.0))
    guard = make_guard(t, deadline=T0 + 10)
    with pytest.raises(UnavailableError) as info:
        guard.call(fn)
    expected = ((1, 1, 1, []), BreakerState("closed", 1))
    assert expected == (counts(guard, fn, t), guard.breaker.state())
    assert "remaining budget" in info.value.message


def test_half_open_trial_success_closes_breaker() -> None:
    """Close the breaker when the trial call after the timeout succeeds."""
    t = FakeTime()
    guard = make_guard(t, attempts=1, threshold=1)
    with pytest.raises(UnavailableError):
        guard.call(Script(transient()))
    t.now += 60.0
    fn = Script()
    expected = ("ok", BreakerState())
    assert expected == (guard.call(fn), guard.breaker.state())


def test_permanent_error_during_half_open_trial_closes_the_breaker() -> None:
    """A 4xx answer to the half-open trial shows the dependency is up: the breaker closes."""
    t = FakeTime()
    guard = make_guard(t, attempts=1, threshold=1)
    with pytest.raises(UnavailableError):
        guard.call(Script(transient()))
    assert "open" == guard.breaker.state().state
    t.now += 61
    with pytest.raises(PermanentError):
        guard.call(Script(permanent()))
    expected = BreakerState()
    assert expected == guard.breaker.state()
    assert "ok" == guard.call(Script())


def test_quota_errors_are_waited_out_without_opening_the_breaker() -> None:
    """Six Google 429s with threshold 2 and 3 attempts: retried, breaker closed, retries 6."""
    t = FakeTime()
    quota = [
        TransientError("429", dependency="sheets", status=429, code="RESOURCE_EXHAUSTED")
        for _ in range(6)
    ]
    fn = Script(*quota)
    guard = make_guard(t, threshold=2)
    result = guard.call(fn)
    expected = ("ok", 7, 6, BreakerState())
    assert expected == (result, fn.calls, guard.retries, guard.breaker.state())
