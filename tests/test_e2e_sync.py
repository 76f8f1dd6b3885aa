"""End-to-end tests of the core sync (issue 2) on the real local stack: the CLI as cron runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from e2e_util import (
    FAST_ENV,
    HEADER,
    listings,
    only_run,
    output,
    row,
    run_summary,
    runs,
    set_sheet,
    summary,
    sync,
)

from devstack import LocalStack

REPO = Path(__file__).resolve().parent.parent
SAMPLE_MAPPING = REPO / "devstack" / "sample" / "mapping.toml"


def completed(total: int, success: int, skipped: int = 0, removed: int = 0) -> dict[str, object]:
    """The summary of a clean run."""
    return {
        "status": "completed",
        "exit_code": 0,
        "total": total,
        "success": success,
        "failed": 0,
        "skipped": skipped,
        "removed": removed,
    }


# --- sync all -----------------------------------------------------------------------


def test_full_sync_fills_an_empty_table_and_a_second_run_writes_nothing(
    clean_stack: LocalStack, run_cli
) -> None:
    """sync all writes every row once; the same sheet again writes 0 and skips all."""
    set_sheet(clean_stack, [row("A-1"), row("A-2", price="1,280万円"), row("A-3")])

    r, first = sync(run_cli, "sync", "all")
    assert 0 == r.returncode, output(r)
    assert completed(3, 3) == summary(first)
    assert ("full", [], []) == (first["sync_type"], first["not_found"], first["problems"])
    table = listings(clean_stack)
    assert ["A-1", "A-2", "A-3"] == list(table)
    assert 12_800_000 == table["A-2"]["price"]
    assert {first["sync_id"]} == {t["last_sync_id"] for t in table.values()}
    run = only_run(clean_stack)
    assert first["sync_id"] == run["id"]
    assert {
        "sync_type": "full",
        "status": "completed",
        "exit_code": 0,
        "total_items": 3,
        "success_count": 3,
        "failed_count": 0,
        "skipped_count": 0,
        "removed_count": 0,
        "not_found_count": 0,
    } == run_summary(run)
    assert run["completed_at"] is not None
    assert run["error_details"] is None

    r, second = sync(run_cli, "sync", "all")
    assert 0 == r.returncode, output(r)
    assert completed(3, 0, skipped=3) == summary(second)
    assert [("3",)] == clean_stack.sql("select count(*) from property_listings")
    assert table == listings(clean_stack)  # not even synced_at moved
    assert ["completed", "completed"] == [x["status"] for x in runs(clean_stack)]


def test_successful_sync_prints_nothing_when_not_on_a_terminal(
    clean_stack: LocalStack, run_cli
) -> None:
    """Cron mails whatever a job prints: a clean run without --json prints nothing."""
    set_sheet(clean_stack, [row("Q-1")])
    r = run_cli("sync", "all", env=FAST_ENV)
    assert 0 == r.returncode, output(r)
    assert ("", "") == (r.stdout, r.stderr)
    assert ["Q-1"] == list(listings(clean_stack))


# --- sync numbers --------------------------------------------------------------------


def test_sync_numbers_touches_only_the_given_rows(clean_stack: LocalStack, run_cli) -> None:
    """sync numbers rewrites the named listings and leaves every other row as it was."""
    set_sheet(clean_stack, [row(f"N-{i}", price=10_000_000 * i) for i in range(1, 5)])
    r, _ = sync(run_cli, "sync", "all")
    assert 0 == r.returncode, output(r)
    before = listings(clean_stack)
    set_sheet(clean_stack, [row(f"N-{i}", price=10_000_000 * i + 1) for i in range(1, 5)])

    r, second = sync(run_cli, "sync", "numbers", "N-2", "N-3")
    assert 0 == r.returncode, output(r)
    assert completed(2, 2) == summary(second)
    assert "selective" == second["sync_type"]
    after = listings(clean_stack)
    assert {"N-1": 10_000_000, "N-2": 20_000_001, "N-3": 30_000_001, "N-4": 40_000_000} == {
        n: t["price"] for n, t in after.items()
    }
    for untouched in ("N-1", "N-4"):
        assert before[untouched] == after[untouched]
    for touched in ("N-2", "N-3"):
        assert second["sync_id"] == after[touched]["last_sync_id"]
        assert after[touched]["synced_at"] > before[touched]["synced_at"]
    assert ["full", "selective"] == [x["sync_type"] for x in runs(clean_stack)]


def test_sync_numbers_from_a_file_and_from_stdin(
    clean_stack: LocalStack, run_cli, tmp_path: Path
) -> None:
    """--from-file reads one number per line (blank lines ignored); - reads stdin."""
    set_sheet(clean_stack, [row("F-1"), row("F-2"), row("F-3")])
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("F-1\n\n  F-2  \n", encoding="utf-8")

    r, data = sync(run_cli, "sync", "numbers", "--from-file", numbers)
    assert 0 == r.returncode, output(r)
    assert completed(2, 2) == summary(data)
    assert ["F-1", "F-2"] == list(listings(clean_stack))

    r, data = sync(run_cli, "sync", "numbers", "--from-file", "-", input="F-3\n")
    assert 0 == r.returncode, output(r)
    assert completed(1, 1) == summary(data)
    assert ["F-1", "F-2", "F-3"] == list(listings(clean_stack))


def test_sync_numbers_reports_numbers_not_in_the_sheet(clean_stack: LocalStack, run_cli) -> None:
    """Numbers missing from the sheet are reported and counted; the rest sync; exit 1."""
    set_sheet(clean_stack, [row("M-1"), row("M-2")])

    r, data = sync(run_cli, "sync", "numbers", "M-1", "GONE-1", "GONE-2")
    assert 1 == r.returncode, output(r)
    assert {
        "status": "partial",
        "exit_code": 1,
        "total": 3,
        "success": 1,
        "failed": 0,
        "skipped": 0,
        "removed": 0,
    } == summary(data)
    assert ["GONE-1", "GONE-2"] == data["not_found"]
    assert ["M-1"] == list(listings(clean_stack))
    run = only_run(clean_stack)
    assert ("partial", 1, 2, 1) == (
        run["status"],
        run["exit_code"],
        run["not_found_count"],
        run["success_count"],
    )

    r = run_cli("sync", "numbers", "M-2", "GONE-3", env=FAST_ENV)
    assert 1 == r.returncode, output(r)
    assert "" == r.stdout
    lines = r.stderr.splitlines()
    assert re.fullmatch(
        r"sync \S+ partial: 1 written, 0 failed, 0 unchanged, 0 removed, 1 not found", lines[0]
    ), r.stderr
    assert ["not in the sheet: GONE-3"] == lines[1:]


# --- status and health ----------------------------------------------------------------


def test_status_lists_the_ten_most_recent_runs_newest_first(
    clean_stack: LocalStack, run_cli
) -> None:
    """status without an id shows the 10 most recent runs (--limit changes it), newest first."""
    clean_stack.psql(
        "insert into sync_state (sync_type, status, started_at, completed_at, total_items,"
        " success_count, exit_code) select 'full', 'completed', now() - i * interval '1 hour',"
        " now() - i * interval '1 hour' + interval '2 seconds', i, i, 0"
        " from generate_series(1, 12) as i"
    )
    r, data = sync(run_cli, "status")
    assert 0 == r.returncode, output(r)
    assert list(range(1, 11)) == [x["total_items"] for x in data["runs"]]
    first = data["runs"][0]
    assert ("full", "completed", 1, 0, 2.0) == (
        first["sync_type"],
        first["status"],
        first["success_count"],
        first["exit_code"],
        first["duration_seconds"],
    )

    r, data = sync(run_cli, "status", "--limit", "3")
    assert 0 == r.returncode, output(r)
    assert [1, 2, 3] == [x["total_items"] for x in data["runs"]]

    r = run_cli("status", "--limit", "2")
    assert 0 == r.returncode, output(r)
    assert "Recent syncs" in r.stdout
    assert 2 == r.stdout.count("completed"), r.stdout


def test_status_shows_one_run_with_its_row_problems(clean_stack: LocalStack, run_cli) -> None:
    """status SYNC_ID --json returns that run's record with its row problems."""
    set_sheet(clean_stack, [row("S-1"), row("S-2", walk_minutes="すぐ")])
    r, data = sync(run_cli, "sync", "all")
    assert 1 == r.returncode, output(r)

    r, run = sync(run_cli, "status", data["sync_id"])
    assert 0 == r.returncode, output(r)
    assert (data["sync_id"], "full", "partial", 2, 1, 1, 1) == (
        run["id"],
        run["sync_type"],
        run["status"],
        run["total_items"],
        run["success_count"],
        run["failed_count"],
        run["exit_code"],
    )
    assert [(3, "S-2", "walk_minutes", "すぐ")] == [
        (p["row"], p["property_number"], p["column"], p["value"]) for p in run["error_details"]
    ]
    assert run["duration_seconds"] >= 0


