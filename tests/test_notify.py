"""Metrics file and pings (listing_sync.notify), without the stack."""

from __future__ import annotations

import logging
import stat
import time
from pathlib import Path

import pytest
from pingserver import PingRecorder, closed_port_url, hanging_server
from promtext import parse

from listing_sync import notify
from listing_sync.notify import RunMetrics

BREAKERS = {"sheets": "closed", "postgrest": "open"}


def run_metrics(**overrides: object) -> RunMetrics:
    values: dict[str, object] = {
        "sync_type": "full",
        "exit_code": 0,
        "finished_at": 1_750_000_000.25,
        "duration": 12.5,
        "written": 7,
        "failed": 2,
        "unchanged": 40,
        "removed": 1,
        "not_found": 3,
        "success": True,
    }
    values.update(overrides)
    return RunMetrics(**values)  # type: ignore[arg-type]


def test_rendered_metrics_parse_strictly_with_every_value() -> None:
    """The text parses as Prometheus exposition format and holds every number of the run."""
    m = parse(notify.render_metrics(run_metrics(), BREAKERS, last_success=1_749_000_000.0))
    assert 1_750_000_000.25 == m.value("listing_sync_last_run_timestamp_seconds", sync_type="full")
    assert 1_749_000_000.0 == m.value("listing_sync_last_success_timestamp_seconds")
    assert 12.5 == m.value("listing_sync_last_run_duration_seconds", sync_type="full")
    rows = {dict(k)["result"]: v for k, v in m.series("listing_sync_last_run_rows").items()}
    assert {"written": 7, "failed": 2, "unchanged": 40, "removed": 1, "not_found": 3} == rows
    assert 0 == m.value("listing_sync_last_exit_code")
    assert 0 == m.value("listing_sync_circuit_breaker_open", dependency="sheets")
    assert 1 == m.value("listing_sync_circuit_breaker_open", dependency="postgrest")
    assert {name: "gauge" for name in m.types} == m.types


def test_every_series_carries_the_instance_label_when_set(tmp_path: Path) -> None:
    """SYNC_INSTANCE=osaka: every sample has sync_instance="osaka"; last success is re-read."""
    run = run_metrics(instance="osaka", retries=(("sheets", 2),))
    m = parse(notify.render_metrics(run, BREAKERS, last_success=1_749_000_000.0))
    assert all(("sync_instance", "osaka") in labels for (_, labels) in m.samples), m.samples
    assert 1_750_000_000.25 == m.value(
        "listing_sync_last_run_timestamp_seconds", sync_instance="osaka", sync_type="full"
    )
    assert 2 == m.value("listing_sync_last_run_retries", sync_instance="osaka", dependency="sheets")
    path = tmp_path / "listing_sync_osaka.prom"
    notify.write_metrics(path, run, BREAKERS)
    assert 1_750_000_000.25 == notify.previous_last_success(path)


def test_breaker_state_is_one_series_per_state() -> None:
    """Each dependency has a 0/1 series for closed, open and half_open (no flapping labels)."""
    m = parse(notify.render_metrics(run_metrics(), BREAKERS, last_success=None))
    states = {
        (dict(k)["dependency"], dict(k)["state"]): v
        for k, v in m.series("listing_sync_circuit_breaker_state").items()
    }
    assert {
        ("postgrest", "closed"): 0,
        ("postgrest", "open"): 1,
        ("postgrest", "half_open"): 0,
        ("sheets", "closed"): 1,
        ("sheets", "open"): 0,
        ("sheets", "half_open"): 0,
    } == states


def test_no_success_yet_means_no_last_success_series() -> None:
    """Without any successful run the last-success gauge is absent, not zero."""
    m = parse(notify.render_metrics(run_metrics(success=False), BREAKERS, last_success=None))
    assert {} == m.series("listing_sync_last_success_timestamp_seconds")


