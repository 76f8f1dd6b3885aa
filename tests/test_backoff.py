"""Backoff schedule, Retry-After parsing and the retry loop, with recorded sleeps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from listing_sync.errors import (
    CircuitOpenError,
    PermanentError,
    TransientError,
    UnavailableError,
    is_quota,
)
from listing_sync.resilience.backoff import (
    RetryPolicy,
    backoff_ceiling,
    full_jitter_delay,
    parse_retry_after,
    retry_with_backoff,
)

NOW = 1_700_000_000.0


def http_date(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(ts, UTC), usegmt=True)


def transient(retry_after: float | None = None) -> TransientError:
    return TransientError(
        "503 Service Unavailable",
        dependency="postgrest",
        status=503,
        code="PGRST001",
        retry_after=retry_after,
    )


class Script:
    """Fail with the given exceptions in order, then return "ok"; count calls."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


class FakeTime:
    """A wall clock that only moves when sleep is called; sleeps are recorded."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "expected"),
    [
        (1, 1.0, 16.0, 1.0),
        (2, 1.0, 16.0, 2.0),
        (3, 1.0, 16.0, 4.0),
        (4, 1.0, 16.0, 8.0),
        (5, 1.0, 16.0, 16.0),
        (6, 1.0, 16.0, 16.0),
        (1, 0.5, 16.0, 0.5),
        (4, 0.25, 1.0, 1.0),
        (3, 0.0, 16.0, 0.0),
        (5000, 1.0, 30.0, 30.0),
    ],
)
def test_backoff_ceiling(attempt: int, base: float, cap: float, expected: float) -> None:
    """Double the ceiling per attempt from base and stop at cap."""
    assert expected == backoff_ceiling(attempt, base, cap)


def test_backoff_ceiling_rejects_attempt_zero() -> None:
    """Refuse attempt numbers below 1."""
    with pytest.raises(ValueError):
        backoff_ceiling(0, 1.0, 16.0)


@pytest.mark.parametrize(
    ("attempt", "r", "expected"),
    [(1, 0.0, 0.0), (1, 0.5, 0.5), (3, 0.5, 2.0), (3, 0.25, 1.0), (6, 0.5, 8.0)],
)
def test_full_jitter_delay(attempt: int, r: float, expected: float) -> None:
    """Scale the ceiling by the random draw."""
    assert expected == full_jitter_delay(attempt, 1.0, 16.0, lambda: r)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("0", 0.0),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("-3", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("Wed, 99 Foo 2024 25:61:00 GMT", None),
        (http_date(NOW + 30), 30.0),
        (http_date(NOW - 30), 0.0),
        ("Tue, 14 Nov 2023 22:13:50 -0000", 30.0),  # naive date read as GMT
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Read delta-seconds and HTTP-dates; past dates are 0; garbage is None."""
    assert expected == parse_retry_after(value, NOW)


def test_retry_policy_defaults() -> None:
    """Default to 3 attempts from 1 s, capped at 16 s, Retry-After capped at 60 s."""
    expected = RetryPolicy(attempts=3, base=1.0, cap=16.0, retry_after_cap=60.0)
    assert expected == RetryPolicy()


def test_retry_policy_rejects_zero_attempts() -> None:
    """Require at least one attempt."""
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_first_success_does_not_sleep() -> None:
    """Return the result of a first successful call without waiting."""
    t, fn = FakeTime(), Script()
    result = retry_with_backoff(fn, policy=RetryPolicy(), sleep=t.sleep, clock=t.clock)
    expected = ("ok", 1, [])
    assert expected == (result, fn.calls, t.sleeps)


def test_exact_backoff_schedule_with_max_jitter() -> None:
    """Wait 1, 2, 4, 8, 16, 16 s with rand fixed at 1.0 and succeed on attempt 7."""
    t, fn = FakeTime(), Script(*(transient() for _ in range(6)))
    result = retry_with_backoff(
        fn, policy=RetryPolicy(attempts=7), sleep=t.sleep, clock=t.clock, rand=lambda: 1.0
    )
    expected = ("ok", 7, [1.0, 2.0, 4.0, 8.0, 16.0, 16.0])
    assert expected == (result, fn.calls, t.sleeps)


def test_jitter_scales_schedule() -> None:
    """Apply the random draw to every ceiling."""
    t, fn = FakeTime(), Script(transient(), transient(), transient())
    retry_with_backoff(
        fn,
        policy=RetryPolicy(attempts=4, base=0.5),
        sleep=t.sleep,
        clock=t.clock,
        rand=lambda: 0.5,
    )
    expected = [0.25, 0.5, 1.0]
    assert expected == t.sleeps


