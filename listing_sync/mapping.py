"""Map sheet headers to table columns and read sheet cells as column values.

Pure: the only I/O is reading the mapping file in ``load_aliases``.

Headers map by name, never by position, so a moved column never shifts data.
``normalize_header`` makes "Land Area m2", "land-area-m2" and "LAND_AREA_M2" the
same name; the mapping file named by ``SYNC_MAPPING`` adds aliases. It is TOML in
either of two forms (they may be mixed in one file)::

    "物件番号" = "property_number"
    "価格" = "price"

    [aliases]
    "Walk (min)" = "walk_minutes"

Alias keys are normalized like headers; values must name a sheet-fed column of
the table (``schema.LISTINGS``). A header that is neither a column name nor an alias keeps its
values in ``extra``, keyed by the header text as typed (trimmed).

Cells are read by one coercer per column type, each ``(value) -> value or None``.
Blank cells read as None. A cell that cannot be read raises ``CellError`` with a
short reason; a spreadsheet formula error (``#N/A``, ``#REF!``, ...) raises its
subclass ``FormulaError``, which callers turn into None plus a warning.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import math
import re
import tomllib
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final, TypeVar

from .errors import ConfigError, DataError
from .sanitize import clean_text
from .schema import LISTINGS, ColumnKind, ListingsTable

FORMULA_ERRORS: Final = frozenset(
    {"#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?", "#NUM!", "#NULL!", "#ERROR!"}
)

_T = TypeVar("_T")

_INT4_MIN: Final = -(2**31)
_INT4_MAX: Final = 2**31 - 1
_INT8_MAX: Final = 2**63 - 1


class CellError(ValueError):
    """A cell cannot be read as its column's type; the message says why, briefly."""


class FormulaError(CellError):
    """The cell holds a spreadsheet formula error; read it as empty and warn."""

    def __init__(self, code: str) -> None:
        super().__init__(f"formula error {code}")
        self.code = code


# --- headers ------------------------------------------------------------------

# Hyphen-like dashes too: NFKC leaves U+2010..U+2015 and U+2212 alone.
_SEPARATORS = re.compile(r"[\s\-_\u2010-\u2015\u2212]+")


def normalize_header(text: str) -> str:
    """Return ``text`` as a column-like name: NFKC, trimmed, lower case, ``_`` separators."""
    text = unicodedata.normalize("NFKC", text).strip().lower()
    return _SEPARATORS.sub("_", text)


def column_letter(index: int) -> str:
    """Return the A1-style letters of the 0-based column ``index`` (0 -> A, 26 -> AA)."""
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


_COLUMN_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _column_name(value: object, table: ListingsTable | None) -> str | None:
    if not isinstance(value, str):
        return None
    name = normalize_header(value)
    if table is None:  # the table's own columns are not known yet: any column name will do
        plausible = _COLUMN_NAME.fullmatch(name) and name not in LISTINGS.managed
        return name if plausible else None
    return name if name in table.columns else None


def load_aliases(path: Path | None, table: ListingsTable | None = LISTINGS) -> dict[str, str]:
    """Read the SYNC_MAPPING file into {normalized header: table column}.

    ``table`` None checks only that each entry names a plausible column: before a run
    has read which columns the table has (``ListingsStore.discover``).
    """
    if path is None:
        return {}
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"SYNC_MAPPING: cannot read {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"SYNC_MAPPING: {path} is not valid TOML: {reason}") from exc

    pairs: list[tuple[str, object]] = []
    for key, value in doc.items():
        if key == "aliases" and isinstance(value, dict):
            pairs.extend(value.items())
        else:
            pairs.append((key, value))

    aliases: dict[str, str] = {}
    origin: dict[str, str] = {}
    for key, value in pairs:
        column = _column_name(value, table)
        if column is None:
            known = ", ".join((table or LISTINGS).columns)
            raise ConfigError(
                f"SYNC_MAPPING: {path}: entry {key!r} = {value!r} must name one of the "
                f"sheet-fed columns: {known}"
            )
        name = normalize_header(key)
        if not name:
            raise ConfigError(f"SYNC_MAPPING: {path}: entry {key!r} has a blank header name")
        if aliases.get(name, column) != column:
            raise ConfigError(
                f"SYNC_MAPPING: {path}: entries {origin[name]!r} and {key!r} are the same "
                f"header but map to {aliases[name]!r} and {column!r}"
            )
        aliases[name] = column
        origin[name] = key
    return aliases


