"""End-to-end tests of sheet data handling (issue 4) on the real local stack.

Change detection, guarded removals, strict headers, keys, values, dry runs and
row reports, each through the CLI as cron runs it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from e2e_util import (
    FAST_ENV,
    HEADER,
    column,
    full_sync,
    listings,
    only_run,
    outcome,
    output,
    row,
    runs,
    set_sheet,
    summary,
    sync,
    url_limit_proxy,
)

from devstack import LocalStack

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "devstack" / "sample"


def column_of(table: dict[str, dict], name: str) -> dict[str, object]:
    """{property_number: value of ``name``} of a listings() snapshot."""
    return {n: t[name] for n, t in table.items()}


def only_last_run(stack: LocalStack) -> dict:
    """The most recent sync_state row."""
    return runs(stack)[-1]


# --- only what changed -----------------------------------------------------------------


def test_content_hash_skips_unchanged_rows_and_force_writes_all(
    clean_stack: LocalStack, run_cli
) -> None:
    """Hashes are stored; unchanged rows are skipped, --force writes all, 1 cell writes 1 row."""
    set_sheet(clean_stack, [row("H-1"), row("H-2"), row("H-3")])
    full_sync(run_cli)
    first = listings(clean_stack)
    assert all(re.fullmatch(r"[0-9a-f]{64}", t["content_hash"]) for t in first.values())
    assert 3 == len({t["content_hash"] for t in first.values()})

    data = full_sync(run_cli, "--force")
    assert outcome(total=3, success=3) == summary(data)
    forced = listings(clean_stack)
    assert column_of(first, "content_hash") == column_of(forced, "content_hash")
    assert all(forced[n]["synced_at"] > first[n]["synced_at"] for n in first)

    # The same values typed differently are the same listing: nothing to write.
    set_sheet(
        clean_stack, [row("H-1", price="3,000万円"), row("H-2", walk_minutes="5分"), row("H-3")]
    )
    data = full_sync(run_cli)
    assert outcome(total=3, skipped=3) == summary(data)
    assert forced == listings(clean_stack)

    set_sheet(clean_stack, [row("H-1"), row("H-2", walk_minutes=6), row("H-3")])
    data = full_sync(run_cli)
    assert outcome(total=3, success=1, skipped=2) == summary(data)
    after = listings(clean_stack)
    assert 6 == after["H-2"]["walk_minutes"]
    assert after["H-2"]["content_hash"] != forced["H-2"]["content_hash"]
    assert data["sync_id"] == after["H-2"]["last_sync_id"]
    assert {n: forced[n] for n in ("H-1", "H-3")} == {n: after[n] for n in ("H-1", "H-3")}


# --- removals, with a guard --------------------------------------------------------------


def test_a_listing_that_leaves_the_sheet_is_marked_removed_and_comes_back(
    clean_stack: LocalStack, run_cli
) -> None:
    """A listing gone from the sheet gets removed_at (never deleted); coming back clears it."""
    rows = [row(f"R-{i}") for i in range(1, 6)]
    set_sheet(clean_stack, rows)
    full_sync(run_cli)

    set_sheet(clean_stack, rows[:4])
    data = full_sync(run_cli)
    assert outcome(total=4, skipped=4, removed=1) == summary(data)
    table = listings(clean_stack)
    assert 5 == len(table)
    assert [None] * 4 == [table[f"R-{i}"]["removed_at"] for i in range(1, 5)]
    assert table["R-5"]["removed_at"] is not None
    assert data["sync_id"] == table["R-5"]["last_sync_id"]
    assert 1 == only_last_run(clean_stack)["removed_count"]

    # Still gone: already removed, not counted again.
    data = full_sync(run_cli)
    assert outcome(total=4, skipped=4) == summary(data)
    assert table["R-5"]["removed_at"] == listings(clean_stack)["R-5"]["removed_at"]

    set_sheet(clean_stack, rows)
    data = full_sync(run_cli)
    assert outcome(total=5, success=1, skipped=4) == summary(data)
    assert {None} == set(column(clean_stack, "removed_at").values())


def test_mass_removal_is_refused_unless_allowed(clean_stack: LocalStack, run_cli) -> None:
    """Removing more than SYNC_MAX_REMOVE_FRACTION of active listings: exit 65, nothing
    written; a higher fraction or --allow-mass-removal lets it through."""
    rows = [row(f"G-{i:02}") for i in range(1, 11)]
    set_sheet(clean_stack, rows)
    full_sync(run_cli)
    before = listings(clean_stack)

    set_sheet(clean_stack, [row("G-01", price=1), *rows[1:7]])  # G-08..G-10 gone, G-01 changed
    r, data = sync(run_cli, "sync", "all")
    assert 65 == r.returncode, output(r)
    message = (
        "this run would mark 3 of 10 active listings removed (30%, limit 20% from "
        "SYNC_MAX_REMOVE_FRACTION); nothing was written. Check the sheet, or pass "
        "--allow-mass-removal"
    )
    assert {"status": "error", "error": message, "exit_code": 65} == data
    assert f"listing-sync: error: {message}\n" == r.stderr
    assert before == listings(clean_stack)
    assert ("failed", 65, message) == tuple(
        only_last_run(clean_stack)[k] for k in ("status", "exit_code", "error_message")
    )

    data = full_sync(run_cli, "--dry-run", env={"SYNC_MAX_REMOVE_FRACTION": "0.3"})
    assert ["G-08", "G-09", "G-10"] == data["plan"]["removed"]
    assert before == listings(clean_stack)

    data = full_sync(run_cli, "--allow-mass-removal")
    assert outcome(total=7, success=1, skipped=6, removed=3) == summary(data)
    table = listings(clean_stack)
    assert 1 == table["G-01"]["price"]
    assert ["G-08", "G-09", "G-10"] == [n for n, t in table.items() if t["removed_at"]]


def test_a_sheet_with_a_header_and_no_rows_is_refused(clean_stack: LocalStack, run_cli) -> None:
    """A header with no data rows would remove everything: exit 65 unless allowed."""
    set_sheet(clean_stack, [row("E-1"), row("E-2")])
    full_sync(run_cli)
    set_sheet(clean_stack, [])

    r, data = sync(run_cli, "sync", "all")
    assert 65 == r.returncode, output(r)
    assert (
        "tab 'Listings' has a header but no data rows; refusing to mark all 2 listings removed "
        "(pass --allow-mass-removal if an empty sheet is meant)"
    ) == data["error"]
    assert {None} == set(column(clean_stack, "removed_at").values())

    data = full_sync(run_cli, "--allow-mass-removal")
    assert outcome(total=0, removed=2) == summary(data)
    assert 2 == len([v for v in column(clean_stack, "removed_at").values() if v])


def test_selective_sync_never_removes(clean_stack: LocalStack, run_cli) -> None:
    """sync numbers leaves listings missing from the sheet alone (no removed_at)."""
    set_sheet(clean_stack, [row("S-1"), row("S-2"), row("S-3")])
    full_sync(run_cli)
    set_sheet(clean_stack, [row("S-1", price=5)])

    r, data = sync(run_cli, "sync", "numbers", "S-1", "S-2")
    assert 1 == r.returncode, output(r)
    assert outcome("partial", total=2, success=1) == summary(data)
    assert ["S-2"] == data["not_found"]
    assert {None} == set(column(clean_stack, "removed_at").values())
    assert {"S-1": 5, "S-2": 30_000_000, "S-3": 30_000_000} == column(clean_stack, "price")


# --- headers ----------------------------------------------------------------------------


def test_unmapped_headers_go_to_extra_and_blank_headers_are_ignored_with_a_warning(
    clean_stack: LocalStack, run_cli
) -> None:
    """A header mapping to no column lands in extra; data under a blank header is warned
    about and dropped."""
    header = [*HEADER, "担当者", "", "Memo"]
    set_sheet(
        clean_stack,
        [[*row("X-1"), "高橋", "stray", 12.0], [*row("X-2"), "", None, "  note  "]],
        header=header,
    )
    data = full_sync(run_cli)
    assert outcome(total=2, success=2) == summary(data)
    assert ["Row 2, column O has data but no header; the value is ignored."] == data["warnings"]
    assert {"X-1": {"担当者": "高橋", "Memo": 12}, "X-2": {"Memo": "note"}} == column(
        clean_stack, "extra"
    )


@pytest.mark.parametrize(
    ("extra_header", "mapping", "message"),
    [
        (
            "Price",
            None,
            "Headers 'price' (column E) and 'Price' (column N) in tab 'Listings' both map to "
            "'price'. Rename or remove one, or fix SYNC_MAPPING.",
        ),
        (
            "販売価格",
            '"販売価格" = "price"\n',
            "Headers 'price' (column E) and '販売価格' (column N) in tab 'Listings' both map to "
            "'price'. Rename or remove one, or fix SYNC_MAPPING.",
        ),
    ],
    ids=["same-name", "alias"],
)
def test_two_headers_for_one_column_stop_the_run(
    clean_stack: LocalStack,
    run_cli,
    tmp_path: Path,
    extra_header: str,
    mapping: str | None,
    message: str,
) -> None:
    """Two headers mapping to one column: exit 65 naming both, nothing written."""
    set_sheet(clean_stack, [[*row("D-1"), 1]], header=[*HEADER, extra_header])
    env = {}
    if mapping is not None:
        (tmp_path / "mapping.toml").write_text(mapping, encoding="utf-8")
        env["SYNC_MAPPING"] = str(tmp_path / "mapping.toml")
    r, data = sync(run_cli, "sync", "all", env=env)
    assert 65 == r.returncode, output(r)
    assert message == data["error"]
    assert {} == listings(clean_stack)


def test_moved_and_renamed_columns_never_shift_data(clean_stack: LocalStack, run_cli) -> None:
    """Columns in another order read the same; a renamed column goes to extra, not elsewhere."""
    rows = [row("M-1", walk_minutes=3, layout="1K"), row("M-2", price="9,800万円")]
    set_sheet(clean_stack, rows)
    full_sync(run_cli)
    before = listings(clean_stack)

    order = list(reversed(range(len(HEADER))))
    set_sheet(clean_stack, [[r[i] for i in order] for r in rows], header=[HEADER[i] for i in order])
    data = full_sync(run_cli)
    assert outcome(total=2, skipped=2) == summary(data)
    assert before == listings(clean_stack)

    # A renamed header would empty its column: the run stops, the table keeps its prices.
    renamed = ["Sale Price" if h == "price" else h for h in HEADER]
    set_sheet(clean_stack, rows, header=renamed)
    r, data = sync(run_cli, "sync", "all")
    assert 65 == r.returncode, output(r)
    assert "'price'" in data["error"] and "'Sale Price'" in data["error"], data["error"]
    assert before == listings(clean_stack)

    data = full_sync(run_cli, "--allow-missing-columns")
    assert outcome(total=2, success=2) == summary(data)
    after = listings(clean_stack)
    keep = HEADER  # price too: it is left as stored
    for n in ("M-1", "M-2"):
        assert {c: before[n][c] for c in keep} == {c: after[n][c] for c in keep}
    assert {"M-1": {"Sale Price": 30_000_000}, "M-2": {"Sale Price": "9,800万円"}} == {
        n: t["extra"] for n, t in after.items()
    }


# --- keys ----------------------------------------------------------------------------------


def test_duplicate_property_numbers_are_all_refused_and_reported(
    clean_stack: LocalStack, run_cli
) -> None:
    """Rows sharing a property number: none written, each reported with all rows involved;
    the table keeps its value; the other rows sync."""
    set_sheet(clean_stack, [row("K-1", price=100), row("K-2", price=200), row("K-3")])
    full_sync(run_cli)
    set_sheet(
        clean_stack,
        [row("K-1", price=111), row("K-2", price=222), row("K-1", price=333), row("K-3")],
    )
    r, data = sync(run_cli, "sync", "all")
    assert 1 == r.returncode, output(r)
    assert outcome("partial", total=4, success=1, failed=2, skipped=1) == summary(data)
    message = "duplicate property number 'K-1' in sheet rows 2, 4; none of them was written"
    expected = [
        {
            "row": r,
            "property_number": "K-1",
            "column": "property_number",
            "message": message,
            "value": "K-1",
            "tab": "Listings",
        }
        for r in (2, 4)
    ]
    assert expected == data["problems"]
    assert expected == only_last_run(clean_stack)["error_details"]
    assert {"K-1": 100, "K-2": 222, "K-3": 30_000_000} == column(clean_stack, "price")
    assert {None} == set(column(clean_stack, "removed_at").values())


def test_a_duplicate_with_an_invalid_copy_is_still_a_duplicate(
    clean_stack: LocalStack, run_cli
) -> None:
    """A key on a valid row and on a row with a bad cell: the valid copy is not written."""
    set_sheet(clean_stack, [row("K-1", price=100), row("K-2")])
    full_sync(run_cli)
    set_sheet(clean_stack, [row("K-1", price="百万"), row("K-2"), row("K-1", price=300)])
    r, data = sync(run_cli, "sync", "all")
    assert 1 == r.returncode, output(r)
    assert outcome("partial", total=3, failed=2, skipped=1) == summary(data)
    duplicate = "duplicate property number 'K-1' in sheet rows 2, 4; none of them was written"
    assert [
        (2, "price", "not a price (e.g. 1,280万円 or ¥12,800,000); the cell holds '百万'"),
        (2, "property_number", duplicate),
        (4, "property_number", duplicate),
    ] == [(p["row"], p["column"], p["message"]) for p in data["problems"]]
    assert {"K-1": 100, "K-2": 30_000_000} == column(clean_stack, "price")
    assert {None} == set(column(clean_stack, "removed_at").values())  # still in the sheet


def test_numeric_keys_become_text_and_leading_zeros_survive(
    clean_stack: LocalStack, run_cli
) -> None:
    """123 and 123.0 from the API read "123"; text keys keep their leading zeros."""
    set_sheet(clean_stack, [row(123), row(456.0), row("00789"), row("  0012 ")])
    data = full_sync(run_cli)
    assert outcome(total=4, success=4) == summary(data)
    assert ["0012", "00789", "123", "456"] == sorted(listings(clean_stack))

    data = full_sync(run_cli)
    assert outcome(total=4, skipped=4) == summary(data)
    r, data = sync(run_cli, "sync", "numbers", "123", "00789", "789", "--force")
    assert 1 == r.returncode, output(r)
    assert (2, ["789"]) == (data["success"], data["not_found"])


AWKWARD = [
    "A,1",
    "B(2)",
    'say "hi"',
    "back\\slash",
    "with space",
    "a/b",
    "物件-東京",
    "x.y:z",
    "it's",
    "end\\",
    '",)(',
    "eq.5",
    "%20+&=?#",
]


def test_awkward_property_numbers_work_in_every_filter(clean_stack: LocalStack, run_cli) -> None:
    """Commas, parentheses, quotes, backslashes, spaces, slashes and non-ASCII in keys work
    in full sync, sync numbers (found, not new) and removal."""
    set_sheet(clean_stack, [row(n) for n in AWKWARD])
    data = full_sync(run_cli)
    assert outcome(total=len(AWKWARD), success=len(AWKWARD)) == summary(data)
    assert sorted(AWKWARD) == sorted(listings(clean_stack))
    data = full_sync(run_cli)
    assert outcome(total=len(AWKWARD), skipped=len(AWKWARD)) == summary(data)

    # A dry run finds each one unchanged, so the in.(...) lookup found every one.
    r, data = sync(
        run_cli, "sync", "numbers", "--from-file", "-", "--dry-run", input="\n".join(AWKWARD)
    )
    assert 0 == r.returncode, output(r)
    assert ([], [], []) == (data["plan"]["new"], data["plan"]["changed"], data["not_found"])
    assert len(AWKWARD) == data["plan"]["unchanged"]

    set_sheet(clean_stack, [row(n, price=7) for n in AWKWARD])
    r, data = sync(run_cli, "sync", "numbers", *AWKWARD)
    assert 0 == r.returncode, output(r)
    assert outcome(total=len(AWKWARD), success=len(AWKWARD)) == summary(data)
    assert {7} == set(column(clean_stack, "price").values())

    set_sheet(clean_stack, [row("keep")])
    data = full_sync(run_cli, "--allow-mass-removal")
    assert outcome(total=1, success=1, removed=len(AWKWARD)) == summary(data)
    removed = {n for n, t in listings(clean_stack).items() if t["removed_at"]}
    assert set(AWKWARD) == removed


def test_sync_numbers_skips_unchanged_listings_unless_forced(
    clean_stack: LocalStack, run_cli
) -> None:
    """sync numbers writes only what changed; --force rewrites the named listings."""
    set_sheet(clean_stack, [row("N-1"), row("N-2"), row("N-3")])
    full_sync(run_cli)
    before = listings(clean_stack)
    set_sheet(clean_stack, [row("N-1", price=5), row("N-2"), row("N-3")])

    r, data = sync(run_cli, "sync", "numbers", "N-1", "N-2")
    assert 0 == r.returncode, output(r)
    assert outcome(total=2, success=1, skipped=1) == summary(data)
    after = listings(clean_stack)
    assert before["N-2"] == after["N-2"]
    assert before["N-1"]["synced_at"] != after["N-1"]["synced_at"]

    r, data = sync(run_cli, "sync", "numbers", "N-2", "--force")
    assert 0 == r.returncode, output(r)
    assert outcome(total=1, success=1) == summary(data)
    assert before["N-2"]["synced_at"] != listings(clean_stack)["N-2"]["synced_at"]
    assert before["N-3"] == listings(clean_stack)["N-3"]


def test_keyset_paging_over_awkward_keys_reads_every_row(clean_stack: LocalStack, run_cli) -> None:
    """Over 1000 existing listings with awkward keys: the paged read sees each exactly once."""
    numbers = [f'P,({i:04}) "q" \\ /東' for i in range(1005)]
    clean_stack.psql(
        "insert into property_listings (property_number) select format("
        "'P,(%s) \"q\" \\ /東', lpad(i::text, 4, '0')) from generate_series(0, 1004) as i"
    )
    assert sorted(numbers) == sorted(listings(clean_stack))
    set_sheet(clean_stack, [row(n) for n in numbers])

    data = full_sync(run_cli, env={"SYNC_BATCH_SIZE": "250"})
    # Every row existed without a hash: all changed, none new, none removed.
    assert outcome(total=1005, success=1005) == summary(data)
    data = full_sync(run_cli, env={"SYNC_BATCH_SIZE": "250"})
    assert outcome(total=1005, skipped=1005) == summary(data)
    assert [("1005",)] == clean_stack.sql("select count(*) from property_listings")


def test_many_long_numbers_are_looked_up_in_urls_under_8_kb(
    clean_stack: LocalStack, run_cli
) -> None:
    """2000 numbers of 40 characters: lookups are chunked so no URL passes 8 KB."""
    numbers = [f"LONG-{i:04}-" + "x" * 30 for i in range(2000)]
    assert {40} == {len(n) for n in numbers}
    set_sheet(
        clean_stack,
        [[n, 1000 + i] for i, n in enumerate(numbers)],
        header=["property_number", "price"],
    )
    with url_limit_proxy(clean_stack.postgrest_url) as proxy:
        r, data = sync(
            run_cli,
            "sync",
            "numbers",
            "--from-file",
            "-",
            input="\n".join(numbers),
            env={"POSTGREST_URL": proxy["url"], "SYNC_BATCH_SIZE": "500"},
        )
    assert 0 == r.returncode, output(r)
    assert outcome(total=2000, success=2000) == summary(data)
    assert 0 == proxy["refused"]
    assert 4000 < proxy["longest"] <= 8192, proxy
    assert [("2000",)] == clean_stack.sql("select count(*) from property_listings")


# --- values ------------------------------------------------------------------------------------


def test_formula_errors_read_as_empty_with_a_warning(clean_stack: LocalStack, run_cli) -> None:
    """#N/A, #REF! ... in a value column become null with a warning; in the key, a problem."""
    set_sheet(
        clean_stack,
        [
            row("F-1", price="#N/A", listed_on="#REF!", walk_minutes="#DIV/0!"),
            row("F-2", layout="#VALUE!", parking="#NAME?"),
            row("#N/A"),
        ],
    )
    r, data = sync(run_cli, "sync", "all")
    assert 1 == r.returncode, output(r)
    assert outcome("partial", total=3, success=2, failed=1) == summary(data)
    assert [
        "Row 2, column 'price': formula error #N/A read as empty",
        "Row 2, column 'walk_minutes': formula error #DIV/0! read as empty",
        "Row 2, column 'listed_on': formula error #REF! read as empty",
        "Row 3, column 'layout': formula error #VALUE! read as empty",
        "Row 3, column 'parking': formula error #NAME? read as empty",
    ] == data["warnings"]
    assert [(4, None, "property_number")] == [
        (p["row"], p["property_number"], p["column"]) for p in data["problems"]
    ]
    table = listings(clean_stack)
    assert (None, None, None) == tuple(
        table["F-1"][c] for c in ("price", "listed_on", "walk_minutes")
    )
    assert (None, None) == (table["F-2"]["layout"], table["F-2"]["parking"])


