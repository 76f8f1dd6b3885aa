"""Where the data is: SYNC_SHEET_RANGE and SYNC_SHEET_NAME, parsed (pure, no stack)."""

from __future__ import annotations

import pytest

from listing_sync.areas import Area, is_named_range, parse_a1_area, parse_tab_names
from listing_sync.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A3:P", Area(header_row=3, first_column=0, end_column=16, last_row=None)),
        ("B2:H500", Area(header_row=2, first_column=1, end_column=8, last_row=500)),
        ("3:500", Area(header_row=3, first_column=0, end_column=None, last_row=500)),
        ("C4", Area(header_row=4, first_column=2, end_column=None, last_row=None)),
        ("aa10:ab", Area(header_row=10, first_column=26, end_column=28, last_row=None)),
    ],
)
def test_an_a1_range_gives_the_header_row_and_bounds(text: str, expected: Area) -> None:
    """An A1 range within the tab: its first row is the header, its columns bound the data."""
    assert expected == parse_a1_area(text)


@pytest.mark.parametrize("text", ["物件データ", "Listings_2025", "_data"])
def test_a_name_is_not_an_a1_range_but_may_be_a_named_range(text: str) -> None:
    """A name that is no A1 range is read as a named range."""
    assert (None, True) == (parse_a1_area(text), is_named_range(text))


@pytest.mark.parametrize("text", ["P3:A", "A5:C2", "A0:B"])
def test_a_backwards_range_is_a_configuration_error(text: str) -> None:
    """A range that ends before it starts names SYNC_SHEET_RANGE."""
    with pytest.raises(ConfigError, match="SYNC_SHEET_RANGE"):
        parse_a1_area(text)


@pytest.mark.parametrize("text", ["A:P", "Tab!A3:P", "A3:P 5", ""])
def test_text_that_is_neither_range_nor_name_is_recognised(text: str) -> None:
    """Neither an A1 range nor a possible range name."""
    assert (None, False) == (parse_a1_area(text), is_named_range(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("販売中", ("販売中",)),
        ("販売中,商談中,成約済", ("販売中", "商談中", "成約済")),
        ("販売中, 商談中 ,成約済", ("販売中", "商談中", "成約済")),
        ('販売中,"東京, 品川"', ("販売中", "東京, 品川")),
        ('"say ""hi"""', ('say "hi"',)),
        ("*", ("*",)),
        ("A,A", ("A",)),
    ],
)
def test_sheet_name_lists_tabs_csv_style(text: str, expected: tuple[str, ...]) -> None:
    """Comma-separated tab titles; a title with a comma is double-quoted, CSV-style."""
    assert expected == parse_tab_names(text)


@pytest.mark.parametrize("text", [",", " , ", "*,販売中", '"unclosed'])
def test_a_tab_list_that_names_nothing_usable_is_a_configuration_error(text: str) -> None:
    """An empty list, '*' mixed with names, or bad quoting names SYNC_SHEET_NAME."""
    with pytest.raises(ConfigError, match="SYNC_SHEET_NAME"):
        parse_tab_names(text)
