"""Where the data is (issue 10), end to end on the real stack through the Google client.

SYNC_SHEET_RANGE: an A1 range (title rows above the header are ignored) or a named
range. SYNC_SHEET_NAME: several tabs (CSV quoting), or ``*`` for every visible tab.
All tabs feed the one table; each row records its tab in ``source_tab``.
"""

from __future__ import annotations

from e2e_util import (
    FAST_ENV,
    HEADER,
    column,
    full_sync,
    listings,
    outcome,
    output,
    row,
    runs,
    summary,
    sync,
)

from devstack import LocalStack

TABS = ("販売中", "商談中", "成約済")
THREE_TABS = {"SYNC_SHEET_NAME": ",".join(TABS)}


def titled(*rows: list[object]) -> list[list[object]]:
    """A tab as offices keep it: two title rows, then the header and data from column B.

    Column A holds notes and column O a scribble: both outside the range B3:N.
    """
    return [
        ["物件一覧 2025年度"],
        [],
        ["", *HEADER, "メモ欄"],
        *(["担当:佐藤", *r, "走り書き"] for r in rows),
    ]


def put(stack: LocalStack, tab: str, *rows: list[object], hidden: bool = False) -> None:
    """Set ``tab`` to HEADER + ``rows``."""
    stack.sheets.set_sheet(stack.spreadsheet_id, tab, [HEADER, *rows], hidden=hidden)


def test_an_a1_range_skips_title_rows_and_columns_outside_it(
    clean_stack: LocalStack, run_cli
) -> None:
    """SYNC_SHEET_RANGE=B3:N: header in row 3 from column B; notes in A and O are not synced."""
    clean_stack.sheets.set_sheet(
        clean_stack.spreadsheet_id, "物件", titled(row("T-1"), row("T-2", price="1.2万円"))
    )
    data = full_sync(run_cli, env={"SYNC_SHEET_RANGE": "B3:N"})
    assert outcome(total=2, success=2) == summary(data)
    stored = listings(clean_stack)
    assert {"T-1": 30_000_000, "T-2": 12_000} == column(clean_stack, "price")
    assert [{}, {}] == [r["extra"] for r in stored.values()], "A and O are outside the range"


def test_problems_in_a_range_name_the_sheet_row(clean_stack: LocalStack, run_cli) -> None:
    """A bad cell below title rows is reported with its real sheet row number (5) and tab."""
    clean_stack.sheets.set_sheet(
        clean_stack.spreadsheet_id, "物件", titled(row("T-1"), row("T-2", price="応相談"))
    )
    r, data = sync(run_cli, "sync", "all", env={"SYNC_SHEET_RANGE": "B3:N"})
    assert 1 == r.returncode, output(r)
    assert [(5, "T-2", "price", "物件")] == [
        (p["row"], p["property_number"], p["column"], p["tab"]) for p in data["problems"]
    ]


def test_a_named_range_is_resolved_through_the_spreadsheet(
    clean_stack: LocalStack, run_cli
) -> None:
    """SYNC_SHEET_RANGE=物件データ: the named range picks the tab and the cells."""
    sheets = clean_stack.sheets
    sheets.set_sheet(clean_stack.spreadsheet_id, "表紙", [["この表は使わない"]])
    sheets.set_sheet(clean_stack.spreadsheet_id, "物件", titled(row("N-1"), row("N-2")))
    sheets.set_named_range(clean_stack.spreadsheet_id, "物件データ", "物件", "B3:N")
    data = full_sync(run_cli, env={"SYNC_SHEET_RANGE": "物件データ"})
    assert outcome(total=2, success=2) == summary(data)
    assert {"N-1": "物件", "N-2": "物件"} == column(clean_stack, "source_tab")


def test_three_tabs_feed_one_table_and_each_row_records_its_tab(
    clean_stack: LocalStack, run_cli
) -> None:
    """SYNC_SHEET_NAME=販売中,商談中,成約済: every tab's rows, each with its source_tab."""
    put(clean_stack, "販売中", row("S-1"), row("S-2"))
    put(clean_stack, "商談中", row("S-3", status="商談中"))
    put(clean_stack, "成約済", row("S-4", status="成約済"))
    put(clean_stack, "集計", ["合計", 4])  # not named: not read
    data = full_sync(run_cli, env=THREE_TABS)
    assert outcome(total=4, success=4) == summary(data)
    expected = {"S-1": "販売中", "S-2": "販売中", "S-3": "商談中", "S-4": "成約済"}
    assert expected == column(clean_stack, "source_tab")


def test_a_listing_that_moves_to_another_tab_is_updated_not_removed(
    clean_stack: LocalStack, run_cli
) -> None:
    """S-2 moves from 販売中 to 商談中: one update (source_tab follows), nothing removed."""
    put(clean_stack, "販売中", row("S-1"), row("S-2"))
    put(clean_stack, "商談中", row("S-3"))
    put(clean_stack, "成約済")
    full_sync(run_cli, env=THREE_TABS)

    put(clean_stack, "販売中", row("S-1"))
    put(clean_stack, "商談中", row("S-3"), row("S-2"))
    data = full_sync(run_cli, env=THREE_TABS)
    assert outcome(total=3, success=1, skipped=2) == summary(data)
    stored = listings(clean_stack)
    assert {"S-1": "販売中", "S-2": "商談中", "S-3": "商談中"} == column(clean_stack, "source_tab")
    assert [None, None, None] == [r["removed_at"] for r in stored.values()]

    again = full_sync(run_cli, env=THREE_TABS)
    assert outcome(total=3, skipped=3) == summary(again), "the move is written once"


