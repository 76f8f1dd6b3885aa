"""What the tool is measured against, on the very rows the tool writes.

(a) the REST floor: a minimal httpx loop POSTing pre-built rows in 1000-row batches
    (and, for reference, the same loop with ``?columns=``, as the tool sends);
(b) the database limit: psql COPY into a staging table plus INSERT ... ON CONFLICT;
(c) the official Python PostgREST client (the ``postgrest`` package), 1000-row batches.

(a) and (c) run inside the benchmark process with the rows already in memory, so they
pay no interpreter start, no sheet read and no validation: a strict floor.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from devstack import LocalStack
from listing_sync.schema import LISTINGS

TABLE = "property_listings"
BATCH = 1000
# Exactly the columns the tool writes, so the baselines do the same work.
COLUMNS = LISTINGS.write_columns


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "apikey": key}


def rest_floor(
    stack: LocalStack, rows: Sequence[dict[str, Any]], *, columns: bool = False
) -> float:
    """(a) POST the rows with plain httpx, 1000 per request; return the seconds taken.

    With ``columns``, also send ``?columns=`` as the tool and the postgrest client do:
    PostgREST then hands the body to PostgreSQL without parsing it to check its keys.
    """
    began = time.perf_counter()
    headers = _headers(stack.service_role_key)
    headers["Prefer"] = "resolution=merge-duplicates,return=minimal"
    params = {"on_conflict": "property_number"}
    if columns:
        params["columns"] = ",".join(COLUMNS)
    with httpx.Client(base_url=stack.postgrest_url, headers=headers, timeout=300) as client:
        for start in range(0, len(rows), BATCH):
            response = client.post(f"/{TABLE}", params=params, json=rows[start : start + BATCH])
            response.raise_for_status()
    return time.perf_counter() - began


def postgrest_py(stack: LocalStack, rows: Sequence[dict[str, Any]]) -> float:
    """(c) Upsert the rows with the official ``postgrest`` client; return the seconds taken."""
    from postgrest import DEFAULT_POSTGREST_CLIENT_HEADERS, ReturnMethod, SyncPostgrestClient

    began = time.perf_counter()
    with httpx.Client(timeout=300) as http:
        client = SyncPostgrestClient(
            stack.postgrest_url,
            headers={**DEFAULT_POSTGREST_CLIENT_HEADERS, **_headers(stack.service_role_key)},
            http_client=http,
        )
        for start in range(0, len(rows), BATCH):
            client.from_(TABLE).upsert(
                list(rows[start : start + BATCH]),
                on_conflict="property_number",
                returning=ReturnMethod.minimal,
            ).execute()
    return time.perf_counter() - began


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write the rows as COPY-ready CSV (an unquoted empty field is NULL). Not timed."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        for row in rows:
            writer.writerow(
                json.dumps(row[c], ensure_ascii=False, separators=(",", ":"))
                if c == "extra"
                else row[c]
                for c in COLUMNS
            )
    return path


def copy_sql(csv_path: Path) -> str:
    """Return the psql script: COPY into a staging table, then one upsert from it."""
    columns = ", ".join(COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "property_number")
    path = str(csv_path).replace("'", "''")
    return (
        "begin;\n"
        f"create temp table staging (like public.{TABLE}) on commit drop;\n"
        f"\\copy staging ({columns}) from '{path}' with (format csv)\n"
        f"insert into public.{TABLE} ({columns}) select {columns} from staging\n"
        f"  on conflict (property_number) do update set {updates};\n"
        "commit;\n"
    )


def psql_copy(stack: LocalStack, csv_path: Path) -> float:
    """(b) COPY + INSERT ... ON CONFLICT through one psql process; return the seconds."""
    script = copy_sql(csv_path)
    began = time.perf_counter()
    stack.psql(script)
    return time.perf_counter() - began


# -- at a distance (through bench.netem proxies) --------------------------------------------
# The ideal writers send bodies encoded before the clock starts: what is left is the
# network and PostgREST/PostgreSQL, the floor any writer of these rows stands on.


def encode_batches(rows: Sequence[dict[str, Any]], batch: int) -> list[bytes]:
    """Return the rows as JSON array bodies of ``batch`` rows each. Not timed."""
    return [
        json.dumps(list(rows[i : i + batch]), ensure_ascii=False, separators=(",", ":")).encode()
        for i in range(0, len(rows), batch)
    ]


def post_bodies(
    postgrest_url: str, key: str, bodies: Sequence[bytes], *, concurrency: int
) -> float:
    """POST ``bodies`` as upserts, ``concurrency`` in flight on one keep-alive client; seconds."""
    from concurrent.futures import ThreadPoolExecutor

    headers = _headers(key)
    headers["Prefer"] = "resolution=merge-duplicates,return=minimal"
    headers["Content-Type"] = "application/json"
    params = {"on_conflict": "property_number", "columns": ",".join(COLUMNS)}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    began = time.perf_counter()
    with httpx.Client(
        base_url=postgrest_url, headers=headers, timeout=300, limits=limits
    ) as client:

        def post(body: bytes) -> None:
            client.post(f"/{TABLE}", params=params, content=body).raise_for_status()

        if concurrency == 1:
            for body in bodies:
                post(body)
        else:
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(post, bodies))  # list(): re-raises the first failure
    return time.perf_counter() - began


# What the plan needs of the table today (listings.ListingsStore.stored), 10,000 a page.
HASH_SELECT = "property_number,content_hash,removed_at,source_hash"
HASH_PAGE = 10_000


def read_hashes(postgrest_url: str, key: str) -> int:
    """Read the table's keys and hashes in keyset pages; return how many rows came back.

    Ends on an empty page, as a reader must against Supabase (which caps page sizes).
    """
    count = 0
    last: str | None = None
    with httpx.Client(base_url=postgrest_url, headers=_headers(key), timeout=300) as client:
        while True:
            params: dict[str, str | int] = {
                "select": HASH_SELECT,
                "order": "property_number.asc",
                "limit": HASH_PAGE,
            }
            if last is not None:
                params["property_number"] = f"gt.{last}"
            response = client.get(f"/{TABLE}", params=params)
            response.raise_for_status()
            page = response.json()
            if not page:
                return count
            count += len(page)
            last = page[-1]["property_number"]


class SheetValues:
    """The real Google client, built before the clock starts, reading one tab in chunks."""

    def __init__(self, endpoint: str, key_path: Path, spreadsheet_id: str, tab: str) -> None:
        import google_auth_httplib2
        import httplib2
        from google.oauth2 import service_account
        from googleapiclient.discovery import build

        credentials = service_account.Credentials.from_service_account_file(
            str(key_path), scopes=["https://www.googleapis.com/auth/spreadsheets.readonly"]
        )
        http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=300))
        self._service = build(
            "sheets",
            "v4",
            http=http,
            client_options={"api_endpoint": endpoint},
            static_discovery=True,
        )
        # Rendering the resource's docstrings costs ~0.35 s once: not part of reading.
        self._values = self._service.spreadsheets().values()
        self.spreadsheet_id = spreadsheet_id
        self.tab = tab

    def read(self, rows: int, columns: int) -> int:
        """Read rows 1..``rows`` one chunk after another, chunked as the tool does; count them."""
        from listing_sync.sheets import a1_tab, chunk_rows_for

        step = chunk_rows_for(columns)
        count = 0
        for start in range(1, rows + 1, step):
            end = min(start + step - 1, rows)
            answer = self._values.get(
                spreadsheetId=self.spreadsheet_id,
                range=f"{a1_tab(self.tab)}!{start}:{end}",
                majorDimension="ROWS",
                valueRenderOption="UNFORMATTED_VALUE",
                dateTimeRenderOption="SERIAL_NUMBER",
            ).execute(num_retries=0)
            count += len(answer.get("values", []))
        return count

    def close(self) -> None:
        self._service.close()


def parallel_reads(
    sheet: SheetValues, rows: int, columns: int, postgrest_url: str, key: str
) -> tuple[float, int, int]:
    """Read the sheet and the table's hashes in two threads; (seconds, sheet rows, hashes)."""
    from concurrent.futures import ThreadPoolExecutor

    began = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        sheet_rows = pool.submit(sheet.read, rows, columns)
        hashes = pool.submit(read_hashes, postgrest_url, key)
        counts = sheet_rows.result(), hashes.result()
    return time.perf_counter() - began, *counts
