"""Where the data is in a spreadsheet: the tabs (SYNC_SHEET_NAME) and the range (SYNC_SHEET_RANGE).

Pure parsing, shared by the settings (checked once) and the Sheets reader.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass

from .errors import ConfigError


def a1_tab(title: str) -> str:
    """Quote a tab title for an A1 range: 'It''s' style."""
    return "'" + title.replace("'", "''") + "'"


@dataclass(frozen=True)
class Area:
    """Where the data is within a tab: the header row, the first column, the bounds.

    Rows are 1-based sheet row numbers; columns 0-based, ``end_column`` exclusive.
    None: to the tab's edge.
    """

    header_row: int = 1
    first_column: int = 0
    end_column: int | None = None
    last_row: int | None = None

    def cells(self, title: str, column_count: int, start: int, end: int) -> str:
        """Return the A1 range of rows ``start``..``end`` of tab ``title`` within this area."""
        if self.first_column == 0 and self.end_column is None:
            return f"{a1_tab(title)}!{start}:{end}"
        right = max(self.end_column or column_count, self.first_column + 1)
        return (
            f"{a1_tab(title)}!{column_letters(self.first_column)}{start}:"
            f"{column_letters(right - 1)}{end}"
        )


_A1_RANGE = re.compile(r"^([A-Za-z]{1,3})?([0-9]+)(?::([A-Za-z]{1,3})?([0-9]+)?)?$")
# Google's rule for named range names: letters, digits and underscores, not a cell reference.
_NAMED_RANGE = re.compile(r"^[^\W\d]\w*$")


def column_letters(index: int) -> str:
    """Return the A1 letters of 0-based column ``index`` (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _column_index(letters: str) -> int:
    index = 0
    for ch in letters.upper():
        index = index * 26 + ord(ch) - ord("A") + 1
    return index - 1


def parse_a1_area(text: str) -> Area | None:
    """Return the Area of an A1 range within a tab (``A3:P``, ``B2:H500``, ``3:500``).

    Return None when ``text`` is not such a range (it may be a named range). The
    first row of the range is the header. Raise ConfigError for a range that is
    written like one but cannot be (end before start).
    """
    match = _A1_RANGE.match(text.strip())
    if match is None:
        return None
    c0, r0, c1, r1 = match.groups()
    header_row = int(r0)
    first = _column_index(c0) if c0 else 0
    end = _column_index(c1) + 1 if c1 else None
    last = int(r1) if r1 else None
    if (
        header_row < 1
        or (end is not None and end <= first)
        or (last is not None and last < header_row)
    ):
        raise ConfigError(
            f"SYNC_SHEET_RANGE: {text!r} is not a usable range: it must start at the header "
            "row and end below and right of it (like A3:P)"
        )
    return Area(header_row, first, end, last)


def is_named_range(text: str) -> bool:
    """Tell whether ``text`` can be the name of a named range."""
    return bool(_NAMED_RANGE.match(text.strip()))


def parse_tab_names(text: str) -> tuple[str, ...]:
    """Return the tabs of SYNC_SHEET_NAME: comma-separated, CSV-quoted, ``*`` every visible tab."""
    try:
        fields = next(csv.reader([text], skipinitialspace=True, strict=True), [])
    except csv.Error as exc:
        raise ConfigError(f"SYNC_SHEET_NAME: cannot read {text!r} as a tab list: {exc}") from None
    names = tuple(dict.fromkeys(f.strip() for f in fields if f.strip()))
    if not names:
        raise ConfigError(f"SYNC_SHEET_NAME: {text!r} names no tab")
    if "*" in names and len(names) > 1:
        raise ConfigError("SYNC_SHEET_NAME: '*' (every visible tab) cannot be combined with names")
    return names