def test_write_metrics_keeps_last_success_through_a_failing_run(tmp_path: Path) -> None:
    """A success sets last_success; a later failure updates the run but keeps last_success."""
    path = tmp_path / "listing_sync.prom"
    notify.write_metrics(path, run_metrics(finished_at=1000.0), BREAKERS)
    notify.write_metrics(
        path, run_metrics(finished_at=2000.0, exit_code=69, success=False), BREAKERS
    )
    m = parse(path.read_text())
    assert 1000.0 == m.value("listing_sync_last_success_timestamp_seconds")
    assert 2000.0 == m.value("listing_sync_last_run_timestamp_seconds", sync_type="full")
    assert 69 == m.value("listing_sync_last_exit_code")
    notify.write_metrics(path, run_metrics(finished_at=3000.0), BREAKERS)
    assert 3000.0 == parse(path.read_text()).value("listing_sync_last_success_timestamp_seconds")


def test_write_metrics_is_atomic_and_world_readable(tmp_path: Path) -> None:
    """Only the target file remains (no temp file), readable by node_exporter (0644)."""
    path = tmp_path / "listing_sync.prom"
    notify.write_metrics(path, run_metrics(), BREAKERS)
    notify.write_metrics(path, run_metrics(), BREAKERS)
    assert ["listing_sync.prom"] == sorted(p.name for p in tmp_path.iterdir())
    assert 0o644 == stat.S_IMODE(path.stat().st_mode)


def test_unwritable_metrics_file_is_a_warning_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A metrics path that cannot be written logs a warning and raises nothing."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="listing_sync"):
        notify.write_metrics(blocker / "listing_sync.prom", run_metrics(), BREAKERS)
    assert [f"could not write metrics file {blocker / 'listing_sync.prom'}: File exists"] == [
        r.getMessage() for r in caplog.records
    ]


@pytest.mark.parametrize(
    ("event", "path"),
    [
        ("start", "/ping/check-uuid/start"),
        ("success", "/ping/check-uuid"),
        ("1", "/ping/check-uuid/1"),
        ("69", "/ping/check-uuid/69"),
        ("fail", "/ping/check-uuid/fail"),
    ],
)
def test_ping_follows_the_healthchecks_convention(event: str, path: str) -> None:
    """start -> URL/start, success -> URL, anything else -> URL/<event>."""
    with PingRecorder() as server:
        notify.ping(server.url, event, body="sync partial: 1 failed")
    assert [("POST", path, "sync partial: 1 failed")] == server.requests


def test_ping_without_url_does_nothing() -> None:
    """No SYNC_PING_URL: no request, no error."""
    notify.ping(None, "start")
    notify.ping("", "success")


def test_ping_to_a_closed_port_is_logged_and_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    """Connection refused: one warning, no exception, well under the timeout."""
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="listing_sync"):
        notify.ping(closed_port_url(), "start", timeout=2.0)
    assert time.monotonic() - began < 1.0
    assert 1 == len(caplog.records)
    assert caplog.records[0].getMessage().startswith("ping start failed after ")
    assert caplog.records[0].getMessage().endswith("(ConnectError); the sync result is unaffected")


def test_ping_to_a_hanging_server_gives_up_after_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that accepts and never answers costs at most the timeout."""
    with hanging_server() as url, caplog.at_level(logging.WARNING, logger="listing_sync"):
        began = time.monotonic()
        notify.ping(url, "success", timeout=0.3)
        elapsed = time.monotonic() - began
    assert 0.25 < elapsed < 1.5
    assert caplog.records[0].getMessage().endswith("(ReadTimeout); the sync result is unaffected")


def test_ping_answered_with_an_error_status_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 404 (unknown check) is reported so the operator can fix SYNC_PING_URL."""
    with PingRecorder(status=404) as server, caplog.at_level(logging.WARNING, "listing_sync"):
        notify.ping(server.url, "success")
    assert [
        "ping success was answered 404; check SYNC_PING_URL (the sync result is unaffected)"
    ] == [r.getMessage() for r in caplog.records]


def test_ping_with_an_unusable_url_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    """Even a URL httpx refuses to parse (port out of range) only logs a warning."""
    with caplog.at_level(logging.WARNING, logger="listing_sync"):
        notify.ping("http://127.0.0.1:99999/x", "start")
    assert 1 == len(caplog.records)
