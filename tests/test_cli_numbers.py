"""Property numbers from the command line and --from-file."""

from __future__ import annotations

from pathlib import Path

import pytest

from listing_sync.cli import read_numbers
from listing_sync.errors import UsageError


def test_numbers_are_normalised_like_sheet_keys() -> None:
    """Full-width and padded numbers match the sheet's keys; duplicates are dropped."""
    expected = ["J-001", "00123", "A,1", "#N/A"]
    assert expected == read_numbers(["Ｊ－００１", " 00123 ", "A,1", "J-001", "#N/A"], None)


def test_numbers_from_file_skip_blank_lines_and_bom(tmp_path: Path) -> None:
    """--from-file reads one number per line, ignoring blank lines and a UTF-8 BOM."""
    listing = tmp_path / "numbers.txt"
    listing.write_text("\ufeffA-1\n\n  B-2  \nA-1\n", encoding="utf-8")
    assert ["X", "A-1", "B-2"] == read_numbers(["X"], str(listing))


def test_no_numbers_is_a_usage_error(tmp_path: Path) -> None:
    """Nothing to sync, or an unreadable file, is a usage error (exit 2)."""
    with pytest.raises(UsageError, match="at least one property number"):
        read_numbers(["  "], None)
    with pytest.raises(UsageError, match="cannot read"):
        read_numbers([], str(tmp_path / "missing.txt"))