@dataclass(frozen=True)
class HeaderMap:
    """Where each sheet column goes, decided once per run from the header row."""

    columns: dict[int, str]  # column index -> table column
    extra: dict[int, str]  # column index -> header text, the key in extra
    blank: frozenset[int]  # indices of blank headers
    width: int  # number of header cells; data to the right of it has no header
    warnings: list[str] = field(default_factory=list)
    # Sheet-fed columns no header maps to; the planner decides whether that is fatal.
    missing: tuple[str, ...] = ()
    # Columns the office added that no header maps to: not synced, never "missing".
    unused: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()  # the header cells as text, trimmed


def _header_text(value: object) -> str:
    # A header names an extra key, a warning and an error message: NUL or a lone
    # surrogate in it would fail every run, so it is escaped (still recognisable).
    if value is None:
        return ""
    if isinstance(value, str):
        return clean_text(value.strip())
    try:
        return coerce_text(value) or ""
    except CellError:
        return clean_text(str(value))


def build_header_map(
    headers: Sequence[object],
    aliases: Mapping[str, str],
    *,
    tab: str,
    table: ListingsTable = LISTINGS,
) -> HeaderMap:
    """Map header cells to table columns by name; raise DataError if the sheet is unusable."""
    lookup: dict[str, str] = {}
    for key, value in aliases.items():
        column = _column_name(value, table)
        if column is None:
            raise ConfigError(f"SYNC_MAPPING: alias {key!r} = {value!r} names no sheet-fed column")
        lookup[normalize_header(key)] = column

    columns: dict[int, str] = {}
    extra: dict[int, str] = {}
    blank: list[int] = []
    warnings: list[str] = []
    mapped_at: dict[str, int] = {}
    extra_at: dict[str, int] = {}
    duplicates: dict[str, list[int]] = {}
    texts = [_header_text(h) for h in headers]

    for index, text in enumerate(texts):
        if not text:
            blank.append(index)
            continue
        name = normalize_header(text)
        # An explicit alias wins over a same-named column.
        column = lookup.get(name) or (name if name in table.columns else None)
        where = column_letter(index)
        if column is not None:
            if column in mapped_at:
                first = mapped_at[column]
                raise DataError(
                    f"Headers {texts[first]!r} (column {column_letter(first)}) and {text!r} "
                    f"(column {where}) in tab {tab!r} both map to {column!r}. "
                    "Rename or remove one, or fix SYNC_MAPPING."
                )
            mapped_at[column] = index
            columns[index] = column
            continue
        if text in extra_at:
            duplicates.setdefault(text, [extra_at[text]]).append(index)
        extra_at[text] = index
        extra[index] = text
        if name in table.managed:
            warnings.append(
                f"Header {text!r} (column {where}) in tab {tab!r} names a column listing-sync "
                "manages itself; its values are kept in extra instead."
            )

    if table.key not in mapped_at:
        found = ", ".join(t for t in texts if t) or "(no headers)"
        raise DataError(
            f"Header {table.key!r} not found in tab {tab!r}; found: {found}. "
            "Add the column or map it in SYNC_MAPPING."
        )
    # Two columns with one unmapped header: keep both, told apart by their letters, so
    # neither column's values are lost or overwritten by the other in extra.
    for text, indices in duplicates.items():
        names = [f"{text} ({column_letter(i)})" for i in indices]
        for index, name in zip(indices, names, strict=True):
            extra[index] = name
        warnings.append(
            f"Headers {text!r} in tab {tab!r} appear {len(indices)} times and match no table "
            f"column; their values are kept in extra as {', '.join(map(repr, names))}."
        )
    return HeaderMap(
        columns=columns,
        extra=extra,
        blank=frozenset(blank),
        width=len(texts),
        warnings=warnings,
        missing=tuple(c for c in table.columns if c not in mapped_at and c not in table.optional),
        unused=tuple(c for c in table.columns if c not in mapped_at and c in table.optional),
        headers=tuple(texts),
    )


