"""Token bucket and sliding window decisions, and the Sheets/PostgREST limits, on a fake clock."""

from __future__ import annotations

import threading
from collections import deque

import pytest

from listing_sync.resilience.ratelimit import (
    SlidingWindow,
    TokenBucket,
    _refill,
    _wait_needed,
    postgrest_bucket,
    sheets_limit,
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


@pytest.mark.parametrize("gap_every", [0, 7, 25, 61])
def test_sheets_limit_keeps_any_minute_to_60(gap_every: int) -> None:
    """Admit at most 60 Sheets reads in any 60-second window, bursty or steady."""
    t = FakeTime()
    limit = sheets_limit(clock=t.clock, sleep=t.sleep)
    admitted = []
    for i in range(400):
        if gap_every and i % gap_every == 0:
            t.now += 13.0  # idle stretches free part of the window
        limit.acquire()
        admitted.append(t.now)
    assert max_in_window(admitted, 60.0) <= 60
    if not gap_every:  # and no slower than that: 60 every 61 s (a second to spare)
        assert admitted[-1] == pytest.approx(61.0 * (399 // 60))


def test_sheets_limit_reads_a_large_sheet_in_two_minutes_of_quota() -> None:
    """A 500,000-row sheet is ~86 requests: 60 at once, the other 26 as the first
    minute's requests leave the window (not one every 2 s after a burst of 30: 112 s),
    with a second to spare."""
    t = FakeTime()
    limit = sheets_limit(clock=t.clock, sleep=t.sleep)
    admitted = []
    for _ in range(86):
        limit.acquire()
        admitted.append(t.now)
        t.now += 0.1  # each request takes a little time
    assert admitted[59] == pytest.approx(5.9)
    assert admitted[60] == pytest.approx(61.0)  # the first request's slot, freed
    assert admitted[-1] == pytest.approx(63.5)
    assert max_in_window(admitted, 60.0) <= 60


def test_sliding_window_frees_a_slot_exactly_when_it_leaves() -> None:
    t = FakeTime()
    window = SlidingWindow(3, 10.0, clock=t.clock, sleep=t.sleep)
    waits = []
    for at in (0.0, 1.0, 2.0, 2.5, 2.5, 30.0):
        t.now = max(t.now, at)
        waits.append(window.acquire())
    # The fourth waits for the first (0 + 10), the fifth for the second (1 + 10).
    assert waits == pytest.approx([0.0, 0.0, 0.0, 7.5, 1.0, 0.0])


def test_sliding_window_threads_get_distinct_slots() -> None:
    """Reservations queue: 10 threads x 10 calls, 20 per second, on a clock that never moves."""
    t = FakeTime(advance=False)
    window = SlidingWindow(20, 1.0, clock=t.clock, sleep=t.sleep)
    waits: deque[float] = deque()

    def worker() -> None:
        for _ in range(10):
            waits.append(window.acquire())

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    expected = [float(k // 20) for k in range(100)]
    assert expected == pytest.approx(sorted(waits))


@pytest.mark.parametrize(("limit", "window"), [(0, 60.0), (60, 0.0), (60, -1.0)])
def test_sliding_window_refuses_a_limit_that_admits_nothing(limit: int, window: float) -> None:
    with pytest.raises(ValueError, match="limit"):
        SlidingWindow(limit, window)


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(10.0, (False, 10.0, 10.0)), (0.5, (False, 0.5, 1.0)), (None, (True, 0.0, 1.0))],
)
def test_postgrest_bucket(rate: float | None, expected: tuple[bool, float, float]) -> None:
    """Use SYNC_RATE_LIMIT as rate and burst; no limit when unset."""
    bucket = postgrest_bucket(rate)
    assert expected == (bucket.unlimited, bucket.rate, bucket.capacity)
