"""Read the sheet: header -> column map, then each row -> a validated, serialised listing.

Rows stream lazily (memory stays flat as the sheet grows). A row whose raw cells
digest (``source_hash``) the caller trusts is not validated at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from .. import mapping
from ..rows import RowReader, canonical_values
from ..schema import LISTINGS, ListingsTable
from ..sheets import SheetData, SheetLine
from .prefetch import Prefetched
from .progress import Progress

if TYPE_CHECKING:
    from ..rows import RowProblem


class SheetSource(Protocol):
    """What the pipeline needs from the sheet (``sheets.SheetsReader`` in production)."""

    def read(self) -> SheetData:
        """Open the sheet: the tab and header now, the rows as they are iterated."""
        ...


@dataclass(frozen=True)
class OpenedSheet:
    """A sheet whose tab and header were already read; ``read`` hands them on."""

    data: SheetData

    def read(self) -> SheetData:
        return self.data


@dataclass(slots=True)
class ValidRow:
    """A valid listing ready to write: its JSON object, serialised once."""

    number: str
    row: int
    hash: str
    # The canonical JSON object of the sheet-fed columns + extra: the very bytes the
    # hash covers; content_hash and the other bookkeeping columns are added at write time.
    body: bytes
    source: str  # mapping.source_hash of the row's raw cells

    def values(self) -> dict[str, Any]:
        import json

        return json.loads(self.body)


class ReadRow(NamedTuple):
    """One data row of the sheet that names a listing."""

    row: int
    number: str
    # None: the caller trusted the row as unchanged, so it was not validated.
    valid: ValidRow | None


# Rows fetched ahead of conversion, in batches of 1000: about ten Sheets chunks of a
# 17-column sheet, so the whole read of a large sheet overlaps the table's.
PREFETCH_BATCHES = 40


def _never(number: str, digest: str) -> bool:
    return False


@dataclass
class SheetReading:
    """The rows of one sheet, read as they are iterated.

    ``warnings`` and ``problems`` fill up, and ``rows_seen`` counts, as the
    iteration goes; read them once it is over.
    """

    tab: str
    header_map: mapping.HeaderMap
    lines: Iterator[SheetLine]
    progress: Progress
    trusted: Callable[[str, str], bool] = _never
    table: ListingsTable = LISTINGS
    # Sheet-fed columns this run leaves as the table holds them (their header is missing
    # and --allow-missing-columns was given): left out of every body and its hash.
    omit: frozenset[str] = frozenset()
    warnings: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    rows_seen: int = 0

    def __iter__(self) -> Iterator[ReadRow]:
        header_map = self.header_map
        signature = mapping.header_signature(header_map)
        key_index = next(i for i, c in header_map.columns.items() if c == self.table.key)
        reader = RowReader(header_map, self.table, omit=self.omit)
        source_hash, coerce_key, sha256 = mapping.source_hash, mapping.coerce_key, hashlib.sha256
        advance, trusted = self.progress.advance, self.trusted
        for row_number, cells in self.lines:
            advance()
            digest = source_hash(cells, signature)
            try:
                number = coerce_key(cells[key_index]) if key_index < len(cells) else None
            except mapping.CellError:
                number = None  # read below, which reports the problem as usual
            if number is not None and trusted(number, digest):
                self.rows_seen += 1
                yield ReadRow(row_number, number, None)
                continue
            result = reader.read(cells, row_number)
            if result.warnings:
                self.warnings.extend(result.warnings)
            values = result.values
            if values is None:
                if result.problems:
                    self.problems.extend(result.problems)
                    self.rows_seen += 1
                continue  # an empty row
            self.rows_seen += 1
            # One serialisation serves both the hash and the request body.
            body = canonical_values(values)
            number = values[self.table.key]
            yield ReadRow(
                row_number,
                number,
                ValidRow(
                    number=number,
                    row=row_number,
                    hash=sha256(body).hexdigest(),
                    body=body,
                    source=digest,
                ),
            )


def read_listings(
    source: SheetSource,
    aliases: dict[str, str],
    progress: Progress,
    trusted: Callable[[str, str], bool] = _never,
    table: ListingsTable = LISTINGS,
) -> SheetReading:
    """Open the sheet and map its header now; return its rows to read lazily.

    A row for which ``trusted(number, source hash)`` holds is not validated: it
    comes as ``ReadRow(row, number, None)``.
    """
    data = source.read()
    header_map = mapping.build_header_map(data.header, aliases, tab=data.tab, table=table)
    return SheetReading(
        tab=data.tab,
        header_map=header_map,
        # Fetch ahead while rows are converted and while the table's hashes are read.
        lines=iter(Prefetched(data.rows, depth=PREFETCH_BATCHES)),
        progress=progress,
        trusted=trusted,
        table=table,
        warnings=list(header_map.warnings),
    )
