"""Helpers for tests that use the real local stack (see conftest.py)."""

from __future__ import annotations

from typing import Any

import httpx
from google.oauth2 import service_account
from googleapiclient.discovery import build

from devstack import LocalStack

READONLY_SCOPE = "https://www.googleapis.com/auth/spreadsheets.readonly"


def rest_client(stack: LocalStack, role: str | None = "service_role") -> httpx.Client:
    """An httpx client for PostgREST with a key for ``role`` (None: no key, i.e. anon)."""
    headers = {}
    if role is not None:
        key = stack.service_role_key if role == "service_role" else stack.mint_key(role)
        headers = {"Authorization": f"Bearer {key}", "apikey": key}
    return httpx.Client(base_url=stack.postgrest_url, headers=headers, timeout=10)


def upsert_listings(stack: LocalStack, rows: list[dict[str, Any]]) -> httpx.Response:
    """Upsert rows into property_listings as service_role (merge on property_number)."""
    with rest_client(stack) as client:
        return client.post(
            "/property_listings",
            params={"on_conflict": "property_number"},
            json=rows,
            headers={"Prefer": "resolution=merge-duplicates,return=minimal"},
        )


def sheets_service(stack: LocalStack, scopes: list[str] | None = None) -> Any:
    """The real google-api-python-client Sheets v4 service, pointed at the local server."""
    creds = service_account.Credentials.from_service_account_file(
        str(stack.key_path), scopes=scopes or [READONLY_SCOPE]
    )
    return build(
        "sheets",
        "v4",
        credentials=creds,
        client_options={"api_endpoint": stack.sheets.url},
        static_discovery=True,
        cache_discovery=False,
    )
