"""A few daemon threads that run jobs ahead of their consumer, results taken in order.

Used where a run waits on many requests one after another (the sheet's chunks, the
table's pages): a round trip tens of milliseconds long, paid once per request, adds
up. Daemon threads, so a run stopped by a signal never waits for a request to end.
"""

from __future__ import annotations

import functools
import itertools
import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")
K = TypeVar("K")

_Job = tuple[Future[Any], Callable[[], Any]]


class Workers:
    """Up to ``count`` daemon threads, started as jobs come.

    ``local``: what each thread makes once for itself (an HTTP client that is not
    thread-safe), returned by ``local()`` inside a job and closed when the thread ends.
    """

    def __init__(self, count: int, *, name: str, local: Callable[[], Any] | None = None) -> None:
        self._count = max(1, count)
        self._name = name
        self._make_local = local
        self._local = threading.local()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def local(self) -> Any:
        """Return the calling worker's own ``local`` object; None outside a worker."""
        return getattr(self._local, "value", None)

    def ahead(
        self, job: Callable[[K], T], keys: Iterable[K], *, limit: int | None = None
    ) -> Generator[T, None, None]:
        """Yield ``job(key)`` for each key in order, up to ``count`` of them (or ``limit``,
        if fewer) running ahead: the first ones start now, before anything is taken.

        An error is raised where its result would have been yielded; leaving early (or
        closing the iterator before taking anything) cancels the jobs not yet started.
        """
        results = self._ahead(job, keys, limit)
        next(results)  # submits the first jobs
        return cast(Generator[T, None, None], results)

    def _ahead(
        self, job: Callable[[K], T], keys: Iterable[K], limit: int | None
    ) -> Generator[T | None, None, None]:
        keys = iter(keys)
        running: deque[Future[T]] = deque()
        most = self._count if limit is None else max(1, min(limit, self._count))
        try:
            for key in itertools.islice(keys, most):
                running.append(self.submit(functools.partial(job, key)))
            yield None  # started: from here on, closing cancels what has not begun
            while running:
                result = running.popleft().result()
                for key in itertools.islice(keys, 1):
                    running.append(self.submit(functools.partial(job, key)))
                yield result
        finally:
            for future in running:
                future.cancel()

    def submit(self, job: Callable[[], T]) -> Future[T]:
        """Run ``job`` on a worker (one is started if fewer than ``count`` run); its future."""
        with self._lock:
            if len(self._threads) < self._count:
                thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._threads.append(thread)
                thread.start()
        future: Future[T] = Future()
        self._jobs.put((future, job))
        return future

    def _work(self) -> None:
        value = self._local.value = self._make_local() if self._make_local else None
        try:
            while (item := self._jobs.get()) is not None:
                future, job = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(job())
                except BaseException as exc:  # raised in the consumer, at its place
                    future.set_exception(exc)
        finally:
            close = getattr(value, "close", None)
            if close is not None:
                close()

    def close(self) -> None:
        """Stop the workers once their current job is over (without waiting)."""
        with self._lock:
            for _ in self._threads:
                self._jobs.put(None)
            self._threads = []

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Background(Generic[T]):
    """One job started now in a daemon thread; ``result()`` waits for it, or raises its error."""

    def __init__(self, job: Callable[[], T], *, name: str) -> None:
        self._future: Future[T] = Future()

        def run() -> None:
            self._future.set_running_or_notify_cancel()
            try:
                self._future.set_result(job())
            except BaseException as exc:  # raised in the thread that asks for the result
                self._future.set_exception(exc)

        threading.Thread(target=run, name=name, daemon=True).start()

    def result(self) -> T:
        return self._future.result()

    def wait(self) -> None:
        """Wait for the job to end, whatever its outcome."""
        self._future.exception()
