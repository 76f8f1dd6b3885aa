"""The deployment examples (deploy/, crontab.example) say what the product expects."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from listing_sync.config import CREDENTIAL_NAME, KNOWN_SETTINGS, load_settings

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"


def unit(name: str) -> dict[str, list[str]]:
    """Parse a systemd unit file into {"Section.Key": [values]}."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in (DEPLOY / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def test_env_example_is_plain_key_value_lines_the_product_accepts() -> None:
    """No quotes, spaces or inline comments (systemd and bash read it alike); values valid."""
    values: dict[str, str] = {}
    for line in (DEPLOY / "listing-sync.env.example").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        assert re.fullmatch(r"[A-Z_]+=[^\s\"'#]+", line), line
        key, _, value = line.partition("=")
        values[key] = value
    settings = load_settings({**values, "SUPABASE_SERVICE_ROLE_KEY": "k" * 40})
    assert "https://your-project.supabase.co/rest/v1" == settings.postgrest_url
    assert 26 * 3600 == settings.health_max_age


def test_env_example_leaves_key_paths_to_systemd() -> None:
    """Key paths set in the EnvironmentFile would override the unit's credentials."""
    text = (DEPLOY / "listing-sync.env.example").read_text()
    for name in ("SUPABASE_SERVICE_ROLE_KEY_FILE", "GOOGLE_APPLICATION_CREDENTIALS"):
        assert re.search(rf"^{name}=", text, re.M) is None, name
        assert re.search(rf"^# {name}=", text, re.M), name


def test_service_passes_both_keys_as_credentials() -> None:
    """LoadCredential= names match what the product reads; a oneshot with no [Install]."""
    service = unit("listing-sync.service")
    creds = [v.split(":", 1)[0] for v in service["Service.LoadCredential"]]
    assert [CREDENTIAL_NAME, "google-key.json"] == creds
    assert ["GOOGLE_APPLICATION_CREDENTIALS=%d/google-key.json"] == [
        v for v in service["Service.Environment"] if v.startswith("GOOGLE_")
    ]
    assert ["oneshot"] == service["Service.Type"]
    assert not any(key.startswith("Install.") for key in service)
    assert all(p.startswith("-") for p in service["Service.ReadWritePaths"])


def test_crontab_health_job_mails_only_when_the_level_changes(tmp_path: Path) -> None:
    """The health job prints (cron mails) the plugin line on a change of level only."""
    job = next(
        line
        for line in (REPO / "crontab.example").read_text().splitlines()
        if "health --format nagios" in line and not line.startswith("#")
    )
    command = re.split(r"\s+", job, maxsplit=5)[5]
    (tmp_path / ".config" / "listing-sync").mkdir(parents=True)
    (tmp_path / ".config" / "listing-sync" / "env").write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "listing-sync"
    answer = tmp_path / "answer"
    fake.write_text(f'#!/bin/sh\ncat "{answer}"\nexit 2\n')
    fake.chmod(0o755)
    env = {"HOME": str(tmp_path), "PATH": f"{bin_dir}:/usr/bin:/bin"}

    def run(line: str) -> str:
        answer.write_text(line + "\n")
        r = subprocess.run(
            ["/bin/sh", "-c", command], env=env, capture_output=True, text=True, check=False
        )
        assert "" == r.stderr
        return r.stdout

    never = "LISTING-SYNC CRITICAL - unhealthy: no completed full sync ever | runs_24h=0"
    old = "LISTING-SYNC CRITICAL - unhealthy: the last completed full sync was 27.1 h ago | x=1"
    ok = "LISTING-SYNC OK - healthy: all checks passed | runs_24h=1"
    outputs = [run(never), run(never), run(old), run(ok), run(ok)]
    assert [never + "\n", "", "", ok + "\n", ""] == outputs


def test_timer_catches_up_and_spreads_load() -> None:
    """Persistent=true and RandomizedDelaySec, enabled through timers.target."""
    timer = unit("listing-sync.timer")
    assert ["true"] == timer["Timer.Persistent"]
    assert ["10min"] == timer["Timer.RandomizedDelaySec"]
    assert ["timers.target"] == timer["Install.WantedBy"]


@pytest.mark.parametrize(
    ("files", "units"),
    [
        (
            ("listing-sync.service", "listing-sync.timer"),
            ("listing-sync.timer", "listing-sync.service"),
        ),
        (
            ("listing-sync@.service", "listing-sync@.timer"),
            ("listing-sync@osaka.timer", "listing-sync@osaka.service"),
        ),
    ],
    ids=["single", "templated"],
)
def test_systemd_analyze_verify_accepts_the_units(
    tmp_path: Path, files: tuple[str, str], units: tuple[str, str]
) -> None:
    """systemd-analyze verify finds nothing wrong (ExecStart pointed at an existing binary);
    for the template, in an instance of it and its timer."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    for name in files:
        text = (DEPLOY / name).read_text()
        text = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text, flags=re.M)
        (tmp_path / name).write_text(text)
    r = subprocess.run(
        [analyze, "verify", "--man=no", *units],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (0, "") == (r.returncode, r.stderr)


def test_crontab_jobs_are_locked_and_quiet() -> None:
    """Each job has five time fields; the sync runs under `flock -n` with its lock not in /tmp."""
    jobs = [
        line
        for line in (REPO / "crontab.example").read_text().splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert 2 == len(jobs)
    for job in jobs:
        assert re.match(r"^(\S+\s+){5}\S", job), job
    sync_job, health_job = jobs
    assert "flock -n " in sync_job and "/tmp/" not in sync_job
    assert sync_job.endswith("exec listing-sync sync all'")
    assert "listing-sync health --format nagios" in health_job


def test_templated_unit_gives_each_office_its_own_settings_state_and_metrics() -> None:
    """listing-sync@.service: env file, keys, state dir (lock), metrics and label per %i."""
    service = unit("listing-sync@.service")
    assert ["/etc/listing-sync/%i.env"] == service["Service.EnvironmentFile"]
    assert [
        f"{CREDENTIAL_NAME}:/etc/listing-sync/%i.key",
        "google-key.json:/etc/listing-sync/%i-google-key.json",
    ] == service["Service.LoadCredential"]
    assert ["listing-sync/%i"] == service["Service.StateDirectory"]
    env = dict(v.split("=", 1) for v in service["Service.Environment"])
    assert {
        "SYNC_INSTANCE": "%i",
        "SYNC_METRICS_FILE": "/var/lib/node_exporter/textfile/listing_sync_%i.prom",
        "GOOGLE_APPLICATION_CREDENTIALS": "%d/google-key.json",
        "SYNC_STATE_DIR": "%S/listing-sync/%i",
    } == env
    timer = unit("listing-sync@.timer")
    assert ["timers.target"] == timer["Install.WantedBy"]
    assert ["true"] == timer["Timer.Persistent"]


def test_env_example_names_every_setting() -> None:
    """Each setting of the README's table and of the config file's names is in the example."""
    text = (DEPLOY / "listing-sync.env.example").read_text()
    named = set(re.findall(r"^(?:# )?([A-Z][A-Z_]+)=", text, re.M))
    readme = (REPO / "README.md").read_text()
    table = set(re.findall(r"^\| `([A-Z][A-Z_]+)`", readme, re.M))
    aliases = {"CIRCUIT_BREAKER_THRESHOLD", "CIRCUIT_BREAKER_TIMEOUT"}  # the seed's spellings
    assert set() == (table | KNOWN_SETTINGS | {"LISTING_SYNC_CONFIG"}) - aliases - named
