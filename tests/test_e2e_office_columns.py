"""Columns the office adds to the table are synced with no code change (issue 10).

Their types come from PostgREST's description of the table; each cell is read by
the reader for that PostgreSQL type. Runs on the real stack: the columns are added
with ``alter table`` during the test and PostgREST's schema cache is reloaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_util import HEADER, full_sync, listings, output, row, runs, set_sheet, sync

from devstack import LocalStack

ADDED = {
    "built_year": "integer",
    "deposit": "integer",
    "floors": "smallint",
    "rent": "numeric",
    "inspected_at": "timestamptz",
    "features": "jsonb",
    "agent_code": "varchar(10)",  # no header: the sync leaves it alone
}


@pytest.fixture
def office_columns(clean_stack: LocalStack) -> Iterator[LocalStack]:
    """The stack's table with the office's columns added (dropped again afterwards)."""
    adds = ", ".join(f"add column {name} {kind}" for name, kind in ADDED.items())
    clean_stack.sql(f"alter table public.property_listings {adds}")
    clean_stack.postgrest.reload_schema()
    try:
        yield clean_stack
    finally:
        drops = ", ".join(f"drop column if exists {name}" for name in ADDED)
        clean_stack.sql(f"alter table public.property_listings {drops}")
        clean_stack.postgrest.reload_schema()


def test_added_columns_are_synced_by_name_or_alias_with_their_types(
    office_columns: LocalStack, run_cli, tmp_path: Path
) -> None:
    """built_year by name, 敷金 by alias to deposit (yen forms), every type read as it should."""
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('"敷金" = "deposit"\n"階数" = "floors"\n', encoding="utf-8")
    env = {"SYNC_MAPPING": str(mapping)}
    header = [*HEADER, "built_year", "敷金", "階数", "rent", "inspected_at", "features", "memo"]
    set_sheet(
        office_columns,
        [
            [*row("A-1"), 1998, "1.2万円", "3", 85000.5, "2025-01-09 10:30", '{"pet": true}', "x"],
            [*row("A-2"), "2,001", "¥15,000", 12, "", "2025-02-01T09:00:00+09:00", "駐輪場", ""],
        ],
        header=header,
    )
    office_columns.sql(
        "insert into property_listings (property_number, agent_code) values ('A-2', 'K7')"
    )

    full_sync(run_cli, env=env)

    stored = listings(office_columns)
    assert [
        (1998, 12000, 3, 85000.5, "2025-01-09T10:30:00+00:00", {"pet": True}, None),
        (2001, 15000, 12, None, "2025-02-01T00:00:00+00:00", "駐輪場", "K7"),
    ] == [
        (
            stored[n]["built_year"],
            stored[n]["deposit"],
            stored[n]["floors"],
            stored[n]["rent"],
            stored[n]["inspected_at"],
            stored[n]["features"],
            stored[n]["agent_code"],
        )
        for n in ("A-1", "A-2")
    ]
    # Headers that map to a table column no longer land in extra; the others still do.
    assert [{"memo": "x"}, {}] == [stored[n]["extra"] for n in ("A-1", "A-2")]

    # Unchanged on the next run: the added columns are part of what change detection sees.
    again = full_sync(run_cli, env=env)
    assert (0, 2) == (again["success"], again["skipped"])


def test_a_bad_value_in_an_added_column_fails_its_row_only(
    office_columns: LocalStack, run_cli
) -> None:
    """A smallint out of range or a word in an integer column is a row problem, not a crash."""
    header = [*HEADER, "floors", "built_year"]
    set_sheet(
        office_columns,
        [[*row("B-1"), 40000, 1990], [*row("B-2"), 2, "昭和"], [*row("B-3"), 3, 2001]],
        header=header,
    )
    r, data = sync(run_cli, "sync", "all")
    assert 1 == r.returncode, output(r)
    assert [("B-1", "floors"), ("B-2", "built_year")] == [
        (p["property_number"], p["column"]) for p in data["problems"]
    ]
    assert ["B-3"] == sorted(listings(office_columns))


def test_an_alias_to_a_column_the_table_lacks_is_a_setting(
    clean_stack: LocalStack, run_cli, tmp_path: Path
) -> None:
    """SYNC_MAPPING naming no column of the table: exit 78 naming it, no run recorded."""
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('"築年" = "built_year"\n', encoding="utf-8")
    set_sheet(clean_stack, [[*row("C-1"), 1998]], header=[*HEADER, "築年"])
    r, data = sync(run_cli, "sync", "all", env={"SYNC_MAPPING": str(mapping)})
    assert 78 == r.returncode, output(r)
    assert "'built_year'" in data["error"], data["error"]
    assert [] == runs(clean_stack)
    assert {} == listings(clean_stack)
