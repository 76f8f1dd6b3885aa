"""Run an iterator ahead in a background thread, through a bounded queue.

The sheet's rows come from a chain of HTTP requests; converting a chunk of rows
takes as long as fetching the next one. Fetching ahead overlaps the two, and
overlaps the sheet with the read of the table's hashes. The queue bounds how far
ahead (memory); an error in the thread is raised in the consumer, at its place.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_END = object()
_POLL = 0.1  # seconds between checks for an abandoned consumer


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetched(Generic[T]):
    """Iterate ``source`` in a daemon thread, at most ``depth`` x ``batch`` items ahead.

    Items cross the queue ``batch`` at a time: a queue hand-off costs microseconds,
    too much to pay per sheet row. Exhausting the iteration, or leaving it early,
    stops the thread.
    """

    def __init__(
        self,
        source: Iterator[T],
        *,
        depth: int,
        batch: int = 1000,
        name: str = "listing-sync-prefetch",
    ) -> None:
        self._batch = max(1, batch)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterator[T]) -> None:
        batch: list[T] = []
        try:
            for item in source:
                batch.append(item)
                if len(batch) >= self._batch:
                    if not self._put(batch):
                        return
                    batch = []
        except BaseException as exc:  # handed to the consumer, raised there
            if not batch or self._put(batch):
                self._put(_Failed(exc))
            return
        if not batch or self._put(batch):
            self._put(_END)

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield from item  # type: ignore[misc]
        finally:
            self.close()

    def close(self) -> None:
        self._closed.set()
