"""Token bucket decisions and the Sheets/PostgREST buckets, on a fake clock."""

from __future__ import annotations

import threading
from collections import deque

import pytest

from listing_sync.resilience.ratelimit import (
    TokenBucket,
    _refill,
    _wait_needed,
    postgrest_bucket,
    sheets_bucket,
)


class FakeTime:
    """A monotonic clock moved only by sleep (or by hand); sleeps are recorded."""

    def __init__(self, advance: bool = True) -> None:
        self.now = 0.0
        self.advance = advance
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.advance:
            self.now += seconds


@pytest.mark.parametrize(
    ("tokens", "capacity", "rate", "elapsed", "expected"),
    [
        (0.0, 5.0, 1.0, 0.0, 0.0),
        (0.0, 5.0, 1.0, 2.0, 2.0),
        (0.0, 5.0, 1.0, 60.0, 5.0),
        (4.5, 5.0, 1.0, 2.0, 5.0),
        (-3.0, 5.0, 2.0, 1.0, -1.0),
        (1.0, 5.0, 1.0, -10.0, 1.0),
        (0.0, 6.0, 0.9, 10.0, 6.0),
    ],
)
def test_refill(
    tokens: float, capacity: float, rate: float, elapsed: float, expected: float
) -> None:
    """Add rate*elapsed tokens, never past capacity and never for negative time."""
    assert expected == _refill(tokens, capacity, rate, elapsed)


@pytest.mark.parametrize(
    ("available", "requested", "rate", "expected"),
    [
        (1.0, 1.0, 1.0, 0.0),
        (5.0, 1.0, 1.0, 0.0),
        (0.0, 1.0, 1.0, 1.0),
        (0.5, 1.0, 2.0, 0.25),
        (-1.0, 1.0, 10.0, 0.2),
        (0.0, 3.0, 1.5, 2.0),
    ],
)
def test_wait_needed(available: float, requested: float, rate: float, expected: float) -> None:
    """Wait for the missing tokens at the refill rate."""
    assert expected == _wait_needed(available, requested, rate)


def test_bucket_starts_full_then_waits() -> None:
    """Let a full burst through at once, then pace at the rate."""
    t = FakeTime()
    bucket = TokenBucket(2.0, 3.0, clock=t.clock, sleep=t.sleep)
    waits = [bucket.acquire() for _ in range(6)]
    expected = ([0.0, 0.0, 0.0, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    assert expected == (waits, t.sleeps)


def test_callers_queue_behind_reservations() -> None:
    """Make callers arriving at the same instant wait one interval longer each."""
    t = FakeTime(advance=False)
    bucket = TokenBucket(10.0, clock=t.clock, sleep=t.sleep)
    waits = [bucket.acquire() for _ in range(13)]
    expected = [0.0] * 10 + [0.1, 0.2, 0.3]
    assert expected == pytest.approx(waits)


def test_idle_time_refills_up_to_capacity() -> None:
    """Refill while idle but never beyond capacity."""
    t = FakeTime()
    bucket = TokenBucket(1.0, 2.0, clock=t.clock, sleep=t.sleep)
    bucket.acquire()
    bucket.acquire()
    t.now += 100.0
    waits = [bucket.acquire() for _ in range(3)]
    expected = [0.0, 0.0, 1.0]
    assert expected == waits


def test_acquire_several_tokens() -> None:
    """Charge and wait for more than one token at a time, even beyond capacity."""
    t = FakeTime()
    bucket = TokenBucket(2.0, 2.0, clock=t.clock, sleep=t.sleep)
    waits = [bucket.acquire(2), bucket.acquire(3)]
    expected = [0.0, 1.5]
    assert expected == waits


@pytest.mark.parametrize("rate", [None, 0, 0.0, -5.0])
def test_unlimited_bucket_never_waits(rate: float | None) -> None:
    """Treat a missing or non-positive rate as no limit."""
    t = FakeTime()
    bucket = TokenBucket(rate, clock=t.clock, sleep=t.sleep)
    waits = {bucket.acquire() for _ in range(1000)}
    expected = ({0.0}, [])
    assert expected == (waits, t.sleeps)


@pytest.mark.parametrize(
    ("rate", "expected_capacity"), [(0.5, 1.0), (1.0, 1.0), (10.0, 10.0), (2.5, 2.5)]
)
def test_default_capacity_is_rate_but_at_least_one(rate: float, expected_capacity: float) -> None:
    """Default the burst to one second's worth of calls, and at least one call."""
    assert expected_capacity == TokenBucket(rate).capacity


def test_concurrent_threads_get_distinct_slots() -> None:
    """Give every thread its own slot: 100 calls at 10/s wait 0 x10, then 0.1 .. 9.0."""
    t = FakeTime(advance=False)
    bucket = TokenBucket(10.0, clock=t.clock, sleep=t.sleep)
    waits: deque[float] = deque()

    def worker() -> None:
        for _ in range(25):
            waits.append(bucket.acquire())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    expected = [0.0] * 10 + [k / 10 for k in range(1, 91)]
    assert expected == pytest.approx(sorted(waits))


def max_in_window(times: list[float], window: float) -> int:
    """Return the most events inside any closed interval of length ``window``."""
    best, lo = 0, 0
    for hi, end in enumerate(times):
        while times[lo] < end - window - 1e-9:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@pytest.mark.parametrize("gap_every", [0, 7, 25])
def test_sheets_bucket_keeps_any_minute_under_60(gap_every: int) -> None:
    """Admit at most 60 Sheets reads in any 60-second window, bursty or steady."""
    t = FakeTime()
    bucket = sheets_bucket(clock=t.clock, sleep=t.sleep)
    admitted = []
    for i in range(400):
        if gap_every and i % gap_every == 0:
            t.now += 13.0  # idle stretches let the bucket refill to a full burst
        bucket.acquire()
        admitted.append(t.now)
    assert max_in_window(admitted, 60.0) <= 60
    assert bucket.capacity + bucket.rate * 60 <= 60


def test_sheets_bucket_uses_the_budget() -> None:
    """Reach the 60th read after exactly 60 s from a full bucket (no needless slowness)."""
    t = FakeTime()
    bucket = sheets_bucket(clock=t.clock, sleep=t.sleep)
    for _ in range(60):
        bucket.acquire()
    expected = 60.0
    assert expected == pytest.approx(t.now)


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(10.0, (False, 10.0, 10.0)), (0.5, (False, 0.5, 1.0)), (None, (True, 0.0, 1.0))],
)
def test_postgrest_bucket(rate: float | None, expected: tuple[bool, float, float]) -> None:
    """Use SYNC_RATE_LIMIT as rate and burst; no limit when unset."""
    bucket = postgrest_bucket(rate)
    assert expected == (bucket.unlimited, bucket.rate, bucket.capacity)
