"""Read the sheet: header -> column map, then each row -> a validated, serialised listing.

Rows stream lazily (memory stays flat as the sheet grows). A row whose raw cells
digest (``source_hash``) the caller trusts is not validated at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
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

    def read(self) -> Sequence[SheetData]:
        """Open the sheet: each tab and its header now, the rows as they are iterated."""
        ...


@dataclass(frozen=True)
class OpenedSheet:
    """A sheet whose tabs and headers were already read; ``read`` hands them on."""

    data: Sequence[SheetData]

    def read(self) -> Sequence[SheetData]:
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
    tab: str = ""  # the sheet tab the row was read from (written as source_tab)

    def values(self) -> dict[str, Any]:
        import json

        return json.loads(self.body)


class ReadRow(NamedTuple):
    """One data row of the sheet that names a listing."""

    row: int
    number: str
    # None: the caller trusted the row as unchanged, so it was not validated.
    valid: ValidRow | None
    tab: str = ""


# Rows fetched ahead of conversion, in batches of 1000: about ten Sheets chunks of a
# 17-column sheet, so the whole read of a large sheet overlaps the table's.
PREFETCH_BATCHES = 40
# Rows read together, column by column (rows.RowReader.bodies).
READ_BATCH = 1000


def _never(number: str, digest: str, tab: str) -> bool:
    return False


@dataclass
class TabReading:
    """One tab of the sheet: its title and how its header maps to the table."""

    tab: str
    header_map: mapping.HeaderMap


@dataclass
class SheetReading:
    """The rows of the sheet's tabs, read in sequence as they are iterated.

    ``warnings`` and ``problems`` fill up, and ``rows_seen`` counts, as the
    iteration goes; read them once it is over.
    """

    tabs: list[TabReading]
    # (index into ``tabs``, line): every tab's rows, one tab after the other.
    lines: Iterator[tuple[int, SheetLine]]
    progress: Progress
    trusted: Callable[[str, str, str], bool] = _never
    table: ListingsTable = LISTINGS
    # Sheet-fed columns this run leaves as the table holds them (their header is missing
    # and --allow-missing-columns was given): left out of every body and its hash.
    omit: frozenset[str] = frozenset()
    warnings: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    rows_seen: int = 0

    @property
    def tab(self) -> str:
        """Return the tab titles, for messages: one title, or several joined by commas."""
        return ", ".join(t.tab for t in self.tabs)

    @property
    def unused(self) -> frozenset[str]:
        """Return the columns the office added that some tab has no header for.

        They are not written this run: every row of a batch carries the same columns,
        and a row without one would set it to null.
        """
        return frozenset(c for t in self.tabs for c in t.header_map.unused)

    def __iter__(self) -> Iterator[ReadRow]:
        omit = self.omit | self.unused
        shapes = [
            (
                t.tab,
                mapping.source_hasher(mapping.header_signature(t.header_map)),
                RowReader(t.header_map, self.table, omit=omit),
            )
            for t in self.tabs
        ]
        for index, lines in _by_tab(self.lines):
            tab, digest, reader = shapes[index]
            self.progress.advance(len(lines))
            yield from self._read(lines, tab, digest, reader)

    def _read(
        self,
        lines: list[SheetLine],
        tab: str,
        digest: Callable[[Sequence[object]], str],
        reader: RowReader,
    ) -> Iterator[ReadRow]:
        """Read a batch of one tab's lines, column by column, in sheet order."""
        rows = [line.cells for line in lines]
        digests = list(map(digest, rows))
        numbers = reader.numbers(rows)
        trusted = self.trusted
        todo = [
            i
            for i, number in enumerate(numbers)
            if number is None or not trusted(number, digests[i], tab)
        ]
        if len(todo) == len(rows):
            bodies = reader.bodies(rows, numbers)
        else:
            bodies = [None] * len(rows)
            read = reader.bodies([rows[i] for i in todo], [numbers[i] for i in todo])
            for i, body in zip(todo, read, strict=True):
                bodies[i] = body
        checked = set(todo)
        sha256 = hashlib.sha256
        for i, (row_number, cells) in enumerate(lines):
            number = numbers[i]
            if i not in checked:
                self.rows_seen += 1
                yield ReadRow(row_number, number, None, tab)  # type: ignore[arg-type]
                continue
            body = bodies[i]
            if body is None:  # not plainly valid: read it the careful way, for what it says
                result = reader.read(cells, row_number)
                if result.warnings:
                    # Row numbers repeat across tabs: name the tab in what the operator reads.
                    warnings = result.warnings
                    self.warnings.extend(
                        [f"Tab {tab!r}: {w}" for w in warnings] if len(self.tabs) > 1 else warnings
                    )
                values = result.values
                if values is None:
                    if result.problems:
                        self.problems.extend(replace(p, tab=tab) for p in result.problems)
                        self.rows_seen += 1
                    continue  # an empty row
                body = canonical_values(values)
                number = values[self.table.key]
            self.rows_seen += 1
            # One serialisation serves both the hash and the request body.
            yield ReadRow(
                row_number,
                number,  # type: ignore[arg-type]
                ValidRow(
                    number=number,  # type: ignore[arg-type]
                    row=row_number,
                    hash=sha256(body).hexdigest(),
                    body=body,
                    source=digests[i],
                    tab=tab,
                ),
                tab,
            )


