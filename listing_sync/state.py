"""The ``sync_state`` table: one row per run, written through PostgREST."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .errors import NotFoundError, UsageError
from .postgrest import PostgrestClient
from .sanitize import clean
from .schema import SYNC_STATE as TABLE
from .timeutil import iso, parse_ts, utcnow

# status accepts an id's first digits, as git does; ids are shown this short.
MIN_ID_PREFIX = 4
SHORT_ID = 8
MAX_CANDIDATES = 5
# error_details keeps at most this many row problems; the counts stay exact.
MAX_ERROR_DETAILS = 1000
RUNNING = ("queued", "in_progress")
# A run's status only moves forward: every write to a run filters on this, so a write
# that arrives late (held past the client's timeout, or a retry whose first attempt
# did land) can never overwrite a final status or the values written with it.
_STILL_RUNNING = "in.(" + ",".join(RUNNING) + ")"
# `health --ack` records itself as a row of this type: failed runs started before the
# newest one no longer count toward the failure rate (a new install's set-up failures).
ACK_TYPE, ACK_STATUS = "ack", "acknowledged"


def _uuid(digits: str) -> str:
    """Write 32 hex digits as a uuid (8-4-4-4-12)."""
    return "-".join((digits[:8], digits[8:12], digits[12:16], digits[16:20], digits[20:]))


def short_id(sync_id: str, length: int = SHORT_ID) -> str:
    """Return the first ``length`` characters of a run's id (enough to find it again)."""
    return sync_id[:length]


@dataclass(frozen=True)
class RunStats:
    """What ``health`` needs from the last 24 h of runs."""

    runs: int
    failed: int
    error_rate: float
    avg_duration: float | None  # seconds, over finished runs
    last_run: dict[str, Any] | None
    last_completed: dict[str, Any] | None
    last_completed_full: dict[str, Any] | None
    acknowledged_at: datetime | None = None  # the newest `health --ack` in the window


def duration_of(run: dict[str, Any]) -> float | None:
    """Return how long a finished run took, in seconds."""
    started, completed = parse_ts(run.get("started_at")), parse_ts(run.get("completed_at"))
    if started is None or completed is None:
        return None
    return (completed - started).total_seconds()


