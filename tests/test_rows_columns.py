"""The column-wise reader (``RowReader.bodies``) writes exactly what the row reader does.

``bodies`` is the fast path of every sync: a cell costs a dict lookup or a direct
encoding instead of a coercer, a model and a JSON encoder. Its contract is strict:
for each row, either the very bytes ``canonical_values(read(row).values)`` gives (so
content_hash never changes with the path taken), or None, and then the row is read
the careful way. These tests hold it to that on hostile cells, every column kind and
sheet shapes with gaps, and check that plain rows really take the fast path.
"""

from __future__ import annotations

import json
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listing_sync import mapping
from listing_sync.mapping import build_header_map
from listing_sync.rows import (
    QUICK,
    RowReader,
    _quick_number,
    _reading,
    canonical_values,
    json_text,
)
from listing_sync.schema import LISTINGS, Column, ColumnKind

# Every kind a column can have: the built-in ones, and those an office can add.
ADDED: tuple[Column, ...] = (
    Column("floors", "int2", optional=True),
    Column("units", "int4", optional=True),
    Column("parcel_id", "int8", optional=True),
    Column("inspected_at", "timestamptz", optional=True),
    Column("tags", "jsonb", optional=True),
    Column("handover_on", "date", optional=True),
    Column("pets", "boolean", optional=True),
)
TABLE = LISTINGS.with_columns(ADDED)
# Column 0 has no header (its data is warned about), the key is not first, two extra
# columns, and a column the table has that no header maps to (parking).
HEADERS = [
    "",
    *(c for c in TABLE.columns if c != "parking"),
    "Memo",
    "担当者",
]
HEADER_MAP = build_header_map(HEADERS, {}, tab="Listings", table=TABLE)
WIDTH = len(HEADERS)

CELL_TEXT = st.text(
    alphabet=st.sampled_from(
        list('0123456789０１２３４５６７８９,.，．-+ ¥￥円万億年月日分㎡m²/#%"\\\x00\n\t')
        + list("TRUEFALSEyesno○×有無NA!?REF")
    ),
    max_size=14,
)
CELLS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-5, max_value=100_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e7).map(lambda f: round(f, 2)),
    CELL_TEXT,
    st.text(max_size=8),
    st.sampled_from(["#N/A", "#REF!", "", "  ", "3,580万円", "¥35,800,000", "98.25㎡", "007.50"]),
)
# Rows as the API sends them: any width (trailing empty cells left out), key mostly set.
ROWS = st.lists(
    st.tuples(
        st.sampled_from(["A-1", "B-2", " C-3 ", "", None, 123, 12.0]),
        st.lists(CELLS, min_size=0, max_size=WIDTH + 2),
    ),
    min_size=1,
    max_size=40,
)


def careful(reader: RowReader, cells: list[object]) -> bytes | None:
    """What the row reader writes for ``cells``: None unless it is clean."""
    result = reader.read(cells, 2)
    if result.values is None or result.problems or result.warnings:
        return None
    return canonical_values(result.values)


def key_first(key: object, cells: list[object]) -> list[object]:
    at = HEADERS.index("property_number")
    row = [*cells, *([None] * (at + 1 - len(cells)))]
    row[at] = key
    return row


@settings(max_examples=300, deadline=None)
@given(rows=ROWS)
def test_bodies_are_the_row_readers_bytes_or_none(rows: list[tuple[object, list[object]]]) -> None:
    reader = RowReader(HEADER_MAP, TABLE)
    sheet = [key_first(key, cells) for key, cells in rows]
    bodies = reader.bodies(sheet, reader.numbers(sheet))
    assert len(bodies) == len(sheet)
    for cells, body in zip(sheet, bodies, strict=True):
        expected = careful(reader, cells)
        if body is not None:
            assert body == expected, cells
        # The other way round may differ: None is always allowed (the careful read).


def plain_row(rng: random.Random, i: int) -> list[object]:
    """A clean row: what offices type, in the forms the fast path knows."""
    values: dict[str, object] = {
        "property_number": f"P-{i:05d}",
        "property_type": rng.choice(["戸建て", "マンション", "土地"]),
        "status": rng.choice(["販売中", "成約済"]),
        "address": f"東京都世田谷区桜新町{rng.randrange(1, 9)}-{i}",
        "price": rng.choice(
            [
                rng.randrange(1, 10**9),
                f"{rng.randrange(1, 9999):,}万円",
                f"¥{rng.randrange(1, 10**9):,}",
            ]
        ),
        "land_area_m2": rng.choice(
            [round(rng.uniform(1, 500), 2), f"{round(rng.uniform(1, 500), 2)}㎡", 120.0, 80]
        ),
        "building_area_m2": None,
        "layout": "3LDK",
        "nearest_station": "桜新町",
        "walk_minutes": rng.choice([7, "徒歩7分", 7.0]),
        "listed_on": rng.randrange(40_000, 46_000),
        "notes": rng.choice(["", "南向き", 'a "quoted" note\\', "改行\nあり"]),
        "floors": rng.randrange(1, 40),
        "units": 12.0,
        "parcel_id": 2**40 + i,
        "inspected_at": 45_000.5,
        "tags": '{"b": 1, "a": [1, 2]}',
        "handover_on": "2025-03-31",
        "pets": rng.choice([True, False, "有", "無"]),
        "Memo": rng.choice([None, "memo", 12, 1.5, 45_000.25, True]),
        "担当者": "佐藤",
    }
    return [values.get(h) if h else None for h in HEADERS]


