"""Read one sheet row into a listing: per-column readers compiled once per run.

``RowReader`` is built from the run's header map and table declaration: for each
sheet-fed column, where its cell is and which coercer (``mapping.COERCERS``) reads
it. Reading a row is then one call per cell, no model validation: every coercer
already returns the column's type or raises ``CellError`` with the reason. A
formula error reads as None with a warning, except in the key column, where it is
a problem like any bad cell. Every bad cell of a row is reported, with the raw value.

The wire form is a JSON object of the sheet-fed columns and ``extra``; its
canonical bytes (sorted keys, no spaces) are what ``content_hash`` hashes and, with
the bookkeeping columns spliced in, what is sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

import orjson

from .mapping import (
    COERCERS,
    CellError,
    FormulaError,
    HeaderMap,
    coerce_extra,
    coerce_key,
    column_letter,
    decimal_text,
    is_blank,
)
from .schema import LISTINGS, ColumnKind, ListingsTable

# Sorted keys, no spaces, UTF-8: byte for byte what json.dumps(sort_keys=True,
# separators=(",", ":"), ensure_ascii=False) gave before, 4x faster. NaN and infinity
# never get here (the coercers refuse them).
_SORTED: Final = orjson.OPT_SORT_KEYS
_STANDARD: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def json_decimal(value: Decimal) -> int | float | str:
    """Return ``value`` as a JSON number when that is exact, else as canonical text.

    PostgREST reads a JSON number into numeric digit for digit and returns numeric
    as a number, so 120.5 goes and comes back as 120.5; 120.50 and 120.5 are one value.
    """
    text = decimal_text(value)
    if "." not in text:
        return int(text)
    number = float(text)
    # JSON writes a float as its repr; keep it only if that repr is exactly our digits.
    return number if repr(number) == text else text


def _iso(value: date | datetime) -> str:
    return value.isoformat()


# How a column's value is written in JSON, where it is not already a JSON type.
TO_JSON: Final[dict[ColumnKind, Callable[[Any], Any]]] = {
    "numeric": json_decimal,
    "date": _iso,
    "timestamptz": _iso,
}


_MEMO_SIZE: Final = 8192
_HASHABLE: Final = frozenset({str, int, float, bool})


def _remembered(
    coerce: Callable[[object], object], to_json: Callable[[Any], Any] | None
) -> Callable[[object], object]:
    """Return ``coerce`` then ``to_json`` as one reader with a bounded memo.

    Sheets repeat the same types, prices, areas, dates and flags down thousands of
    rows: a dict hit is several times cheaper than parsing and converting again. The
    key has the cell's type too (1, 1.0, True and "1" read differently); errors are
    not remembered.
    """
    memo: dict[tuple[type, object], object] = {}

    def read(raw: object) -> object:
        cls = raw.__class__
        if cls not in _HASHABLE:
            value = coerce(raw)
            return to_json(value) if value is not None and to_json is not None else value
        key = (cls, raw)
        try:
            return memo[key]
        except KeyError:
            pass
        value = coerce(raw)
        if value is not None and to_json is not None:
            value = to_json(value)
        if len(memo) >= _MEMO_SIZE:
            memo.clear()  # cheaper than LRU bookkeeping; refills from the next rows
        memo[key] = value
        return value

    return read


def canonical_json(row: Mapping[str, Any], keys: Sequence[str] = LISTINGS.hashed_columns) -> bytes:
    """Return the canonical JSON (UTF-8) of the ``keys`` of ``row``.

    Canonical: sorted keys, no spaces; other keys of ``row`` (content_hash,
    synced_at...) are left out. This is exactly what ``content_hash`` hashes.
    ``keys`` (default: the sheet-fed columns and extra) narrows it to the columns a
    run writes (a column without header is not).
    """
    return canonical_values({key: row[key] for key in keys})


def canonical_values(values: dict[str, Any]) -> bytes:
    """Return the canonical JSON of ``values`` as ``RowReader`` returns them (all its keys)."""
    try:
        # orjson returns its bytes in an oversized block (4 KB and more for a 600-byte
        # row); a copy of the exact size keeps 100,000 planned rows at 60 MB, not 400.
        return bytes(memoryview(orjson.dumps(values, option=_SORTED)))
    except TypeError:
        # orjson stops at 64-bit integers; a longer number kept in extra is still a
        # number, written as the standard library writes it (the same canonical form).
        return _STANDARD.encode(values).encode("utf-8")


def content_hash(row: Mapping[str, Any]) -> str:
    """Return the sha256 hex of ``canonical_json(row)``: the same listing, the same hash."""
    return hashlib.sha256(canonical_json(row)).hexdigest()


def formula_warning(row: int | None, column: str, code: str) -> str:
    """Describe a formula error that was read as an empty cell."""
    where = f"Row {row}, column {column!r}" if row is not None else f"Column {column!r}"
    return f"{where}: formula error {code} read as empty"


@dataclass(frozen=True)
class RowProblem:
    """Why one sheet row (or one of its cells) could not be synced."""

    row: int  # 1-based sheet row number
    property_number: str | None
    column: str | None  # table column name, or header text for an extra column
    message: str
    value: object | None  # the raw cell value, for the report
    tab: str | None = None  # the sheet tab of ``row`` (a run may read several)

    def to_dict(self) -> dict[str, Any]:
        """Return the problem as a JSON-ready dict (NUL and lone surrogates escaped)."""
        from .sanitize import clean

        return clean(asdict(self))


def with_value(reason: str, raw: object) -> str:
    """Name the raw cell value in the message, so every report shows what to fix."""
    if raw is None or str(raw) in reason:
        return reason
    return f"{reason}; the cell holds {raw!r}"


@dataclass(frozen=True)
class ReadResult:
    """One row read: its values (None if empty or invalid), problems and warnings."""

    values: dict[str, Any] | None
    problems: list[RowProblem]
    warnings: list[str]


EMPTY: Final = ReadResult(None, [], [])


class RowReader:
    """Read rows under one header map into the values of ``table``'s sheet-fed columns.

    ``wire``: values as JSON types (numeric as exact JSON numbers, dates as ISO text),
    ready for ``canonical_json``; otherwise as the coercers return them.
    ``omit``: columns left out (not written this run).
    """

    def __init__(
        self,
        header_map: HeaderMap,
        table: ListingsTable = LISTINGS,
        *,
        omit: frozenset[str] = frozenset(),
        wire: bool = True,
    ) -> None:
        where = {column: index for index, column in header_map.columns.items()}
        self.key = table.key
        self.key_index = where[table.key]
        self.extra_column = table.extra
        read = [
            name
            for name in table.columns
            if name != table.key and name not in omit and name not in header_map.unused
        ]
        self.keys: tuple[str, ...] = (table.key, *read, table.extra)
        # A row's values start from this (None where no header maps): most rows fill it.
        self.template: dict[str, Any] = dict.fromkeys(self.keys)
        kinds = table.columns
        # Parallel lists, for a tight loop: cell index, column, reader, JSON form.
        present = [name for name in read if name in where]
        self.indices = [where[name] for name in present]
        self.names = present
        if wire:  # each cell read and put in JSON form in one remembered step
            self.coercers = [
                _remembered(COERCERS[kinds[name]], TO_JSON.get(kinds[name])) for name in present
            ]
        else:
            self.coercers = [COERCERS[kinds[name]] for name in present]
        self.extra = list(header_map.extra.items())
        self.unheaded = sorted(header_map.blank)
        self.width = header_map.width
        # A row at least this wide has every mapped cell: no bounds check per cell.
        self.full_width = max((*self.indices, *(i for i, _ in self.extra), self.key_index)) + 1

    def read(self, cells: Sequence[object], row: int) -> ReadResult:
        """Read one row; a row with no data at all is ``EMPTY``."""
        for cell in cells:
            if not is_blank(cell):
                break
        else:
            return EMPTY
        width = len(cells)
        warnings: list[str] = []
        failures: list[tuple[str, str, object]] = []

        key_index = self.key_index
        raw_key = cells[key_index] if key_index < width else None
        number: str | None = None
        try:
            number = coerce_key(raw_key)
            if number is None:
                failures.append((self.key, with_value("missing property number", raw_key), raw_key))
        except FormulaError as exc:
            # A listing cannot exist without its key: a problem, not a warning.
            reason = f"missing property number: the cell holds formula error {exc.code}"
            failures.append((self.key, with_value(reason, raw_key), raw_key))
        except CellError as exc:
            failures.append((self.key, with_value(str(exc), raw_key), raw_key))

        values = self.template.copy()
        values[self.key] = number
        if width < self.full_width:  # Sheets leaves out a row's trailing empty cells
            cells = [*cells, *([None] * (self.full_width - width))]
        for index, name, coerce in zip(self.indices, self.names, self.coercers, strict=True):
            raw = cells[index]
            if raw is None:
                continue
            try:
                value = coerce(raw)
            except FormulaError as exc:
                warnings.append(formula_warning(row, name, exc.code))
                continue
            except CellError as exc:
                failures.append((name, with_value(str(exc), raw), raw))
                continue
            values[name] = value

        extra: dict[str, Any] = {}
        for index, header in self.extra:
            raw = cells[index]
            if raw is None:
                continue
            try:
                value = coerce_extra(raw)
            except FormulaError as exc:
                warnings.append(formula_warning(row, header, exc.code))
                continue
            except CellError as exc:
                failures.append((header, with_value(str(exc), raw), raw))
                continue
            if value is not None:
                extra[header] = value
        values[self.extra_column] = extra

        if self.unheaded or width > self.width:
            self._warn_unheaded(cells[:width], row, warnings)

        if failures:
            problems = [RowProblem(row, number, c, reason, raw) for c, reason, raw in failures]
            return ReadResult(None, problems, warnings)
        return ReadResult(values, [], warnings)

    def _warn_unheaded(self, cells: Sequence[object], row: int, warnings: list[str]) -> None:
        width = len(cells)
        indices = [i for i in self.unheaded if i < width]
        indices.extend(range(self.width, width))
        for index in indices:
            if not is_blank(cells[index]):
                warnings.append(
                    f"Row {row}, column {column_letter(index)} has data but no header; "
                    "the value is ignored."
                )
