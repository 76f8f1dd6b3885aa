"""Prefetched: a bounded read-ahead thread that keeps order and hands errors to the consumer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from listing_sync.pipeline.prefetch import Prefetched


def test_items_arrive_in_order_across_batches() -> None:
    """Every item arrives once, in order, whatever the batch size."""
    assert list(range(2500)) == list(Prefetched(iter(range(2500)), depth=2, batch=1000))


def test_an_error_is_raised_after_the_items_before_it() -> None:
    """A failure in the source reaches the consumer after every item that preceded it."""

    def source() -> Iterator[int]:
        yield from range(5)
        raise RuntimeError("chunk 2 failed")

    seen: list[int] = []
    with pytest.raises(RuntimeError, match="chunk 2 failed"):
        for item in Prefetched(source(), depth=1, batch=2):
            seen.append(item)
    assert [0, 1, 2, 3, 4] == seen


def test_the_thread_stops_when_the_consumer_leaves_early() -> None:
    """Leaving the loop early stops the read-ahead: the source is not read to its end."""
    pulled: list[int] = []
    finished = threading.Event()

    def source() -> Iterator[int]:
        try:
            for n in range(1_000_000):
                pulled.append(n)
                yield n
        finally:
            finished.set()

    prefetched = Prefetched(source(), depth=1, batch=10)
    for item in prefetched:
        if item == 3:
            break
    assert finished.wait(5), "the prefetch thread kept running"
    assert len(pulled) < 100
