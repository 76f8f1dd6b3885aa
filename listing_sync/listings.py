"""The ``property_listings`` table, read and written through PostgREST.

The planner and the writer speak in listings; this store turns that into
PostgREST requests (filters, paging, upserts), as ``state.SyncStateStore`` does
for ``sync_state``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from .errors import PermanentError
from .postgrest import PagesShifted, PostgrestClient, in_filters
from .schema import LISTINGS, Column, ListingsTable, kind_of

log = logging.getLogger("listing_sync")

# Plain PostgREST reads 100,000 hashes in 0.23 s at 10,000 a page against 0.39 s at
# 1000; Supabase caps pages at 1000, which select_pages copes with.
HASH_PAGE_SIZE = 10_000


class StoredListing(NamedTuple):
    """What the planner needs of a listing the table holds."""

    content_hash: str | None
    removed_at: str | None
    source_hash: str | None
    source_tab: str | None = None

    @property
    def active(self) -> bool:
        return self.removed_at is None


def _compact(row: dict[str, Any]) -> StoredListing:
    """Read a row of ``stored``'s compact select (no content_hash: see ``stored``)."""
    return StoredListing(None, row["r"], row["s"], row["t"])


class ListingsStore:
    """Read and write ``property_listings`` (or the table ``table`` declares)."""

    def __init__(
        self, client: PostgrestClient, table: ListingsTable = LISTINGS, *, read_concurrency: int = 1
    ) -> None:
        self.client = client
        self.table = table
        # Pages of the table read at once (the run's SYNC_CONCURRENCY).
        self.read_concurrency = read_concurrency

    def discover(self) -> ListingsTable:
        """Extend ``table`` by the columns the office added, with their types; return it.

        The table's columns and types come from PostgREST's OpenAPI description
        (``GET /``), which lists what the key's role may read: no extra SQL, and the
        same request works wherever PostgREST runs. Columns of a type no cell reader
        serves (uuid, arrays...) are left alone. If the description cannot be read,
        the run syncs the built-in columns and says so.
        """
        try:
            document = self.client.describe()
        except PermanentError as exc:
            log.warning(
                "could not read the columns of %s from PostgREST (%s); syncing the "
                "built-in columns only",
                self.table.name,
                exc.message,
            )
            return self.table
        definition = (document.get("definitions") or {}).get(self.table.name) or {}
        added: list[Column] = []
        for name, spec in (definition.get("properties") or {}).items():
            if name in self.table.columns or name in self.table.managed:
                continue
            kind = kind_of(str((spec or {}).get("format") or ""))
            if kind is None:
                log.debug("column %s (%s) cannot be read from a cell; left alone", name, spec)
                continue
            added.append(Column(name, kind, optional=True))
        if added:
            self.table = self.table.with_columns(tuple(added))
        return self.table

    def stored(
        self,
        numbers: Sequence[str] | None = None,
        *,
        on_count: Callable[[int], None] | None = None,
    ) -> dict[str, StoredListing]:
        """Return {property number: StoredListing}: every listing, or only ``numbers``.

        Every listing comes without its content_hash (None): the plan trusts most rows by
        their source_hash and reads the content hashes of the others with
        ``content_hashes``. Left out, with the columns' names shortened, the read is
        less than half the bytes: it is most of what a run with no changes does.
        ``on_count`` hears how many listings the table holds once its first page says so.
        """
        key = self.table.key
        if numbers is None:
            select = f"k:{key},r:removed_at,s:source_hash,t:source_tab"
            found: dict[str, StoredListing] = {}
            try:
                for page in self.client.select_all(
                    self.table.name,
                    select=select,
                    key=key,
                    key_field="k",
                    page_size=HASH_PAGE_SIZE,
                    concurrency=self.read_concurrency,
                    on_count=on_count,
                ):
                    found.update({r["k"]: _compact(r) for r in page})
                return found
            except PagesShifted as exc:
                log.info("reading %s again by keys: %s", self.table.name, exc)
            rows = self.client.select_pages(
                self.table.name, select=select, key=key, key_field="k", page_size=HASH_PAGE_SIZE
            )
            return {r["k"]: _compact(r) for r in rows}
        return {
            r[key]: StoredListing(
                r.get("content_hash"),
                r.get("removed_at"),
                r.get("source_hash"),
                r.get("source_tab"),
            )
            for r in self.client.select_in(
                self.table.name,
                select=f"{key},content_hash,removed_at,source_hash,source_tab",
                column=key,
                values=list(dict.fromkeys(numbers)),
            )
        }

    def content_hashes(self, numbers: Sequence[str]) -> dict[str, str | None]:
        """Return {property number: content_hash} of the listings ``numbers``."""
        key = self.table.key
        rows = self.client.select_in(
            self.table.name, select=f"k:{key},c:content_hash", column=key, values=list(numbers)
        )
        return {r["k"]: r["c"] for r in rows}

    def values(self, numbers: Sequence[str], columns: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Yield ``columns`` (and the key) of the listings ``numbers``."""
        select = ",".join(dict.fromkeys((self.table.key, *columns)))
        yield from self.client.select_in(
            self.table.name, select=select, column=self.table.key, values=list(numbers)
        )

    def upsert(self, body: bytes, columns: Sequence[str] | None = None) -> None:
        """Insert or update the listings in ``body``, a JSON array of rows.

        ``columns`` (default: every column listing-sync writes) are the keys of each row;
        a column left out keeps its stored value.
        """
        self.client.upsert(
            self.table.name,
            body,
            on_conflict=self.table.key,
            columns=self.table.write_columns if columns is None else columns,
        )

    def has_values(self, column: str) -> bool:
        """Tell whether any listing (active or removed) holds a value in ``column``."""
        rows = self.client.select(
            self.table.name, select=self.table.key, filters=[(column, "not.is.null")], limit=1
        )
        return bool(rows)

    def mark_removed(self, numbers: Sequence[str], *, sync_id: str, now: str) -> int:
        """Set removed_at on the active listings ``numbers``; return how many this run removed.

        The count is read back from the table (removed, and by this run), not summed
        from the PATCH answers: when an answer is lost and the retry matches no row
        (the first attempt did land), the listing is still counted, exactly once.
        """
        key = self.table.key
        for flt in in_filters(sorted(numbers)):
            self.client.update(
                self.table.name,
                {key: flt, "removed_at": "is.null"},
                {"removed_at": now, "last_sync_id": sync_id},
            )
        removed = self.client.select_in(
            self.table.name,
            select=key,
            column=key,
            values=sorted(numbers),
            filters=[("last_sync_id", f"eq.{sync_id}"), ("removed_at", "not.is.null")],
        )
        return sum(1 for _ in removed)

    def synced_at(self, numbers: Sequence[str]) -> dict[str, str | None]:
        """Return {property number: synced_at as stored} for the listings ``numbers``."""
        return {r[self.table.key]: r.get("synced_at") for r in self.values(numbers, ["synced_at"])}