def test_formula_warnings_reach_cron_only_when_asked_or_with_problems(
    clean_stack: LocalStack, run_cli
) -> None:
    """A clean run with a #N/A cell stays silent; --verbose or a partial run shows it."""
    set_sheet(clean_stack, [row("W-1", price="#N/A"), row("W-2")])
    r = run_cli("sync", "all", env=FAST_ENV)
    assert (0, "", "") == (r.returncode, r.stdout, r.stderr)

    set_sheet(clean_stack, [row("W-1", price="#N/A", layout="x"), row("W-2")])
    r = run_cli("sync", "all", "--verbose", env=FAST_ENV)
    assert 0 == r.returncode, output(r)
    warning = "warning: Row 2, column 'price': formula error #N/A read as empty"
    assert warning in r.stderr.splitlines()

    set_sheet(clean_stack, [row("W-1", price="#N/A", layout="y"), row("W-2", price="abc")])
    r = run_cli("sync", "all", env=FAST_ENV)
    assert 1 == r.returncode, output(r)
    assert warning in r.stderr.splitlines()


def test_an_unparseable_value_fails_only_its_row_naming_column_row_and_value(
    clean_stack: LocalStack, run_cli
) -> None:
    """A bad cell fails that row only; the report names column, sheet row and raw value."""
    set_sheet(
        clean_stack,
        [row("V-1"), row("V-2", walk_minutes="すぐ", listed_on="2025-02-30"), row("V-3")],
    )
    r = run_cli("sync", "all", env=FAST_ENV)
    assert 1 == r.returncode, output(r)
    assert [
        "row 3 (V-2) column walk_minutes: not a whole number; the cell holds 'すぐ'",
        "row 3 (V-2) column listed_on: impossible date; the cell holds '2025-02-30'",
    ] == r.stderr.splitlines()[1:]
    assert ["V-1", "V-3"] == list(listings(clean_stack))
    assert [(3, "V-2", "walk_minutes", "すぐ"), (3, "V-2", "listed_on", "2025-02-30")] == [
        (p["row"], p["property_number"], p["column"], p["value"])
        for p in only_run(clean_stack)["error_details"]
    ]
    assert 1 == only_run(clean_stack)["failed_count"]