# --- cells --------------------------------------------------------------------


def is_blank(value: object) -> bool:
    """Tell whether a cell holds nothing (None, empty or whitespace-only text)."""
    return value is None or (isinstance(value, str) and not value.strip())


def clean_cell(text: str) -> str | None:
    """Return ``text`` NFKC-normalized and trimmed, None if blank; raise on a formula error."""
    # ASCII is NFKC-stable: skip the normalization for the common case.
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate would break JSON and hashing later
            raise CellError("text is not valid Unicode") from None
    if "\x00" in text:  # PostgreSQL text cannot hold it (22P05): fail the cell, not a batch
        raise CellError("text holds a NUL character")
    text = text.strip()
    if not text:
        return None
    if text[0] == "#" and text in FORMULA_ERRORS:
        raise FormulaError(text)
    return text


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # more digits than int->str allows
        raise CellError("number too large") from None


def _float_text(value: float) -> str:
    if not math.isfinite(value):
        raise CellError("not a finite number")
    # The API sends a whole number typed in a cell as 123 or 123.0: both read "123".
    return str(int(value)) if value.is_integer() else repr(value)


def decimal_text(value: Decimal) -> str:
    """Return ``value`` in plain notation without trailing zeros (120.50 -> "120.5")."""
    text = str(value)
    if "E" in text:  # str() uses an exponent for 1E+2 or 1E-7; "f" never does, but is slower
        text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


_MISS: Final = object()
_MEMO_SIZE: Final = 8192


def _memoized(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """Wrap a pure parser of raw cell text with a bounded memo.

    Sheets repeat the same prices, dates, areas and flags down thousands of rows;
    a dict hit is several times cheaper than the regexes. Errors are not memoized.
    """
    memo: dict[str, _T] = {}

    def parse_text(raw: str) -> _T:
        value = memo.get(raw, _MISS)
        if value is _MISS:
            value = parse(raw)
            if len(memo) >= _MEMO_SIZE:
                memo.clear()  # cheaper than LRU bookkeeping; refills from the next rows
            memo[raw] = value
        return value  # type: ignore[return-value]

    return parse_text


def _finite(value: float | Decimal) -> bool:
    return value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)


def _unsupported(value: object) -> CellError:
    return CellError(f"unsupported cell value of type {type(value).__name__}")


