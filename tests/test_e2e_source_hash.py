"""End-to-end tests of skipping validation for untouched rows (issue 6), on the real stack.

A row whose raw cells, header map and SOURCE_VERSION match the source_hash stored
with its active listing is counted unchanged without being validated. A formula
error in a cell shows whether a row was validated: validation warns about it.
"""

from __future__ import annotations

import re
from pathlib import Path

from e2e_util import (
    column,
    full_sync,
    listings,
    outcome,
    output,
    row,
    set_sheet,
    summary,
    sync,
)

from devstack import LocalStack

WARNING = "Row 2, column 'price': formula error #N/A read as empty"


def test_an_identical_second_sync_validates_nothing(clean_stack: LocalStack, run_cli) -> None:
    """The same sheet again skips every row unvalidated (no warning); a changed cell or --force
    validates its row again."""
    set_sheet(clean_stack, [row("S-1", price="#N/A"), row("S-2")])
    data = full_sync(run_cli)
    assert outcome(total=2, success=2) == summary(data)
    assert [WARNING] == data["warnings"]
    first = listings(clean_stack)
    assert all(re.fullmatch(r"[0-9a-f]{32}", t["source_hash"]) for t in first.values())

    data = full_sync(run_cli)
    assert outcome(total=2, skipped=2) == summary(data)
    assert [] == data["warnings"]
    assert first == listings(clean_stack)

    set_sheet(clean_stack, [row("S-1", price="#N/A", layout="3LDK"), row("S-2")])
    data = full_sync(run_cli)
    assert outcome(total=2, success=1, skipped=1) == summary(data)
    assert [WARNING] == data["warnings"]
    after = listings(clean_stack)
    assert "3LDK" == after["S-1"]["layout"]
    assert first["S-1"]["source_hash"] != after["S-1"]["source_hash"]
    assert first["S-2"] == after["S-2"]

    data = full_sync(run_cli, "--force")
    assert outcome(total=2, success=2) == summary(data)
    assert [WARNING] == data["warnings"]
    assert column(clean_stack, "source_hash") == {n: t["source_hash"] for n, t in after.items()}


def test_sync_numbers_skips_untouched_rows_it_was_asked_for(
    clean_stack: LocalStack, run_cli
) -> None:
    """sync numbers trusts an untouched requested row too; --force validates it."""
    set_sheet(clean_stack, [row("N-1", price="#N/A"), row("N-2")])
    full_sync(run_cli)

    r, data = sync(run_cli, "sync", "numbers", "N-1")
    assert 0 == r.returncode, output(r)
    assert outcome(total=1, skipped=1) == summary(data)
    assert [] == data["warnings"]

    r, data = sync(run_cli, "sync", "numbers", "N-1", "--force")
    assert 0 == r.returncode, output(r)
    assert outcome(total=1, success=1) == summary(data)
    assert [WARNING] == data["warnings"]


def test_a_duplicate_of_an_untouched_row_refuses_both_copies(
    clean_stack: LocalStack, run_cli
) -> None:
    """An existing row copied unchanged further down: both copies refused, the table kept."""
    set_sheet(clean_stack, [row("D-1", price=100), row("D-2")])
    full_sync(run_cli)
    before = listings(clean_stack)

    set_sheet(clean_stack, [row("D-1", price=100), row("D-2"), row("D-1", price=100)])
    r, data = sync(run_cli, "sync", "all")
    assert 1 == r.returncode, output(r)
    assert outcome("partial", total=3, failed=2, skipped=1) == summary(data)
    message = "duplicate property number 'D-1' in sheet rows 2, 4; none of them was written"
    assert [(2, "D-1", message), (4, "D-1", message)] == [
        (p["row"], p["property_number"], p["message"]) for p in data["problems"]
    ]
    assert before == listings(clean_stack)


