"""Wiring: health and status probes get a short budget and timeout."""

from __future__ import annotations

import time
from pathlib import Path

from listing_sync import wiring
from listing_sync.config import load_settings


def settings(tmp_path: Path):
    return load_settings(
        {
            "POSTGREST_URL": "http://127.0.0.1:9",
            "SUPABASE_SERVICE_ROLE_KEY": "k" * 20,
            "SYNC_STATE_DIR": str(tmp_path),
            "SYNC_HTTP_TIMEOUT": "30",
        }
    )


def test_probe_guards_have_a_short_budget_and_timeout(tmp_path: Path) -> None:
    """health/status give up within SYNC_HEALTH_TIMEOUT (5 s); a sync keeps its hour."""
    s = settings(tmp_path)
    now = time.time()
    probe = wiring.guards(s, probe=True).postgrest
    sync = wiring.guards(s).postgrest
    assert probe.deadline is not None and sync.deadline is not None
    assert now + wiring.PROBE_BUDGET - 1 <= probe.deadline <= time.time() + wiring.PROBE_BUDGET
    assert sync.deadline >= now + 3600 - 1
    client = wiring.postgrest_client(s, probe, probe=True)
    assert wiring.PROBE_TIMEOUT == client.http.timeout.read
    assert 30.0 == wiring.postgrest_client(s, sync).http.timeout.read


def test_health_timeout_setting_raises_the_probe_budget(tmp_path: Path) -> None:
    """SYNC_HEALTH_TIMEOUT=20s: the probe's budget and request timeout become 20 s."""
    s = load_settings(
        {
            "POSTGREST_URL": "http://127.0.0.1:9",
            "SUPABASE_SERVICE_ROLE_KEY": "k" * 20,
            "SYNC_STATE_DIR": str(tmp_path),
            "SYNC_HEALTH_TIMEOUT": "20s",
        }
    )
    now = time.time()
    probe = wiring.guards(s, probe=True).postgrest
    assert probe.deadline is not None
    assert now + 20 - 1 <= probe.deadline <= time.time() + 20
    assert 20.0 == wiring.postgrest_client(s, probe, probe=True).http.timeout.read
