"""Table tests for header mapping and cell coercion (listing_sync.mapping)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from listing_sync.errors import ConfigError, DataError
from listing_sync.mapping import (
    COERCERS,
    CellError,
    FormulaError,
    build_header_map,
    coerce_boolean,
    coerce_date,
    coerce_extra,
    coerce_integer,
    coerce_key,
    coerce_numeric,
    coerce_text,
    coerce_yen,
    column_letter,
    load_aliases,
    normalize_header,
)
from listing_sync.models import Listing, convert_row
from listing_sync.schema import LISTINGS

COLUMNS = LISTINGS.columns

HEADERS = list(COLUMNS)


# --- normalize_header / column_letter -------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("property_number", "property_number"),
        ("Property Number", "property_number"),
        ("PROPERTY-NUMBER", "property_number"),
        ("  property   number  ", "property_number"),
        ("property - number", "property_number"),
        ("property__number", "property_number"),
        ("Land Area m2", "land_area_m2"),
        ("ＰＲＩＣＥ", "price"),  # full-width letters
        ("walk\u3000minutes", "walk_minutes"),  # ideographic space
        ("walk\u2010minutes", "walk_minutes"),  # Unicode hyphen
        ("物件番号", "物件番号"),
        ("", ""),
    ],
)
def test_normalize_header(text: str, expected: str) -> None:
    """Headers compare case-insensitively with spaces and hyphens as underscores."""
    assert expected == normalize_header(text)


@pytest.mark.parametrize(
    ("index", "letters"),
    [(0, "A"), (1, "B"), (25, "Z"), (26, "AA"), (27, "AB"), (701, "ZZ"), (702, "AAA")],
)
def test_column_letter(index: int, letters: str) -> None:
    """Column indices are named like the spreadsheet names them."""
    assert letters == column_letter(index)


# --- coercers -----------------------------------------------------------------

FORMULA_ERRORS = ["#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?", "#NUM!", "#NULL!", "#ERROR!"]
ALL_COERCERS = [*COERCERS.values(), coerce_key, coerce_extra]


@pytest.mark.parametrize("coerce", ALL_COERCERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("blank", [None, "", " ", "\t\n", "\u3000"])
def test_blank_cells_read_as_none(coerce, blank) -> None:
    """Blank cells are None for every column type."""
    assert coerce(blank) is None


@pytest.mark.parametrize("coerce", ALL_COERCERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("code", FORMULA_ERRORS)
def test_formula_errors_raise_formula_error(coerce, code: str) -> None:
    """A formula error is recognized by every coercer (read as empty + warning later)."""
    with pytest.raises(FormulaError) as info:
        coerce(f" {code} ")
    assert code == info.value.code


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  戸建て ", "戸建て"),
        ("ＡＢＣ１２３", "ABC123"),  # full-width -> ASCII
        ("ｶﾞﾚｰｼﾞ", "ガレージ"),  # half-width katakana -> full-width
        (123, "123"),
        (123.0, "123"),
        (12.5, "12.5"),
        (-3, "-3"),
        (True, "TRUE"),
        (False, "FALSE"),
        ("#hashtag", "#hashtag"),  # not a formula error
        (Decimal("120.50"), "120.5"),
        (date(2025, 1, 9), "2025-01-09"),
    ],
)
def test_coerce_text(value: object, expected: str) -> None:
    """Text is NFKC-normalized and trimmed; numbers read as the digits shown."""
    assert expected == coerce_text(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12),
        (12.0, 12),
        ("12", 12),
        ("１２", 12),
        ("1,234", 1234),
        ("１，２３４", 1234),
        ("12分", 12),
        ("12 分", 12),
        ("徒歩12分", 12),
        ("12.0", 12),
        ("-5", -5),
        (0, 0),
        (Decimal("7"), 7),
    ],
)
def test_coerce_integer(value: object, expected: int) -> None:
    """Whole numbers come as numbers, digits, grouped digits or N分."""
    actual = coerce_integer(value)
    assert expected == actual
    assert type(actual) is int


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "12.5",
        12.5,
        "1,23",
        "12分半",
        True,
        False,
        float("nan"),
        float("inf"),
        2**31,
        "1e3",
        [1],
    ],
)
def test_coerce_integer_rejects(value: object) -> None:
    """Fractions, words, booleans and out-of-range numbers are not whole numbers."""
    with pytest.raises(CellError):
        coerce_integer(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (120.5, Decimal("120.5")),
        (120, Decimal("120")),
        (0.1, Decimal("0.1")),  # no binary float drift
        ("120.5", Decimal("120.5")),
        ("1,234.56", Decimal("1234.56")),
        ("１，２３４．５６", Decimal("1234.56")),
        ("120.5㎡", Decimal("120.5")),
        ("120.5m2", Decimal("120.5")),
        ("120.5 m²", Decimal("120.5")),
        ("120.5 M2", Decimal("120.5")),
        ("120.5平米", Decimal("120.5")),
        (".5", Decimal("0.5")),
        ("-3.25", Decimal("-3.25")),
        (Decimal("98.25"), Decimal("98.25")),
    ],
)
def test_coerce_numeric(value: object, expected: Decimal) -> None:
    """Areas read as exact decimals, with or without a unit and grouping."""
    actual = coerce_numeric(value)
    assert expected == actual
    assert type(actual) is Decimal


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "NaN",
        "nan",
        "inf",
        "Infinity",
        "1e5",
        "1_000",
        "12坪",
        "1,23.4",
        float("nan"),
        float("-inf"),
        True,
        {},
    ],
)
def test_coerce_numeric_rejects(value: object) -> None:
    """Words, non-finite numbers and other units are not areas."""
    with pytest.raises(CellError):
        coerce_numeric(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12800000, 12800000),
        (12800000.0, 12800000),
        ("12800000", 12800000),
        ("1280万", 12_800_000),
        ("1280万円", 12_800_000),
        ("1,280万円", 12_800_000),
        ("１，２８０万円", 12_800_000),
        ("1280 万円", 12_800_000),
        ("1億", 100_000_000),
        ("1億2000万円", 120_000_000),
        ("1億2,000万円", 120_000_000),
        ("1.5億", 150_000_000),
        ("1.5億円", 150_000_000),
        ("2億5000円", 200_005_000),
        ("1280万5000円", 12_805_000),
        ("1280.5万", 12_805_000),
        ("¥12,800,000", 12_800_000),
        ("￥12,800,000", 12_800_000),
        ("¥ 12,800,000", 12_800_000),
        ("12,800,000円", 12_800_000),
        ("12,800,000.0", 12_800_000),
        ("¥1280万", 12_800_000),
        ("0", 0),
        ("0円", 0),
        (Decimal("5000"), 5000),
    ],
)
def test_coerce_yen(value: object, expected: int) -> None:
    """Prices read as whole yen from numbers, ¥/円 amounts and 万/億 units."""
    actual = coerce_yen(value)
    assert expected == actual
    assert type(actual) is int


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-100", "negative"),
        ("¥-100", "negative"),
        (-1, "negative"),
        (-1.0, "negative"),
        ("1280.5", "whole"),
        (1280.5, "whole"),
        ("1.234567891億", "whole"),
        ("応相談", "not a price"),
        ("万円", "not a price"),
        ("¥", "not a price"),
        ("1億20000万", "not a price"),  # a smaller unit at or above the larger one
        ("12,80,000", "not a price"),  # bad grouping
        ("1,280万ドル", "not a price"),
        ("--100", "not a price"),
        (True, "TRUE/FALSE"),
        (float("nan"), "finite"),
        (2**63, "range"),
        ("99999999999999999999億", "range"),
    ],
)
def test_coerce_yen_rejects(value: object, reason: str) -> None:
    """Negative, fractional, out-of-range and unreadable prices are errors."""
    with pytest.raises(CellError, match=reason):
        coerce_yen(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (45666, date(2025, 1, 9)),  # Sheets serial number
        (45666.0, date(2025, 1, 9)),
        (45666.75, date(2025, 1, 9)),  # time of day dropped
        (0, date(1899, 12, 30)),
        (1, date(1899, 12, 31)),
        (61, date(1900, 3, 1)),  # no 1900 leap-year bug in Sheets
        (-1, date(1899, 12, 29)),
        ("2025-01-09", date(2025, 1, 9)),
        ("2025/1/9", date(2025, 1, 9)),
        ("2025/01/09", date(2025, 1, 9)),
        ("2025.1.9", date(2025, 1, 9)),
        ("2025年1月9日", date(2025, 1, 9)),
        ("2025年 1月 9日", date(2025, 1, 9)),
        ("２０２５年１月９日", date(2025, 1, 9)),
        ("２０２５/０１/０９", date(2025, 1, 9)),
        ("2025-01-09T10:30:00", date(2025, 1, 9)),
        ("2025-01-09 10:30", date(2025, 1, 9)),
        ("令和7年1月9日", date(2025, 1, 9)),
        ("令和元年5月1日", date(2019, 5, 1)),
        ("平成31年4月30日", date(2019, 4, 30)),
        ("昭和64年1月7日", date(1989, 1, 7)),
        ("㋿7年1月9日", date(2025, 1, 9)),
        ("R7.1.9", date(2025, 1, 9)),
        ("H31/4/30", date(2019, 4, 30)),
        ("2024-02-29", date(2024, 2, 29)),
        (date(2025, 1, 9), date(2025, 1, 9)),
    ],
)
def test_coerce_date(value: object, expected: date) -> None:
    """Dates read from serial numbers and the usual written forms."""
    assert expected == coerce_date(value)


@pytest.mark.parametrize(
    "value",
    [
        "2025-02-30",  # impossible
        "2023-02-29",
        "2025-13-01",
        "2025/1-9",  # mixed separators
        "1/9/2025",  # ambiguous order
        "25/1/9",
        "45666",  # digits as text are not a serial
        "令和0年1月1日",
        "yesterday",
        True,
        float("nan"),
        10**9,  # serial far beyond 9999-12-31
        -(10**9),
    ],
)
def test_coerce_date_rejects(value: object) -> None:
    """Impossible, ambiguous and unreadable dates are errors."""
    with pytest.raises(CellError):
        coerce_date(value)


TRUE_WORDS = [
    True,
    1,
    1.0,
    "TRUE",
    "true",
    "True",
    "yes",
    "YES",
    "y",
    "Y",
    "1",
    "○",
    "◯",
    "〇",
    "有",
    "あり",
    "可",
    "ｙｅｓ",
]
FALSE_WORDS = [
    False,
    0,
    0.0,
    "FALSE",
    "false",
    "no",
    "No",
    "n",
    "N",
    "0",
    "×",
    "✕",
    "無",
    "なし",
    "不可",
]


@pytest.mark.parametrize(
    ("value", "expected"), [(v, True) for v in TRUE_WORDS] + [(v, False) for v in FALSE_WORDS]
)
def test_coerce_boolean(value: object, expected: bool) -> None:
    """Checkboxes and the usual yes/no words read as booleans."""
    assert expected is coerce_boolean(value)


@pytest.mark.parametrize("value", ["maybe", "2", 2, 0.5, "有無", float("nan")])
def test_coerce_boolean_rejects(value: object) -> None:
    """Anything else is not a yes/no answer."""
    with pytest.raises(CellError):
        coerce_boolean(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (123, "123"),
        (123.0, "123"),
        (12.5, "12.5"),
        ("00123", "00123"),  # leading zeros kept
        (" 00123 ", "00123"),
        ("Ａ-００１", "A-001"),
        ("A,1", "A,1"),
        ("B(2)", "B(2)"),
        ('say "hi"', 'say "hi"'),
        ("back\\slash", "back\\slash"),
        ("a b/c", "a b/c"),
        ("物件-１", "物件-1"),
        ("123.0", "123.0"),  # typed as text: kept as typed
    ],
)
def test_coerce_key(value: object, expected: str) -> None:
    """Property numbers keep their text; numbers lose only a .0."""
    assert expected == coerce_key(value)


@pytest.mark.parametrize("value", [True, float("nan"), date(2025, 1, 9)])
def test_coerce_key_rejects(value: object) -> None:
    """Checkboxes, NaN and dates are not property numbers."""
    with pytest.raises(CellError):
        coerce_key(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(123.0, 123), (12.5, 12.5), (7, 7), (True, True), (" メモ ", "メモ"), ("", None)],
)
def test_coerce_extra(value: object, expected: object) -> None:
    """Extra cells keep their JSON type; whole floats become ints for a stable hash."""
    actual = coerce_extra(value)
    assert expected == actual
    assert type(expected) is type(actual)


# --- aliases --------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_aliases_flat(tmp_path: Path) -> None:
    """Top-level pairs map headers (normalized) to columns."""
    path = write(tmp_path, '"物件番号" = "property_number"\n"Sale Price" = "price"\n')
    assert {"物件番号": "property_number", "sale_price": "price"} == load_aliases(path)


def test_load_aliases_table(tmp_path: Path) -> None:
    """An [aliases] table works too, and may be mixed with top-level pairs."""
    path = write(tmp_path, '"所在地" = "address"\n[aliases]\n"物件番号" = "property_number"\n')
    assert {"所在地": "address", "物件番号": "property_number"} == load_aliases(path)


def test_load_aliases_none() -> None:
    """No mapping file means no aliases."""
    assert {} == load_aliases(None)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('"価格" = "cost"\n', "'価格'"),
        ('"x" = "content_hash"\n', "content_hash"),
        ('"x" = "extra"\n', "'x'"),
        ('"x" = 3\n', "'x'"),
        ("[other]\nx = 'price'\n", "other"),
        ('"Price" = "price"\n"price" = "notes"\n', "'price'"),
        ('"  " = "price"\n', "blank"),
    ],
)
def test_load_aliases_bad_entry(tmp_path: Path, text: str, needle: str) -> None:
    """A bad entry is a ConfigError naming SYNC_MAPPING, the file and the entry."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_aliases(path)
    message = str(info.value)
    assert message.startswith("SYNC_MAPPING"), message
    assert str(path) in message
    assert needle in message