def coerce_text(value: object) -> str | None:
    """Read a text cell."""
    if value is None:
        return None
    cls = value.__class__
    if cls is str:
        return clean_cell(value)  # type: ignore[arg-type]
    if cls is int:
        return _int_text(value)  # type: ignore[arg-type]
    if cls is float:
        return _float_text(value)  # type: ignore[arg-type]
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return clean_cell(str(value))
    if isinstance(value, int):
        return _int_text(int(value))
    if isinstance(value, float):
        return _float_text(float(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CellError("not a finite number")
        return decimal_text(value)
    if isinstance(value, date):
        return value.isoformat()
    raise _unsupported(value)


def coerce_key(value: object) -> str | None:
    """Read the property number: 123 and 123.0 -> "123"; text kept as typed, trimmed."""
    if isinstance(value, bool):
        raise CellError("a TRUE/FALSE cell is not a property number")
    if isinstance(value, date):
        raise CellError("a date is not a property number")
    return coerce_text(value)


# Whole numbers: "12", "1,234", "12.0", "徒歩12分" (walk minutes).
_INTEGER_RE = re.compile(
    r"(?:徒歩\s*)?([+-]?)([0-9]{1,3}(?:,[0-9]{3}){1,3}|[0-9]{1,12})(?:\.0+)?\s*分?"
)


def _integer_in_range(value: int) -> int:
    # The column is PostgreSQL integer: out of range would fail the whole batch.
    if not _INT4_MIN <= value <= _INT4_MAX:
        raise CellError("whole number out of range")
    return value


@_memoized
def _integer_from_text(raw: str) -> int | None:
    text = clean_cell(raw)
    if text is None:
        return None
    if text.isascii() and text.isdigit() and len(text) <= 12:
        return _integer_in_range(int(text))
    m = _INTEGER_RE.fullmatch(text)
    if m is None:
        raise CellError("not a whole number")
    number = int(m[2].replace(",", ""))
    return _integer_in_range(-number if m[1] == "-" else number)


def coerce_integer(value: object) -> int | None:
    """Read a whole-number cell (walk minutes)."""
    if value is None:
        return None
    cls = value.__class__
    if cls is int:
        return _integer_in_range(value)  # type: ignore[arg-type]
    if cls is float:
        if not (math.isfinite(value) and value.is_integer()):  # type: ignore[arg-type,attr-defined]
            raise CellError("not a whole number")
        return _integer_in_range(int(value))  # type: ignore[call-overload]
    if cls is str or isinstance(value, str):
        return _integer_from_text(str(value))
    if isinstance(value, bool):
        raise CellError("TRUE/FALSE is not a whole number")
    if isinstance(value, int | float | Decimal):
        if isinstance(value, float | Decimal) and not (_finite(value) and value == int(value)):
            raise CellError("not a whole number")
        return _integer_in_range(int(value))
    raise _unsupported(value)


_NUMBER = r"[+-]?(?:(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+)"
# NFKC has already turned "㎡" and "m²" into "m2".
_NUMERIC_RE = re.compile(rf"({_NUMBER})\s*(?:m2|m\^2|sqm|平米|平方メートル)?", re.IGNORECASE)


# The most digits a numeric cell may have (written out in plain notation). Far more
# than any area needs, and far below Python's 4,300-digit int-string limit, which
# would otherwise raise ValueError when the value is written out and fail the run.
MAX_NUMBER_DIGITS: Final = 1000


def _too_long(digits: int) -> CellError:
    return CellError(f"number too long ({digits} digits; at most {MAX_NUMBER_DIGITS})")


def _bounded(value: Decimal) -> Decimal:
    if value.is_finite():
        _sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)  # finite
        width = max(len(digits) + exponent, len(digits), -exponent)
        if width > MAX_NUMBER_DIGITS:
            raise _too_long(width)
    return value


@_memoized
def _numeric_from_text(raw: str) -> Decimal | None:
    text = clean_cell(raw)
    if text is None:
        return None
    if len(text) > MAX_NUMBER_DIGITS:  # checked before parsing: the cheap common case skips it
        digits = sum(c.isdigit() for c in text)
        if digits > MAX_NUMBER_DIGITS:
            raise _too_long(digits)
    # Fast path for plain "98.25" / "120"; Decimal() alone would also take "1_0" or "NaN".
    if text.isascii() and text.replace(".", "", 1).isdigit():
        return Decimal(text)
    m = _NUMERIC_RE.fullmatch(text)
    if m is None:
        raise CellError("not a number")
    return Decimal(m[1].replace(",", ""))


def coerce_numeric(value: object) -> Decimal | None:
    """Read a decimal cell (areas in m²) without float drift."""
    if value is None:
        return None
    cls = value.__class__
    if cls is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise CellError("not a finite number")
        # repr is the shortest text that reads back as this float: 120.5, not 120.5000000001.
        return Decimal(repr(value))
    if cls is int:
        return _bounded(Decimal(value))  # type: ignore[arg-type]
    if cls is str or isinstance(value, str):
        return _numeric_from_text(str(value))
    if isinstance(value, bool):
        raise CellError("TRUE/FALSE is not a number")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CellError("not a finite number")
        return _bounded(value)
    if isinstance(value, int):
        return _bounded(Decimal(int(value)))
    if isinstance(value, float):
        return coerce_numeric(float(value))
    raise _unsupported(value)


_YEN_NUMBER_RE = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3}){1,6}|[0-9]{1,20})(?:\.[0-9]{1,20})?")
_NOT_A_PRICE: Final = "not a price (e.g. 1,280万円 or ¥12,800,000)"


