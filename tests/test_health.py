"""health.evaluate (every threshold at its boundary) and the Nagios line, as pure tables."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from listing_sync.health import (
    CRITICAL,
    OK,
    UNKNOWN,
    WARNING,
    HealthFacts,
    HealthReport,
    evaluate,
    nagios_line,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MAX_AGE = 26 * 3600.0
HEALTHY = HealthFacts(
    runs_24h=20,
    failed_24h=0,
    avg_duration=30.0,
    last_run_duration=25.0,
    last_completed_at=NOW - timedelta(hours=1),
    last_full_completed_at=NOW - timedelta(hours=1),
    pending_failures=0,
    breakers={"sheets": "closed", "postgrest": "closed"},
)
# 'label'=value[UOM];[warn];[crit];[min];[max] (Nagios plugin development guidelines)
PERFDATA = re.compile(
    r"^(?:'[^'=]+'|[^' =]+)=-?[0-9.]+(?:s|ms|us|%|B|KB|MB|TB|c)?"
    r"(?:;(?:[-~@:0-9.]*)){0,2}(?:;-?[0-9.]*){0,2}$"
)


def alerts(facts: HealthFacts) -> list[tuple[str, int]]:
    report = evaluate(facts, now=NOW, max_age=MAX_AGE)
    return [(a.name, a.level) for a in report.alerts]


@pytest.mark.parametrize(
    ("runs", "failed", "expected_code"),
    [
        (20, 0, OK),
        (20, 1, OK),  # exactly 5%: not above the threshold
        (19, 1, WARNING),  # 5.3%
        (10, 1, WARNING),  # exactly 10%: degraded, not unhealthy
        (9, 1, CRITICAL),  # 11.1%
        (1, 1, CRITICAL),
        (0, 0, OK),  # no runs: no rate to judge
    ],
)
def test_error_rate_thresholds(runs: int, failed: int, expected_code: int) -> None:
    """Error rate over 24 h: > 5% degraded (WARNING), > 10% unhealthy (CRITICAL)."""
    report = evaluate(replace(HEALTHY, runs_24h=runs, failed_24h=failed), now=NOW, max_age=MAX_AGE)
    assert expected_code == report.code
    expected_alerts = [("error_rate", expected_code)] if expected_code else []
    assert expected_alerts == [(a.name, a.level) for a in report.alerts]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(600.0, []), (600.1, [("last_run_duration", WARNING)]), (None, [])],
)
def test_last_run_duration_threshold(seconds: float | None, expected: list) -> None:
    """A last run longer than 10 minutes is a WARNING; exactly 10 minutes is fine."""
    assert expected == alerts(replace(HEALTHY, last_run_duration=seconds))


@pytest.mark.parametrize(
    ("pending", "expected"),
    [(1000, []), (1001, [("pending_failures", WARNING)])],
)
def test_pending_failures_threshold(pending: int, expected: list) -> None:
    """More than 1000 listings failing and not synced since is a WARNING."""
    assert expected == alerts(replace(HEALTHY, pending_failures=pending))


@pytest.mark.parametrize(
    ("breakers", "expected"),
    [
        ({"sheets": "closed", "postgrest": "closed"}, []),
        ({"sheets": "open", "postgrest": "closed"}, [("breaker_sheets", CRITICAL)]),
        ({"sheets": "closed", "postgrest": "half_open"}, [("breaker_postgrest", CRITICAL)]),
    ],
)
def test_any_breaker_not_closed_is_critical(breakers: dict[str, str], expected: list) -> None:
    """An open (or half-open) circuit breaker is CRITICAL."""
    assert expected == alerts(replace(HEALTHY, breakers=breakers))


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(hours=26), []),
        (timedelta(hours=26, seconds=1), [("last_full_sync_age", CRITICAL)]),
        (None, [("last_full_sync_age", CRITICAL)]),  # never
    ],
)
def test_last_full_sync_age_threshold(age: timedelta | None, expected: list) -> None:
    """No completed full sync within SYNC_HEALTH_MAX_AGE (26 h by default) is CRITICAL."""
    when = NOW - age if age is not None else None
    assert expected == alerts(replace(HEALTHY, last_full_completed_at=when))


def test_worst_alert_decides_the_code() -> None:
    """Several alerts: the code is the most severe one."""
    facts = replace(HEALTHY, pending_failures=5000, breakers={"sheets": "open"})
    report = evaluate(facts, now=NOW, max_age=MAX_AGE)
    assert (CRITICAL, "unhealthy") == (report.code, report.status)
    assert [("pending_failures", WARNING), ("breaker_sheets", CRITICAL)] == alerts(facts)


def test_alert_carries_value_and_threshold() -> None:
    """Each alert lists its value and its threshold (for the JSON and text output)."""
    report = evaluate(replace(HEALTHY, runs_24h=19, failed_24h=1), now=NOW, max_age=MAX_AGE)
    alert = report.alerts[0]
    assert (0.0526, 0.05) == (alert.value, alert.threshold)
    assert (
        "1 of 19 runs failed in the last 24 h (5.3% > 5%); once fixed, acknowledge them: "
        "listing-sync health --ack"
    ) == alert.message


def test_nagios_line_ok_with_perfdata() -> None:
    """OK: one line, status text, then perfdata in the plugin syntax."""
    line = nagios_line(evaluate(HEALTHY, now=NOW, max_age=MAX_AGE))
    assert (
        "LISTING-SYNC OK - healthy: all checks passed | error_rate=0.0000;0.05;0.1;0;1 "
        "runs_24h=20 failed_runs_24h=0 pending_failures=0;1000 last_run_duration=25.0s;600 "
        "avg_duration=30.0s breaker_postgrest_open=0;;0;0;1 breaker_sheets_open=0;;0;0;1"
    ) == line


def test_nagios_line_critical_lists_every_alert() -> None:
    """CRITICAL: the alerts' messages joined, every perfdata item well-formed."""
    facts = replace(HEALTHY, runs_24h=9, failed_24h=1, breakers={"sheets": "open"})
    line = nagios_line(evaluate(facts, now=NOW, max_age=MAX_AGE))
    text, perf = line.split(" | ")
    assert (
        "LISTING-SYNC CRITICAL - unhealthy: 1 of 9 runs failed in the last 24 h (11.1% > 10%); "
        "once fixed, acknowledge them: listing-sync health --ack; "
        "the sheets circuit breaker is open"
    ) == text
    assert [] == [item for item in perf.split(" ") if not PERFDATA.match(item)]
    assert "breaker_sheets_open=1;;0;0;1" in perf.split(" ")


def test_nagios_unknown_line_stays_one_line_without_a_pipe() -> None:
    """An error text with newlines or '|' cannot break the plugin output format."""
    report = HealthReport(code=UNKNOWN, facts=None, error="cannot read\nsync_state: a | b")
    assert "LISTING-SYNC UNKNOWN - unknown: cannot read sync_state: a / b" == nagios_line(report)