@pytest.mark.parametrize("sync_id", [str(uuid.UUID(int=7)), "not-a-uuid"])
def test_status_of_an_unknown_or_malformed_id_exits_1(
    clean_stack: LocalStack, run_cli, sync_id: str
) -> None:
    """status with an id that names no run exits 1 with one line saying so."""
    r = run_cli("status", sync_id)
    assert 1 == r.returncode, output(r)
    assert "" == r.stdout
    assert 1 == len(r.stderr.splitlines()), r.stderr
    assert r.stderr.startswith(f"listing-sync: error: no sync with id '{sync_id}'"), r.stderr

    r, data = sync(run_cli, "status", sync_id)
    assert 1 == r.returncode, output(r)
    assert ("error", 1) == (data["status"], data["exit_code"])


def test_health_is_healthy_after_a_completed_full_sync(clean_stack: LocalStack, run_cli) -> None:
    """health --json reports healthy (exit 0) with the last completed sync and durations."""
    set_sheet(clean_stack, [row("H-1")])
    r, _ = sync(run_cli, "sync", "all")
    assert 0 == r.returncode, output(r)
    run = only_run(clean_stack)

    r, health = sync(run_cli, "health")
    assert 0 == r.returncode, output(r)
    assert ("healthy", 0, [], 0.0, 1, 0, 0) == (
        health["status"],
        health["exit_code"],
        health["alerts"],
        health["error_rate"],
        health["runs_24h"],
        health["failed_runs_24h"],
        health["pending_failures"],
    )
    completed_at = datetime.fromisoformat(run["completed_at"])
    assert completed_at == datetime.fromisoformat(health["last_completed_sync"])
    assert completed_at == datetime.fromisoformat(health["last_completed_full_sync"])
    duration = (completed_at - datetime.fromisoformat(run["started_at"])).total_seconds()
    assert duration == pytest.approx(health["avg_duration_seconds"])
    assert {"sheets": "closed", "postgrest": "closed"} == health["circuit_breakers"]


