"""Write a plan: batched upserts of new and changed listings, then removals.

Each listing's JSON object was serialised once while reading; a batch's body
splices the bookkeeping columns into those bytes instead of serialising again.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import PermanentError
from ..listings import ListingsStore
from ..timeutil import iso, utcnow
from .progress import Progress
from .read import ValidRow

if TYPE_CHECKING:
    from ..rows import RowProblem

log = logging.getLogger("listing_sync")

# The most the bookkeeping columns spliced into one row's JSON at write time can add,
# besides the tab's title (its JSON text is counted per row).
BOOKKEEPING_BYTES = 290


def batches(rows: Sequence[ValidRow], max_rows: int, max_bytes: int) -> Iterator[list[ValidRow]]:
    """Split ``rows`` into batches bounded by row count and by body size."""
    batch: list[ValidRow] = []
    size = 2
    for row in rows:
        cost = len(row.body) + BOOKKEEPING_BYTES + len(_tab_json(row.tab))
        if batch and (len(batch) >= max_rows or size + cost > max_bytes):
            yield batch
            batch, size = [], 2
        batch.append(row)
        size += cost
    if batch:
        yield batch


def _bookkeeping_suffix(sync_id: str) -> bytes:
    """Return the bookkeeping members that close every row object of this run's upserts."""
    return (
        ',"synced_at":'
        + json.dumps(iso(utcnow()))
        + ',"removed_at":null,"last_sync_id":'
        + json.dumps(sync_id)
        + "}"
    ).encode()


@functools.lru_cache(maxsize=64)
def _tab_json(tab: str) -> bytes:
    # A handful of tabs per run: encode each title once, not once per row.
    return json.dumps(tab, ensure_ascii=False).encode()


def _body(rows: Sequence[ValidRow], suffix: bytes) -> bytes:
    # Each body is a JSON object; splice the bookkeeping columns before its "}".
    return (
        b"["
        + b",".join(
            b"".join(
                (
                    r.body[:-1],
                    b',"content_hash":"',
                    r.hash.encode(),
                    b'","source_hash":"',
                    r.source.encode(),
                    b'","source_tab":',
                    _tab_json(r.tab),
                    suffix,
                )
            )
            for r in rows
        )
        + b"]"
    )


@dataclass
class WriteResult:
    """What the writer got done so far (filled in as batches land, from any writer thread)."""

    written: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def landed(self, rows: int, problem: RowProblem | None = None) -> None:
        with self._lock:
            self.written += rows
            if problem is not None:
                self.problems.append(problem)


class _BatchWriter:
    """Write one batch; a batch refused permanently is retried row by row."""

    def __init__(
        self,
        listings: ListingsStore,
        suffix: bytes,
        result: WriteResult,
        progress: Progress,
        columns: Sequence[str] | None,
    ) -> None:
        self.listings = listings
        self.columns = columns
        self.suffix = suffix
        self.result = result
        self.progress = progress
        self._progress_lock = threading.Lock()

    def __call__(self, batch: list[ValidRow]) -> None:
        try:
            self.listings.upsert(_body(batch, self.suffix), self.columns)
            self.result.landed(len(batch))
        except PermanentError as batch_error:
            if len(batch) == 1:
                self.result.landed(0, _server_problem(batch[0], batch_error))
            else:
                log.warning(
                    "batch of %d rows refused (%s); retrying row by row",
                    len(batch),
                    batch_error.message,
                )
                for row in batch:
                    try:
                        self.listings.upsert(_body([row], self.suffix), self.columns)
                        self.result.landed(1)
                    except PermanentError as row_error:
                        self.result.landed(0, _server_problem(row, row_error))
        with self._progress_lock:
            self.progress.advance(len(batch))


def write_rows(
    listings: ListingsStore,
    rows: Sequence[ValidRow],
    *,
    sync_id: str,
    batch_size: int,
    batch_max_bytes: int,
    progress: Progress,
    result: WriteResult | None = None,
    concurrency: int = 1,
    columns: Sequence[str] | None = None,
) -> WriteResult:
    """Upsert ``rows`` in batches, up to ``concurrency`` requests in flight.

    Counts go into ``result`` as batches land, so a run that stops half-way can
    still say how much it wrote. The first error that is not a refused row stops
    further batches; those in flight finish, then it is raised. ``columns`` are the
    keys of every row's body (default: every column the table declares).
    """
    result = WriteResult() if result is None else result
    write = _BatchWriter(listings, _bookkeeping_suffix(sync_id), result, progress, columns)
    progress.phase("writing", total=len(rows))
    todo = batches(rows, batch_size, batch_max_bytes)
    if concurrency <= 1:
        for batch in todo:
            write(batch)
        return result
    failure: BaseException | None = None
    with ThreadPoolExecutor(concurrency, thread_name_prefix="listing-sync-write") as pool:
        in_flight: set[Future[None]] = set()
        for batch in todo:
            if len(in_flight) >= concurrency:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                failure = _first_failure(done)
                if failure is not None:
                    break
            in_flight.add(pool.submit(write, batch))
        done, _ = wait(in_flight)
        failure = failure or _first_failure(done)
    if failure is not None:
        raise failure
    return result


def _first_failure(done: Iterable[Future[None]]) -> BaseException | None:
    return next((f.exception() for f in done if f.exception() is not None), None)


def _server_problem(row: ValidRow, exc: PermanentError) -> RowProblem:
    from ..rows import RowProblem

    return RowProblem(
        row=row.row,
        property_number=row.number,
        column=None,
        message=exc.message,
        value=None,
        tab=row.tab,
    )


def mark_removed(listings: ListingsStore, numbers: Sequence[str], *, sync_id: str) -> int:
    """Set removed_at on listings that left the sheet (never delete them)."""
    return listings.mark_removed(numbers, sync_id=sync_id, now=iso(utcnow()))