def test_a_removed_listing_that_comes_back_unchanged_is_written(
    clean_stack: LocalStack, run_cli
) -> None:
    """A listing back in the sheet with the very cells it had is written, clearing removed_at."""
    rows = [row(f"B-{i}") for i in range(1, 6)]
    set_sheet(clean_stack, rows)
    full_sync(run_cli)
    before = listings(clean_stack)
    set_sheet(clean_stack, rows[:4])
    assert outcome(total=4, skipped=4, removed=1) == summary(full_sync(run_cli))

    set_sheet(clean_stack, rows)
    data = full_sync(run_cli)
    assert outcome(total=5, success=1, skipped=4) == summary(data)
    back = listings(clean_stack)["B-5"]
    assert (None, data["sync_id"]) == (back["removed_at"], back["last_sync_id"])
    assert before["B-5"]["source_hash"] == back["source_hash"]


def test_a_changed_mapping_file_validates_every_row_again(
    clean_stack: LocalStack, run_cli, tmp_path: Path
) -> None:
    """The same cells under another alias map elsewhere: every row is read again and written."""
    mapping = tmp_path / "mapping.toml"
    env = {"SYNC_MAPPING": str(mapping)}
    set_sheet(
        clean_stack,
        [["M-1", 100, "角部屋"], ["M-2", 200, "南向き"]],
        header=["番号", "価格", "メモ"],
    )
    mapping.write_text('"番号" = "property_number"\n"価格" = "price"\n"メモ" = "notes"\n')
    assert outcome(total=2, success=2) == summary(full_sync(run_cli, env=env))
    assert outcome(total=2, skipped=2) == summary(full_sync(run_cli, env=env))

    # notes loses its header while it holds values: allowed, it keeps them (issue 10).
    mapping.write_text('"番号" = "property_number"\n"価格" = "price"\n"メモ" = "layout"\n')
    allow = "--allow-missing-columns"
    assert outcome(total=2, success=2) == summary(full_sync(run_cli, allow, env=env))
    table = listings(clean_stack)
    assert {"M-1": ("角部屋", "角部屋"), "M-2": ("南向き", "南向き")} == {
        n: (t["notes"], t["layout"]) for n, t in table.items()
    }
    assert outcome(total=2, skipped=2) == summary(full_sync(run_cli, allow, env=env))


def test_listings_written_before_source_hash_existed_are_written_once(
    clean_stack: LocalStack, run_cli
) -> None:
    """A table from an older version (no source_hash) is written once, then skipped."""
    set_sheet(clean_stack, [row("U-1"), row("U-2")])
    full_sync(run_cli)
    before = listings(clean_stack)
    clean_stack.psql("update property_listings set source_hash = null;")

    data = full_sync(run_cli)
    assert outcome(total=2, success=2) == summary(data)
    after = listings(clean_stack)
    assert {n: t["source_hash"] for n, t in before.items()} == column(clean_stack, "source_hash")
    assert {n: t["content_hash"] for n, t in before.items()} == {
        n: t["content_hash"] for n, t in after.items()
    }
    assert outcome(total=2, skipped=2) == summary(full_sync(run_cli))


def test_sync_numbers_leaves_rows_it_was_not_asked_for_alone(
    clean_stack: LocalStack, run_cli
) -> None:
    """Rows not asked for are neither validated nor reported: their bad cells do not matter."""
    set_sheet(clean_stack, [row("T-1", price="#N/A"), row("T-2", price="abc"), row("T-3")])
    r, data = sync(run_cli, "sync", "numbers", "T-3")
    assert 0 == r.returncode, output(r)
    assert outcome(total=1, success=1) == summary(data)
    assert ([], []) == (data["warnings"], data["problems"])
    assert ["T-3"] == sorted(listings(clean_stack))

    r, data = sync(run_cli, "sync", "numbers", "T-2", "T-3")
    assert 1 == r.returncode, output(r)
    assert outcome("partial", total=2, failed=1, skipped=1) == summary(data)
    assert [(3, "T-2", "price")] == [
        (p["row"], p["property_number"], p["column"]) for p in data["problems"]
    ]
