"""The plan reads the stored content_hash of changed rows while the sheet is still read."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from listing_sync.errors import TransientError
from listing_sync.listings import StoredListing
from listing_sync.pipeline.plan import _ContentHashes
from listing_sync.pipeline.read import ValidRow


class Listings:
    """A stand-in for ListingsStore.content_hashes that records what it was asked."""

    read_concurrency = 3

    def __init__(self, fail: bool = False) -> None:
        self.asked: list[list[str]] = []
        self.threads: set[str] = set()
        self.fail = fail
        self._lock = threading.Lock()

    def content_hashes(self, numbers: Sequence[str]) -> dict[str, str | None]:
        with self._lock:
            self.asked.append(list(numbers))
            self.threads.add(threading.current_thread().name)
        if self.fail:
            raise TransientError("PostgREST reading content hashes: 503", dependency="postgrest")
        return {n: f"hash-of-{n}" for n in numbers if n != "gone"}


def row(number: str, tab: str = "一覧") -> ValidRow:
    return ValidRow(number, 2, b"{}", "digest", tab)


def stored(
    tab: str = "一覧", *, removed: bool = False, source: str | None = "old"
) -> StoredListing:
    return StoredListing(None, "2026-01-01" if removed else None, source, tab)


def test_only_changed_rows_of_active_listings_on_their_tab_are_looked_up() -> None:
    """New, removed, moved and pre-source_hash listings are written whatever their hash."""
    existing = {
        "A": stored(),
        "B": stored(removed=True),
        "C": stored(tab="別館"),
        "D": stored(source=None),
        "gone": stored(),
    }
    listings = Listings()
    lookups = _ContentHashes(listings, existing, enabled=True)  # type: ignore[arg-type]
    lookups.add([row("A"), None, row("B"), row("C"), row("D"), row("N"), row("gone")])
    lookups.finish()
    assert [["A", "gone"]] == listings.asked
    assert "hash-of-A" == existing["A"].content_hash
    assert existing["gone"].content_hash is None  # left the table meanwhile: written
    assert "listing-sync-main" not in listings.threads


def test_lookups_start_while_batches_still_come_and_run_beside_each_other() -> None:
    """600 changed rows: two lookups of 250 asked during the read, the last 100 at the end."""
    numbers = [f"P{i:04d}" for i in range(600)]
    existing = {n: stored() for n in numbers}
    listings = Listings()
    lookups = _ContentHashes(listings, existing, enabled=True)  # type: ignore[arg-type]
    for at in range(0, 600, 100):
        lookups.add([row(n) for n in numbers[at : at + 100]])
    assert 2 == len(lookups.asked)  # before the sheet was read to its end
    lookups.finish()
    assert [250, 250, 100] == sorted((len(a) for a in listings.asked), reverse=True)
    assert {n: f"hash-of-{n}" for n in numbers} == {n: s.content_hash for n, s in existing.items()}
    assert {"listing-sync-hashes"} == listings.threads


def test_forced_runs_look_nothing_up() -> None:
    """--force writes every row: no content hash is needed."""
    listings = Listings()
    lookups = _ContentHashes(listings, {"A": stored()}, enabled=False)  # type: ignore[arg-type]
    lookups.add([row("A")])
    lookups.finish()
    assert [] == listings.asked


def test_a_failed_lookup_fails_the_plan() -> None:
    """The error of a background lookup is raised where the plan waits for it."""
    listings = Listings(fail=True)
    lookups = _ContentHashes(listings, {"A": stored()}, enabled=True)  # type: ignore[arg-type]
    lookups.add([row("A")])
    with pytest.raises(TransientError, match="503"):
        lookups.finish()