def test_japanese_sample_sheet_through_the_mapping_file(clean_stack: LocalStack, run_cli) -> None:
    """The bundled sample (Japanese headers, 万円 prices, serial dates) lands typed."""
    clean_stack.sheets.load_json(SAMPLE / "listings.json", clean_stack.spreadsheet_id)
    sample = json.loads((SAMPLE / "listings.json").read_text(encoding="utf-8"))
    data = full_sync(run_cli, env={"SYNC_MAPPING": str(SAMPLE / "mapping.toml")})
    count = len(sample["rows"]) - 1
    assert outcome(total=count, success=count) == summary(data)
    assert [] == data["warnings"]
    table = listings(clean_stack)
    expected = {
        "property_type": "マンション",
        "price": 113_600_000,  # "11,360万円"
        "land_area_m2": None,
        "building_area_m2": 83.01,
        "walk_minutes": 11,
        "listed_on": "2025-06-27",  # serial 45835
        "parking": True,  # 有
        "extra": {"担当者": "佐藤"},
    }
    assert expected == {k: table["A-0004"][k] for k in expected}
    # 1040 typed as a number is the text "1040"; "00101" keeps its zeros.
    assert {"1040", "00101"} <= set(table)
    assert ("2024-08-24", 141_100_000) == (table["1040"]["listed_on"], table["1040"]["price"])
    assert ("2025-01-12", None) == (table["00106"]["listed_on"], table["00101"]["parking"])