def test_load_aliases_invalid_toml(tmp_path: Path) -> None:
    """Invalid TOML is a one-line ConfigError."""
    path = write(tmp_path, "this is = = not toml\n[[")
    with pytest.raises(ConfigError) as info:
        load_aliases(path)
    message = str(info.value)
    assert "SYNC_MAPPING" in message and str(path) in message and "TOML" in message
    assert "\n" not in message


def test_load_aliases_unreadable(tmp_path: Path) -> None:
    """A missing file is a ConfigError, not an OSError."""
    with pytest.raises(ConfigError, match="SYNC_MAPPING"):
        load_aliases(tmp_path / "missing.toml")


# --- header map -----------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "property_number",
        "Property Number",
        "PROPERTY-NUMBER",
        " property number ",
        "Property_Number",
        "ｐｒｏｐｅｒｔｙ　ｎｕｍｂｅｒ",
    ],
)
def test_header_variants_map(header: str) -> None:
    """Case, spacing, hyphens and full-width forms of a column name map to it."""
    header_map = build_header_map([header, "Price"], {}, tab="Listings")
    assert {0: "property_number", 1: "price"} == header_map.columns


def test_aliases_map_headers(tmp_path: Path) -> None:
    """Aliases from the mapping file map Japanese headers."""
    aliases = load_aliases(write(tmp_path, '"物件番号" = "property_number"\n"価格" = "price"\n'))
    header_map = build_header_map(["物件番号", "価格", "住所"], aliases, tab="Listings")
    assert {0: "property_number", 1: "price"} == header_map.columns
    assert {2: "住所"} == header_map.extra


