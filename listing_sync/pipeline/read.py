"""Read the sheet: header -> column map, then each row -> a validated, serialised listing.

Rows stream lazily (memory stays flat as the sheet grows). A row whose raw cells
digest (``source_hash``) the caller trusts is not validated at all.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import repeat
from typing import TYPE_CHECKING, Any, Protocol, cast

from .. import mapping
from ..rows import RowReader, canonical_values
from ..schema import LISTINGS, ListingsTable
from ..sheets import RawChunk, SheetBlock, SheetData
from . import convert
from .prefetch import Prefetched
from .progress import Progress

log = logging.getLogger(__name__)

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
    # The canonical JSON object of the sheet-fed columns + extra: the very bytes the
    # hash covers; content_hash and the other bookkeeping columns are added at write time.
    body: bytes
    source: str  # mapping.source_hash of the row's raw cells
    tab: str = ""  # the sheet tab the row was read from (written as source_tab)

    @property
    def hash(self) -> str:
        """Return the content_hash: the sha256 of ``body``.

        Computed when asked for (once as the row is written, and for the rows the plan
        compares with the table), not kept: 113 bytes a row, 56 MB at 500,000 listings.
        """
        return hashlib.sha256(self.body).hexdigest()

    def values(self) -> dict[str, Any]:
        import json

        return json.loads(self.body)


@dataclass(slots=True)
class ReadBatch:
    """Consecutive data rows of one tab that name a listing, as parallel lists.

    ``valid[i]`` None: the row's raw cells are those of the listing the table holds
    (its source_hash), so it was trusted as unchanged and not validated.
    """

    tab: str
    rows: list[int]  # sheet row numbers
    numbers: list[str]
    valid: list[ValidRow | None]


# Blocks (of at most sheets.BLOCK_ROWS rows) fetched ahead of conversion, besides the
# chunks in flight: enough to overlap the table's read, and bounded memory.
PREFETCH_BLOCKS = 4
# Rows read together, column by column (rows.RowReader.bodies).
READ_BATCH = convert.READ_BATCH
# Rows validated in this process before helper processes start (convert.Helpers): a
# small sheet, or a re-sync where little changed, never starts one.
CONVERT_HERE = 5_000


@dataclass(slots=True)
class _Pending:
    """A batch of one tab's rows, sorted here (``done``) or being sorted by ``helper``;
    or a whole response (``raw``, unparsed) being parsed and sorted by ``helper``."""

    tab: int  # index into SheetReading.tabs
    start: int  # sheet row number of rows[0]
    # The cells of each row; of a batch a helper parsed, only those to read carefully.
    rows: Sequence[list[Any]] | Mapping[int, list[Any]]
    helper: convert.Helper | None
    done: convert.Sorted | None = None
    raw: RawChunk | None = None

    def ready(self) -> bool:
        """Whether the batch can be finished without waiting for its helper."""
        return self.helper is None or self.helper.answered()


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
    # (index into ``tabs``, block): every tab's rows, one tab after the other.
    blocks: Iterable[tuple[int, SheetBlock]]
    progress: Progress
    # Per tab, {property number: source_hash} of the listings the table holds there,
    # active: a row with those very cells is trusted, not validated. Set before reading.
    known: Mapping[str | None, Mapping[str, str]] = field(default_factory=dict)
    # Only these property numbers (a selective sync); the others are neither validated
    # nor returned. None: every row.
    only: frozenset[str] | None = None
    table: ListingsTable = LISTINGS
    # Sheet-fed columns this run leaves as the table holds them (their header is missing
    # and --allow-missing-columns was given): left out of every body and its hash.
    omit: frozenset[str] = frozenset()
    warnings: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    rows_seen: int = 0
    # Rows validated here before helpers take over, and how many helpers (None: one
    # per spare core; see convert.Helpers).
    convert_here: int = CONVERT_HERE
    helpers: int | None = None
    helped: int = 0  # rows handed to helpers (their failures were sorted here again)
    # Helpers started before the reading knew its shapes (see convert.Early).
    early: convert.Early | None = None

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

    def close(self) -> None:
        """Stop fetching rows ahead (a reading never iterated to its end)."""
        close = getattr(self.blocks, "close", None)
        if close is not None:
            close()

    def batches(self) -> Iterator[ReadBatch]:
        """Read the rows, a batch of one tab at a time (empty rows and bad ones left out).

        Once the reading has had many rows to validate, batches are sorted and converted
        by helper processes (``convert.Helpers``) while this one reads on; they come out
        in sheet order either way, and the same.
        """
        omit = self.omit | self.unused
        shapes = [
            convert.TabShape(t.header_map, self.table, omit, self.known.get(t.tab) or {}, self.only)
            for t in self.tabs
        ]
        converters = [convert.Converter(shape) for shape in shapes]
        helpers = convert.Helpers(
            shapes, after=self.convert_here, count=self.helpers, early=self.early
        )
        # Batches begun and not yet handed on: (tab index, first row, rows, helper, sorted).
        pending: deque[_Pending] = deque()
        most = 4 * convert.DEPTH * max(1, helpers.count)
        try:
            for index, block in self.blocks:
                if block.raw is not None:
                    # A whole response to parse: a helper's, if one has room (it is
                    # started for this); else parsed and read here.
                    raw = block.raw
                    helper = helpers.take(now=True, batches=-(-raw.asked // READ_BATCH))
                    if helper is not None and helper.send(
                        convert.Response(index, raw.body, raw.check)
                    ):
                        pending.append(_Pending(index, block.start, {}, helper, raw=raw))
                        while pending and (pending[0].ready() or len(pending) > most):
                            yield from self._hand_on(pending.popleft(), converters)
                        continue
                    block = SheetBlock(block.start, raw.rows())
                for at in range(0, len(block.rows), READ_BATCH):
                    rows = block.rows[at : at + READ_BATCH]
                    self._count(len(rows))
                    helper = helpers.take()
                    if helper is not None and helper.send((index, rows)):
                        self.helped += len(rows)
                        pending.append(_Pending(index, block.start + at, rows, helper))
                    else:
                        done = converters[index](rows)
                        helpers.validated += len(done.todo)
                        pending.append(_Pending(index, block.start + at, rows, None, done))
                    # Hand on what is done; wait for a helper only when far ahead of it.
                    while pending and (pending[0].ready() or len(pending) > most):
                        yield from self._hand_on(pending.popleft(), converters)
            while pending:
                yield from self._hand_on(pending.popleft(), converters)
        finally:
            helpers.close()
            if helpers.started:
                log.debug(
                    "%d of %d rows sorted by %d helper process(es)",
                    self.helped,
                    self.rows_seen,
                    len(helpers.started),
                )

    def _hand_on(self, batch: _Pending, converters: list[convert.Converter]) -> Iterator[ReadBatch]:
        """Yield the batch's rows, or the rows of each batch of a response a helper read."""
        if batch.raw is None:
            yield self._finish(batch, converters)
            return
        assert batch.helper is not None
        parts: list[convert.Part] | str | None = batch.helper.receive()
        if not isinstance(parts, list):  # handed back, or its helper failed: read it here
            rows = batch.raw.rows()
            for at in range(0, len(rows), READ_BATCH):
                cells = rows[at : at + READ_BATCH]
                self._count(len(cells))
                done = converters[batch.tab](cells)
                yield self._finish(
                    _Pending(batch.tab, batch.start + at, cells, None, done), converters
                )
            return
        start = batch.start
        for part in parts:
            self._count(part.size)
            self.helped += part.size
            finished = _Pending(batch.tab, start, part.careful, None, part.sorted)
            yield self._finish(finished, converters, count=part.size)
            start += part.size

    def _count(self, rows: int) -> None:
        self.progress.advance(rows)
        self.rows_seen += rows

    def _finish(
        self, batch: _Pending, converters: list[convert.Converter], *, count: int | None = None
    ) -> ReadBatch:
        """Make a batch's rows from what sorting it found; read the doubtful ones carefully.

        ``count``: the batch's rows, when ``batch.rows`` holds only the careful ones.
        """
        converter = converters[batch.tab]
        done = batch.done
        if batch.helper is not None:
            done = batch.helper.receive()
        if done is None:  # its helper failed: sort it here
            assert isinstance(batch.rows, list)
            done = converter(batch.rows)
        rows, tab = batch.rows, self.tabs[batch.tab].tab
        digests, numbers, todo = done.digests, done.numbers, done.todo
        dropped = set(done.dropped)
        count = len(rows) if count is None else count
        # One int object per row number, shared by the batch, its ValidRow and the plan's
        # index of places (a range makes a new one each time it is indexed).
        numbered = list(range(batch.start, batch.start + count))
        valid: list[ValidRow | None] = [None] * count
        if todo:
            bodies = done.bodies
            careful = [k for k, body in enumerate(bodies) if body is None]
            made: list[ValidRow | None] = list(
                map(
                    ValidRow,
                    # A row without a number yet is read carefully below, and kept only
                    # with the number that read finds.
                    cast(list[str], [numbers[i] for i in todo]),
                    [numbered[i] for i in todo],
                    [b"" if body is None else body for body in bodies],
                    [digests[i] for i in todo],
                    repeat(tab),
                )
            )
            for k in careful:  # not plainly valid: read the careful way, for what it says
                i = todo[k]
                row = made[k] = self._carefully(
                    converter.reader, rows[i], numbered[i], tab, digests[i]
                )
                if row is None:
                    dropped.add(i)
                else:
                    numbers[i] = row.number
            for i, made_row in zip(todo, made, strict=True):
                valid[i] = made_row
        # Every row left has its number: one without was read carefully, and kept only
        # if that read found one.
        if not dropped:
            return ReadBatch(tab, numbered, cast(list[str], numbers), valid)
        keep = [i for i in range(count) if i not in dropped]
        return ReadBatch(
            tab,
            [numbered[i] for i in keep],
            [cast(str, numbers[i]) for i in keep],
            [valid[i] for i in keep],
        )

    def _carefully(
        self, reader: RowReader, cells: list[Any], number: int, tab: str, digest: str
    ) -> ValidRow | None:
        """Read one row with ``RowReader.read``; None for an empty or bad row."""
        result = reader.read(cells, number)
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
            else:
                self.rows_seen -= 1  # an empty row is not a row of the sheet's listings
            return None
        return ValidRow(values[self.table.key], number, canonical_values(values), digest, tab)