# --- row problems -----------------------------------------------------------------------


def test_a_bad_cell_fails_its_row_only_and_is_recorded(clean_stack: LocalStack, run_cli) -> None:
    """An unparseable price fails that row (exit 1, recorded in sync_state); good rows land."""
    set_sheet(clean_stack, [row("B-1"), row("B-2", price="応相談"), row("B-3")])

    r, data = sync(run_cli, "sync", "all")
    assert 1 == r.returncode, output(r)
    assert {
        "status": "partial",
        "exit_code": 1,
        "total": 3,
        "success": 2,
        "failed": 1,
        "skipped": 0,
        "removed": 0,
    } == summary(data)
    problem = {
        "row": 3,
        "property_number": "B-2",
        "column": "price",
        "message": "not a price (e.g. 1,280万円 or ¥12,800,000); the cell holds '応相談'",
        "value": "応相談",
        "tab": "Listings",
    }
    assert [problem] == data["problems"]
    assert ["B-1", "B-3"] == list(listings(clean_stack))
    run = only_run(clean_stack)
    assert ("partial", 1, 2, 1) == (
        run["status"],
        run["exit_code"],
        run["success_count"],
        run["failed_count"],
    )
    assert [problem] == run["error_details"]


def test_a_row_the_database_rejects_is_retried_alone_and_recorded(
    clean_stack: LocalStack, run_cli
) -> None:
    """A batch refused by the server is retried row by row: good rows land, the bad one is
    recorded with the server's message."""
    clean_stack.psql(
        "alter table property_listings add constraint e2e_price_cap check (price < 1000000000000)"
    )
    try:
        set_sheet(
            clean_stack,
            [row("C-1"), row("C-2", price="50000億円"), row("C-3"), row("C-4"), row("C-5")],
        )
        r, data = sync(run_cli, "sync", "all", env={"SYNC_BATCH_SIZE": "2"})
    finally:
        clean_stack.psql("alter table property_listings drop constraint e2e_price_cap")
    assert 1 == r.returncode, output(r)
    assert {
        "status": "partial",
        "exit_code": 1,
        "total": 5,
        "success": 4,
        "failed": 1,
        "skipped": 0,
        "removed": 0,
    } == summary(data)
    [problem] = data["problems"]
    assert (3, "C-2", None, None) == (
        problem["row"],
        problem["property_number"],
        problem["column"],
        problem["value"],
    )
    assert problem["message"].startswith(
        "PostgREST POST /property_listings: 400 23514 new row for relation "
        '"property_listings" violates check constraint "e2e_price_cap"'
    ), problem
    assert ["C-1", "C-3", "C-4", "C-5"] == list(listings(clean_stack))
    assert [problem] == only_run(clean_stack)["error_details"]