def _yen_in_range(value: int) -> int:
    if value < 0:
        raise CellError("price cannot be negative")
    if value > _INT8_MAX:  # the column is bigint
        raise CellError("price out of range")
    return value


@_memoized
def _yen_from_text(raw: str) -> int | None:
    text = clean_cell(raw)
    return None if text is None else _parse_yen(text)


def coerce_yen(value: object) -> int | None:
    """Read a price in whole yen: 1280万円 -> 12800000, ¥12,800,000 -> 12800000."""
    if value is None:
        return None
    cls = value.__class__
    if cls is int:
        return _yen_in_range(value)  # type: ignore[arg-type]
    if cls is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise CellError("not a finite number")
        if not value.is_integer():  # type: ignore[attr-defined]
            raise CellError("not a whole number of yen")
        return _yen_in_range(int(value))  # type: ignore[call-overload]
    if cls is str or isinstance(value, str):
        return _yen_from_text(str(value))
    if isinstance(value, bool):
        raise CellError("TRUE/FALSE is not a price")
    if isinstance(value, int | float | Decimal):
        if isinstance(value, float | Decimal) and not _finite(value):
            raise CellError("not a finite number")
        if value != int(value):
            raise CellError("not a whole number of yen")
        return _yen_in_range(int(value))
    raise _unsupported(value)


def _parse_yen(text: str) -> int:
    """Read "¥12,800,000", "12,800,000円", "1280万", "1,280万円", "1億2000万円", "1.5億"."""
    body = text
    negative = False
    if body[0] in "+-":
        negative = body[0] == "-"
        body = body[1:].lstrip()
    if body[:1] in ("¥", "\\"):  # NFKC made "￥" into "¥"
        body = body[1:].lstrip()
        if not negative and body[:1] in ("+", "-"):
            negative = body[0] == "-"
            body = body[1:].lstrip()
    if body.endswith("円"):
        body = body[:-1].rstrip()
    if body.isascii() and body.isdigit() and len(body) <= 20:  # the common plain amount
        amount = int(body)
    else:
        amount = _yen_units(body)
    if negative and amount:
        raise CellError("price cannot be negative")
    return _yen_in_range(amount)


def _yen_units(body: str) -> int:
    oku, has_oku, rest = body.partition("億")
    if not has_oku:
        oku, rest = "", body
    man, has_man, yen = rest.partition("万")
    if not has_man:
        man, yen = "", rest
    # Exact fraction arithmetic: 1.5億 is 150000000 yen, 1.23456789億 is not whole.
    total, scale = 0, 1
    bound = 0  # after a larger unit the smaller part must stay below it: "1億20000万" is a typo
    for part, unit, present in ((oku, 100_000_000, has_oku), (man, 10_000, has_man), (yen, 1, 1)):
        part = part.strip()
        if not part:
            if present and unit != 1:  # "万円" with no number
                raise CellError(_NOT_A_PRICE)
            continue
        if _YEN_NUMBER_RE.fullmatch(part) is None:
            raise CellError(_NOT_A_PRICE)
        whole, _, frac = part.replace(",", "").partition(".")
        numerator, denominator = int(whole + frac) * unit, 10 ** len(frac)
        if bound and numerator >= bound * denominator:
            raise CellError(_NOT_A_PRICE)
        bound = unit
        total = total * denominator + numerator * scale
        scale *= denominator
    if not bound:
        raise CellError(_NOT_A_PRICE)
    amount, remainder = divmod(total, scale)
    if remainder:
        raise CellError("not a whole number of yen")
    return amount


