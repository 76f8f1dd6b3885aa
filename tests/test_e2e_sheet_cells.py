"""Cells as the sheet shows them (issue 10), end to end through the real Google client.

Google returns a merged range's value only in its top-left cell, a number without
its format (123 for a cell shown as 00123) and dates as serial numbers. listing-sync
reads the key and text columns as shown, dates kept in extra as shown, and gives
every row of a vertical merge its value.
"""

from __future__ import annotations

import json

from e2e_util import HEADER, TAB, column, full_sync, listings, outcome, row, summary

from devstack import LocalStack
from listing_sync.pipeline import convert

SERIAL_2025_01_09 = 45666


def put(stack: LocalStack, rows: list[list[object]], **options: object) -> None:
    """Set the Listings tab to ``rows`` (header included), with formats/merges."""
    stack.sheets.set_sheet(stack.spreadsheet_id, TAB, rows, **options)  # type: ignore[arg-type]


def batch_gets(stack: LocalStack) -> int:
    """How many values.batchGet requests the Sheets server answered."""
    return stack.sheets.count("values:batchGet")


def test_a_number_key_formatted_00000_is_the_key_the_sheet_shows(
    clean_stack: LocalStack, run_cli
) -> None:
    """123 in a column formatted 00000 shows 00123: that is the property number."""
    put(
        clean_stack,
        [HEADER, row(123), row(4567), row("R-9")],
        formats={"A": "00000"},
    )
    data = full_sync(run_cli)
    assert outcome(total=3, success=3) == summary(data)
    assert ["00123", "04567", "R-9"] == list(listings(clean_stack))


def test_a_date_typed_into_notes_is_stored_as_the_sheet_shows_it(
    clean_stack: LocalStack, run_cli
) -> None:
    """A date in the notes column (a text column) is 2025/01/09, not 45666."""
    put(
        clean_stack,
        [HEADER, row("N-1", notes=SERIAL_2025_01_09), row("N-2", notes="内見可")],
        formats={"M": "yyyy/mm/dd"},
    )
    full_sync(run_cli)
    assert {"N-1": "2025/01/09", "N-2": "内見可"} == column(clean_stack, "notes")


def test_dates_in_extra_are_shown_and_plain_numbers_stay_numbers(
    clean_stack: LocalStack, run_cli
) -> None:
    """Unmapped columns: a date is stored as shown; 管理費 15,000 stays the number 15000."""
    header = [*HEADER, "内覧日", "管理費"]
    put(
        clean_stack,
        [header, [*row("E-1"), SERIAL_2025_01_09, 15000]],
        formats={"N": "yyyy-mm-dd", "O": "#,##0"},
    )
    full_sync(run_cli)
    assert {"E-1": {"内覧日": "2025-01-09", "管理費": 15000}} == column(clean_stack, "extra")


def test_a_merge_over_three_rows_gives_each_row_its_value(clean_stack: LocalStack, run_cli) -> None:
    """nearest_station merged over rows 2-4 (value in row 2): all three listings get 戸越駅."""
    rows = [
        HEADER,
        row("M-1", nearest_station="戸越駅"),
        row("M-2", nearest_station=""),
        row("M-3", nearest_station=""),
        row("M-4", nearest_station="大崎駅"),
    ]
    put(clean_stack, rows, merges=["I2:I4"])
    full_sync(run_cli)
    expected = {"M-1": "戸越駅", "M-2": "戸越駅", "M-3": "戸越駅", "M-4": "大崎駅"}
    assert expected == column(clean_stack, "nearest_station")


def test_a_sheet_without_numbers_in_text_columns_costs_no_extra_request(
    clean_stack: LocalStack, run_cli
) -> None:
    """Text keys and notes: the formatted values are never asked for."""
    put(clean_stack, [HEADER, row("T-1", notes="角部屋"), row("T-2")], formats={"K": "yyyy/mm/dd"})
    clean_stack.sheets.reset_counts()
    full_sync(run_cli)
    assert 0 == batch_gets(clean_stack)