def test_many_rejected_rows_do_not_trip_the_breaker(clean_stack: LocalStack, run_cli) -> None:
    """Rows the database refuses (permanent 400s) never open the breaker: the run ends
    partial with each of them recorded, not unavailable."""
    clean_stack.psql(
        "alter table property_listings add constraint e2e_notes_len"
        " check (char_length(notes) <= 10)"
    )
    try:
        long = "駅まで平坦な道で雨の日も安心です"
        set_sheet(clean_stack, [row(f"L-{i}", notes=long if i % 4 else "短い") for i in range(8)])
        r, data = sync(run_cli, "sync", "all", env={"SYNC_CIRCUIT_BREAKER_THRESHOLD": "3"})
    finally:
        clean_stack.psql("alter table property_listings drop constraint e2e_notes_len")
    assert 1 == r.returncode, output(r)
    assert {
        "status": "partial",
        "exit_code": 1,
        "total": 8,
        "success": 2,
        "failed": 6,
        "skipped": 0,
        "removed": 0,
    } == summary(data)
    assert [f"L-{i}" for i in (1, 2, 3, 5, 6, 7)] == [
        p["property_number"] for p in data["problems"]
    ]
    assert all('"e2e_notes_len"' in p["message"] for p in data["problems"]), data["problems"]
    assert ["L-0", "L-4"] == list(listings(clean_stack))
    r, breakers = sync(run_cli, "breaker")
    assert 0 == r.returncode, output(r)
    assert {"sheets": "closed", "postgrest": "closed"} == {
        b["name"]: b["state"] for b in breakers["breakers"]
    }


# --- unusable input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("SUPABASE_SERVICE_ROLE_KEY", None, "SUPABASE_SERVICE_ROLE_KEY is not set"),
        ("SYNC_SPREADSHEET_ID", None, "SYNC_SPREADSHEET_ID is not set"),
        ("GOOGLE_APPLICATION_CREDENTIALS", None, "GOOGLE_APPLICATION_CREDENTIALS is not set"),
        ("POSTGREST_URL", None, "POSTGREST_URL"),
        ("SYNC_BATCH_SIZE", "lots", "SYNC_BATCH_SIZE must be an integer, got 'lots'"),
        ("SYNC_SHEET_NAME", "Nope", "SYNC_SHEET_NAME: no tab named 'Nope'; tabs: Listings"),
        ("SYNC_SPREADSHEET_ID", "no-such-sheet", "SYNC_SPREADSHEET_ID: no spreadsheet"),
    ],
)
def test_a_missing_or_malformed_setting_exits_78_and_writes_nothing(
    clean_stack: LocalStack, run_cli, variable: str, value: str | None, says: str
) -> None:
    """A missing or malformed setting: one line naming the variable, exit 78, nothing written."""
    set_sheet(clean_stack, [row("Z-1")])
    r = run_cli("sync", "all", env={**FAST_ENV, variable: value})
    assert 78 == r.returncode, output(r)
    assert "" == r.stdout
    assert 1 == len(r.stderr.splitlines()), r.stderr
    assert r.stderr.startswith("listing-sync: error: "), r.stderr
    assert says in r.stderr
    assert clean_stack.service_role_key not in r.stderr
    assert [] == runs(clean_stack)
    assert {} == listings(clean_stack)


def test_a_missing_key_header_exits_65_listing_the_headers_found(
    clean_stack: LocalStack, run_cli
) -> None:
    """No property_number header: exit 65 naming the headers found; no listing written."""
    set_sheet(clean_stack, [["X-1", 1000, "東京都"]], header=["番号", "price", "address"])
    r = run_cli("sync", "all", env=FAST_ENV)
    assert 65 == r.returncode, output(r)
    message = (
        "Header 'property_number' not found in tab 'Listings'; found: 番号, price, address. "
        "Add the column or map it in SYNC_MAPPING."
    )
    assert f"listing-sync: error: {message}\n" == r.stderr
    assert {} == listings(clean_stack)
    run = only_run(clean_stack)
    assert ("failed", 65, message) == (run["status"], run["exit_code"], run["error_message"])


