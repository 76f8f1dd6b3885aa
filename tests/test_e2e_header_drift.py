"""End-to-end tests of header drift (issue 10) on the real local stack.

A renamed or deleted header never wipes the column it fed: the run stops before
writing, or (--allow-missing-columns) leaves the column as stored. A column never
filled only warns, where cron sees it. Duplicate unmapped headers are both kept.
"""

from __future__ import annotations

from pathlib import Path

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
    set_sheet,
    summary,
    sync,
)

from devstack import LocalStack

# The office's sheet: Japanese headers mapped by SYNC_MAPPING.
JA = {
    "property_number": "物件番号",
    "price": "価格",
    "layout": "間取り",
    "notes": "備考",
}
MAPPING = "".join(f'"{ja}" = "{column}"\n' for column, ja in JA.items())


def ja_header(**renamed: str) -> list[str]:
    """HEADER with the Japanese headers, some of them renamed (column -> new header text)."""
    return [renamed.get(h, JA.get(h, h)) for h in HEADER]


def without_price(*rows: list[object]) -> list[list[object]]:
    """``rows`` (in HEADER order) with the price cell taken out, as when its column is deleted."""
    at = HEADER.index("price")
    return [[c for i, c in enumerate(r) if i != at] for r in rows]


def mapping_env(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "mapping.toml"
    path.write_text(MAPPING, encoding="utf-8")
    return {"SYNC_MAPPING": str(path)}


def test_renamed_price_header_stops_the_run_and_changes_nothing(
    clean_stack: LocalStack, run_cli, tmp_path: Path
) -> None:
    """価格 renamed to 価格(税込): exit 65 naming the column, the headers and the rename."""
    env = mapping_env(tmp_path)
    set_sheet(clean_stack, [row("R-1"), row("R-2", price="1.2万円")], header=ja_header())
    full_sync(run_cli, env=env)
    before = listings(clean_stack)
    assert {"R-1": 30_000_000, "R-2": 12_000} == column(clean_stack, "price")

    # The rename comes with another edit, which must not be written either.
    set_sheet(
        clean_stack,
        [row("R-1", layout="3LDK"), row("R-2", price="1.2万円")],
        header=ja_header(price="価格(税込)"),
    )
    r, data = sync(run_cli, "sync", "all", env=env)
    assert 65 == r.returncode, output(r)
    message = data["error"]
    assert "'price'" in message, message
    assert "Headers found: '物件番号'" in message, message
    assert "Was 'price' renamed to '価格(税込)'?" in message, message
    assert "--allow-missing-columns" in message, message
    assert before == listings(clean_stack)
    assert ["completed", "failed"] == [run["status"] for run in runs(clean_stack)]

    # Under cron (no --json, no terminal) the one-line error reaches stderr.
    r = run_cli("sync", "all", env={**FAST_ENV, **env})
    assert 65 == r.returncode, output(r)
    assert "'価格(税込)'" in r.stderr, output(r)
    assert before == listings(clean_stack)


def test_allow_missing_columns_writes_the_rest_and_keeps_the_column(
    clean_stack: LocalStack, run_cli, tmp_path: Path
) -> None:
    """--allow-missing-columns: other edits land, price keeps its stored values, both commands."""
    env = mapping_env(tmp_path)
    set_sheet(clean_stack, [row("A-1"), row("A-2", price=45_000_000)], header=ja_header())
    full_sync(run_cli, env=env)

    set_sheet(
        clean_stack,
        without_price(row("A-1", layout="3LDK"), row("A-2", layout="1K")),
        header=[h for h in ja_header() if h != "価格"],
    )
    data = full_sync(run_cli, "--allow-missing-columns", env=env)
    assert outcome(total=2, success=2) == summary(data)
    assert [
        "No header in tab 'Listings' maps to 'price'; its stored values are left as they "
        "are (--allow-missing-columns)."
    ] == data["warnings"]
    assert {"A-1": 30_000_000, "A-2": 45_000_000} == column(clean_stack, "price")
    assert {"A-1": "3LDK", "A-2": "1K"} == column(clean_stack, "layout")

    # The same run again has nothing to write: the hashes compare without the column.
    data = full_sync(run_cli, "--allow-missing-columns", env=env)
    assert outcome(total=2, skipped=2) == summary(data)

    set_sheet(
        clean_stack,
        without_price(row("A-1", layout="4LDK"), row("A-2", layout="1K")),
        header=[h for h in ja_header() if h != "価格"],
    )
    r, data = sync(run_cli, "sync", "numbers", "A-1", env=env)
    assert 65 == r.returncode, output(r)
    assert "3LDK" == column(clean_stack, "layout")["A-1"]
    r, data = sync(run_cli, "sync", "numbers", "A-1", "--allow-missing-columns", env=env)
    assert 0 == r.returncode, output(r)
    assert {"A-1": 30_000_000, "A-2": 45_000_000} == column(clean_stack, "price")
    assert "4LDK" == column(clean_stack, "layout")["A-1"]

    # The header comes back: the sheet's prices are written again.
    set_sheet(clean_stack, [row("A-1", layout="4LDK"), row("A-2", layout="1K")], ja_header())
    data = full_sync(run_cli, env=env)
    assert outcome(total=2, success=2) == summary(data)
    assert {"A-1": 30_000_000, "A-2": 30_000_000} == column(clean_stack, "price")


def test_never_filled_column_without_header_warns_on_stderr_under_cron(
    clean_stack: LocalStack, run_cli
) -> None:
    """A column with no header and no stored values: the run goes on, cron gets a warning."""
    set_sheet(
        clean_stack,
        [[c for h, c in zip(HEADER, row("N-1"), strict=True) if h != "notes"]],
        header=[h for h in HEADER if h != "notes"],
    )
    r = run_cli("sync", "all", env=FAST_ENV)
    assert 0 == r.returncode, output(r)
    assert "" == r.stdout
    assert (
        "No header in tab 'Listings' maps to 'notes'; empty in the table and left empty" in r.stderr
    ), output(r)
    assert {"N-1": None} == column(clean_stack, "notes")


def test_duplicate_unmapped_headers_are_both_kept_in_extra(
    clean_stack: LocalStack, run_cli
) -> None:
    """Two 担当 columns: both kept in extra under their column letters, with a warning."""
    header = [*HEADER, "担当", "担当"]
    set_sheet(clean_stack, [[*row("D-1"), "高橋", "鈴木"]], header=header)
    data = full_sync(run_cli)
    assert outcome(total=1, success=1) == summary(data)
    assert [
        "Headers '担当' in tab 'Listings' appear 2 times and match no table column; "
        "their values are kept in extra as '担当 (N)', '担当 (O)'."
    ] == data["warnings"]
    assert {"D-1": {"担当 (N)": "高橋", "担当 (O)": "鈴木"}} == column(clean_stack, "extra")


def test_duplicate_headers_of_a_table_column_stay_fatal(clean_stack: LocalStack, run_cli) -> None:
    """Two headers for layout: exit 65, nothing written."""
    set_sheet(clean_stack, [[*row("D-1"), "1K"]], header=[*HEADER, "layout"])
    r, data = sync(run_cli, "sync", "all")
    assert 65 == r.returncode, output(r)
    assert "both map to 'layout'" in data["error"], data["error"]
    assert {} == listings(clean_stack)