def test_exhausted_attempts_raise_unavailable() -> None:
    """Raise UnavailableError naming the attempts and chaining the last failure."""
    t = FakeTime()
    last = transient()
    fn = Script(transient(), transient(), last)
    with pytest.raises(UnavailableError) as info:
        retry_with_backoff(fn, policy=RetryPolicy(), sleep=t.sleep, clock=t.clock, rand=lambda: 1.0)
    err = info.value
    expected = (
        "postgrest unavailable after 3 attempts: 503 Service Unavailable",
        "postgrest",
        503,
        "PGRST001",
        3,
        [1.0, 2.0],
    )
    assert expected == (err.message, err.dependency, err.status, err.code, fn.calls, t.sleeps)
    assert last is err.__cause__


def test_single_attempt_policy_never_sleeps() -> None:
    """Give up after the first failure when attempts is 1."""
    t, fn = FakeTime(), Script(transient())
    with pytest.raises(UnavailableError):
        retry_with_backoff(fn, policy=RetryPolicy(attempts=1), sleep=t.sleep, clock=t.clock)
    expected = (1, [])
    assert expected == (fn.calls, t.sleeps)


@pytest.mark.parametrize(
    ("retry_after", "expected_wait"),
    [(0.0, 0.0), (5.0, 5.0), (60.0, 60.0), (61.0, 60.0), (3600.0, 60.0), (-2.0, 0.0)],
)
def test_retry_after_seconds_replaces_backoff(retry_after: float, expected_wait: float) -> None:
    """Wait exactly Retry-After, capped at retry_after_cap, instead of the jittered delay."""
    t, fn = FakeTime(), Script(transient(retry_after=retry_after))
    retry_with_backoff(fn, policy=RetryPolicy(), sleep=t.sleep, clock=t.clock, rand=lambda: 0.99)
    assert [expected_wait] == t.sleeps


def test_retry_after_http_date_end_to_end() -> None:
    """Wait until an HTTP-date Retry-After once parsed against the same clock."""
    t = FakeTime()
    fn = Script(transient(retry_after=parse_retry_after(http_date(NOW + 12), t.clock())))
    retry_with_backoff(fn, policy=RetryPolicy(), sleep=t.sleep, clock=t.clock, rand=lambda: 0.0)
    expected = [12.0]
    assert expected == t.sleeps


def test_retry_after_cap_is_configurable() -> None:
    """Cap a long Retry-After by the policy's retry_after_cap."""
    t, fn = FakeTime(), Script(transient(retry_after=300.0))
    retry_with_backoff(fn, policy=RetryPolicy(retry_after_cap=10.0), sleep=t.sleep, clock=t.clock)
    expected = [10.0]
    assert expected == t.sleeps


def test_mixed_retry_after_and_backoff() -> None:
    """Use Retry-After when given and backoff for the attempt number otherwise."""
    t, fn = FakeTime(), Script(transient(), transient(retry_after=7.0), transient())
    retry_with_backoff(
        fn, policy=RetryPolicy(attempts=4), sleep=t.sleep, clock=t.clock, rand=lambda: 1.0
    )
    expected = [1.0, 7.0, 4.0]
    assert expected == t.sleeps


def test_deadline_exceeded_by_retry_after_raises_without_sleeping() -> None:
    """Refuse a Retry-After wait that would end past the deadline, without sleeping."""
    t = FakeTime()
    first = transient(retry_after=30.0)
    fn = Script(first)
    with pytest.raises(UnavailableError) as info:
        retry_with_backoff(
            fn, policy=RetryPolicy(), sleep=t.sleep, clock=t.clock, deadline=NOW + 10
        )
    expected = (
        [],
        1,
        "postgrest unavailable: the Retry-After wait of 30.0s before attempt 2 would exceed "
        "the run's remaining budget (10.0s left): 503 Service Unavailable",
        ("postgrest", 503, "PGRST001"),
    )
    err = info.value
    assert expected == (t.sleeps, fn.calls, err.message, (err.dependency, err.status, err.code))
    assert first is err.__cause__


def test_deadline_exceeded_by_backoff_raises_without_sleeping() -> None:
    """Stop before a backoff wait that would cross the deadline."""
    t, fn = FakeTime(), Script(transient(), transient(), transient())
    with pytest.raises(UnavailableError) as info:
        retry_with_backoff(
            fn,
            policy=RetryPolicy(attempts=5),
            sleep=t.sleep,
            clock=t.clock,
            rand=lambda: 1.0,
            deadline=NOW + 2.5,
        )
    # 1 s fits (ends at +1), 2 s would end at +3 > +2.5.
    expected = (
        [1.0],
        2,
        "postgrest unavailable: the backoff wait of 2.0s before attempt 3 would exceed "
        "the run's remaining budget (1.5s left): 503 Service Unavailable",
    )
    assert expected == (t.sleeps, fn.calls, info.value.message)