# --- Japanese sheets -------------------------------------------------------------------------


def test_japanese_headers_and_values_through_a_mapping_file(
    clean_stack: LocalStack, run_cli
) -> None:
    """Japanese headers map through SYNC_MAPPING; full-width, comma and 万円 values are typed."""
    columns: dict[str, list[object]] = {  # header: the cells of rows 2, 3, 4
        "物件番号": ["Ｊ－００１", "J-002", "J-003"],
        "種別": ["戸建", "土地", "マンション"],
        "価格": ["１，２８０万円", "¥12,800,000", "1億2,000万円"],
        "土地面積": ["１２０．５㎡", "1,234.5", ""],
        "建物面積": ["98.25", "", "６５．０"],
        "徒歩": ["徒歩１２分", "７", 3],
        "掲載日": ["2025年1月9日", 45678, "２０２５／２／３"],
        "駐車場": ["有", "×", "なし"],
        "担当者": ["高橋", "", "佐藤"],
    }
    set_sheet(clean_stack, list(zip(*columns.values(), strict=True)), header=list(columns))
    r, data = sync(run_cli, "sync", "all", env={"SYNC_MAPPING": str(SAMPLE_MAPPING)})
    assert 0 == r.returncode, output(r)
    assert completed(3, 3) == summary(data)
    assert [
        ("J-001", "戸建", 12_800_000, 120.5, 98.25, 12, "2025-01-09", True, {"担当者": "高橋"}),
        ("J-002", "土地", 12_800_000, 1234.5, None, 7, "2025-01-21", False, {}),
        ("J-003", "マンション", 120_000_000, None, 65, 3, "2025-02-03", False, {"担当者": "佐藤"}),
    ] == [
        (
            n,
            t["property_type"],
            t["price"],
            t["land_area_m2"],
            t["building_area_m2"],
            t["walk_minutes"],
            t["listed_on"],
            t["parking"],
            t["extra"],
        )
        for n, t in listings(clean_stack).items()
    ]
    # The database holds them typed, not as text.
    assert [("bigint", "numeric", "integer", "date", "boolean")] == clean_stack.sql(
        "select pg_typeof(price), pg_typeof(land_area_m2), pg_typeof(walk_minutes),"
        " pg_typeof(listed_on), pg_typeof(parking) from property_listings"
        " where property_number = 'J-001'"
    )


# --- entry points and help ---------------------------------------------------------------------


def test_module_and_console_script_both_run_the_cli(clean_stack: LocalStack) -> None:
    """`listing-sync` (the console script) and `python -m listing_sync` do the same job."""
    set_sheet(clean_stack, [row("E-1")])
    env = clean_stack.env(**FAST_ENV)
    script = Path(sys.executable).parent / "listing-sync"
    for argv, written in (
        ([str(script), "sync", "all"], 1),
        ([sys.executable, "-m", "listing_sync", "sync", "all"], 0),
    ):
        r = subprocess.run(
            [*argv, "--json"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert 0 == r.returncode, output(r)
        assert written == summary(json.loads(r.stdout))["success"]
    assert ["E-1"] == list(listings(clean_stack))


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["sync"],
        ["sync", "all"],
        ["sync", "numbers"],
        ["status"],
        ["health"],
        ["breaker"],
        ["breaker", "reset"],
    ],
    ids=lambda c: " ".join(c) or "listing-sync",
)
def test_every_command_help_shows_an_example_and_the_exit_codes(
    command: list[str],
) -> None:
    """--help on every command exits 0 and explains it with an example and the exit codes."""
    r = subprocess.run(
        [sys.executable, "-m", "listing_sync", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "100"},
    )
    assert 0 == r.returncode, output(r)
    assert "Exit codes" in r.stdout, r.stdout
    assert "Example" in r.stdout, r.stdout


def test_header_helper_matches_the_sheet_fed_columns() -> None:
    """The tests' HEADER lists exactly the table's sheet-fed columns."""
    from listing_sync.schema import LISTINGS

    assert list(LISTINGS.columns) == HEADER


# --- a wrong deployment is a configuration error ---------------------------------------


