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
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from itertools import zip_longest
from typing import Any, Final

import orjson

from .mapping import (
    _INT8_MAX,
    COERCERS,
    CellError,
    FormulaError,
    HeaderMap,
    clean_cell,
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


_NULL: Final = b"null"


_encode_text: Final = json.encoder.encode_basestring  # the C encoder, without ensure_ascii


def json_text(value: Any) -> bytes:
    """Return ``value``'s canonical JSON, byte for byte what ``canonical_values`` writes.

    Text, whole numbers and floats without an exponent are written directly (the same
    bytes as orjson, checked for every code point and for floats in tests): orjson's
    own result costs a few microseconds more when kept, as every cell's is here.
    """
    cls = value.__class__
    if cls is str:
        return _encode_text(value).encode()
    if cls is int and -_WHOLE_LIMIT < value < _WHOLE_LIMIT:
        return b"%d" % value
    if cls is float:
        text = repr(value)  # a float stays a float: 120.0, not 120
        if "e" not in text and "n" not in text:
            return text.encode()
    return bytes(memoryview(orjson.dumps(value, option=_SORTED)))


class _ColumnText:
    """One column's cells -> their canonical JSON text, remembered per distinct cell.

    The fast path of ``RowReader.bodies``: a cell seen before costs one dict lookup
    done in C (``map(dict.get, cells)``), a new one is read (``quick``, else coerce
    and JSON form) and encoded once. A column whose cells rarely repeat (addresses,
    prices) stops remembering after its first batch: storing them costs more than it
    saves. ``prefix`` goes before every encoded value (an extra member's
    ``,"name":``); ``blank`` is an empty cell's text. None marks a cell the row's
    careful read must see (an error, a formula error, a number orjson refuses).
    """

    __slots__ = ("_blank", "_others", "_prefix", "_quick", "_read", "_remember", "_texts")

    def __init__(
        self,
        read: Callable[[object], object],
        prefix: bytes,
        blank: bytes,
        quick: Callable[[object], bytes | None] | None = None,
    ) -> None:
        self._read = read
        self._quick = quick
        self._prefix = prefix
        self._blank = blank
        self._remember = True
        # Text cells by value; None (an empty cell) is never a str, so it can share it.
        self._texts: dict[object, bytes] = {None: blank}
        # Numbers and flags by (type, value): 1, 1.0 and True are equal dict keys.
        self._others: dict[tuple[type, object], bytes] = {}

    def __call__(self, cells: Sequence[object]) -> list[bytes | None]:
        if not self._remember:
            return self._each(cells)
        texts = self._texts
        out: list[bytes | None]
        try:
            out = list(map(texts.get, cells))
        except TypeError:  # an unhashable cell: read each the long way
            out = [None] * len(cells)
        if None not in out:  # every cell seen before: the common case once warmed up
            return out
        known = len(texts) + len(self._others)
        for index in [i for i, text in enumerate(out) if text is None]:
            out[index] = self._remembered(cells[index])
        learnt = len(self._texts) + len(self._others) - known  # less if the memo was cleared
        if len(cells) >= _LEARN_FROM and learnt > _MOSTLY_NEW * len(cells):
            self._remember = False
            self._texts = {None: self._blank}
            self._others = {}
        return out

    def _each(self, cells: Sequence[object]) -> list[bytes | None]:
        """Encode every cell, the quick form first: a column whose cells rarely repeat."""
        quick = self._quick
        if quick is None:
            return list(map(self._encode, cells))
        out = list(map(quick, cells))
        prefix = self._prefix
        if prefix:
            out = [None if text is None else prefix + text for text in out]
        if None in out:
            for index in [i for i, text in enumerate(out) if text is None]:
                out[index] = self._encode(cells[index])
        return out

    def _remembered(self, raw: object) -> bytes | None:
        cls = raw.__class__
        memo: dict[Any, bytes]
        key: Any
        if cls is str:
            memo = self._texts
            key = raw
        elif cls in _HASHABLE:
            memo = self._others
            key = (cls, raw)
        else:
            return self._encode(raw)
        text = memo.get(key)
        if text is None:
            text = self._encode(raw)
            if text is None or not self._remember:
                return text  # an error is not remembered: the careful read reports it
            if len(memo) >= _MEMO_SIZE:
                memo.clear()  # cheaper than LRU bookkeeping; refills from the next rows
                self._texts[None] = self._blank
            memo[key] = text
        return text

    def _encode(self, raw: object) -> bytes | None:
        if raw is None:
            return self._blank
        if self._quick is not None:
            text = self._quick(raw)
            if text is not None:
                return self._prefix + text if self._prefix else text
        try:
            value = self._read(raw)
            return self._blank if value is None else self._prefix + json_text(value)
        except (ValueError, TypeError):  # CellError; a lone surrogate; orjson's refusals
            return None


# A first batch at least this long, with more than this share of cells not seen
# before, turns a column's memo off.
_LEARN_FROM: Final = 500
_MOSTLY_NEW: Final = 0.8
_WHOLE_LIMIT: Final = 10**15  # whole numbers below this are written as they are


def _quick_number(raw: Any) -> bytes | None:
    """Write a number cell as coerce_numeric + json_decimal (or coerce_extra) would.

    A whole float is its integer (120.0 -> 120); another float without an exponent is
    written as it is (its repr is the exact decimal). Anything else: None.
    (``raw: Any``: the exact class is tested, which a type checker cannot follow.)
    """
    cls = raw.__class__
    if cls is float:
        if raw.is_integer():
            return b"%d" % raw if -_WHOLE_LIMIT < raw < _WHOLE_LIMIT else None
        text = repr(raw)
        return None if "e" in text or "n" in text else text.encode()
    if cls is int and -_WHOLE_LIMIT < raw < _WHOLE_LIMIT:
        return b"%d" % raw
    return None


def _quick_numeric(raw: Any) -> bytes | None:
    return _quick_numeric_text(raw) if raw.__class__ is str else _quick_number(raw)


# A plain area as typed: "120", "98.25", "98.25㎡", "98.25m²" (no sign, spaces or
# leading zeros; anything else takes the long way).
_PLAIN_AREA = re.compile(r"(0|[1-9][0-9]{0,14})(?:\.([0-9]{1,15}))?(?:㎡|m²|m2)?")


def _quick_numeric_text(raw: str) -> bytes | None:
    found = _PLAIN_AREA.fullmatch(raw)
    if found is None:
        return None
    whole, fraction = found.group(1, 2)
    fraction = (fraction or "").rstrip("0")
    if not fraction:
        return whole.encode()
    text = f"{whole}.{fraction}"
    # json_decimal: a float whose repr is exactly these digits, else the text itself.
    return text.encode() if repr(float(text)) == text else None


# A price as typed most often: "¥35,800,000", "35800000円", "3,580万円", "3,580万".
_PLAIN_YEN = re.compile(r"¥?([0-9]{1,3}(?:,[0-9]{3}){1,5}|[0-9]{1,18})(万)?円?")


def _quick_yen(raw: Any) -> bytes | None:
    cls = raw.__class__
    if cls is str:
        found = _PLAIN_YEN.fullmatch(raw)
        if found is None:
            return None
        raw = int(found[1].replace(",", "")) * (10_000 if found[2] else 1)
    elif cls is float and raw.is_integer():
        raw = int(raw)
    elif cls is not int:
        return None
    return b"%d" % raw if 0 <= raw <= _INT8_MAX else None


def _quick_text(raw: Any) -> bytes | None:
    """Write a text cell as coerce_text + json_text would; None for a blank or bad one."""
    if raw.__class__ is not str:
        return None
    try:
        text = clean_cell(raw)
    except CellError:
        return None
    return None if text is None else _encode_text(text).encode()


# Per column kind: its common cells written directly, else None (coerce, then JSON).
QUICK: Final[dict[ColumnKind, Callable[[object], bytes | None]]] = {
    "numeric": _quick_numeric,
    "yen": _quick_yen,
    "text": _quick_text,
}


def _members(*texts: bytes) -> bytes:
    """Return a JSON object from its ``,"name":value`` members (empty ones left out)."""
    return b"{%b}" % b"".join(texts)[1:]


def _reading(
    coerce: Callable[[object], object], to_json: Callable[[Any], Any] | None
) -> Callable[[object], object]:
    """Return ``coerce`` then ``to_json`` (where the value is not None) as one call."""
    if to_json is None:
        return coerce

    def read(raw: object) -> object:
        value = coerce(raw)
        return None if value is None else to_json(value)

    return read


def _key_or_none(raw: object) -> str | None:
    try:
        return coerce_key(raw)
    except CellError:
        return None


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
_UNREAD: Final = object()  # a cell RowReader.read could not read (warned or failed)


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
        if wire:  # each cell read and put in JSON form in one call
            self.coercers = [
                _reading(COERCERS[kinds[name]], TO_JSON.get(kinds[name])) for name in present
            ]
        else:
            self.coercers = [COERCERS[kinds[name]] for name in present]
        self.extra = list(header_map.extra.items())
        self.unheaded = sorted(header_map.blank)
        self.width = header_map.width
        # A row at least this wide has every mapped cell: no bounds check per cell.
        self.full_width = max((*self.indices, *(i for i, _ in self.extra), self.key_index)) + 1
        if wire:
            self._compile_bodies(kinds)

    def _compile_bodies(self, kinds: Mapping[str, ColumnKind]) -> None:
        """Build what ``bodies`` needs: a reader per column and the row's JSON template.

        The canonical JSON of a row is a fixed frame (its sorted keys) around each
        column's value: ``b'{"address":%b,...}' % (texts...)``, filled for a whole
        batch in C. Columns no header maps are ``null`` in the frame itself.
        """
        columns = {
            name: (index, _ColumnText(read, b"", _NULL, QUICK.get(kinds[name])))
            for index, name, read in zip(self.indices, self.names, self.coercers, strict=True)
        }
        extra = sorted((name, index) for index, name in self.extra)
        self._extra_columns = [
            (index, _ColumnText(coerce_extra, b"," + json_text(name) + b":", b"", _quick_number))
            for name, index in extra
        ]
        # Two extra columns of one name would be one member: leave such a sheet to read().
        self._fast = len({name for name, _ in extra}) == len(extra)
        frame: list[bytes] = []
        # Per %b of the frame: the key (-1), extra (-2), or a sheet column index.
        self._slots: list[tuple[int, _ColumnText | None]] = []
        for name in sorted(self.keys):
            member = json_text(name).replace(b"%", b"%%") + b":"
            if name == self.key:
                frame.append(member + b"%b")
                self._slots.append((-1, None))
            elif name == self.extra_column:
                frame.append(member + (b"%b" if self._extra_columns else b"{}"))
                if self._extra_columns:
                    self._slots.append((-2, None))
            elif name in columns:
                frame.append(member + b"%b")
                self._slots.append(columns[name])
            else:
                frame.append(member + _NULL)
        self._frame = b"{" + b",".join(frame) + b"}"

    def numbers(self, rows: Sequence[Sequence[object]]) -> list[str | None]:
        """Return each row's property number; None where it is blank or unreadable."""
        k = self.key_index
        return list(map(_key_or_none, [r[k] if len(r) > k else None for r in rows]))

    def bodies(
        self, rows: Sequence[Sequence[object]], numbers: Sequence[str | None]
    ) -> list[bytes | None]:
        """Return the canonical JSON of each row, as ``canonical_values(read(row).values)``.

        ``numbers``: from ``numbers(rows)``. A row that is not plainly valid (no key, a
        bad cell, a formula error, data without a header) is None: ``read`` it, for its
        problems and warnings. Column by column, so each cell costs a dict lookup.
        """
        count = len(rows)
        if not count or not self._fast:
            return [None] * count
        columns: list[Sequence[object]] = list(zip_longest(*rows))
        if len(columns) < self.full_width:
            columns.extend([(None,) * count] * (self.full_width - len(columns)))
        careful = {i for i, number in enumerate(numbers) if number is None}
        widths = list(map(len, rows))
        if max(widths) > self.width:  # cells beyond the header: read() warns
            careful.update(i for i, width in enumerate(widths) if width > self.width)
        for index in self.unheaded:
            careful.update(i for i, raw in enumerate(columns[index]) if not is_blank(raw))

        def checked(texts: list[bytes | None]) -> list[bytes | None]:
            if None in texts:
                for i, text in enumerate(texts):
                    if text is None:
                        careful.add(i)
                        texts[i] = b""
            return texts

        values: list[list[bytes | None]] = []
        for index, column in self._slots:
            if column is not None:
                values.append(checked(column(columns[index])))
            elif index == -1:
                values.append(list(map(json_text, numbers)))
            else:
                members = [checked(c(columns[i])) for i, c in self._extra_columns]
                values.append(list(map(_members, *members)))
        bodies: list[bytes | None] = list(map(self._frame.__mod__, zip(*values, strict=True)))
        for i in careful:
            bodies[i] = None
        return bodies

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

        def read_cell(coerce: Callable[[object], object], raw: object, column: str) -> object:
            """Read one cell; a formula error warns, a bad cell fails the row: _UNREAD."""
            try:
                return coerce(raw)
            except FormulaError as exc:
                warnings.append(formula_warning(row, column, exc.code))
            except CellError as exc:
                failures.append((column, with_value(str(exc), raw), raw))
            return _UNREAD

        for index, name, coerce in zip(self.indices, self.names, self.coercers, strict=True):
            raw = cells[index]
            if raw is not None and (value := read_cell(coerce, raw, name)) is not _UNREAD:
                values[name] = value

        extra: dict[str, Any] = {}
        for index, header in self.extra:
            raw = cells[index]
            value = None if raw is None else read_cell(coerce_extra, raw, header)
            if value is not None and value is not _UNREAD:  # an empty cell is left out
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