def test_formatted_values_cost_one_request_per_chunk(clean_stack: LocalStack, run_cli) -> None:
    """6000 number keys, read in two chunks: two batchGets, one beside each values.get."""
    rows = [HEADER, *(row(i) for i in range(1, 6001))]
    put(clean_stack, rows, formats={"A": "00000"})
    clean_stack.sheets.reset_counts()
    data = full_sync(run_cli)
    assert outcome(total=6000, success=6000) == summary(data)
    values_gets = clean_stack.sheets.count("/values/") - 1  # less the header's
    assert (2, 2) == (values_gets, batch_gets(clean_stack))
    assert "06000" in listings(clean_stack)


def test_plain_numbers_in_extra_cost_one_request_not_one_per_chunk(
    clean_stack: LocalStack, run_cli
) -> None:
    """築年 holds plain numbers over two chunks: asked once, then known to show as General."""
    header = [*HEADER, "築年"]
    put(clean_stack, [header, *([*row(f"Y-{i}"), 1990 + i % 30] for i in range(6000))])
    clean_stack.sheets.reset_counts()
    data = full_sync(run_cli)
    assert outcome(total=6000, success=6000) == summary(data)
    assert (2, 1) == (clean_stack.sheets.count("/values/") - 1, batch_gets(clean_stack))
    assert {"築年": 1990} == listings(clean_stack)["Y-0"]["extra"]


def test_the_next_chunks_are_asked_for_while_the_first_ones_shown_values_are(
    clean_stack: LocalStack, run_cli
) -> None:
    """The first chunk's batchGet answers in 0.5 s: the second chunk is asked for before
    it has come, and still asks for no shown value of its own (築年 shows as General)."""
    header = [*HEADER, "築年"]
    put(clean_stack, [header, *([*row(f"Y-{i}"), 1990 + i % 30] for i in range(6000))])
    clean_stack.sheets.reset_counts()
    clean_stack.sheets.delay(0.5, path_contains="values:batchGet", times=1)
    data = full_sync(run_cli)
    assert outcome(total=6000, success=6000) == summary(data)
    (shown,) = [r for r in clean_stack.sheets.requests if "values:batchGet" in r.path]
    head, second = [r for r in clean_stack.sheets.requests if "/values/" in r.path][1:]
    assert head.time < shown.time and second.time < shown.time + 0.5
    assert {"築年": 2019} == listings(clean_stack)["Y-5999"]["extra"]


def test_a_tab_a_million_rows_tall_is_read_within_one_minutes_quota(
    clean_stack: LocalStack, run_cli
) -> None:
    """300 listings in a grid of 1,000,000 rows: at most 40 row requests, not 250 of ~2 MB.

    Google's quota is 60 reads a minute; 250 chunks (most of them empty) would wait
    minutes for it.
    """
    rows = [HEADER, *(row(f"G-{i}") for i in range(300))]
    put(clean_stack, rows, row_count=1_000_000)
    clean_stack.sheets.reset_counts()
    data = full_sync(run_cli)
    assert outcome(total=300, success=300) == summary(data)
    values_gets = clean_stack.sheets.count("/values/") - 1  # less the header's
    assert 1 < values_gets <= 41


def test_a_date_in_the_notes_of_a_late_chunk_of_a_large_tab_is_shown(
    clean_stack: LocalStack, run_cli
) -> None:
    """A re-sync of 50,000 listings: chunks after the first come unparsed (for a helper
    process, or parsed here while it starts); the one whose notes now hold a date serial
    is read as the sheet shows it, like a cell of the first chunk."""
    notes = HEADER.index("notes")
    rows = [HEADER, *(row(f"L-{i}", notes="角部屋") for i in range(50_000))]
    rows[3][notes] = SERIAL_2025_01_09
    put(clean_stack, rows, formats={"M": "yyyy/mm/dd"})
    full_sync(run_cli)
    rows[45_000][notes] = SERIAL_2025_01_09  # L-44999, in a late chunk
    put(clean_stack, rows, formats={"M": "yyyy/mm/dd"})
    r = run_cli("sync", "all", "--json", "--verbose")
    assert 0 == r.returncode, r.stderr
    assert outcome(total=50_000, success=1, skipped=49_999) == summary(json.loads(r.stdout))
    shown = column(clean_stack, "notes")
    assert ("2025/01/09", "2025/01/09", "角部屋") == (shown["L-2"], shown["L-44999"], shown["L-9"])
    if convert.cores() > 1:  # a spare core: a helper was started for unparsed responses
        assert " rows sorted by 1 helper process(es)" in r.stderr