# --- dry run and reports ---------------------------------------------------------------------


def test_dry_run_of_a_full_sync_writes_nothing_and_shows_the_plan(
    clean_stack: LocalStack, run_cli
) -> None:
    """sync all --dry-run: new / changed (with fields) / unchanged / removed / invalid;
    no write, no sync_state row."""
    set_sheet(clean_stack, [row("P-1"), row("P-2"), row("P-3"), row("P-4")])
    full_sync(run_cli)
    before, history = listings(clean_stack), runs(clean_stack)
    set_sheet(
        clean_stack,
        [
            row("P-1"),
            row("P-2", price=1, notes="値下げ"),
            row("P-3"),
            row("P-5"),
            row("P-6", price="安い"),
        ],
    )
    lenient = {"SYNC_MAX_REMOVE_FRACTION": "0.5"}  # 1 of 4 is more than the default 20%
    r, data = sync(run_cli, "sync", "all", "--dry-run", env=lenient)
    assert 1 == r.returncode, output(r)
    assert (None, "dry_run", True) == (data["sync_id"], data["status"], data["dry_run"])
    plan = data["plan"]
    assert ["P-5"] == plan["new"]
    assert [{"property_number": "P-2", "fields": ["price", "notes"]}] == plan["changed"]
    assert (2, ["P-4"]) == (plan["unchanged"], plan["removed"])
    assert [(6, "P-6", "price", "安い")] == [
        (p["row"], p["property_number"], p["column"], p["value"]) for p in plan["invalid"]
    ]
    assert before == listings(clean_stack)
    assert history == runs(clean_stack)

    r = run_cli("sync", "all", "--dry-run", env={**FAST_ENV, **lenient})
    assert 1 == r.returncode, output(r)
    assert "Dry run (full): nothing was written" in r.stdout
    assert history == runs(clean_stack)