def _blocks(
    data: SheetData, header_map: mapping.HeaderMap, table: ListingsTable, raw: bool
) -> Iterator[SheetBlock]:
    """Return the tab's rows, with its key and text columns as the sheet shows them.

    A key typed as a number in a column formatted 00000 is the key 00123, not 123; a
    date typed into notes is the date shown, not its serial number. Columns kept in
    extra show dates as the sheet does, and keep plain numbers as numbers. ``raw``:
    responses may come unparsed, for helper processes to parse (SheetBlock.raw).
    """
    if data.shown is None:
        return data.rows
    kinds = table.columns
    text = frozenset(
        i for i, c in header_map.columns.items() if c == table.key or kinds.get(c) == "text"
    )
    return data.shown(text, frozenset(header_map.extra), raw=raw)


def _tagged(
    sheets: Sequence[SheetData], tabs: Sequence[TabReading], table: ListingsTable
) -> Iterator[tuple[int, SheetBlock]]:
    """Yield every tab's blocks in turn, each with the index of its tab."""
    # Parsing a response takes a third of reading its rows when none changed: worth
    # leaving to a helper process where one may run (a spare core).
    raw = convert.cores() > 1
    for index, (data, tab) in enumerate(zip(sheets, tabs, strict=True)):
        for block in _blocks(data, tab.header_map, table, raw):
            yield index, block


def read_listings(
    source: SheetSource,
    aliases: dict[str, str],
    progress: Progress,
    table: ListingsTable = LISTINGS,
) -> SheetReading:
    """Open the sheet and map each tab's header now; return the rows to read lazily.

    Set ``known`` (and ``only``) on the result before reading its batches. The rows are
    fetched ahead from now on: ``close`` the result if its batches will not be read.
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
        blocks=Prefetched(_tagged(sheets, tabs, table), depth=PREFETCH_BLOCKS, batch=1),
        progress=progress,
        table=table,
        warnings=[w for t in tabs for w in t.header_map.warnings],
    )
