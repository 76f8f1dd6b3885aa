"""Tests for the listing model, its wire form and hash, and row conversion."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from listing_sync import mapping
from listing_sync.mapping import (
    HeaderMap,
    build_header_map,
    header_signature,
    source_hash,
)
from listing_sync.models import (
    Listing,
    RowProblem,
    SheetRow,
    content_hash,
    convert_row,
    payload,
)
from listing_sync.schema import LISTINGS

COLUMNS = LISTINGS.columns

ROOT = Path(__file__).resolve().parents[1]
HEADERS = [*COLUMNS, "Memo"]
HEADER_MAP = build_header_map(HEADERS, {}, tab="Listings")
# A row as the Sheets API sends it with UNFORMATTED_VALUE + SERIAL_NUMBER.
API_ROW = [
    "A-001",
    "戸建て",
    "販売中",
    "東京都世田谷区桜新町1-2-3",
    12800000,
    120.5,
    98.25,
    "3LDK",
    "桜新町",
    7,
    45666,
    True,
    "南向き",
    "担当: 山田",
]
# The same listing as people type it.
TEXT_ROW = [
    " A-001 ",
    "戸建て",
    "販売中",
    "東京都世田谷区桜新町1-2-3",
    "1,280万円",
    "120.50㎡",
    "98.25 m²",
    "３ＬＤＫ",
    "桜新町",
    "徒歩7分",
    "2025年1月9日",
    "有",
    "南向き",
    "担当: 山田",
]
EXPECTED = Listing(
    property_number="A-001",
    property_type="戸建て",
    status="販売中",
    address="東京都世田谷区桜新町1-2-3",
    price=12_800_000,
    land_area_m2=Decimal("120.5"),
    building_area_m2=Decimal("98.25"),
    layout="3LDK",
    nearest_station="桜新町",
    walk_minutes=7,
    listed_on=date(2025, 1, 9),
    parking=True,
    notes="南向き",
    extra={"Memo": "担当: 山田"},
)


def convert(cells: list[object], header_map: HeaderMap = HEADER_MAP, row: int = 2):
    return convert_row(cells, header_map, row)


# --- Listing ----------------------------------------------------------------------


def test_listing_fields_follow_columns() -> None:
    """The model has exactly the sheet-fed columns, in table order, plus extra."""
    assert [*COLUMNS, "extra"] == list(Listing.model_fields)


def test_listing_is_frozen_and_forbids_unknown_fields() -> None:
    """Listings are immutable and reject fields the table does not have."""
    listing = Listing(property_number="A")
    with pytest.raises(ValidationError):
        listing.price = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Listing(property_number="A", content_hash="x")  # type: ignore[call-arg]


def test_validation_error_names_column() -> None:
    """A bad value fails validation with the column name as its location."""
    with pytest.raises(ValidationError) as info:
        Listing.model_validate({"property_number": "A", "price": "応相談", "listed_on": "x"})
    assert {("price",), ("listed_on",)} == {e["loc"] for e in info.value.errors()}


def test_formula_errors_warn_through_context() -> None:
    """A formula error reads as None and adds a warning to the validation context."""
    warnings: list[str] = []
    listing = Listing.model_validate(
        {"property_number": "A", "price": "#REF!"}, context={"warnings": warnings, "row": 9}
    )
    assert listing.price is None
    assert ["Row 9, column 'price': formula error #REF! read as empty"] == warnings


# --- convert_row ------------------------------------------------------------------


@pytest.mark.parametrize("cells", [API_ROW, TEXT_ROW], ids=["api", "text"])
def test_convert_valid_row(cells: list[object]) -> None:
    """API-typed and hand-typed rows read as the same listing."""
    assert (SheetRow(2, EXPECTED), [], []) == convert(cells)


@pytest.mark.parametrize("cells", [[], [None], ["", "  ", None], ["\u3000"]])
def test_empty_rows_are_skipped(cells: list[object]) -> None:
    """Rows with no data at all are skipped without problem or warning."""
    assert (None, [], []) == convert(cells)


def test_short_row_reads_missing_cells_as_none() -> None:
    """Sheets omits trailing empty cells: the missing ones are None, not shifted."""
    sheet_row, problems, warnings = convert(["A-2", "マンション", None, None, 5000])
    assert [] == problems and [] == warnings
    assert sheet_row is not None
    assert (
        Listing(property_number="A-2", property_type="マンション", price=5000) == sheet_row.listing
    )


def test_all_bad_columns_are_reported() -> None:
    """Every failing column of a row is a problem with row number and raw value."""
    cells = list(API_ROW)
    cells[4] = "応相談"
    cells[9] = "abc"
    cells[10] = "2025-02-30"
    cells[11] = "maybe"
    sheet_row, problems, _ = convert(cells, row=12)
    assert sheet_row is None
    assert [
        ("price", "応相談"),
        ("walk_minutes", "abc"),
        ("listed_on", "2025-02-30"),
        ("parking", "maybe"),
    ] == [(p.column, p.value) for p in problems]
    assert all(p.row == 12 and p.property_number == "A-001" for p in problems)
    assert "impossible date; the cell holds '2025-02-30'" == problems[2].message


def test_missing_property_number_is_one_problem() -> None:
    """A row with data but no property number is one problem on that column."""
    cells = list(API_ROW)
    cells[0] = None
    assert (
        None,
        [RowProblem(5, None, "property_number", "missing property number", None)],
        [],
    ) == convert(cells, row=5)


def test_formula_error_in_key_is_a_problem() -> None:
    """A formula error in the key cell cannot be read as empty: the row is a problem."""
    cells = list(API_ROW)
    cells[0] = "#N/A"
    sheet_row, problems, _ = convert(cells)
    assert sheet_row is None
    assert ["property_number"] == [p.column for p in problems]
    assert "#N/A" in problems[0].message


def test_formula_errors_become_none_with_warning() -> None:
    """Formula errors in other columns (and in extra) read as empty, with a warning each."""
    cells = list(API_ROW)
    cells[4] = "#REF!"
    cells[13] = "#N/A"
    sheet_row, problems, warnings = convert(cells, row=3)
    assert [] == problems
    assert sheet_row is not None
    assert sheet_row.listing.price is None
    assert {} == sheet_row.listing.extra
    assert [
        "Row 3, column 'Memo': formula error #N/A read as empty",
        "Row 3, column 'price': formula error #REF! read as empty",
    ] == sorted(warnings)


@pytest.mark.parametrize(
    ("key", "expected"),
    [(123, "123"), (123.0, "123"), (12.5, "12.5"), ("00123", "00123"), ("A,1 (2)", "A,1 (2)")],
)
def test_property_number_forms(key: object, expected: str) -> None:
    """Numeric keys lose only a .0; text keys keep leading zeros and punctuation."""
    sheet_row, _, _ = convert([key])
    assert sheet_row is not None
    assert expected == sheet_row.listing.property_number


def test_problem_to_dict() -> None:
    """Problems serialize to JSON-ready dicts for the report."""
    problem = RowProblem(4, "A", "price", "not a price", "応相談")
    expected = {
        "row": 4,
        "property_number": "A",
        "column": "price",
        "message": "not a price",
        "value": "応相談",
        "tab": None,
    }
    assert expected == problem.to_dict()
    json.dumps(problem.to_dict())


# --- payload / content_hash -------------------------------------------------------


def test_payload_shape() -> None:
    """Every column key is always present, dates are ISO, decimals exact, extra a dict."""
    assert {
        "property_number": "A-001",
        "property_type": "戸建て",
        "status": "販売中",
        "address": "東京都世田谷区桜新町1-2-3",
        "price": 12800000,
        "land_area_m2": 120.5,
        "building_area_m2": 98.25,
        "layout": "3LDK",
        "nearest_station": "桜新町",
        "walk_minutes": 7,
        "listed_on": "2025-01-09",
        "parking": True,
        "notes": "南向き",
        "extra": {"Memo": "担当: 山田"},
    } == payload(EXPECTED)


def test_payload_keys_constant() -> None:
    """A sparse listing has the same keys as a full one (PostgREST needs equal keys)."""
    assert list(payload(EXPECTED)) == list(payload(Listing(property_number="B")))
    assert [*COLUMNS, "extra"] == list(payload(Listing(property_number="B")))
    assert all(
        v is None
        for k, v in payload(Listing(property_number="B")).items()
        if k not in ("property_number", "extra")
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120.50", 120.5),
        ("120", 120),
        ("120.000", 120),
        ("1E+2", 100),
        ("0.1", 0.1),
        ("0.00001", "0.00001"),  # float repr would be 1e-05
        ("12345678901234567890.123456789", "12345678901234567890.123456789"),
        ("-0.0", 0),
    ],
)
def test_payload_decimals_have_no_float_drift(value: str, expected: object) -> None:
    """Decimals go out as JSON numbers only when exact, else as canonical text."""
    listing = Listing(property_number="A", land_area_m2=Decimal(value))
    actual = payload(listing)["land_area_m2"]
    assert expected == actual
    assert type(expected) is type(actual)
    assert Decimal(str(actual)) == Decimal(value)


def test_hash_is_stable_for_equal_values() -> None:
    """120.50 and 120.5, 123 and 123.0, API and typed forms: one listing, one hash."""
    hashes = {content_hash(payload(convert(cells)[0].listing)) for cells in (API_ROW, TEXT_ROW)}
    assert 1 == len(hashes)
    assert len(next(iter(hashes))) == 64


def test_hash_ignores_column_order() -> None:
    """Moving columns in the sheet does not change any hash."""
    order = [13, 0, 5, 2, 1, 12, 4, 7, 3, 9, 6, 11, 10, 8]
    moved_map = build_header_map([HEADERS[i] for i in order], {}, tab="T")
    moved_row = [API_ROW[i] for i in order]
    original = convert(API_ROW)[0]
    moved = convert(moved_row, moved_map)[0]
    assert original is not None and moved is not None
    assert content_hash(payload(original.listing)) == content_hash(payload(moved.listing))


def test_hash_ignores_bookkeeping_keys_and_extra_order() -> None:
    """Only sheet-fed values + extra are hashed; extra key order does not matter."""
    row = payload(Listing(property_number="A", extra={"b": 1, "a": "x"}))
    same = dict(row, extra={"a": "x", "b": 1}, content_hash="old", synced_at="now")
    assert content_hash(row) == content_hash(same)


def test_hash_changes_with_any_value() -> None:
    """Changing any sheet-fed value or extra changes the hash."""
    base = payload(EXPECTED)
    hashes = {content_hash(base)}
    for key in LISTINGS.hashed_columns:
        hashes.add(content_hash(dict(base, **{key: {"changed": 1} if key == "extra" else None})))
    assert len(LISTINGS.hashed_columns) + 1 == len(hashes)


def test_payload_validates_back_to_the_same_listing() -> None:
    """The wire form reads back as the listing it came from."""
    assert EXPECTED == Listing.model_validate(payload(EXPECTED))


def test_hash_same_across_processes() -> None:
    """The hash does not depend on the process (hash randomization, dict order)."""
    code = (
        "import json, sys;"
        "from listing_sync.models import Listing, content_hash, payload;"
        "print(content_hash(payload(Listing.model_validate(json.loads(sys.argv[1])))))"
    )
    wire = json.dumps(payload(EXPECTED))
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code, wire],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert {content_hash(payload(EXPECTED))} == outputs


# --- source_hash: the digest of a row's raw cells ---------------------------------

SIGNATURE = header_signature(HEADER_MAP)


def test_source_hash_same_across_processes() -> None:
    """The raw-cells digest does not depend on the process (hash randomization)."""
    code = (
        "import json, sys;"
        "from listing_sync.mapping import build_header_map;"
        "from listing_sync.mapping import header_signature, source_hash;"
        "headers, cells = json.loads(sys.argv[1]);"
        "print(source_hash(cells, header_signature(build_header_map(headers, {}, tab='L'))))"
    )
    cells = [*API_ROW[:5], 1.5, 2, False, None, "", "東京"]
    argument = json.dumps([HEADERS, cells])
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code, argument],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert {source_hash(cells, SIGNATURE)} == outputs


def test_source_hash_changes_with_any_cell() -> None:
    """Any one cell changed, or the same value typed differently, gives another digest."""
    changed = [[*API_ROW[:i], f"changed {i}", *API_ROW[i + 1 :]] for i in range(len(API_ROW))]
    digests = {source_hash(cells, SIGNATURE) for cells in [API_ROW, *changed]}
    assert len(API_ROW) + 1 == len(digests)
    typed = {source_hash(["A-1", value], SIGNATURE) for value in (1, 1.0, True, "1", " 1")}
    assert 5 == len(typed)
    # A value marshal cannot take (not from the API) still gets a digest of its own.
    assert source_hash(["A-1", Decimal("1")], SIGNATURE) not in typed


def test_source_hash_ignores_trailing_empty_cells() -> None:
    """Trailing empty cells (which the API omits) do not change the digest."""
    digest = source_hash(API_ROW[:5], SIGNATURE)
    assert digest == source_hash([*API_ROW[:5], "", None, "  "], SIGNATURE)
    assert digest == source_hash(tuple(API_ROW[:5]), SIGNATURE)
    assert digest != source_hash([*API_ROW[:5], "", "x"], SIGNATURE)
    assert digest != source_hash([*API_ROW[:4], "", API_ROW[4]], SIGNATURE)


def test_source_hash_changes_with_the_header_map() -> None:
    """Moved, re-aliased, added or blank headers change the digest; the tab name does not."""
    renamed = ["備考" if h == "notes" else h for h in HEADERS]
    maps = [
        build_header_map(HEADERS, {}, tab="Listings"),
        build_header_map([*HEADERS[:-1], "Memo 2"], {}, tab="Listings"),
        build_header_map([*HEADERS, ""], {}, tab="Listings"),
        build_header_map([*HEADERS, "Other"], {}, tab="Listings"),
        build_header_map([HEADERS[1], HEADERS[0], *HEADERS[2:]], {}, tab="Listings"),
        build_header_map(renamed, {}, tab="Listings"),
        build_header_map(renamed, {"備考": "notes"}, tab="Other tab"),
    ]
    signatures = [header_signature(m) for m in maps]
    # The last map sends every column where the first does: the same rows, the same listing.
    assert SIGNATURE == signatures[0] == signatures[-1]
    assert 6 == len(set(signatures))
    assert 6 == len({source_hash(API_ROW, s) for s in signatures})


def test_source_hash_changes_with_source_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bumping SOURCE_VERSION changes the header signature, so every stored digest."""
    before = source_hash(API_ROW, SIGNATURE)
    monkeypatch.setattr(mapping, "SOURCE_VERSION", mapping.SOURCE_VERSION + 1)
    assert before != source_hash(API_ROW, header_signature(HEADER_MAP))


def test_a_number_beyond_64_bits_in_extra_keeps_the_canonical_form() -> None:
    """A 30-digit number kept in extra is written as the standard library writes JSON."""
    from listing_sync.rows import canonical_json

    row = dict(payload(EXPECTED), extra={"big": 10**30})
    expected = json.dumps(
        {k: row[k] for k in LISTINGS.hashed_columns},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    assert expected == canonical_json(row)


def test_canonical_bytes_take_about_their_length_in_memory() -> None:
    """100,000 planned rows stay in memory: each row's JSON must not hold a 4 KB block."""
    import tracemalloc

    from listing_sync.rows import canonical_values

    row = dict(payload(EXPECTED), notes="x" * 600)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [canonical_values(row) for _ in range(1000)]
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert used < 2 * sum(len(b) for b in kept), used