def test_the_same_number_on_two_tabs_is_a_duplicate_named_with_tab_and_row(
    clean_stack: LocalStack, run_cli
) -> None:
    """D-1 on 販売中 row 3 and 成約済 row 2: both reported with tab and row; neither written."""
    put(clean_stack, "販売中", row("D-0"), row("D-1", price=111))
    put(clean_stack, "商談中", row("D-2"))
    put(clean_stack, "成約済", row("D-1", price=222))
    r, data = sync(run_cli, "sync", "all", env=THREE_TABS)
    assert 1 == r.returncode, output(r)
    assert outcome("partial", total=4, success=2, failed=2) == summary(data)
    message = (
        "duplicate property number 'D-1' in tab '販売中' row 3, tab '成約済' row 2; "
        "none of them was written"
    )
    assert [("販売中", 3, message), ("成約済", 2, message)] == [
        (p["tab"], p["row"], p["message"]) for p in data["problems"]
    ]
    assert ["D-0", "D-2"] == list(listings(clean_stack))
    plain = run_cli("sync", "all", env={**FAST_ENV, **THREE_TABS})
    assert 1 == plain.returncode, output(plain)
    assert "tab '販売中' row 3 (D-1) column property_number" in plain.stderr, output(plain)


def test_a_row_problem_names_its_tab(clean_stack: LocalStack, run_cli) -> None:
    """A bad price on 商談中 row 2 is reported for that tab, in JSON and on stderr."""
    put(clean_stack, "販売中", row("P-1"))
    put(clean_stack, "商談中", row("P-2", price="応相談"))
    put(clean_stack, "成約済", row("P-3"))
    r, data = sync(run_cli, "sync", "all", env=THREE_TABS)
    assert 1 == r.returncode, output(r)
    assert [("商談中", 2, "P-2", "price")] == [
        (p["tab"], p["row"], p["property_number"], p["column"]) for p in data["problems"]
    ]
    assert ["P-1", "P-3"] == list(listings(clean_stack))
    plain = run_cli("sync", "all", env={**FAST_ENV, **THREE_TABS})
    assert 1 == plain.returncode, output(plain)
    assert "tab '商談中' row 2 (P-2) column price" in plain.stderr, output(plain)


def test_star_reads_every_visible_tab_and_skips_hidden_ones(
    clean_stack: LocalStack, run_cli
) -> None:
    """SYNC_SHEET_NAME=*: 販売中 and 商談中 are read; the hidden 作業用 tab is not."""
    put(clean_stack, "販売中", row("V-1"))
    put(clean_stack, "作業用", row("H-1"), hidden=True)
    put(clean_stack, "商談中", row("V-2"))
    data = full_sync(run_cli, env={"SYNC_SHEET_NAME": "*"})
    assert outcome(total=2, success=2) == summary(data)
    assert {"V-1": "販売中", "V-2": "商談中"} == column(clean_stack, "source_tab")


def test_a_tab_title_with_a_comma_is_written_in_double_quotes(
    clean_stack: LocalStack, run_cli
) -> None:
    """SYNC_SHEET_NAME='販売中,"東京, 品川"': the quoted title is one tab."""
    put(clean_stack, "販売中", row("Q-1"))
    put(clean_stack, "東京, 品川", row("Q-2"))
    full_sync(run_cli, env={"SYNC_SHEET_NAME": '販売中,"東京, 品川"'})
    assert {"Q-1": "販売中", "Q-2": "東京, 品川"} == column(clean_stack, "source_tab")


def test_the_mass_removal_guard_counts_across_all_tabs(clean_stack: LocalStack, run_cli) -> None:
    """Emptying one of two tabs would remove 4 of 8 listings: refused (65), nothing written."""
    env = {"SYNC_SHEET_NAME": "販売中,商談中"}
    put(clean_stack, "販売中", *(row(f"M-{i}") for i in range(4)))
    put(clean_stack, "商談中", *(row(f"M-{i}") for i in range(4, 8)))
    full_sync(run_cli, env=env)
    before = listings(clean_stack)

    put(clean_stack, "販売中", *(row(f"M-{i}", price=1) for i in range(4)))
    put(clean_stack, "商談中")
    r, data = sync(run_cli, "sync", "all", env=env)
    assert 65 == r.returncode, output(r)
    assert "would mark 4 of 8 active listings removed" in data["error"], data["error"]
    assert before == listings(clean_stack)


def test_wrong_tab_names_and_bad_ranges_exit_78_naming_the_setting(
    clean_stack: LocalStack, run_cli
) -> None:
    """Unknown tabs, an unusable range, an unknown named range: exit 78, nothing recorded."""
    put(clean_stack, "販売中", row("W-1"))
    put(clean_stack, "商談中", row("W-2"))
    cases = [
        (
            {"SYNC_SHEET_NAME": "販売中,成約,済"},
            "SYNC_SHEET_NAME: no tab named '成約', '済'; tabs: 販売中, 商談中",
        ),
        ({"SYNC_SHEET_RANGE": "P3:A"}, "SYNC_SHEET_RANGE: 'P3:A' is not a usable range"),
        ({"SYNC_SHEET_RANGE": "A:P"}, "SYNC_SHEET_RANGE: 'A:P' is neither an A1 range"),
        (
            {"SYNC_SHEET_RANGE": "物件データ"},
            "SYNC_SHEET_RANGE: '物件データ' is neither an A1 range (like A3:P) nor a named "
            "range of the spreadsheet; named ranges: none",
        ),
    ]
    for env, says in cases:
        r = run_cli("sync", "all", env=env)
        assert 78 == r.returncode, output(r)
        assert 1 == len(r.stderr.splitlines()), output(r)
        assert says in r.stderr, output(r)
    assert [] == runs(clean_stack)
    assert {} == listings(clean_stack)
