"""Property tests: coercers never crash on odd input, and valid values round-trip."""

from __future__ import annotations

import contextlib
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from listing_sync.mapping import (
    COERCERS,
    CellError,
    build_header_map,
    coerce_boolean,
    coerce_date,
    coerce_extra,
    coerce_integer,
    coerce_key,
    coerce_numeric,
    coerce_text,
    coerce_yen,
)
from listing_sync.models import content_hash, convert_row, payload
from listing_sync.schema import LISTINGS

ALL_COERCERS = [*COERCERS.values(), coerce_key, coerce_extra]
INT8_MAX = 2**63 - 1
INT4_MAX = 2**31 - 1
EPOCH = date(1899, 12, 30).toordinal()

# Text that looks like cell contents: digits, separators, units, Japanese, anything.
cell_alphabet = st.sampled_from(
    list("0123456789０１２３４５６７８９,.，．-+ ¥￥円万億年月日分㎡m²/")
    + list("#!?NAREFabcTRUEyesno○×有無令和平成元RH")
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.text(alphabet=cell_alphabet, max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=5,
)

COLUMNS = LISTINGS.columns


@pytest.mark.parametrize("coerce", ALL_COERCERS, ids=lambda f: f.__name__)
@given(value=json_values)
def test_coercers_raise_only_cell_error(coerce, value: object) -> None:
    """Whatever JSON-ish value a cell holds, a coercer returns or raises CellError."""
    with contextlib.suppress(CellError):
        coerce(value)


def _grouped(n: int) -> str:
    return f"{n:,}"


@given(
    amount=st.integers(min_value=0, max_value=INT8_MAX),
    grouped=st.booleans(),
    prefix=st.sampled_from(["", "¥", "￥", "¥ "]),
    suffix=st.sampled_from(["", "円", " 円"]),
)
def test_yen_round_trip(amount: int, grouped: bool, prefix: str, suffix: str) -> None:
    """Any non-negative yen amount, written with separators and/or ¥/円, reads back."""
    text = f"{prefix}{_grouped(amount) if grouped else amount}{suffix}"
    assert amount == coerce_yen(text)
    assert amount == coerce_yen(amount)
    if float(amount) == amount:  # the API sends large whole numbers as floats too
        assert amount == coerce_yen(float(amount))


@given(
    man=st.integers(min_value=0, max_value=10**10),
    grouped=st.booleans(),
    suffix=st.sampled_from(["万", "万円"]),
)
def test_yen_man_round_trip(man: int, grouped: bool, suffix: str) -> None:
    """N万 / N万円 is N * 10,000 yen."""
    text = f"{_grouped(man) if grouped else man}{suffix}"
    assert man * 10_000 == coerce_yen(text)


@given(oku=st.integers(min_value=1, max_value=9999), man=st.integers(min_value=0, max_value=9999))
def test_yen_oku_man_round_trip(oku: int, man: int) -> None:
    """N億M万円 is N * 10^8 + M * 10^4 yen."""
    assert oku * 100_000_000 + man * 10_000 == coerce_yen(f"{oku}億{man}万円")


@given(amount=st.integers(min_value=1, max_value=10**12))
def test_negative_yen_rejected(amount: int) -> None:
    """Prices are never negative."""
    for value in (-amount, f"-{amount}", f"¥-{amount:,}", f"-{amount}円"):
        with pytest.raises(CellError, match="negative"):
            coerce_yen(value)


def _era(d: date) -> str | None:
    for name, start in (
        ("令和", date(2019, 5, 1)),
        ("平成", date(1989, 1, 8)),
        ("昭和", date(1926, 12, 25)),
        ("大正", date(1912, 7, 30)),
    ):
        if d >= start:
            year = d.year - start.year + 1
            # Era years are written with one or two digits.
            return f"{name}{year}年{d.month}月{d.day}日" if year < 100 else None
    return None


@given(day=st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_date_round_trip(day: date) -> None:
    """Any date written in each supported form, or as a serial number, reads back."""
    y, m, d = f"{day.year:04d}", day.month, day.day
    texts = [
        f"{y}-{m:02d}-{d:02d}",
        f"{y}/{m}/{d}",
        f"{y}/{m:02d}/{d:02d}",
        f"{y}.{m}.{d}",
        f"{y}年{m}月{d}日",
        f"{y}-{m:02d}-{d:02d}T12:34:56",
    ]
    era = _era(day)
    if era is not None:
        texts.append(era)
    for text in texts:
        assert day == coerce_date(text), text
    serial = day.toordinal() - EPOCH
    assert day == coerce_date(serial)
    assert day == coerce_date(float(serial))
    assert day == coerce_date(serial + 0.999)


@given(n=st.integers(min_value=-(2**31), max_value=INT4_MAX))
def test_integer_round_trip(n: int) -> None:
    """Any int in range, as a number, a float or text (grouped or not), reads back."""
    assert n == coerce_integer(n)
    assert n == coerce_integer(str(n))
    assert n == coerce_integer(float(n))
    assert n == coerce_integer(f"{n:,}")
    assert str(n) == coerce_text(n)
    assert str(n) == coerce_key(n)
    assert str(n) == coerce_key(float(n))


@given(n=st.integers(min_value=0, max_value=10**12), frac=st.integers(min_value=0, max_value=10**6))
def test_numeric_round_trip(n: int, frac: int) -> None:
    """Decimal text with grouping and units reads back exactly."""
    text = f"{n}.{frac}"
    expected = Decimal(text)
    for written in (text, f"{n:,}.{frac}", f"{text}㎡", f"{text} m2", f"{text}m²"):
        assert expected == coerce_numeric(written), written


@given(x=st.floats(allow_nan=False, allow_infinity=False))
def test_numeric_from_float_is_its_shortest_repr(x: float) -> None:
    """A float from the API reads as the decimal it displays as (no binary expansion)."""
    assert Decimal(repr(x)) == coerce_numeric(x)


@given(flag=st.booleans(), upper=st.booleans())
def test_boolean_round_trip(flag: bool, upper: bool) -> None:
    """Booleans read back from themselves, TRUE/FALSE text and 1/0."""
    text = str(flag)
    assert flag is coerce_boolean(flag)
    assert flag is coerce_boolean(text.upper() if upper else text.lower())
    assert flag is coerce_boolean(int(flag))
    assert flag is coerce_boolean(coerce_text(flag))


@given(text=st.text().filter(lambda t: t.strip() != ""))
def test_text_key_kept(text: str) -> None:
    """A text property number reads as itself, NFKC-normalized and trimmed (or not at all)."""
    try:
        key = coerce_key(text)
    except CellError:
        return
    if key is not None:
        assert key == key.strip()
        assert coerce_key(key) == key  # idempotent


HEADER_MAP = build_header_map([*COLUMNS, "Memo"], {}, tab="T")


@given(cells=st.lists(scalars, max_size=16), row=st.integers(min_value=2, max_value=10**6))
def test_convert_row_never_crashes(cells: list[object], row: int) -> None:
    """Any row either converts, is skipped, or yields problems; valid rows hash."""
    sheet_row, problems, warnings = convert_row(cells, HEADER_MAP, row)
    assert all(isinstance(w, str) for w in warnings)
    if sheet_row is None:
        assert all(p.row == row for p in problems)
    else:
        assert [] == problems
        assert 64 == len(content_hash(payload(sheet_row.listing)))