def test_wait_ending_exactly_at_deadline_is_allowed() -> None:
    """Allow a wait that ends exactly on the deadline."""
    t, fn = FakeTime(), Script(transient(retry_after=10.0))
    result = retry_with_backoff(
        fn, policy=RetryPolicy(), sleep=t.sleep, clock=t.clock, deadline=NOW + 10
    )
    expected = ("ok", [10.0])
    assert expected == (result, t.sleeps)


@pytest.mark.parametrize(
    "exc",
    [
        PermanentError("400", dependency="postgrest", status=400),
        CircuitOpenError("open", dependency="postgrest", retry_at=NOW + 60),
        UnavailableError("gone", dependency="postgrest"),
        KeyError("bug"),
    ],
    ids=["permanent", "circuit-open", "unavailable", "non-remote"],
)
def test_non_retryable_errors_propagate_unchanged(exc: Exception) -> None:
    """Re-raise permanent, breaker-open and foreign errors at once, unwrapped."""
    t, fn = FakeTime(), Script(exc)
    with pytest.raises(type(exc)) as info:
        retry_with_backoff(fn, policy=RetryPolicy(), sleep=t.sleep, clock=t.clock)
    expected = (exc, 1, [])
    assert expected == (info.value, fn.calls, t.sleeps)


def test_on_retry_is_called_before_each_sleep() -> None:
    """Report (error, failed attempt, wait) before every sleep and never after the last try."""
    t = FakeTime()
    errors = [transient(), transient(), transient()]
    fn = Script(*errors)
    events: list[tuple[object, ...]] = []

    def on_retry(exc: TransientError, attempt: int, wait: float) -> None:
        events.append((exc, attempt, wait, len(t.sleeps)))

    with pytest.raises(UnavailableError):
        retry_with_backoff(
            fn,
            policy=RetryPolicy(),
            sleep=t.sleep,
            clock=t.clock,
            rand=lambda: 1.0,
            on_retry=on_retry,
        )
    assert [(errors[0], 1, 1.0, 0), (errors[1], 2, 2.0, 1)] == events


def test_default_sleep_is_not_used_when_injected(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never call time.sleep when a sleep is injected."""
    import time

    def boom(_: float) -> None:
        raise AssertionError("real sleep called")

    monkeypatch.setattr(time, "sleep", boom)
    recorded: list[float] = []
    sleep: Callable[[float], None] = recorded.append
    retry_with_backoff(Script(transient()), policy=RetryPolicy(), sleep=sleep, rand=lambda: 1.0)
    expected = [1.0]
    assert expected == recorded


def quota() -> TransientError:
    return TransientError(
        "429 RESOURCE_EXHAUSTED Quota exceeded",
        dependency="sheets",
        status=429,
        code="RESOURCE_EXHAUSTED",
    )


def test_quota_error_is_waited_out_for_the_quota_window_whatever_attempts_says() -> None:
    """Google's 429 (no Retry-After): 3 attempts allowed, yet retried until 70 s have passed."""
    t = FakeTime()
    fn = Script(*(quota() for _ in range(8)))
    result = retry_with_backoff(
        fn, policy=RetryPolicy(attempts=3), sleep=t.sleep, clock=t.clock, rand=lambda: 1.0
    )
    # 1+2+4+8+16+16+16 = 63 s < 70 s: the eighth 429 is still inside the window.
    expected = ("ok", 9, [1.0, 2.0, 4.0, 8.0, 16.0, 16.0, 16.0, 16.0])
    assert expected == (result, fn.calls, t.sleeps)


def test_quota_error_gives_up_once_the_window_has_passed() -> None:
    """A 429 that outlasts the window: UnavailableError after the first attempt past 70 s."""
    t = FakeTime()
    fn = Script(*(quota() for _ in range(50)))
    with pytest.raises(UnavailableError):
        retry_with_backoff(
            fn, policy=RetryPolicy(attempts=3), sleep=t.sleep, clock=t.clock, rand=lambda: 1.0
        )
    assert [1.0, 2.0, 4.0, 8.0, 16.0, 16.0, 16.0, 16.0] == t.sleeps
    assert 79.0 == sum(t.sleeps)


def test_quota_wait_stays_within_the_run_budget() -> None:
    """The quota window never stretches the run past its deadline (SYNC_RUN_TIMEOUT)."""
    t = FakeTime()
    fn = Script(*(quota() for _ in range(50)))
    with pytest.raises(UnavailableError) as info:
        retry_with_backoff(
            fn,
            policy=RetryPolicy(attempts=3),
            sleep=t.sleep,
            clock=t.clock,
            rand=lambda: 1.0,
            deadline=NOW + 20,
        )
    assert [1.0, 2.0, 4.0, 8.0] == t.sleeps
    assert "remaining budget" in info.value.message


def test_only_googles_resource_exhausted_is_a_quota_error() -> None:
    """is_quota: Google's RESOURCE_EXHAUSTED only, not a PostgREST 503."""
    assert (True, False) == (is_quota(quota()), is_quota(transient()))