def test_dry_run_of_sync_numbers_writes_nothing(clean_stack: LocalStack, run_cli) -> None:
    """sync numbers --dry-run shows new / changed / not found and records no run."""
    set_sheet(clean_stack, [row("W-1"), row("W-2")])
    r, _ = sync(run_cli, "sync", "numbers", "W-1")
    assert 0 == r.returncode, output(r)
    before, history = listings(clean_stack), runs(clean_stack)
    set_sheet(clean_stack, [row("W-1", layout="3LDK"), row("W-2")])

    r, data = sync(run_cli, "sync", "numbers", "W-1", "W-2", "W-9", "--dry-run")
    assert 1 == r.returncode, output(r)
    plan = data["plan"]
    assert (["W-2"], [{"property_number": "W-1", "fields": ["layout"]}], ["W-9"]) == (
        plan["new"],
        plan["changed"],
        data["not_found"],
    )
    assert ([], []) == (plan["removed"], plan["invalid"])
    assert before == listings(clean_stack)
    assert history == runs(clean_stack)


def test_status_lists_a_runs_row_problems_in_text_and_json(
    clean_stack: LocalStack, run_cli
) -> None:
    """status SYNC_ID shows each row problem: sheet row, property number, column, message."""
    set_sheet(
        clean_stack,
        [
            row("T-1", price="高い"),
            row("T-2"),
            row("T-4"),
            row("T-2"),
            row("T-3", parking="たぶん"),
        ],
    )
    r, data = sync(run_cli, "sync", "all")
    assert 1 == r.returncode, output(r)
    duplicate = "duplicate property number 'T-2' in sheet rows 3, 5; none of them was written"
    expected = [
        (2, "T-1", "price", "not a price (e.g. 1,280万円 or ¥12,800,000); the cell holds '高い'"),
        (3, "T-2", "property_number", duplicate),
        (5, "T-2", "property_number", duplicate),
        (6, "T-3", "parking", "not yes/no (e.g. TRUE/FALSE, ○/×, 有/無); the cell holds 'たぶん'"),
    ]

    r, run = sync(run_cli, "status", data["sync_id"])
    assert 0 == r.returncode, output(r)
    assert expected == [
        (p["row"], p["property_number"], p["column"], p["message"]) for p in run["error_details"]
    ]

    r = run_cli("status", data["sync_id"])
    assert 0 == r.returncode, output(r)
    assert "Row problems" in r.stdout
    for number, problem in zip(("T-1", "T-2", "T-2", "T-3"), expected, strict=True):
        line = next(x for x in r.stdout.splitlines() if f" {problem[0]} " in x and number in x)
        assert problem[2] in line and problem[3][:30] in line, line