def _by_tab(lines: Iterator[tuple[int, SheetLine]]) -> Iterator[tuple[int, list[SheetLine]]]:
    """Group ``(tab index, line)`` into runs of one tab's lines, at most ``READ_BATCH`` long."""
    batch: list[SheetLine] = []
    current = -1
    for index, line in lines:
        if index != current or len(batch) >= READ_BATCH:
            if batch:
                yield current, batch
            batch, current = [], index
        batch.append(line)
    if batch:
        yield current, batch


def _lines(
    data: SheetData, header_map: mapping.HeaderMap, table: ListingsTable
) -> Iterator[SheetLine]:
    """Return the tab's rows, with its key and text columns as the sheet shows them.

    A key typed as a number in a column formatted 00000 is the key 00123, not 123; a
    date typed into notes is the date shown, not its serial number. Columns kept in
    extra show dates as the sheet does, and keep plain numbers as numbers.
    """
    if data.shown is None:
        return data.rows
    kinds = table.columns
    text = frozenset(
        i for i, c in header_map.columns.items() if c == table.key or kinds.get(c) == "text"
    )
    return data.shown(text, frozenset(header_map.extra))


def _tagged(
    sheets: Sequence[SheetData], tabs: Sequence[TabReading], table: ListingsTable
) -> Iterator[tuple[int, SheetLine]]:
    """Yield every tab's lines in turn, each with the index of its tab."""
    for index, (data, tab) in enumerate(zip(sheets, tabs, strict=True)):
        for line in _lines(data, tab.header_map, table):
            yield index, line


def read_listings(
    source: SheetSource,
    aliases: dict[str, str],
    progress: Progress,
    trusted: Callable[[str, str, str], bool] = _never,
    table: ListingsTable = LISTINGS,
) -> SheetReading:
    """Open the sheet and map each tab's header now; return the rows to read lazily.

    A row for which ``trusted(number, source hash, tab)`` holds is not validated: it
    comes as ``ReadRow(row, number, None, tab)``.
    """
    sheets = list(source.read())
    tabs = [
        TabReading(
            data.tab, mapping.build_header_map(data.header, aliases, tab=data.tab, table=table)
        )
        for data in sheets
    ]
    return SheetReading(
        tabs=tabs,
        # Fetch ahead while rows are converted and while the table's hashes are read.
        lines=iter(Prefetched(_tagged(sheets, tabs, table), depth=PREFETCH_BATCHES)),
        progress=progress,
        trusted=trusted,
        table=table,
        warnings=[w for t in tabs for w in t.header_map.warnings],
    )