class SyncStateStore:
    """Create, update and read ``sync_state`` rows.

    ``outcome_client`` writes a run's final row: give it one that ignores SIGTERM,
    so an interrupted run is still recorded while everything else stops.
    """

    def __init__(
        self, client: PostgrestClient, *, outcome_client: PostgrestClient | None = None
    ) -> None:
        self.client = client
        self.outcome_client = outcome_client or client

    def create(self, sync_type: str, sync_id: str | None = None) -> str:
        """Insert a queued run and return its id.

        The id is chosen here, not by the database, and a duplicate is ignored: when
        the answer to the insert is lost and the guard retries, there is still one row.
        """
        sync_id = sync_id or str(uuid.uuid4())
        self.client.insert_once(
            TABLE,
            {
                "id": sync_id,
                "sync_type": sync_type,
                "status": "queued",
                "started_at": iso(utcnow()),
                "host": clean(socket.gethostname()),
                "pid": os.getpid(),
            },
            on_conflict="id",
        )
        return sync_id

    def update(self, sync_id: str, **values: Any) -> int:
        """Update one run still queued/in_progress; return 0 if it has already ended."""
        values["updated_at"] = iso(utcnow())
        filters = {"id": f"eq.{sync_id}", "status": _STILL_RUNNING}
        return self.client.update(TABLE, filters, clean(values))

    def record_outcome(self, sync_id: str, **values: Any) -> int:
        """Write one run's final values through ``outcome_client`` (once: see update)."""
        values["updated_at"] = iso(utcnow())
        filters = {"id": f"eq.{sync_id}", "status": _STILL_RUNNING}
        return self.outcome_client.update(TABLE, filters, clean(values))

    def abandon_running(self, reason: str) -> list[str]:
        """Mark runs left queued/in_progress by a dead process as abandoned.

        Call only while holding the run lock: then no other run is alive.
        """
        stale = self.client.select(
            TABLE, select="id", filters=[("status", "in.(queued,in_progress)")]
        )
        ids = [str(row["id"]) for row in stale]
        for sync_id in ids:
            self.update(
                sync_id,
                status="abandoned",
                completed_at=iso(utcnow()),
                error_message=reason,
            )
        return ids

    def get(self, sync_id: str) -> dict[str, Any]:
        """Return the run whose id is ``sync_id`` or starts with it (as git takes a prefix).

        Raise NotFoundError if none does, UsageError if several do.
        """
        digits = sync_id.strip().lower().replace("-", "")
        if len(digits) < MIN_ID_PREFIX or not all(c in "0123456789abcdef" for c in digits):
            raise NotFoundError(
                f"no sync with id {sync_id!r} (give at least {MIN_ID_PREFIX} hex digits of an id)"
            )
        if len(digits) > 32:
            raise NotFoundError(f"no sync with id {sync_id!r} (not a valid id)")
        # uuids sort as their hex digits do: a prefix is the range from ...000 to ...fff.
        low, high = _uuid(digits.ljust(32, "0")), _uuid(digits.ljust(32, "f"))
        rows = self.client.select(
            TABLE,
            filters=[("id", f"gte.{low}"), ("id", f"lte.{high}")],
            order="started_at.desc",
            limit=MAX_CANDIDATES + 1,
        )
        if not rows:
            raise NotFoundError(f"no sync with id {sync_id!r}")
        if len(rows) > 1:
            shown = ", ".join(short_id(str(r["id"]), 12) for r in rows[:MAX_CANDIDATES])
            more = " ..." if len(rows) > MAX_CANDIDATES else ""
            raise UsageError(
                f"sync id {sync_id!r} is ambiguous: it starts {len(rows)}"
                f"{'+' if more else ''} runs' ids ({shown}{more}); give more digits"
            )
        return rows[0]

    def recent(self, limit: int = 10) -> list[dict[str, Any]]:
        """Return the most recent runs, newest first (without their row errors)."""
        return self.client.select(
            TABLE,
            select="id,sync_type,status,started_at,completed_at,total_items,success_count,"
            "failed_count,skipped_count,removed_count,not_found_count,error_message,exit_code",
            order="started_at.desc",
            limit=limit,
        )

    def acknowledge(self) -> str:
        """Record that an operator has seen the failures so far; return the row's id."""
        now = iso(utcnow())
        row = self.client.insert_returning(
            TABLE,
            {
                "sync_type": ACK_TYPE,
                "status": ACK_STATUS,
                "started_at": now,
                "completed_at": now,
                "host": socket.gethostname(),
                "pid": os.getpid(),
            },
        )
        return str(row["id"])

    def stats(self, window: timedelta = timedelta(hours=24)) -> RunStats:
        """Summarise the runs started within ``window``; failures before an ack do not count."""
        since = iso(utcnow() - window)
        rows = self.client.select(
            TABLE,
            select="id,sync_type,status,started_at,completed_at,exit_code",
            filters=[("started_at", f"gte.{since}")],
            order="started_at.desc",
        )
        acks = [parse_ts(r["started_at"]) for r in rows if r["sync_type"] == ACK_TYPE]
        acked = max((a for a in acks if a is not None), default=None)
        runs = [r for r in rows if r["sync_type"] != ACK_TYPE]
        finished = [r for r in runs if r["status"] not in RUNNING]
        failed = sum(
            1
            for r in finished
            if r["status"] in ("failed", "abandoned")
            and not (acked is not None and (parse_ts(r["started_at"]) or acked) <= acked)
        )
        durations = [d for d in (duration_of(r) for r in finished) if d is not None]
        last_completed = self._last_finished(None)
        return RunStats(
            runs=len(finished),
            failed=failed,
            error_rate=failed / len(finished) if finished else 0.0,
            avg_duration=sum(durations) / len(durations) if durations else None,
            last_run=finished[0] if finished else None,
            last_completed=last_completed,
            last_completed_full=self._last_finished("full"),
            acknowledged_at=acked,
        )

    def _last_finished(self, sync_type: str | None) -> dict[str, Any] | None:
        """Return the newest run that wrote everything it could.

        A partial run counts: the sheet was read to the end and every good row
        written; its bad rows are what the pending-failures alert is for. One
        typo in the sheet must not make the data look stale.
        """
        filters = [("status", "in.(completed,partial)")]
        if sync_type:
            filters.append(("sync_type", f"eq.{sync_type}"))
        rows = self.client.select(
            TABLE,
            select="id,sync_type,status,started_at,completed_at",
            filters=filters,
            order="started_at.desc",
            limit=1,
        )
        return rows[0] if rows else None

    def failures_since(self, window: timedelta = timedelta(days=7)) -> dict[str, datetime]:
        """Return {property number: start of the newest run within ``window`` it failed in}."""
        since = iso(utcnow() - window)
        runs = self.client.select(
            TABLE,
            select="started_at,error_details",
            filters=[("started_at", f"gte.{since}"), ("failed_count", "gt.0")],
            order="started_at.asc",
        )
        failed_at: dict[str, datetime] = {}
        for run in runs:
            started = parse_ts(run["started_at"])
            for problem in run.get("error_details") or []:
                number = problem.get("property_number") if isinstance(problem, dict) else None
                if number and started is not None:
                    failed_at[str(number)] = started
        return failed_at