_EPOCH_ORDINAL: Final = date(1899, 12, 30).toordinal()  # Sheets serial day 0
_MAX_ORDINAL: Final = date.max.toordinal()
_ISO_DATE_RE = re.compile(
    r"([0-9]{4})([-/.])([0-9]{1,2})\2([0-9]{1,2})"
    r"(?:[T ][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?"
)
_JA_DATE_RE = re.compile(
    r"(?:([0-9]{4})|(令和|平成|昭和|大正|明治)\s*([0-9]{1,2}|元))"
    r"\s*年\s*([0-9]{1,2})\s*月\s*([0-9]{1,2})\s*日"
)
_ERA_DOT_DATE_RE = re.compile(r"([RHSTM])([0-9]{1,2})([./])([0-9]{1,2})\3([0-9]{1,2})", re.I)
# First Gregorian year of each era; NFKC has already turned "㋿" into "令和".
_ERAS: Final = {
    "令和": 2019,
    "平成": 1989,
    "昭和": 1926,
    "大正": 1912,
    "明治": 1868,
    "R": 2019,
    "H": 1989,
    "S": 1926,
    "T": 1912,
    "M": 1868,
}


def _from_serial(days: int) -> date:
    ordinal = _EPOCH_ORDINAL + days
    if not 1 <= ordinal <= _MAX_ORDINAL:
        raise CellError("date serial number out of range")
    return date.fromordinal(ordinal)


def _make_date(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise CellError("impossible date") from None


def _era_date(era: str, year: str, month: str, day: str) -> date:
    number = 1 if year == "元" else int(year)
    if number < 1:
        raise CellError("impossible date")
    return _make_date(_ERAS[era.upper()] + number - 1, int(month), int(day))


def _parse_date(text: str) -> date:
    # Fast path for the usual "2025-01-09" / "2025/1/9" / "2025.1.9" without a time.
    if 8 <= len(text) <= 10 and text.isascii() and text[4:5] in ("-", "/", "."):
        parts = text.split(text[4])
        if len(parts) == 3 and len(parts[1]) <= 2 and len(parts[2]) <= 2:
            y, mo, d = parts
            if y.isdigit() and mo.isdigit() and d.isdigit():
                return _make_date(int(y), int(mo), int(d))
    m = _ISO_DATE_RE.fullmatch(text)
    if m is not None:
        return _make_date(int(m[1]), int(m[3]), int(m[4]))
    m = _JA_DATE_RE.fullmatch(text)
    if m is not None:
        if m[1]:
            return _make_date(int(m[1]), int(m[4]), int(m[5]))
        return _era_date(m[2], m[3], m[4], m[5])
    m = _ERA_DOT_DATE_RE.fullmatch(text)
    if m is not None:
        return _era_date(m[1], m[2], m[4], m[5])
    raise CellError("not a date (e.g. 2025-01-09 or 2025年1月9日)")


@_memoized
def _date_from_text(raw: str) -> date | None:
    text = clean_cell(raw)
    return None if text is None else _parse_date(text)


def coerce_date(value: object) -> date | None:
    """Read a date cell: a Sheets serial number or a written date."""
    if value is None:
        return None
    cls = value.__class__
    if cls is int:
        return _from_serial(value)  # type: ignore[arg-type]
    if cls is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise CellError("not a finite number")
        return _from_serial(math.floor(value))  # type: ignore[call-overload]  # drop the time
    if cls is str or isinstance(value, str):
        return _date_from_text(str(value))
    if isinstance(value, bool):
        raise CellError("TRUE/FALSE is not a date")
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int):
        return _from_serial(int(value))
    if isinstance(value, float | Decimal):
        if not _finite(value):
            raise CellError("not a finite number")
        return _from_serial(math.floor(value))
    raise _unsupported(value)