def test_plain_rows_take_the_fast_path_and_match() -> None:
    rng = random.Random(13)
    reader = RowReader(HEADER_MAP, TABLE)
    sheet = [plain_row(rng, i) for i in range(3000)]
    bodies: list[bytes | None] = []
    for start in range(0, len(sheet), 1000):  # three batches: the memo learns, then stops
        batch = sheet[start : start + 1000]
        bodies.extend(reader.bodies(batch, reader.numbers(batch)))
    assert None not in bodies
    for cells, body in zip(sheet, bodies, strict=True):
        assert body == careful(reader, cells)


def test_a_bad_cell_sends_only_its_row_the_careful_way() -> None:
    rng = random.Random(5)
    reader = RowReader(HEADER_MAP, TABLE)
    sheet = [plain_row(rng, i) for i in range(10)]
    sheet[3][HEADERS.index("price")] = "時価"  # not a price
    sheet[6][HEADERS.index("walk_minutes")] = "#N/A"  # a formula error: read, with a warning
    sheet[8][0] = "data under no header"  # warned about
    sheet[9] = [*sheet[9], "beyond the header"]  # warned about
    bodies = reader.bodies(sheet, reader.numbers(sheet))
    assert [i for i, b in enumerate(bodies) if b is None] == [3, 6, 8, 9]
    assert reader.read(sheet[3], 5).problems[0].column == "price"


def test_rows_without_a_key_or_any_data_are_left_to_the_careful_read() -> None:
    reader = RowReader(HEADER_MAP, TABLE)
    sheet: list[list[object]] = [[], [None, None], key_first(None, ["x"]), key_first("A", [])]
    bodies = reader.bodies(sheet, reader.numbers(sheet))
    assert bodies[:3] == [None, None, None]
    assert bodies[3] == careful(reader, sheet[3])


def test_two_extra_columns_of_one_name_are_left_to_the_careful_read() -> None:
    header_map = build_header_map(["property_number", "Memo", "Memo"], {}, tab="t")
    reader = RowReader(header_map)
    sheet: list[list[object]] = [["A", "x", "y"]]
    assert reader.bodies(sheet, reader.numbers(sheet)) in ([None], [careful(reader, sheet[0])])


def test_json_text_writes_every_code_point_as_orjson_does() -> None:
    chars = [chr(i) for i in range(0x110000) if not 0xD800 <= i <= 0xDFFF]
    for start in range(0, len(chars), 4096):
        text = "".join(chars[start : start + 4096])
        assert json_text(text) == orjson.dumps(text)
    for text in ['"', "\\", "\x00\x1f\x7f", "\u2028\u2029", "é", "🏠"]:
        expected = json.dumps(text, ensure_ascii=False).encode()
        assert json_text(text) == orjson.dumps(text) == expected


@given(
    value=st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.booleans(),
        st.dictionaries(
            st.text(max_size=3), st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=3
        ),
    )
)
def test_json_text_is_orjsons_canonical_form(value: object) -> None:
    assert json_text(value) == orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def test_json_text_of_floats_without_exponent_is_orjsons() -> None:
    rng = random.Random(3)
    for _ in range(200_000):
        value = rng.choice([1, -1]) * rng.random() * 10 ** rng.uniform(-6, 17)
        if rng.random() < 0.5:
            value = round(value, rng.randrange(0, 17))
        assert json_text(value) == orjson.dumps(value), value


@pytest.mark.parametrize("kind", sorted(QUICK))
@settings(max_examples=400, deadline=None)
@given(raw=CELLS)
def test_quick_forms_agree_with_the_coercer(kind: ColumnKind, raw: object) -> None:
    quick = QUICK[kind](raw)
    if quick is None:
        return
    read = _reading(mapping.COERCERS[kind], _to_json(kind))
    value = read(raw)
    assert quick == (b"null" if value is None else json_text(value)), raw


@settings(max_examples=400, deadline=None)
@given(raw=CELLS)
def test_quick_numbers_in_extra_agree_with_coerce_extra(raw: object) -> None:
    quick = _quick_number(raw)
    if quick is not None:
        assert quick == json_text(mapping.coerce_extra(raw)), raw


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("yen", "3,580万円", b"35800000"),
        ("yen", "¥35,800,000", b"35800000"),
        ("yen", "35800000円", b"35800000"),
        ("yen", 12800000.0, b"12800000"),
        ("yen", "1億2,000万円", None),  # the long way
        ("numeric", "98.25㎡", b"98.25"),
        ("numeric", "120.50", b"120.5"),
        ("numeric", "120.0m²", b"120"),
        ("numeric", -0.0, b"0"),
        ("numeric", 1e-05, None),  # written as text by json_decimal: the long way
        ("numeric", "007.5", None),
    ],
)
def test_quick_forms(kind: ColumnKind, raw: object, expected: bytes | None) -> None:
    assert QUICK[kind](raw) == expected


def _to_json(kind: ColumnKind):  # type: ignore[no-untyped-def]
    from listing_sync.rows import TO_JSON

    return TO_JSON.get(kind)