def test_unmapped_headers_go_to_extra() -> None:
    """Unknown headers (including managed column names) go to extra, keyed as typed."""
    headers = ["property_number", " Memo ", "extra", "content_hash", "synced_at"]
    header_map = build_header_map(headers, {}, tab="Listings")
    assert {0: "property_number"} == header_map.columns
    assert {1: "Memo", 2: "extra", 3: "content_hash", 4: "synced_at"} == header_map.extra
    assert any("'content_hash'" in w and "manages" in w for w in header_map.warnings)


def test_missing_columns_are_listed_for_the_planner() -> None:
    """Table columns with no header are listed in ``missing``; the planner decides about them."""
    header_map = build_header_map(["prise", *list(COLUMNS)[:-1]], {}, tab="L")
    assert ("notes",) == header_map.missing
    assert ("prise", *list(COLUMNS)[:-1]) == header_map.headers
    assert [] == header_map.warnings


def test_full_header_has_no_warnings() -> None:
    """A sheet with every column and an extra one maps silently."""
    assert [] == build_header_map([*COLUMNS, "Memo"], {}, tab="L").warnings


def test_duplicate_mapping_is_data_error() -> None:
    """Two headers mapping to one column is a DataError naming both and their columns."""
    headers = ["property_number", "Price", "notes", "物件価格"]
    with pytest.raises(DataError) as info:
        build_header_map(headers, {"物件価格": "price"}, tab="Listings")
    message = str(info.value)
    assert "'Price' (column B)" in message
    assert "'物件価格' (column D)" in message
    assert "'price'" in message