# Checkboxes arrive as true/false; people also type these (compared lower-cased).
_TRUE_WORDS: Final = frozenset(
    {"true", "t", "yes", "y", "1", "on", "○", "◯", "〇", "✓", "✔"}
    | {"有", "有り", "あり", "可", "はい"}
)
_FALSE_WORDS: Final = frozenset(
    {"false", "f", "no", "n", "0", "off", "×", "✕", "✖"} | {"無", "無し", "なし", "不可", "いいえ"}
)


@_memoized
def _boolean_from_text(raw: str) -> bool | None:
    text = clean_cell(raw)
    if text is None:
        return None
    word = text.lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise CellError("not yes/no (e.g. TRUE/FALSE, ○/×, 有/無)")


def coerce_boolean(value: object) -> bool | None:
    """Read a yes/no cell: checkboxes, TRUE/FALSE, yes/no, 1/0, ○/×, 有/無, あり/なし, 可/不可."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _boolean_from_text(str(value))
    if isinstance(value, int | float | Decimal):
        if isinstance(value, Decimal) and not value.is_finite():
            raise CellError("not yes/no: only 1 and 0 are")
        if value == 1:
            return True
        if value == 0:
            return False
        raise CellError("not yes/no: only 1 and 0 are")
    raise _unsupported(value)


def coerce_extra(value: object) -> str | int | float | bool | None:
    """Read a cell kept in extra: numbers stay numbers (123.0 -> 123), text is cleaned."""
    if value is None:
        return None
    cls = value.__class__
    if cls is str:
        return clean_cell(value)  # type: ignore[arg-type]
    if cls is int or cls is bool:
        return value  # type: ignore[return-value]
    if cls is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise CellError("not a finite number")
        # Same hash whether the API sent 123 or 123.0.
        return int(value) if value.is_integer() else value  # type: ignore[attr-defined,call-overload,return-value]
    return coerce_text(value)


# --- columns the office adds (kinds from the database's types) ---------------------


def _whole_from_text(text: str) -> int:
    """Read 12, -3, 1,234, 徒歩12分, or the yen forms 1.2万円, ¥15,000, 1億."""
    m = _INTEGER_RE.fullmatch(text)
    if m is not None:
        number = int(m[2].replace(",", ""))
        return -number if m[1] == "-" else number
    try:
        return _parse_yen(text)
    except CellError:
        raise CellError("not a whole number (e.g. 12, 1,234 or 1.2万)") from None


def _whole(bits: int) -> Callable[[object], int | None]:
    """Return the reader of a smallint/integer/bigint column (``bits`` 16, 32 or 64)."""
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def in_range(value: int) -> int:
        if not low <= value <= high:
            raise CellError("whole number out of range")
        return value

    @_memoized
    def from_text(raw: str) -> int | None:
        text = clean_cell(raw)
        return None if text is None else in_range(_whole_from_text(text))

    def coerce(value: object) -> int | None:
        if value is None:
            return None
        if isinstance(value, str):
            return from_text(str(value))
        if isinstance(value, bool):
            raise CellError("TRUE/FALSE is not a whole number")
        if isinstance(value, int):
            return in_range(int(value))
        if isinstance(value, float | Decimal):
            if not (_finite(value) and value == int(value)):
                raise CellError("not a whole number")
            return in_range(int(value))
        raise _unsupported(value)

    return coerce


_SECONDS_PER_DAY: Final = 86_400


def coerce_timestamptz(value: object) -> datetime | None:
    """Read a moment: a Sheets serial number (days, with the time as a fraction) or text.

    Text is ISO 8601 (``2025-01-09 10:30``, ``2025-01-09T10:30:00+09:00``) or any date
    form the date columns read (midnight). A moment without an offset is taken as UTC.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        raise CellError("TRUE/FALSE is not a date and time")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise CellError("not a finite number")
        day = _from_serial(math.floor(value))
        seconds = round((value - math.floor(value)) * _SECONDS_PER_DAY)
        return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)
    if not isinstance(value, str):
        raise _unsupported(value)
    text = clean_cell(value)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("/", "-"))
    except ValueError:
        day = _parse_date(text)
        moment = datetime(day.year, day.month, day.day)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def coerce_jsonb(value: object) -> object:
    """Read a JSON cell: text holding a JSON object or array is parsed, anything else kept."""
    if isinstance(value, str):
        text = clean_cell(value)
        if text is not None and text[:1] in ("{", "["):
            try:
                return json.loads(text)
            except ValueError:
                pass
        return text
    if isinstance(value, dict | list):
        return value
    return coerce_extra(value)


