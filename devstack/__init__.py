"""The local "real stack" for listing-sync: PostgreSQL, PostgREST and a Sheets v4 stand-in.

Used by the tests (``tests/conftest.py``), the demo (``python -m devstack demo``) and the
benchmark. Everything runs on 127.0.0.1 on free ports inside one work directory.
"""

from __future__ import annotations

from .keys import write_service_account_key
from .postgres import PostgresServer, start_postgres
from .postgrest import PostgrestServer, mint_jwt, start_postgrest
from .sheets_server import RecordedRequest, SheetsServer
from .stack import LocalStack

__all__ = [
    "LocalStack",
    "PostgresServer",
    "PostgrestServer",
    "RecordedRequest",
    "SheetsServer",
    "mint_jwt",
    "start_postgres",
    "start_postgrest",
    "write_service_account_key",
]