def test_duplicate_far_columns_named_by_letters() -> None:
    """Columns past Z are named AA, AB, ..."""
    headers = ["property_number", *[f"h{i}" for i in range(1, 27)], "PRICE", "price"]
    with pytest.raises(DataError, match=r"column AB\).*column AC\)"):
        build_header_map(headers, {}, tab="Listings")


def test_duplicate_unmapped_headers_are_both_kept_by_column_letter() -> None:
    """Unmapped headers with the same text go to extra under their column letters, warned."""
    header_map = build_header_map(["property_number", "Memo", "x", "Memo "], {}, tab="Listings")
    assert {1: "Memo (B)", 2: "x", 3: "Memo (D)"} == header_map.extra
    assert [
        "Headers 'Memo' in tab 'Listings' appear 2 times and match no table column; "
        "their values are kept in extra as 'Memo (B)', 'Memo (D)'."
    ] == header_map.warnings


def test_missing_key_header_is_data_error() -> None:
    """A sheet without the key column is a DataError listing the headers found."""
    with pytest.raises(DataError) as info:
        build_header_map(["a", "", "b", "c"], {}, tab="X")
    assert (
        "Header 'property_number' not found in tab 'X'; found: a, b, c. "
        "Add the column or map it in SYNC_MAPPING."
    ) == str(info.value)


