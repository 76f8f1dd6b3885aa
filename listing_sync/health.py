"""Is the sync healthy? The seed's alerts, decided by one pure function.

Levels and exit codes follow the Nagios plugin convention:
0 OK (healthy), 1 WARNING (degraded), 2 CRITICAL (unhealthy), 3 UNKNOWN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from .config import Settings
from .errors import ConfigError, ListingSyncError
from .listings import ListingsStore
from .state import SyncStateStore, duration_of
from .timeutil import parse_ts

# The seed's thresholds.
ERROR_RATE_WARNING = 0.05
ERROR_RATE_CRITICAL = 0.10
MAX_RUN_SECONDS = 600.0
MAX_PENDING_FAILURES = 1000

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS = {OK: "healthy", WARNING: "degraded", CRITICAL: "unhealthy", UNKNOWN: "unknown"}
NAGIOS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


@dataclass(frozen=True)
class HealthFacts:
    """What the alerts are decided from (gathered by ``gather``)."""

    runs_24h: int
    failed_24h: int
    avg_duration: float | None
    last_run_duration: float | None
    last_completed_at: datetime | None
    last_full_completed_at: datetime | None
    pending_failures: int
    breakers: dict[str, str]  # name -> closed | open | half_open
    acknowledged_at: datetime | None = None  # failures before it do not count

    @property
    def error_rate(self) -> float:
        return self.failed_24h / self.runs_24h if self.runs_24h else 0.0


@dataclass(frozen=True)
class Alert:
    name: str
    level: int
    value: float | str
    threshold: float | str
    message: str


@dataclass
class HealthReport:
    code: int
    facts: HealthFacts | None
    alerts: list[Alert] = field(default_factory=list)
    error: str | None = None

    @property
    def status(self) -> str:
        return STATUS[self.code]

    def to_dict(self) -> dict[str, Any]:
        facts = self.facts
        return {
            "status": self.status,
            "exit_code": self.code,
            "error": self.error,
            "alerts": [asdict(a) | {"level": NAGIOS[a.level]} for a in self.alerts],
            "error_rate": facts.error_rate if facts else None,
            "runs_24h": facts.runs_24h if facts else None,
            "failed_runs_24h": facts.failed_24h if facts else None,
            "avg_duration_seconds": facts.avg_duration if facts else None,
            "last_run_duration_seconds": facts.last_run_duration if facts else None,
            "last_completed_sync": _iso(facts.last_completed_at) if facts else None,
            "last_completed_full_sync": _iso(facts.last_full_completed_at) if facts else None,
            "pending_failures": facts.pending_failures if facts else None,
            "circuit_breakers": dict(facts.breakers) if facts else {},
            "acknowledged_at": _iso(facts.acknowledged_at) if facts else None,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def evaluate(facts: HealthFacts, *, now: datetime, max_age: float) -> HealthReport:
    """Decide the alerts and the overall level from ``facts``."""
    alerts: list[Alert] = []
    rate = facts.error_rate
    if rate > ERROR_RATE_WARNING:
        level = CRITICAL if rate > ERROR_RATE_CRITICAL else WARNING
        limit = ERROR_RATE_CRITICAL if level == CRITICAL else ERROR_RATE_WARNING
        alerts.append(
            Alert(
                "error_rate",
                level,
                round(rate, 4),
                limit,
                f"{facts.failed_24h} of {facts.runs_24h} runs failed in the last 24 h "
                f"({rate:.1%} > {limit:.0%}); once fixed, acknowledge them: "
                "listing-sync health --ack",
            )
        )
    if facts.last_run_duration is not None and facts.last_run_duration > MAX_RUN_SECONDS:
        alerts.append(
            Alert(
                "last_run_duration",
                WARNING,
                round(facts.last_run_duration, 1),
                MAX_RUN_SECONDS,
                f"the last run took {facts.last_run_duration / 60:.1f} min (> 10 min)",
            )
        )
    if facts.pending_failures > MAX_PENDING_FAILURES:
        alerts.append(
            Alert(
                "pending_failures",
                WARNING,
                facts.pending_failures,
                MAX_PENDING_FAILURES,
                f"{facts.pending_failures} listings failed and have not synced since (> 1000)",
            )
        )
    for name, state in sorted(facts.breakers.items()):
        if state != "closed":
            alerts.append(
                Alert(
                    f"breaker_{name}",
                    CRITICAL,
                    state,
                    "closed",
                    f"the {name} circuit breaker is {state.replace('_', '-')}",
                )
            )
    last_full = facts.last_full_completed_at
    age = (now - last_full).total_seconds() if last_full else None
    if age is None or age > max_age:
        alerts.append(
            Alert(
                "last_full_sync_age",
                CRITICAL,
                round(age, 0) if age is not None else "never",
                max_age,
                "no completed full sync ever"
                if age is None
                else f"the last completed full sync was {age / 3600:.1f} h ago "
                f"(> {max_age / 3600:g} h, SYNC_HEALTH_MAX_AGE)",
            )
        )
    code = max((a.level for a in alerts), default=OK)
    return HealthReport(code=code, facts=facts, alerts=alerts)


def nagios_line(report: HealthReport) -> str:
    """Return the one-line Nagios plugin output with performance data."""
    head = f"LISTING-SYNC {NAGIOS[report.code]} - {report.status}"
    if report.error:
        return f"{head}: {_plugin_text(report.error)}"
    detail = _plugin_text("; ".join(a.message for a in report.alerts) or "all checks passed")
    facts = report.facts
    assert facts is not None
    perf = [
        f"error_rate={facts.error_rate:.4f};{ERROR_RATE_WARNING};{ERROR_RATE_CRITICAL};0;1",
        f"runs_24h={facts.runs_24h}",
        f"failed_runs_24h={facts.failed_24h}",
        f"pending_failures={facts.pending_failures};{MAX_PENDING_FAILURES}",
    ]
    if facts.last_run_duration is not None:
        perf.append(f"last_run_duration={facts.last_run_duration:.1f}s;{MAX_RUN_SECONDS:g}")
    if facts.avg_duration is not None:
        perf.append(f"avg_duration={facts.avg_duration:.1f}s")
    for name, state in sorted(facts.breakers.items()):
        # Critical range "0": anything above 0 (open or half-open) is critical.
        perf.append(f"breaker_{name}_open={0 if state == 'closed' else 1};;0;0;1")
    return f"{head}: {detail} | {' '.join(perf)}"


def _plugin_text(text: str) -> str:
    """Keep the text part on one line and free of '|', which starts the perfdata."""
    return " ".join(text.replace("|", "/").split())


def pending_failures(state: SyncStateStore, listings: ListingsStore) -> int:
    """Count listings whose latest sync attempt failed and that have not synced since.

    The seed's "queue size": failures come from the row errors of recent runs; a
    listing counts until its ``synced_at`` is newer than its last failure.
    """
    failed_at = state.failures_since()
    if not failed_at:
        return 0
    synced = {n: parse_ts(v) for n, v in listings.synced_at(sorted(failed_at)).items()}
    count = 0
    for number, when in failed_at.items():
        last = synced.get(number)
        if last is None or last < when:
            count += 1
    return count


def gather(
    state: SyncStateStore,
    listings: ListingsStore,
    breaker_states: dict[str, str],
    *,
    now: datetime,
) -> HealthFacts:
    """Read the facts the alerts need from sync_state, the listings and the breaker files."""
    stats = state.stats()
    last_run = stats.last_run
    return HealthFacts(
        runs_24h=stats.runs,
        failed_24h=stats.failed,
        avg_duration=stats.avg_duration,
        last_run_duration=duration_of(last_run) if last_run else None,
        last_completed_at=parse_ts((stats.last_completed or {}).get("completed_at")),
        last_full_completed_at=parse_ts((stats.last_completed_full or {}).get("completed_at")),
        pending_failures=pending_failures(state, listings),
        breakers=breaker_states,
        acknowledged_at=stats.acknowledged_at,
    )


def acknowledge(settings: Settings) -> str:
    """Record an acknowledgement in sync_state: earlier failed runs stop counting."""
    from .wiring import open_runtime

    with open_runtime(settings, probe=True) as runtime:
        return runtime.state.acknowledge()


def check(settings: Settings, breaker_states: dict[str, str], *, now: datetime) -> HealthReport:
    """Gather the facts with a probe's short budget and decide; UNKNOWN if they cannot be read.

    A ConfigError (a refused key, a missing table) propagates: it is the operator's to fix.
    """
    from .wiring import open_runtime

    try:
        with open_runtime(settings, probe=True) as runtime:
            facts = gather(runtime.state, runtime.listings, breaker_states, now=now)
    except ConfigError:
        raise
    except ListingSyncError as exc:
        return HealthReport(code=UNKNOWN, facts=None, error=f"cannot read sync_state: {exc}")
    return evaluate(facts, now=now, max_age=settings.health_max_age)