def test_a_refused_key_is_a_configuration_error(clean_stack: LocalStack, run_cli) -> None:
    """A key PostgREST refuses (401) exits 78 with a hint, not 69 'try later'."""
    from devstack.postgrest import mint_jwt

    set_sheet(clean_stack, [row("K-1")])
    wrong = mint_jwt("a-different-project-secret-0123456789", "service_role")
    r = run_cli("sync", "all", env={**FAST_ENV, "SUPABASE_SERVICE_ROLE_KEY": wrong})
    assert 78 == r.returncode, output(r)
    assert "401 PGRST301" in r.stderr
    assert "the key was refused: check SUPABASE_SERVICE_ROLE_KEY" in r.stderr
    assert wrong not in r.stdout + r.stderr
    assert [] == runs(clean_stack)


def test_a_table_missing_a_column_is_a_configuration_error(
    clean_stack: LocalStack, run_cli
) -> None:
    """A table older than sql/ (a column missing) stops the run with exit 78, not N row errors."""
    set_sheet(clean_stack, [row("M-1"), row("M-2")])
    # cascade: the public_listings view (sql/003) shows parking; a table that old has no view
    clean_stack.psql("alter table public.property_listings drop column parking cascade;")
    clean_stack.postgrest.reload_schema()
    try:
        r = run_cli("sync", "all", env=FAST_ENV)
    finally:
        clean_stack.apply_schema()
        clean_stack.postgrest.reload_schema()
    assert 78 == r.returncode, output(r)
    assert "apply the files in sql/" in r.stderr
    assert "failed" == only_run(clean_stack)["status"]
    assert {} == listings(clean_stack)


def _runs_with_ids(stack: LocalStack, *ids: str) -> None:
    values = ", ".join(
        f"('{i}', 'full', 'completed', now() - interval '{n} minutes', now(), 0)"
        for n, i in enumerate(ids)
    )
    stack.psql(
        "insert into sync_state (id, sync_type, status, started_at, completed_at, exit_code) "
        f"values {values}"
    )


def test_status_takes_any_unique_prefix_of_an_id(clean_stack: LocalStack, run_cli) -> None:
    """status 09f4 finds the one run whose id starts so; the list shows 8-digit ids."""
    _runs_with_ids(
        clean_stack,
        "09f4c2e1-0000-4000-8000-000000000001",
        "7a000000-0000-4000-8000-000000000002",
    )
    for prefix in ("09f4", "09F4C2E1", "09f4c2e1-0000-4", "09f4c2e1-0000-4000-8000-000000000001"):
        r, run = sync(run_cli, "status", prefix)
        assert 0 == r.returncode, output(r)
        assert "09f4c2e1-0000-4000-8000-000000000001" == run["id"]
    r = run_cli("status", env={"COLUMNS": "80"})
    assert 0 == r.returncode, output(r)
    assert "09f4c2e1 " in r.stdout and "09f4c2e1-0000" not in r.stdout, r.stdout
    assert all(len(line) <= 80 for line in r.stdout.splitlines()), r.stdout


def test_status_refuses_an_ambiguous_or_too_short_prefix(clean_stack: LocalStack, run_cli) -> None:
    """Two ids starting alike: exit 2 naming both; under four digits: exit 1."""
    _runs_with_ids(
        clean_stack,
        "abcd0000-0000-4000-8000-000000000001",
        "abcd1111-0000-4000-8000-000000000002",
    )
    r = run_cli("status", "abcd")
    assert 2 == r.returncode, output(r)
    assert "ambiguous" in r.stderr and "abcd0000" in r.stderr and "abcd1111" in r.stderr, r.stderr
    r = run_cli("status", "abc")
    assert 1 == r.returncode, output(r)
    assert "at least 4 hex digits" in r.stderr, r.stderr


def test_status_of_a_selective_run_lists_the_numbers_not_found(
    clean_stack: LocalStack, run_cli
) -> None:
    """sync numbers with unknown numbers: status SYNC_ID names them; one word set for counts."""
    set_sheet(clean_stack, [row("N-1")])
    r, data = sync(run_cli, "sync", "numbers", "N-1", "X-9", "X-8")
    assert 1 == r.returncode, output(r)
    assert (1, 0, 1, 0) == (data["written"], data["unchanged"], data["success"], data["skipped"])
    r, run = sync(run_cli, "status", data["sync_id"][:8])
    assert 0 == r.returncode, output(r)
    assert (["X-9", "X-8"], 2, 1) == (run["not_found"], run["not_found_count"], run["written"])
    text = run_cli("status", data["sync_id"])
    assert "Not in the sheet: X-9, X-8" in text.stdout, output(text)