def test_empty_header_row_is_data_error() -> None:
    """An empty header row is missing the key column too."""
    with pytest.raises(DataError, match="found: \\(no headers\\)"):
        build_header_map([], {}, tab="X")


def test_blank_headers_remembered_without_warning() -> None:
    """Blank headers are remembered; they only warn once data shows up under them."""
    header_map = build_header_map(["property_number", "", None, "price"], {}, tab="Listings")
    assert frozenset({1, 2}) == header_map.blank
    assert not any("blank" in w for w in header_map.warnings)


def test_numeric_header_cells() -> None:
    """Header cells typed as numbers become text headers."""
    header_map = build_header_map(["property_number", 2024, 12.0], {}, tab="Listings")
    assert {1: "2024", 2: "12"} == header_map.extra


def test_aliases_given_programmatically_are_normalized_and_checked() -> None:
    """Aliases passed as a plain dict work the same; unknown targets are ConfigError."""
    header_map = build_header_map(["ID No."], {"id no.": "property_number"}, tab="T")
    assert {0: "property_number"} == header_map.columns
    with pytest.raises(ConfigError):
        build_header_map(["ID"], {"ID": "nope"}, tab="T")


def test_moved_and_renamed_columns_never_shift_data(tmp_path: Path) -> None:
    """Same data under reordered, renamed and aliased headers gives equal listings."""
    aliases = load_aliases(write(tmp_path, '"物件番号" = "property_number"\n"価格" = "price"\n'))
    first = build_header_map(["物件番号", "address", "価格", "Memo", "listed_on"], aliases, tab="T")
    second = build_header_map(
        ["Listed-On", "Memo", "価格", "ADDRESS", "property number"], aliases, tab="T"
    )
    row1 = ["A-1", "東京都", "1,280万円", "note", 45666]
    row2 = [45666, "note", "1,280万円", "東京都", "A-1"]
    (a, _, _), (b, _, _) = convert_row(row1, first, 2), convert_row(row2, second, 2)
    assert a is not None and b is not None
    assert a.listing == b.listing
    assert (
        Listing(
            property_number="A-1",
            address="東京都",
            price=12_800_000,
            listed_on=date(2025, 1, 9),
            extra={"Memo": "note"},
        )
        == a.listing
    )


def test_blank_header_with_data_warns() -> None:
    """Data under a blank header (or past the last header) is ignored with a warning."""
    header_map = build_header_map(["property_number", "", "price"], {}, tab="T")
    sheet_row, problems, warnings = convert_row(["A-1", "stray", 100, "far"], header_map, 7)
    assert sheet_row is not None and [] == problems
    assert 2 == len(warnings)
    assert "Row 7, column B" in warnings[0]
    assert "Row 7, column D" in warnings[1]


def test_blank_header_without_data_is_quiet() -> None:
    """A blank header column with nothing in it produces no warning."""
    header_map = build_header_map(["property_number", "", "price"], {}, tab="T")
    assert (convert_row(["A-1", "", 100], header_map, 7)[2]) == []
