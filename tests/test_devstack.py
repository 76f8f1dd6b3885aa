"""The local stack itself, checked for real: PostgreSQL + schema, PostgREST 12 roles,
and the Sheets v4 server as seen by the real google-api-python-client / google-auth."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
from google.auth.exceptions import RefreshError
from googleapiclient.errors import HttpError
from helpers import rest_client, sheets_service, upsert_listings

from devstack import LocalStack, mint_jwt, write_service_account_key
from devstack.sheets_server import (
    CellBox,
    RangeError,
    SheetsServer,
    column_index,
    column_letters,
    parse_cells,
    parse_fields,
    split_sheet,
)

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "devstack" / "sample"


def _listing(number: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "property_number": number,
        "property_type": "マンション",
        "price": 35_800_000,
        "removed_at": None,
    }
    row.update(values)
    return row


# --------------------------------------------------------------------------- PostgreSQL
def test_stack_env_and_files(stack: LocalStack) -> None:
    env = stack.env(SYNC_BATCH_SIZE="7")
    assert env["POSTGREST_URL"] == stack.postgrest_url
    assert env["SYNC_SHEETS_API_ENDPOINT"] == stack.sheets.url
    assert env["SYNC_SPREADSHEET_ID"] == stack.spreadsheet_id
    assert env["SYNC_STATE_DIR"] == str(stack.workdir / "state")
    assert env["SYNC_BATCH_SIZE"] == "7"
    assert env["PATH"] == os.environ["PATH"]
    key = Path(env["GOOGLE_APPLICATION_CREDENTIALS"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    info = json.loads(key.read_text())
    assert info["type"] == "service_account"
    assert info["token_uri"] == stack.sheets.url + "/token"
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert Path(env["SYNC_STATE_DIR"]).is_dir()


def test_sql_helper_returns_tuples_with_none(stack: LocalStack) -> None:
    assert stack.sql("select 1, null::text, E'a\\tb', E'x\\ny'") == [("1", None, "a\tb", "x\ny")]
    assert stack.sql("select 1 where false") == []
    assert stack.sql("select g from generate_series(1, 3) g") == [("1",), ("2",), ("3",)]


def test_schema_applies_twice_and_keeps_data(clean_stack: LocalStack) -> None:
    assert upsert_listings(clean_stack, [_listing("KEEP-1")]).status_code == 201
    clean_stack.apply_schema()
    clean_stack.apply_schema()
    assert clean_stack.sql("select property_number from property_listings") == [("KEEP-1",)]
    columns = {
        r[0]
        for r in clean_stack.sql(
            "select column_name from information_schema.columns "
            "where table_schema = 'public' and table_name = 'property_listings'"
        )
    }
    assert {"property_number", "extra", "content_hash", "removed_at", "last_sync_id"} <= columns
    roles = clean_stack.sql(
        "select rolname, rolbypassrls from pg_roles "
        "where rolname in ('anon', 'service_role', 'authenticator', 'listing_sync') order by 1"
    )
    assert roles == [
        ("anon", "f"),
        ("authenticator", "f"),
        ("listing_sync", "f"),
        ("service_role", "t"),
    ]


def test_truncate_empties_both_tables(clean_stack: LocalStack) -> None:
    upsert_listings(clean_stack, [_listing("T-1")])
    clean_stack.psql("insert into sync_state (sync_type, status) values ('full', 'completed')")
    clean_stack.truncate()
    assert clean_stack.sql(
        "select (select count(*) from property_listings), (select count(*) from sync_state)"
    ) == [("0", "0")]


# --------------------------------------------------------------------------- PostgREST
def test_service_role_upsert_and_select(clean_stack: LocalStack) -> None:
    rows = [
        _listing("A-0001", price=1, extra={}),
        _listing("00123", price=2, extra={"担当者": "佐藤"}),
    ]
    assert upsert_listings(clean_stack, rows).status_code == 201
    # Same key again: merged, not duplicated (PostgREST 12.0.2 answers 200, not 201, when
    # every row of the upsert already existed).
    again = upsert_listings(clean_stack, [_listing("A-0001", price=99, extra={})])
    assert again.status_code == 200, again.text
    with rest_client(clean_stack) as client:
        resp = client.get(
            "/property_listings",
            params={"select": "property_number,price,extra", "order": "property_number"},
            headers={"Prefer": "count=exact"},
        )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-range"] == "0-1/2"
    assert resp.json() == [
        {"property_number": "00123", "price": 2, "extra": {"担当者": "佐藤"}},
        {"property_number": "A-0001", "price": 99, "extra": {}},
    ]


def test_duplicate_key_in_one_batch_fails_whole_batch(clean_stack: LocalStack) -> None:
    resp = upsert_listings(clean_stack, [_listing("D-1"), _listing("D-1", price=5)])
    assert resp.status_code == 400  # PostgREST 12.0.2; 500 from 12.0.3 on
    assert resp.json()["code"] == "21000"
    assert clean_stack.sql("select count(*) from property_listings") == [("0",)]


def test_anon_sees_only_active_rows_and_cannot_write(clean_stack: LocalStack) -> None:
    upsert_listings(
        clean_stack,
        [_listing("ON-1"), _listing("GONE-1", removed_at="2025-01-09T00:00:00Z")],
    )
    with rest_client(clean_stack, role=None) as anon:
        resp = anon.get("/property_listings", params={"select": "property_number"})
        assert resp.status_code == 200
        assert resp.json() == [{"property_number": "ON-1"}]
        denied = anon.post("/property_listings", json=[_listing("EVIL-1")])
        assert denied.status_code == 401, denied.text
        assert denied.json()["code"] == "42501"
        assert anon.get("/sync_state").status_code == 401
    with rest_client(clean_stack, role="anon") as anon_key:
        assert anon_key.get("/public_listings").json()[0]["property_number"] == "ON-1"
        # select=* names private columns too: refused, not filtered (see sql/003_grants.sql)
        assert anon_key.get("/property_listings").status_code == 401
    assert clean_stack.sql("select count(*) from property_listings") == [("2",)]


def test_listing_sync_role_is_least_privilege(clean_stack: LocalStack) -> None:
    with rest_client(clean_stack, role="listing_sync") as client:
        resp = client.post(
            "/property_listings",
            params={"on_conflict": "property_number"},
            json=[_listing("LS-1")],
            headers={"Prefer": "resolution=merge-duplicates,return=minimal"},
        )
        assert resp.status_code == 201, resp.text
        run = client.post("/sync_state", json={"sync_type": "full", "status": "in_progress"})
        assert run.status_code == 201, run.text
        assert client.get("/property_listings").json()[0]["property_number"] == "LS-1"
        delete = client.delete("/property_listings", params={"property_number": "eq.LS-1"})
        assert delete.status_code == 403, delete.text
        assert delete.json()["code"] == "42501"


def test_bad_and_expired_keys_are_rejected(clean_stack: LocalStack) -> None:
    forged = mint_jwt("x" * 40, "service_role")
    expired = clean_stack.mint_key("service_role", expires_in=-60)
    for key in (forged, expired):
        resp = httpx.get(
            clean_stack.postgrest_url + "/property_listings",
            headers={"Authorization": f"Bearer {key}"},
        )
        assert resp.status_code == 401
        assert resp.json()["code"].startswith("PGRST3")


def test_mint_jwt_is_standard_hs256() -> None:
    token = mint_jwt("s" * 32, "listing_sync", expires_in=60)
    header_b64, claims_b64, sig_b64 = token.split(".")

    def decode(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    assert json.loads(decode(header_b64)) == {"alg": "HS256", "typ": "JWT"}
    claims = json.loads(decode(claims_b64))
    assert claims["role"] == "listing_sync"
    assert claims["exp"] - claims["iat"] == 60
    assert "iss" in claims
    expected = hmac.new(b"s" * 32, f"{header_b64}.{claims_b64}".encode(), hashlib.sha256)
    assert decode(sig_b64) == expected.digest()
    assert "exp" not in json.loads(decode(mint_jwt("s" * 32, "anon").split(".")[1]))


def test_mint_key_command_makes_a_working_key(clean_stack: LocalStack) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "devstack", "mint-key", "--role", "listing_sync"),
            *("--secret", clean_stack.jwt_secret, "--expires-in", "300"),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    key = proc.stdout.strip()
    resp = httpx.get(
        clean_stack.postgrest_url + "/sync_state", headers={"Authorization": f"Bearer {key}"}
    )
    assert resp.status_code == 200, resp.text


# --------------------------------------------------------------------------- Sheets: google client
QUIRKY = [
    ["物件番号", "価格", "備考", None, ""],  # trailing empties
    ["00123", 35800000, "", "x"],  # empty cell in the middle
    [],  # empty row in the middle
    [1045, "3,580万円", None, None],
    ["", "", ""],  # a row of empty cells: also []
    ["A-0012", 45667.0, True],
    [],
    [None, ""],  # trailing empty rows
]


def _values(stack: LocalStack, a1: str, **kwargs: str) -> dict[str, object]:
    service = sheets_service(stack)
    params = {"valueRenderOption": "UNFORMATTED_VALUE", "dateTimeRenderOption": "SERIAL_NUMBER"}
    params.update(kwargs)
    return service.spreadsheets().values().get(spreadsheetId="s1", range=a1, **params).execute()


def test_google_client_reads_values_with_google_quirks(clean_stack: LocalStack) -> None:
    clean_stack.sheets.set_sheet("s1", "物件 一覧", QUIRKY)
    whole = _values(clean_stack, "'物件 一覧'!A1:Z100")
    assert whole == {
        "range": "'物件 一覧'!A1:Z100",
        "majorDimension": "ROWS",
        "values": [
            ["物件番号", "価格", "備考"],
            ["00123", 35800000, "", "x"],
            [],
            [1045, "3,580万円"],
            [],
            ["A-0012", 45667.0, True],
        ],
    }
    assert _values(clean_stack, "'物件 一覧'!1:1")["values"] == [["物件番号", "価格", "備考"]]
    assert _values(clean_stack, "'物件 一覧'!1:1")["range"] == "'物件 一覧'!A1:Z1"
    open_ended = _values(clean_stack, "'物件 一覧'!A2:Z")
    assert open_ended["range"] == "'物件 一覧'!A2:Z1000"
    assert open_ended["values"][0] == ["00123", 35800000, "", "x"]
    assert _values(clean_stack, "'物件 一覧'!A2:Z5001")["values"] == whole["values"][1:]
    assert _values(clean_stack, "'物件 一覧'")["values"] == whole["values"]
    assert _values(clean_stack, "A1:B2")["values"] == [["物件番号", "価格"], ["00123", 35800000]]
    assert _values(clean_stack, "'物件 一覧'!C:C")["values"] == [["備考"], [], [], [], [], [True]]
    # Nothing in the range: no "values" key at all.
    empty = _values(clean_stack, "'物件 一覧'!A7:Z9")
    assert empty == {"range": "'物件 一覧'!A7:Z9", "majorDimension": "ROWS"}
    assert "values" not in _values(clean_stack, "'物件 一覧'!A200:Z300")


def test_formatted_values_are_strings(clean_stack: LocalStack) -> None:
    clean_stack.sheets.set_sheet("s1", "Sheet1", [[1045, 65.5, 45667.0, True, "00123"]])
    service = sheets_service(clean_stack)
    got = service.spreadsheets().values().get(spreadsheetId="s1", range="Sheet1").execute()
    assert got["values"] == [["1045", "65.5", "45667", "TRUE", "00123"]]
    unformatted = _values(clean_stack, "Sheet1")["values"]
    assert unformatted == [[1045, 65.5, 45667.0, True, "00123"]]


def test_batch_get_columns_and_metadata(clean_stack: LocalStack) -> None:
    sheets = clean_stack.sheets
    sheets.set_sheet("s1", "First", [["h1", "h2"], [1, 2]])
    sheets.set_sheet("s1", "Second", [["a"]], row_count=5000, column_count=15)
    service = sheets_service(clean_stack)
    meta = service.spreadsheets().get(spreadsheetId="s1", fields="sheets.properties").execute()
    props = [s["properties"] for s in meta["sheets"]]
    assert [(p["title"], p["index"]) for p in props] == [("First", 0), ("Second", 1)]
    assert props[0]["sheetId"] == 0
    assert props[1]["gridProperties"] == {"rowCount": 5000, "columnCount": 15}
    assert set(meta) == {"sheets"}
    narrow = service.spreadsheets().get(spreadsheetId="s1", fields="sheets(properties(title))")
    assert narrow.execute() == {
        "sheets": [{"properties": {"title": t}} for t in ("First", "Second")]
    }
    batch = (
        service.spreadsheets()
        .values()
        .batchGet(
            spreadsheetId="s1",
            ranges=["First!1:1", "Second!A1:B2"],
            valueRenderOption="UNFORMATTED_VALUE",
            majorDimension="COLUMNS",
        )
        .execute()
    )
    assert batch["spreadsheetId"] == "s1"
    assert [vr["values"] for vr in batch["valueRanges"]] == [[["h1"], ["h2"]], [["a"]]]
    # Replacing a tab keeps its place.
    sheets.set_sheet("s1", "First", [["new"]])
    meta = service.spreadsheets().get(spreadsheetId="s1").execute()
    assert [s["properties"]["title"] for s in meta["sheets"]] == ["First", "Second"]
    assert _values(clean_stack, "First")["values"] == [["new"]]


def test_google_errors_have_googles_shape(clean_stack: LocalStack) -> None:
    clean_stack.sheets.set_sheet("s1", "Sheet1", [["a"]])
    service = sheets_service(clean_stack)
    values = service.spreadsheets().values()
    with pytest.raises(HttpError) as not_found:
        values.get(spreadsheetId="nope", range="Sheet1").execute()
    assert not_found.value.status_code == 404
    with pytest.raises(HttpError) as bad_tab:
        values.get(spreadsheetId="s1", range="Missing!A1:Z").execute()
    assert bad_tab.value.status_code == 400
    assert "Unable to parse range" in str(bad_tab.value)
    # No token, or a made-up one: 401 in Google's JSON shape.
    for headers in ({}, {"Authorization": "Bearer made-up"}):
        resp = httpx.get(
            clean_stack.sheets.url + "/v4/spreadsheets/s1/values/Sheet1", headers=headers
        )
        assert resp.status_code == 401
        assert resp.json()["error"]["status"] == "UNAUTHENTICATED"
        assert resp.json()["error"]["code"] == 401


def test_injected_429_surfaces_as_http_error(clean_stack: LocalStack) -> None:
    sheets = clean_stack.sheets
    sheets.set_sheet("s1", "Sheet1", [["a"]])
    values = sheets_service(clean_stack).spreadsheets().values()
    sheets.fail_next(1, status=429, google_status="RESOURCE_EXHAUSTED", retry_after="2")
    with pytest.raises(HttpError) as exc:
        values.get(spreadsheetId="s1", range="Sheet1").execute()
    assert exc.value.status_code == 429
    assert exc.value.resp["retry-after"] == "2"
    body = json.loads(exc.value.content)
    assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert values.get(spreadsheetId="s1", range="Sheet1").execute()["values"] == [["a"]]
    sheets.fail_next(2, status=503, google_status="UNAVAILABLE")
    for _ in range(2):
        with pytest.raises(HttpError) as unavailable:
            values.get(spreadsheetId="s1", range="Sheet1").execute()
        assert unavailable.value.status_code == 503
    assert values.get(spreadsheetId="s1", range="Sheet1").execute()["values"] == [["a"]]


def test_fail_after_hits_the_middle_of_a_chunked_read(clean_stack: LocalStack) -> None:
    sheets = clean_stack.sheets
    rows = [["id", "n"]] + [[f"P-{i:05d}", i] for i in range(1, 3001)]
    sheets.set_sheet("s1", "Sheet1", rows)
    values = sheets_service(clean_stack).spreadsheets().values()
    sheets.fail_after(2, status=429, google_status="RESOURCE_EXHAUSTED", times=1)
    got: list[list[object]] = []
    errors = 0
    start = 2
    while True:
        try:
            chunk = values.get(
                spreadsheetId="s1",
                range=f"Sheet1!A{start}:Z{start + 999}",
                valueRenderOption="UNFORMATTED_VALUE",
            ).execute()
        except HttpError as exc:
            assert exc.status_code == 429
            errors += 1
            continue
        got += chunk.get("values", [])
        if len(chunk.get("values", [])) < 1000:
            break
        start += 1000
    assert errors == 1
    assert got == rows[1:]
    statuses = [r.status for r in sheets.requests if "/values" in r.path]
    assert statuses == [200, 429, 200, 200, 200]
    assert sheets.count("/values") == 5
    sheets.reset_counts()
    assert sheets.count("/values") == 0


def test_delay_slows_responses(clean_stack: LocalStack) -> None:
    clean_stack.sheets.set_sheet("s1", "Sheet1", [["a"]])
    values = sheets_service(clean_stack).spreadsheets().values()
    values.get(spreadsheetId="s1", range="Sheet1").execute()  # fetch the token first
    clean_stack.sheets.delay(0.3, times=1)
    began = time.monotonic()
    values.get(spreadsheetId="s1", range="Sheet1").execute()
    assert time.monotonic() - began >= 0.3
    began = time.monotonic()
    values.get(spreadsheetId="s1", range="Sheet1").execute()
    assert time.monotonic() - began < 0.3


def test_dropped_connection_is_a_transport_error(clean_stack: LocalStack) -> None:
    clean_stack.sheets.set_sheet("s1", "Sheet1", [["a"]])
    token = clean_stack.sheets.issue_token(scopes="https://www.googleapis.com/auth/spreadsheets")
    clean_stack.sheets.fail_next(1, status=0)
    with pytest.raises(httpx.TransportError):
        httpx.get(
            clean_stack.sheets.url + "/v4/spreadsheets/s1/values/Sheet1",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert clean_stack.sheets.requests[-1].status == 0


def test_token_assertion_signature_is_checked(clean_stack: LocalStack, tmp_path: Path) -> None:
    clean_stack.sheets.set_sheet("s1", "Sheet1", [["a"]])
    # Same e-mail, different (unregistered) private key: Google says invalid_grant.
    rogue = tmp_path / "rogue.json"
    write_service_account_key(rogue, token_uri=clean_stack.sheets.token_uri)
    from google.oauth2 import service_account
    from googleapiclient.discovery import build

    creds = service_account.Credentials.from_service_account_file(
        str(rogue), scopes=["https://www.googleapis.com/auth/spreadsheets.readonly"]
    )
    service = build(
        "sheets",
        "v4",
        credentials=creds,
        client_options={"api_endpoint": clean_stack.sheets.url},
        static_discovery=True,
    )
    with pytest.raises(RefreshError, match="invalid_grant"):
        service.spreadsheets().values().get(spreadsheetId="s1", range="Sheet1").execute()


def test_revoked_token_is_refreshed_by_google_auth(clean_stack: LocalStack) -> None:
    clean_stack.sheets.set_sheet("s1", "Sheet1", [["a"]])
    values = sheets_service(clean_stack).spreadsheets().values()
    values.get(spreadsheetId="s1", range="Sheet1").execute()
    tokens_before = clean_stack.sheets.count("/token")
    clean_stack.sheets.revoke_tokens()
    assert values.get(spreadsheetId="s1", range="Sheet1").execute()["values"] == [["a"]]
    assert clean_stack.sheets.count("/token") == tokens_before + 1


def test_large_sheet_in_chunks_is_fast(clean_stack: LocalStack) -> None:
    rows = [[f"h{c}" for c in range(15)]]
    rows += [[f"P-{r:06d}", *(r * 10 + c for c in range(1, 15))] for r in range(20_000)]
    began = time.monotonic()
    clean_stack.sheets.set_sheet("big", "Sheet1", rows)
    values = sheets_service(clean_stack).spreadsheets().values()
    seen = 0
    for start in range(2, 20_002, 5000):
        chunk = values.get(
            spreadsheetId="big",
            range=f"Sheet1!A{start}:O{start + 4999}",
            valueRenderOption="UNFORMATTED_VALUE",
        ).execute()
        assert chunk["values"][0][0] == f"P-{start - 2:06d}"
        seen += len(chunk["values"])
    assert seen == 20_000
    assert time.monotonic() - began < 10  # ~0.2 s here; generous for slow CI


# --------------------------------------------------------------------------- sample data
def test_sample_sheet_matches_mapping_and_table(stack: LocalStack) -> None:
    sample = json.loads((SAMPLE / "listings.json").read_text(encoding="utf-8"))
    mapping = tomllib.loads((SAMPLE / "mapping.toml").read_text(encoding="utf-8"))
    header, rows = sample["rows"][0], sample["rows"][1:]
    assert sample["tab"] == "物件一覧"
    assert 45 <= len(rows) <= 60
    assert [h for h in header if h not in mapping] == ["担当者"]  # goes to `extra`
    columns = {
        r[0]
        for r in stack.sql(
            "select column_name from information_schema.columns "
            "where table_name = 'property_listings'"
        )
    }
    assert set(mapping.values()) <= columns
    numbers = [str(r[0]) for r in rows]
    assert len(set(numbers)) == len(numbers)
    assert {type(r[0]) for r in rows} == {int, str}
    assert {type(r[4]) for r in rows} == {int, str}  # 35800000 and "3,580万円"


# --------------------------------------------------------------------------- A1 parsing
def test_column_letters_round_trip() -> None:
    for i in (0, 1, 25, 26, 27, 51, 52, 701, 702, 18277):
        assert column_index(column_letters(i)) == i
    assert column_letters(25) == "Z" and column_letters(26) == "AA"


@pytest.mark.parametrize(
    ("a1", "sheet", "cells"),
    [
        ("'Tab Name'!A1:Z100", "Tab Name", "A1:Z100"),
        ("'It''s'!A1", "It's", "A1"),
        ("'A!B'!C3", "A!B", "C3"),
        ("'Only Tab'", "Only Tab", None),
        ("Tab!1:1", "Tab", "1:1"),
        ("Tab", None, "Tab"),
        ("A1:B2", None, "A1:B2"),
    ],
)
def test_split_sheet(a1: str, sheet: str | None, cells: str | None) -> None:
    assert split_sheet(a1) == (sheet, cells)


@pytest.mark.parametrize(
    ("cells", "box"),
    [
        ("A1", CellBox(0, 1, 0, 1, single=True)),
        ("A1:Z100", CellBox(0, 100, 0, 26)),
        ("A2:Z", CellBox(1, None, 0, 26)),
        ("1:1", CellBox(0, 1, None, None)),
        ("7", CellBox(6, 7, None, None)),
        ("2:5001", CellBox(1, 5001, None, None)),
        ("B:D", CellBox(None, None, 1, 4)),
        ("D5:B2", CellBox(1, 5, 1, 4)),
        ("aa10:ab11", CellBox(9, 11, 26, 28)),
    ],
)
def test_parse_cells(cells: str, box: CellBox) -> None:
    assert parse_cells(cells) == box


@pytest.mark.parametrize("cells", ["A1:B2:C3", "A0", "1:B", "!", "A1:", "ÄB1"])
def test_parse_cells_rejects(cells: str) -> None:
    with pytest.raises(RangeError):
        parse_cells(cells)


def test_parse_fields() -> None:
    assert parse_fields("sheets.properties") == {"sheets": {"properties": {}}}
    assert parse_fields("sheets(properties(title,sheetId)),spreadsheetId") == {
        "sheets": {"properties": {"title": {}, "sheetId": {}}},
        "spreadsheetId": {},
    }
    assert parse_fields("sheets/properties/title") == {"sheets": {"properties": {"title": {}}}}


def test_sheets_server_standalone_context_manager() -> None:
    with SheetsServer() as server:
        server.set_sheet("x", "T", [["a"]])
        url = server.url
        token = server.issue_token(scopes="https://www.googleapis.com/auth/spreadsheets")
        resp = httpx.get(
            url + "/v4/spreadsheets/x/values/T", headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.json()["values"] == [["a"]]
        assert resp.headers["content-length"] == str(len(resp.content))
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v4/spreadsheets/x")
