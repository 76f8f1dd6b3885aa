"""The one declaration of the tables listing-sync writes: names, key, columns and their kinds.

``LISTINGS`` describes ``property_listings`` as ``sql/001_property_listings.sql``
creates it: the key, the sheet-fed columns with the kind of cell each holds, the
``extra`` column for sheet columns the table lacks, and the bookkeeping columns
listing-sync writes itself. Everything else (header mapping, validation, the
planner, the writer, the stores) reads it from here.

A deployment may have more sheet-fed columns than these: a column the office added
to the table (``alter table property_listings add column built_year integer``).
``ListingsStore.discover`` reads the table's columns and types from PostgREST's
description of the API, and ``ListingsTable.with_columns`` returns the declaration
extended by them (``kind_of`` picks each one's reader from its PostgreSQL type), so
the rest of the code never assumes the built-in list is complete. Such a column is
synced only from a sheet column with its name or a ``SYNC_MAPPING`` alias to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

# How a cell is read: one coercer per kind (mapping.COERCERS). "yen" is a whole
# number of yen that also accepts 1,280万円 and ¥12,800,000. The others after "yen"
# serve columns the office adds: "int2"/"int4"/"int8" are whole numbers in the
# range of smallint/integer/bigint that accept the yen and Japanese forms too.
ColumnKind = Literal[
    "text",
    "integer",
    "numeric",
    "date",
    "boolean",
    "yen",
    "int2",
    "int4",
    "int8",
    "timestamptz",
    "jsonb",
]

# PostgreSQL type (as PostgREST's OpenAPI "format" names it) -> how a cell is read.
_KINDS_BY_TYPE: Final[dict[str, ColumnKind]] = {
    "text": "text",
    "character varying": "text",
    "character": "text",
    "citext": "text",
    "smallint": "int2",
    "integer": "int4",
    "bigint": "int8",
    "numeric": "numeric",
    "real": "numeric",
    "double precision": "numeric",
    "date": "date",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamptz",
    "boolean": "boolean",
    "jsonb": "jsonb",
    "json": "jsonb",
}


def kind_of(pg_type: str) -> ColumnKind | None:
    """Return how to read a cell for a column of ``pg_type``; None if it cannot be synced."""
    base = pg_type.split("(", 1)[0].strip().lower()
    return _KINDS_BY_TYPE.get(base)


SYNC_STATE: Final = "sync_state"


@dataclass(frozen=True)
class Column:
    """One sheet-fed column of the listings table."""

    name: str
    kind: ColumnKind
    # Added by the office: synced only when a header maps to it, never "missing".
    optional: bool = False


@dataclass(frozen=True)
class ListingsTable:
    """The shape of the listings table as listing-sync sees it."""

    name: str
    key: str
    sheet_columns: tuple[Column, ...]
    extra: str
    bookkeeping: tuple[str, ...]

    @property
    def columns(self) -> dict[str, ColumnKind]:
        """Return {column: kind} of the sheet-fed columns, in table order."""
        return {c.name: c.kind for c in self.sheet_columns}

    @property
    def hashed_columns(self) -> tuple[str, ...]:
        """Return the columns ``content_hash`` covers: the sheet-fed values and extra."""
        return (*self.columns, self.extra)

    @property
    def write_columns(self) -> tuple[str, ...]:
        """Return every column an upsert writes, in the order of ``?columns=``."""
        return (*self.hashed_columns, *self.bookkeeping)

    @property
    def managed(self) -> frozenset[str]:
        """Return the columns listing-sync fills itself; no header may write them."""
        return frozenset((self.extra, *self.bookkeeping))

    @property
    def optional(self) -> frozenset[str]:
        """Return the columns synced only when a header maps to them."""
        return frozenset(c.name for c in self.sheet_columns if c.optional)

    def with_columns(self, added: tuple[Column, ...]) -> ListingsTable:
        """Return this declaration with more sheet-fed columns after the built-in ones."""
        known = set(self.columns) | self.managed
        fresh = tuple(c for c in added if c.name not in known)
        return ListingsTable(
            name=self.name,
            key=self.key,
            sheet_columns=(*self.sheet_columns, *fresh),
            extra=self.extra,
            bookkeeping=self.bookkeeping,
        )


LISTINGS: Final = ListingsTable(
    name="property_listings",
    key="property_number",
    sheet_columns=(
        Column("property_number", "text"),
        Column("property_type", "text"),
        Column("status", "text"),
        Column("address", "text"),
        Column("price", "yen"),
        Column("land_area_m2", "numeric"),
        Column("building_area_m2", "numeric"),
        Column("layout", "text"),
        Column("nearest_station", "text"),
        Column("walk_minutes", "integer"),
        Column("listed_on", "date"),
        Column("parking", "boolean"),
        Column("notes", "text"),
    ),
    extra="extra",
    # Written on every upsert besides the sheet-fed columns, in this order.
    bookkeeping=(
        "content_hash",
        "source_hash",
        "synced_at",
        "removed_at",
        "last_sync_id",
        "source_tab",
    ),
)
