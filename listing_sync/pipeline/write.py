"""Write a plan: batched upserts of new and changed listings, then removals.

Each listing's JSON object was serialised once while reading; a batch's body
splices the bookkeeping columns into those bytes instead of serialising again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import PermanentError
from ..listings import ListingsStore
from ..timeutil import iso, utcnow
from .progress import Progress
from .read import ValidRow

if TYPE_CHECKING:
    from ..models import RowProblem

log = logging.getLogger("listing_sync")

# The most the bookkeeping columns spliced into one row's JSON at write time can add.
BOOKKEEPING_BYTES = 270


def batches(rows: Sequence[ValidRow], max_rows: int, max_bytes: int) -> Iterator[list[ValidRow]]:
    """Split ``rows`` into batches bounded by row count and by body size."""
    batch: list[ValidRow] = []
    size = 2
    for row in rows:
        cost = len(row.body) + BOOKKEEPING_BYTES
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
                    b'"',
                    suffix,
                )
            )
            for r in rows
        )
        + b"]"
    )


@dataclass
class WriteResult:
    """What the writer got done so far (filled in as batches land)."""

    written: int = 0
    problems: list[RowProblem] = field(default_factory=list)


def write_rows(
    listings: ListingsStore,
    rows: Sequence[ValidRow],
    *,
    sync_id: str,
    batch_size: int,
    batch_max_bytes: int,
    progress: Progress,
    result: WriteResult | None = None,
    columns: Sequence[str] | None = None,
) -> WriteResult:
    """Upsert ``rows`` in batches; a batch failing permanently is retried row by row.

    Counts go into ``result`` as batches land, so a run that stops half-way can
    still say how much it wrote. ``columns`` are the keys of every row's body
    (default: every column the table declares).
    """
    suffix = _bookkeeping_suffix(sync_id)
    result = WriteResult() if result is None else result
    progress.phase("writing", total=len(rows))
    for batch in batches(rows, batch_size, batch_max_bytes):
        try:
            listings.upsert(_body(batch, suffix), columns)
            result.written += len(batch)
        except PermanentError as batch_error:
            if len(batch) == 1:
                result.problems.append(_server_problem(batch[0], batch_error))
            else:
                log.warning(
                    "batch of %d rows refused (%s); retrying row by row",
                    len(batch),
                    batch_error.message,
                )
                for row in batch:
                    try:
                        listings.upsert(_body([row], suffix), columns)
                        result.written += 1
                    except PermanentError as row_error:
                        result.problems.append(_server_problem(row, row_error))
        progress.advance(len(batch))
    return result


def _server_problem(row: ValidRow, exc: PermanentError) -> RowProblem:
    from ..models import RowProblem

    return RowProblem(
        row=row.row, property_number=row.number, column=None, message=exc.message, value=None
    )


def mark_removed(listings: ListingsStore, numbers: Sequence[str], *, sync_id: str) -> int:
    """Set removed_at on listings that left the sheet (never delete them)."""
    return listings.mark_removed(numbers, sync_id=sync_id, now=iso(utcnow()))
