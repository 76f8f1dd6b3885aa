"""The listing as a pydantic model, built from the table's declaration, and its wire form.

The sync itself reads rows with ``rows.RowReader`` (compiled per-column readers, no
model validation per row); this module gives the same reading a typed record for
callers that want one (``convert_row``) and validates listings that come from
elsewhere (``Listing.model_validate(payload)``). Every field is read by its
column's coercer, so a ``pydantic.ValidationError`` names the column that failed.
A formula error in a cell reads as None and, when the validation context carries a
``warnings`` list, adds a warning there::

    warnings: list[str] = []
    Listing.model_validate(cells, context={"warnings": warnings, "row": 12})
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, create_model

from .mapping import COERCERS, CellError, FormulaError, HeaderMap, coerce_key
from .rows import (
    TO_JSON,
    RowProblem,
    RowReader,
    canonical_json,
    content_hash,
    formula_warning,
)
from .schema import LISTINGS, ColumnKind, ListingsTable

__all__ = [
    "Listing",
    "RowProblem",
    "SheetRow",
    "canonical_json",
    "content_hash",
    "convert_row",
    "formula_warning",
    "listing_model",
    "payload",
]


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


# The Python type each kind of column holds.
_PYTHON_TYPES: Final[dict[ColumnKind, object]] = {
    "text": str,
    "integer": int,
    "numeric": Decimal,
    "yen": int,
    "date": date,
    "boolean": bool,
    "int2": int,
    "int4": int,
    "int8": int,
    "timestamptz": datetime,
    "jsonb": Any,
}


class _ListingBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def listing_model(table: ListingsTable = LISTINGS) -> type[BaseModel]:
    """Return the Listing model of ``table``: a field per sheet-fed column, then extra."""
    return _build_listing_model(table)  # one class per table, however it is asked for


@functools.cache
def _build_listing_model(table: ListingsTable) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, kind in table.columns.items():
        if name == table.key:
            fields[name] = (Annotated[str, BeforeValidator(_read_key)], ...)
        else:
            python = _PYTHON_TYPES[kind]
            fields[name] = (Annotated[python | None, _read_with(COERCERS[kind])], None)  # type: ignore[operator]
    fields[table.extra] = (dict[str, Any], Field(default_factory=dict))
    return create_model(
        "Listing",
        __base__=_ListingBase,
        __doc__="One property listing as read from the sheet (the sheet-fed columns + extra).",
        __module__=__name__,
        **fields,
    )


# One property listing of the built-in table.
Listing: Any = listing_model()


def payload(listing: BaseModel, table: ListingsTable = LISTINGS) -> dict[str, Any]:
    """Return the JSON-ready row for PostgREST: every sheet-fed column, then extra."""
    values = listing.__dict__
    row: dict[str, Any] = {}
    for column, kind in table.columns.items():
        value = values[column]
        convert = TO_JSON.get(kind)
        row[column] = convert(value) if value is not None and convert is not None else value
    row[table.extra] = dict(values[table.extra])
    return row


@dataclass(frozen=True)
class SheetRow:
    """A sheet row that became a valid listing."""

    row: int
    listing: BaseModel


def convert_row(
    cells: Sequence[object],
    header_map: HeaderMap,
    row_number: int,
    table: ListingsTable = LISTINGS,
) -> tuple[SheetRow | None, list[RowProblem], list[str]]:
    """Read one sheet row into a listing.

    Return (valid row or None, problems, warnings). A row with no data at all
    returns (None, [], []): skip it. Problems name every failing column of the row.
    """
    result = RowReader(header_map, table, wire=False).read(cells, row_number)
    if result.values is None:
        return None, result.problems, result.warnings
    listing = listing_model(table).model_validate(result.values)
    return SheetRow(row_number, listing), [], result.warnings
