"""The one sanitiser for text leaving the process, and the cell checks it backs up."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

from listing_sync.logs import RedactFilter, Redactor
from listing_sync.mapping import MAX_NUMBER_DIGITS, CellError, coerce_numeric, coerce_text
from listing_sync.sanitize import clean, clean_text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain 日本語 🏠", "plain 日本語 🏠"),
        ("a\x00b", "a\\u0000b"),
        ("価格\udc80", "価格\\udc80"),
        ("\ud83d", "\\ud83d"),
    ],
)
def test_clean_text_escapes_only_what_cannot_be_encoded(raw: str, expected: str) -> None:
    """NUL and lone surrogates become visible escapes; everything else is kept."""
    assert expected == clean_text(raw)
    clean_text(raw).encode("utf-8")


def test_clean_walks_nested_values_and_keeps_scalars() -> None:
    """Keys, list items and nested dicts are cleaned; numbers and None stay as they are."""
    value = {"k\x00": [{"v": "x\udc80"}, 3, None, ("t\x00",)]}
    assert {"k\\u0000": [{"v": "x\\udc80"}, 3, None, ["t\\u0000"]]} == clean(value)
    json.dumps(clean(value), ensure_ascii=False).encode("utf-8")


def test_redaction_also_escapes() -> None:
    """Every printed line passes the redactor, so it leaves encodable."""
    redact = Redactor(["secret-value-123"])
    assert "[REDACTED] \\udc80" == redact("secret-value-123 \udc80")


def test_log_records_are_escaped_without_any_secret() -> None:
    """A log record with a lone surrogate is escaped even before a secret is known."""
    record = logging.LogRecord(
        "listing_sync", logging.WARNING, __file__, 1, "%s", ("a\ud83d",), None
    )
    RedactFilter().filter(record)
    assert "a\\ud83d" == record.getMessage()


@pytest.mark.parametrize(
    "value",
    ["9" * 4301, "1" * (MAX_NUMBER_DIGITS + 1), Decimal("1E+5000"), 10**1200],
    ids=["4301-digits", "limit+1", "exponent", "int"],
)
def test_an_over_long_number_is_a_cell_error(value: object) -> None:
    """Too many digits is the cell's problem, never a ValueError from int()."""
    with pytest.raises(CellError, match="number too long"):
        coerce_numeric(value)


def test_a_number_at_the_limit_is_read() -> None:
    """MAX_NUMBER_DIGITS digits are still a number."""
    assert Decimal("1" * MAX_NUMBER_DIGITS) == coerce_numeric("1" * MAX_NUMBER_DIGITS)


def test_a_nul_in_text_is_a_cell_error() -> None:
    """PostgreSQL text cannot hold NUL: the cell fails, not the whole batch."""
    with pytest.raises(CellError, match="NUL"):
        coerce_text("a\x00b")
