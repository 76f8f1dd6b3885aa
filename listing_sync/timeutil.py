"""Wall-clock time as the tables store it: aware UTC datetimes, ISO 8601 text."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def parse_ts(value: str | None) -> datetime | None:
    """Parse a PostgREST timestamptz."""
    if not value:
        return None
    return datetime.fromisoformat(value)
