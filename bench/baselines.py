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
