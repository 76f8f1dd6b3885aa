"""Synthetic listings: a sheet as the Sheets API returns it, and the rows the tool writes.

Deterministic for a seed. 17 columns with Japanese headers (mapped by a SYNC_MAPPING
file, as a Japanese office would), Japanese addresses, stations and notes, prices as
typed numbers or text such as "3,580万円", dates as serial numbers, and a few extra
columns that land in ``extra``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Header text -> table column (None: kept in extra).
HEADERS: dict[str, str | None] = {
    "物件番号": "property_number",
    "種別": "property_type",
    "状況": "status",
    "所在地": "address",
    "価格": "price",
    "土地面積": "land_area_m2",
    "建物面積": "building_area_m2",
    "間取り": "layout",
    "最寄駅": "nearest_station",
    "徒歩": "walk_minutes",
    "掲載日": "listed_on",
    "駐車場": "parking",
    "備考": "notes",
    "担当者": None,
    "築年": None,
    "管理費": None,
    "更新日時": None,
}

_TYPES = ["中古マンション", "新築マンション", "中古戸建", "新築戸建", "土地", "投資用"]
_STATUSES = ["販売中", "販売中", "販売中", "商談中", "成約済", "公開前"]
_PLACES = [
    ("東京都", ["世田谷区", "杉並区", "練馬区", "目黒区", "大田区", "江東区", "品川区"]),
    ("神奈川県", ["横浜市青葉区", "川崎市中原区", "藤沢市", "鎌倉市", "相模原市南区"]),
    ("埼玉県", ["さいたま市浦和区", "川口市", "所沢市", "越谷市"]),
    ("千葉県", ["船橋市", "市川市", "柏市", "千葉市美浜区"]),
    ("大阪府", ["大阪市北区", "豊中市", "吹田市", "堺市堺区"]),
]
_TOWNS = ["桜新町", "上用賀", "駒沢", "中央", "本町", "緑が丘", "若葉台", "東雲", "西新井", "南台"]
_STATIONS = [
    "東急田園都市線 桜新町駅",
    "小田急線 経堂駅",
    "JR中央線 高円寺駅",
    "西武池袋線 練馬駅",
    "東急東横線 中目黒駅",
    "京急本線 蒲田駅",
    "JR京浜東北線 浦和駅",
    "JR総武線 船橋駅",
    "大阪メトロ御堂筋線 梅田駅",
    "江ノ島電鉄 鎌倉駅",
]
_LAYOUTS = ["1K", "1LDK", "2DK", "2LDK", "3LDK", "4LDK", "３ＬＤＫ", "5SLDK"]
_NOTES = [
    "南向き陽当たり良好。",
    "リフォーム済み(2022年)。",
    "ペット相談可。",
    "角部屋、眺望良好。",
    "小学校まで徒歩5分。",
    "オール電化。",
    "駐輪場あり。",
    "管理体制良好、修繕積立金見直し済み。",
    "前面道路6m、再建築可。",
    "閑静な住宅街です。",
]
_AGENTS = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村"]


def number_of(i: int) -> str:
    """Return the property number of listing ``i`` (as the table stores it)."""
    return f"TK-{i:07d}"


def mapping_toml() -> str:
    """Return the SYNC_MAPPING file that maps the Japanese headers."""
    return "".join(f'"{h}" = "{c}"\n' for h, c in HEADERS.items() if c)


def write_mapping(path: Path) -> Path:
    path.write_text(mapping_toml(), encoding="utf-8")
    return path


def _price_cell(rng: random.Random, yen: int) -> Any:
    style = rng.random()
    man = yen // 10_000
    if style < 0.4:
        return yen  # typed as a number
    if style < 0.75:
        return f"{man:,}万円"
    if style < 0.9:
        return f"¥{yen:,}"
    oku, rest = divmod(man, 10_000)
    return f"{oku}億{rest:,}万円" if oku and rest else f"{man:,}万円"


def listing_cells(i: int, rng: random.Random, *, variant: int = 0) -> list[Any]:
    """Return one sheet row (cells as the API sends them with UNFORMATTED_VALUE)."""
    pref, cities = rng.choice(_PLACES)
    ptype = rng.choice(_TYPES)
    yen = rng.randrange(800, 30_000) * 10_000 + variant * 10_000
    land = round(rng.uniform(40, 400), 2)
    building = round(rng.uniform(20, 250), 2)
    walk = rng.randrange(1, 25)
    listed = rng.randrange(44_000, 45_900)  # 2020..2025 as serial day numbers
    notes = "".join(rng.sample(_NOTES, rng.randrange(1, 4)))
    if variant:
        notes += f"価格改定({variant})。"
    cells: list[Any] = [
        number_of(i),
        ptype,
        rng.choice(_STATUSES),
        f"{pref}{rng.choice(cities)}{rng.choice(_TOWNS)}{rng.randrange(1, 6)}丁目"
        f"{rng.randrange(1, 30)}-{rng.randrange(1, 20)}",
        _price_cell(rng, yen),
        land if rng.random() < 0.7 else f"{land}㎡",
        "" if ptype == "土地" else (building if rng.random() < 0.7 else f"{building}m²"),
        "" if ptype == "土地" else rng.choice(_LAYOUTS),
        rng.choice(_STATIONS),
        walk if rng.random() < 0.6 else f"徒歩{walk}分",
        listed,
        rng.random() < 0.5 if rng.random() < 0.7 else rng.choice(["有", "無", "あり", "なし"]),
        notes,
        rng.choice(_AGENTS),
        rng.randrange(1975, 2025),
        rng.choice([0, 8_000, 12_500, "1.5万円", "2万円"]),
        round(listed + rng.random(), 5),  # a date-time serial kept in extra
    ]
    return cells


def sheet(n: int, *, seed: int = 6, changed: set[int] | None = None) -> list[list[Any]]:
    """Return header + ``n`` listing rows; rows in ``changed`` get a new price and note."""
    rows: list[list[Any]] = [list(HEADERS)]
    changed = changed or set()
    for i in range(n):
        # One generator per row keeps every other row identical when some rows change.
        rng = random.Random(seed * 1_000_003 + i)
        rows.append(listing_cells(i, rng, variant=1 if i in changed else 0))
    return rows


def changed_indices(n: int, fraction: float, *, seed: int) -> set[int]:
    """Return which rows a "1% changed" run changes."""
    rng = random.Random(seed)
    return set(rng.sample(range(n), max(1, round(n * fraction))))


def table_rows(
    rows: list[list[Any]], *, sync_id: str, synced_at: str, tab: str = "Sheet1"
) -> Iterator[dict[str, Any]]:
    """Yield the rows the tool writes for ``rows`` (converted by its own code, not timed).

    The baselines upsert exactly these objects, bookkeeping columns included, so the
    database does the same work for them as for the tool.
    """
    from listing_sync import mapping
    from listing_sync.models import content_hash, convert_row, payload

    aliases = {mapping.normalize_header(h): c for h, c in HEADERS.items() if c}
    header_map = mapping.build_header_map(rows[0], aliases, tab="Sheet1")
    digest = mapping.source_hasher(mapping.header_signature(header_map))
    for number, cells in enumerate(rows[1:], start=2):
        sheet_row, problems, _ = convert_row(cells, header_map, number)
        if problems or sheet_row is None:
            raise ValueError(f"bench data row {number} does not convert: {problems}")
        values = payload(sheet_row.listing)
        values["content_hash"] = content_hash(values)
        values["source_hash"] = digest(cells)
        values["synced_at"] = synced_at
        values["removed_at"] = None
        values["last_sync_id"] = sync_id
        values["source_tab"] = tab
        yield values
