"""A sheet built like a real office's (issue 10): everything at once, end to end.

Three tabs with title rows above a Japanese header, a hidden work tab, property
numbers typed as numbers in a column formatted 00000, a station merged over three
rows, a date typed into the notes, and a viewing date kept in extra.
"""

from __future__ import annotations

from pathlib import Path

from e2e_util import HEADER, column, full_sync, listings, outcome, row, summary, sync

from devstack import LocalStack

JA = {
    "property_number": "物件番号",
    "price": "価格",
    "nearest_station": "最寄駅",
    "notes": "備考",
}
HEADER_JA = [JA.get(h, h) for h in HEADER] + ["内覧日"]
TABS = "販売中,商談中,成約済"
SERIAL_2025_01_09 = 45666


def office_tab(*rows: list[object]) -> list[list[object]]:
    """A title, an empty row, then the Japanese header in row 3 and the data below it."""
    return [["物件台帳(2025年度)", "", "更新: 総務"], [], HEADER_JA, *rows]


def build(stack: LocalStack, *, moved: bool = False) -> None:
    sheets, sid = stack.sheets, stack.spreadsheet_id
    # 販売中: numbers as keys (shown 00101...), 戸越駅 merged over rows 4-6 (D4:D6 style).
    on_sale = [
        [*row(101, nearest_station="戸越駅"), SERIAL_2025_01_09],
        [*row(102, nearest_station="", notes=SERIAL_2025_01_09), ""],
        [*row(103, nearest_station=""), ""],
    ]
    if moved:
        on_sale.pop()
    sheets.set_sheet(
        sid,
        "販売中",
        office_tab(*on_sale),
        formats={"A": "00000", "M": "yyyy/mm/dd", "N": "yyyy/mm/dd"},
        merges=["I4:I6"],
    )
    talks = [[*row("K-201", status="商談中"), ""]]
    if moved:
        talks.append([*row(103, status="商談中", nearest_station="大崎駅"), ""])
    sheets.set_sheet(sid, "商談中", office_tab(*talks), formats={"A": "00000"})
    sheets.set_sheet(sid, "成約済", office_tab([*row("K-301", status="成約済"), ""]))
    sheets.set_sheet(sid, "作業用", [["メモ"], ["K-999"]], hidden=True)


def env(tmp_path: Path) -> dict[str, str]:
    mapping = tmp_path / "mapping.toml"
    mapping.write_text("".join(f'"{ja}" = "{c}"\n' for c, ja in JA.items()), encoding="utf-8")
    return {
        "SYNC_MAPPING": str(mapping),
        "SYNC_SHEET_NAME": TABS,
        "SYNC_SHEET_RANGE": "A3:N",
    }


def test_an_office_sheet_syncs_every_tab_as_the_office_sees_it(
    clean_stack: LocalStack, run_cli, tmp_path: Path
) -> None:
    """Title rows, three tabs, 00000 keys, a three-row merge, dates as shown: all right."""
    build(clean_stack)
    data = full_sync(run_cli, env=env(tmp_path))
    assert outcome(total=5, success=5) == summary(data)
    assert {
        "00101": ("販売中", "戸越駅", ""),
        "00102": ("販売中", "戸越駅", "2025/01/09"),
        "00103": ("販売中", "戸越駅", ""),
        "K-201": ("商談中", "戸越駅", ""),
        "K-301": ("成約済", "戸越駅", ""),
    } == {
        n: (r["source_tab"], r["nearest_station"], r["notes"] or "")
        for n, r in listings(clean_stack).items()
    }
    assert {"内覧日": "2025/01/09"} == listings(clean_stack)["00101"]["extra"]


def test_sync_numbers_finds_a_listing_on_any_tab_and_follows_a_move(
    clean_stack: LocalStack, run_cli, tmp_path: Path
) -> None:
    """00103 moves to 商談中 at 大崎駅: `sync numbers 00103` updates it there; others untouched."""
    build(clean_stack)
    full_sync(run_cli, env=env(tmp_path))
    before = listings(clean_stack)
    build(clean_stack, moved=True)
    r, data = sync(run_cli, "sync", "numbers", "00103", env=env(tmp_path))
    assert 0 == r.returncode, r.stdout + r.stderr
    assert outcome(total=1, success=1) == summary(data)
    after = listings(clean_stack)
    assert ("商談中", "大崎駅") == (after["00103"]["source_tab"], after["00103"]["nearest_station"])
    assert {n: v for n, v in before.items() if n != "00103"} == {
        n: v for n, v in after.items() if n != "00103"
    }
    assert "販売中" == column(clean_stack, "source_tab")["00102"]
