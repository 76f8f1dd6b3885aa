"""The listing record, its wire form and hash, and the conversion of one sheet row.

Every field of ``Listing`` is read by its column's coercer from ``mapping``, so
a ``pydantic.ValidationError`` names the column that failed. A formula error in
a cell reads as None and, when the validation context carries a ``warnings``
list, adds a warning there::

    warnings: list[str] = []
    Listing.model_validate(cells, context={"warnings": warnings, "row": 12})
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
)

from .mapping import (
    CellError,
    FormulaError,
    HeaderMap,
    coerce_boolean,
    coerce_date,
    coerce_extra,
    coerce_integer,
    coerce_key,
    coerce_numeric,
    coerce_text,
    coerce_yen,
    column_letter,
    decimal_text,
    is_blank,
)
from .schema import LISTINGS, ColumnKind


def formula_warning(row: int | None, column: str, code: str) -> str:
    """Describe a formula error that was read as an empty cell."""
    where = f"Row {row}, column {column!r}" if row is not None else f"Column {column!r}"
    return f"{where}: formula error {code} read as empty"


def _read_with(coerce: Callable[[object], object]) -> BeforeValidator:
    """Validate a field with ``coerce``, turning formula errors into None + a warning."""

    def read(value: object, info: ValidationInfo) -> object:
        try:
            return coerce(value)
        except FormulaError as exc:
            context = info.context
            if context is not None:
                warnings = context.get("warnings")
                if warnings is not None:
                    column = info.field_name or "?"
                    warnings.append(formula_warning(context.get("row"), column, exc.code))
            return None

    return BeforeValidator(read)


def _read_key(value: object) -> str:
    try:
        key = coerce_key(value)
    except FormulaError as exc:
        # Unlike other columns, a listing cannot exist without its key: a problem, not a warning.
        raise CellError(
            f"missing property number: the cell holds formula error {exc.code}"
        ) from None
    if key is None:
        raise CellError("missing property number")
    return key


Text = Annotated[str | None, _read_with(coerce_text)]
Integer = Annotated[int | None, _read_with(coerce_integer)]
Numeric = Annotated[Decimal | None, _read_with(coerce_numeric)]
Yen = Annotated[int | None, _read_with(coerce_yen)]
Day = Annotated[date | None, _read_with(coerce_date)]
Flag = Annotated[bool | None, _read_with(coerce_boolean)]


_FIELD_TYPES: Final[dict[ColumnKind, object]] = {
    "text": Text,
    "integer": Integer,
    "numeric": Numeric,
    "yen": Yen,
    "date": Day,
    "boolean": Flag,
}


class _ListingBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _listing_model() -> type[BaseModel]:
    """Build the Listing model from the table's declaration (schema.LISTINGS)."""
    fields: dict[str, Any] = {}
    for name, kind in LISTINGS.columns.items():
        if name == LISTINGS.key:
            fields[name] = (Annotated[str, BeforeValidator(_read_key)], ...)
        else:
            fields[name] = (_FIELD_TYPES[kind], None)
    fields[LISTINGS.extra] = (dict[str, Any], Field(default_factory=dict))
    return create_model(
        "Listing",
        __base__=_ListingBase,
        __doc__="One property listing as read from the sheet (the sheet-fed columns + extra).",
        __module__=__name__,
        **fields,
    )


# One property listing as read from the sheet: a field per sheet-fed column, then extra.
Listing: Any = _listing_model()


# Keys of the wire form that the content hash covers: the sheet-fed values + extra.
HASHED_KEYS: Final = LISTINGS.hashed_columns
_COLUMNS: Final = tuple(LISTINGS.columns)
_DECIMAL_COLUMNS: Final = tuple(c for c, kind in LISTINGS.columns.items() if kind == "numeric")
_DATE_COLUMNS: Final = tuple(c for c, kind in LISTINGS.columns.items() if kind == "date")
# Built once: json.dumps with options builds a new encoder on every call.
_CANONICAL_JSON: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _json_decimal(value: Decimal) -> int | float | str:
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