COERCERS: Final[dict[ColumnKind, Callable[[object], object]]] = {
    "text": coerce_text,
    "integer": coerce_integer,
    "numeric": coerce_numeric,
    "date": coerce_date,
    "boolean": coerce_boolean,
    "yen": coerce_yen,
    "int2": _whole(16),
    "int4": _whole(32),
    "int8": _whole(64),
    "timestamptz": coerce_timestamptz,
    "jsonb": coerce_jsonb,
}


# --- raw row digest -----------------------------------------------------------

# Bump when the same cells under the same header map can give a different listing or
# wire form: a coercer's output for the same input, models.Listing, payload or
# canonical_json. Every stored source_hash then stops matching, and the next run
# validates every row again.
SOURCE_VERSION: Final = 1


def header_signature(header_map: HeaderMap) -> str:
    """Return a stable digest of where each sheet column goes (computed once per run)."""
    shape = (
        SOURCE_VERSION,
        sorted(header_map.columns.items()),
        sorted(header_map.extra.items()),
        sorted(header_map.blank),
        header_map.width,
    )
    return hashlib.blake2b(repr(shape).encode(), digest_size=16).hexdigest()


def source_hash(cells: Sequence[object], signature: str) -> str:
    """Return a digest of one row's raw cells as the Sheets API sent them.

    Equal digests mean the same cells under the same header map (``signature``,
    which covers SOURCE_VERSION too), hence the same listing: a run may then trust
    the stored content_hash instead of validating the row again. Trailing empty
    cells do not count (the API omits them anyway).
    """
    return source_hasher(signature)(cells)


def source_hasher(signature: str) -> Callable[[Sequence[object]], str]:
    """Return ``source_hash`` for one header map, its signature hashed once, not per row."""
    # blake2b(signature + tag + bytes): the signature's state is copied, not rehashed.
    marshalled = hashlib.blake2b(signature.encode() + b"m", digest_size=16)
    written = hashlib.blake2b(signature.encode() + b"r", digest_size=16)
    dumps = marshal.dumps

    def digest(cells: Sequence[object]) -> str:
        end = len(cells)
        if end and is_blank(cells[end - 1]):
            while end and is_blank(cells[end - 1]):
                end -= 1
            row = tuple(cells[:end])
        else:
            row = tuple(cells)
        try:
            # marshal format 2 tags every value with its type (1, 1.0, True and "1"
            # differ) and has no back-references, so equal cells give equal bytes in any
            # process; 2x faster than repr. Only the JSON types the API sends are expected.
            raw = dumps(row, 2)  # type: ignore[arg-type]  # ValueError below
            state = marshalled.copy()
        except ValueError:
            raw = repr(row).encode("utf-8", "backslashreplace")
            state = written.copy()
        state.update(raw)
        return state.hexdigest()

    return digest