def payload(listing: BaseModel) -> dict[str, Any]:
    """Return the JSON-ready row for PostgREST: every sheet-fed column, then extra."""
    values = listing.__dict__
    row: dict[str, Any] = {column: values[column] for column in _COLUMNS}
    for column in _DECIMAL_COLUMNS:
        if row[column] is not None:
            row[column] = _json_decimal(row[column])
    for column in _DATE_COLUMNS:
        if row[column] is not None:
            row[column] = row[column].isoformat()
    row[LISTINGS.extra] = dict(values[LISTINGS.extra])
    return row


def canonical_json(row: Mapping[str, Any], keys: Sequence[str] = HASHED_KEYS) -> bytes:
    """Return the canonical JSON (UTF-8) of the sheet-fed values + extra of ``row``.

    Canonical: sorted keys, no spaces; other keys of ``row`` (content_hash,
    synced_at...) are left out. This is exactly what ``content_hash`` hashes.
    ``keys`` narrows it to the columns a run writes (a column without header is not).
    """
    return _CANONICAL_JSON.encode({key: row[key] for key in keys}).encode("utf-8")


def content_hash(row: Mapping[str, Any]) -> str:
    """Return the sha256 hex of ``canonical_json(row)``: the same listing, the same hash."""
    return hashlib.sha256(canonical_json(row)).hexdigest()


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


@dataclass(frozen=True)
class SheetRow:
    """A sheet row that became a valid listing."""

    row: int
    listing: BaseModel


def _safe_key(value: object) -> str | None:
    try:
        return coerce_key(value)
    except CellError:
        return None


def _failures(
    exc: ValidationError, data: Mapping[str, object]
) -> list[tuple[str | None, str, object]]:
    """Return (column, reason, raw value) for every field ``exc`` reports."""
    failures: list[tuple[str | None, str, object]] = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        column = str(loc[0]) if loc else None
        cause = (error.get("ctx") or {}).get("error")
        reason = str(cause) if isinstance(cause, CellError) else error["msg"]
        raw = data.get(column) if column is not None else None
        failures.append((column, _with_value(reason, raw), raw))
    return failures


def _with_value(reason: str, raw: object) -> str:
    """Name the raw cell value in the message, so every report shows what to fix."""
    if raw is None or str(raw) in reason:
        return reason
    return f"{reason}; the cell holds {raw!r}"


def convert_row(
    cells: Sequence[object], header_map: HeaderMap, row_number: int
) -> tuple[SheetRow | None, list[RowProblem], list[str]]:
    """Read one sheet row into a listing.

    Return (valid row or None, problems, warnings). A row with no data at all
    returns (None, [], []): skip it. Problems name every failing column of the row.
    """
    for cell in cells:
        if not is_blank(cell):
            break
    else:
        return None, [], []

    # Sheets omits trailing empty cells: a short row reads as None to its right.
    width = len(cells)
    data: dict[str, object] = {
        column: cells[index] for index, column in header_map.columns.items() if index < width
    }
    warnings: list[str] = []
    extra_failures: list[tuple[str | None, str, object]] = []

    extra: dict[str, Any] = {}
    for index, header in header_map.extra.items():
        if index >= width:
            continue
        raw = cells[index]
        try:
            value = coerce_extra(raw)
        except FormulaError as exc:
            warnings.append(formula_warning(row_number, header, exc.code))
            continue
        except CellError as exc:
            extra_failures.append((header, _with_value(str(exc), raw), raw))
            continue
        if value is not None:
            extra[header] = value
    data[LISTINGS.extra] = extra

    if header_map.blank or width > header_map.width:
        unheaded = sorted(i for i in header_map.blank if i < width)
        unheaded.extend(range(header_map.width, width))
        for index in unheaded:
            if not is_blank(cells[index]):
                warnings.append(
                    f"Row {row_number}, column {column_letter(index)} has data but no header; "
                    "the value is ignored."
                )

    listing: BaseModel | None = None
    failures: list[tuple[str | None, str, object]] = []
    try:
        listing = Listing.model_validate(data, context={"warnings": warnings, "row": row_number})
    except ValidationError as exc:
        failures = _failures(exc, data)
    failures.extend(extra_failures)
    if listing is None or failures:
        number = _safe_key(data.get(LISTINGS.key))
        problems = [RowProblem(row_number, number, c, reason, raw) for c, reason, raw in failures]
        return None, problems, warnings
    return SheetRow(row_number, listing), [], warnings
