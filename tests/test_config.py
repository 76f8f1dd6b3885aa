"""Settings: names, defaults, precedence and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from listing_sync.config import load_settings
from listing_sync.errors import ConfigError

BASE = {
    "POSTGREST_URL": "http://127.0.0.1:3000",
    "SUPABASE_SERVICE_ROLE_KEY": "sekrit-key-value-1234567890",
    "HOME": "/home/ops",
}


def test_defaults() -> None:
    """Every knob has the seed's default, but batch, rate and concurrency (README)."""
    s = load_settings(dict(BASE))
    expected = (1000, 50.0, 5, 3, 1.0, 5, 60.0, 0.2, 26 * 3600.0)
    actual = (
        s.batch_size,
        s.rate_limit,
        s.concurrency,
        s.retry_attempts,
        s.retry_delay,
        s.breaker_threshold,
        s.breaker_timeout,
        s.max_remove_fraction,
        s.health_max_age,
    )
    assert expected == actual
    assert Path("/home/ops/.local/state/listing-sync") == s.state_dir


def test_seed_alternative_spellings() -> None:
    """CIRCUIT_BREAKER_* (the seed's route file spelling) are accepted."""
    s = load_settings(BASE | {"CIRCUIT_BREAKER_THRESHOLD": "7", "CIRCUIT_BREAKER_TIMEOUT": "5000"})
    assert (7, 5.0) == (s.breaker_threshold, s.breaker_timeout)


def test_supabase_url_gives_rest_base_and_postgrest_url_wins() -> None:
    """SUPABASE_URL maps to /rest/v1; POSTGREST_URL wins when both are set."""
    env = {k: v for k, v in BASE.items() if k != "POSTGREST_URL"}
    s = load_settings(env | {"SUPABASE_URL": "https://abc.supabase.co/"})
    assert "https://abc.supabase.co/rest/v1" == s.postgrest_url
    s = load_settings(BASE | {"SUPABASE_URL": "https://abc.supabase.co"})
    assert "http://127.0.0.1:3000" == s.postgrest_url


def test_environment_wins_over_config_file(tmp_path: Path) -> None:
    """The TOML file fills gaps; the environment overrides it."""
    cfg = tmp_path / "listing-sync.toml"
    cfg.write_text('SYNC_BATCH_SIZE = 500\nsync_rate_limit = 2\nSYNC_SHEET_NAME = "物件"\n')
    s = load_settings(BASE | {"SYNC_BATCH_SIZE": "50"}, config_file=cfg)
    assert (50, 2.0, "物件") == (s.batch_size, s.rate_limit, s.sheet_name)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"SYNC_BATCH_SIZE": "abc"}, "SYNC_BATCH_SIZE must be an integer"),
        ({"SYNC_BATCH_SIZE": "0"}, "SYNC_BATCH_SIZE must be at least 1"),
        ({"SYNC_RATE_LIMIT": "fast"}, "SYNC_RATE_LIMIT must be a number"),
        ({"SYNC_MAX_REMOVE_FRACTION": "2"}, "SYNC_MAX_REMOVE_FRACTION must be at most 1"),
        ({"SYNC_HEALTH_MAX_AGE": "soon"}, "SYNC_HEALTH_MAX_AGE must be a duration"),
        ({"POSTGREST_URL": "ftp://x"}, "POSTGREST_URL must be an http(s) URL"),
        ({"POSTGREST_URL": "http://db.example.com"}, "--allow-insecure-http"),
        ({"SYNC_MAPPING": "/nonexistent/map.toml"}, "SYNC_MAPPING: file"),
    ],
)
def test_bad_setting_is_one_line_naming_the_variable(env: dict[str, str], needle: str) -> None:
    """A malformed setting raises ConfigError with one line naming it."""
    with pytest.raises(ConfigError) as info:
        load_settings(BASE | env)
    message = str(info.value)
    assert needle in message, message
    assert "\n" not in message


def test_missing_url_and_key() -> None:
    """Missing POSTGREST_URL/SUPABASE_URL or key are named."""
    with pytest.raises(ConfigError, match="POSTGREST_URL is not set"):
        load_settings({"SUPABASE_SERVICE_ROLE_KEY": "x" * 20})
    with pytest.raises(ConfigError, match="SUPABASE_SERVICE_ROLE_KEY is not set"):
        load_settings({"POSTGREST_URL": "http://localhost:3000"})


def test_key_file_must_be_private(tmp_path: Path) -> None:
    """A key file readable by others is refused with the chmod fix; a private one is read."""
    key = tmp_path / "key"
    key.write_text("file-key-value-abcdefgh\n")
    key.chmod(0o644)
    env = {k: v for k, v in BASE.items() if k != "SUPABASE_SERVICE_ROLE_KEY"}
    with pytest.raises(ConfigError, match="chmod 600") as info:
        load_settings(env | {"SUPABASE_SERVICE_ROLE_KEY_FILE": str(key)})
    assert "file-key-value" not in str(info.value)
    key.chmod(0o600)
    s = load_settings(env | {"SUPABASE_SERVICE_ROLE_KEY_FILE": str(key)})
    assert "file-key-value-abcdefgh" == s.service_role_key.get_secret_value()


def test_key_from_systemd_credentials_directory(tmp_path: Path) -> None:
    """$CREDENTIALS_DIRECTORY/supabase-service-role-key (LoadCredential=) is used."""
    (tmp_path / "supabase-service-role-key").write_text("cred-key-0123456789")
    env = {k: v for k, v in BASE.items() if k != "SUPABASE_SERVICE_ROLE_KEY"}
    s = load_settings(env | {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert "cred-key-0123456789" == s.service_role_key.get_secret_value()


def test_google_key_file_must_be_private(tmp_path: Path) -> None:
    """require_sheets refuses a group-readable Google key file."""
    google = tmp_path / "google.json"
    google.write_text("{}")
    google.chmod(0o640)
    s = load_settings(
        BASE | {"GOOGLE_APPLICATION_CREDENTIALS": str(google), "SYNC_SPREADSHEET_ID": "abc"}
    )
    with pytest.raises(ConfigError, match=r"GOOGLE_APPLICATION_CREDENTIALS.*chmod 600"):
        s.require_sheets()


def test_secret_never_in_repr() -> None:
    """The key does not show in the settings' repr."""
    s = load_settings(dict(BASE))
    assert "sekrit-key-value" not in repr(s)
    assert "sekrit-key-value" not in f"{s.service_role_key} {s.service_role_key!r}"
    assert "sekrit-key-value-1234567890" == s.service_role_key.get_secret_value()


def test_state_dir_that_cannot_be_a_directory_is_a_setting_error(tmp_path: Path) -> None:
    """SYNC_STATE_DIR pointing at a file is exit 78 naming the variable, not a crash."""
    blocker = tmp_path / "state"
    blocker.write_text("")
    s = load_settings(BASE | {"SYNC_STATE_DIR": str(blocker / "sub")})
    with pytest.raises(ConfigError, match="SYNC_STATE_DIR: cannot use"):
        s.ensure_state_dir()
    s = load_settings(BASE | {"SYNC_STATE_DIR": str(tmp_path / "new" / "state")})
    assert tmp_path / "new" / "state" == s.ensure_state_dir()
    assert 0o700 == (tmp_path / "new" / "state").stat().st_mode & 0o777


def test_unknown_config_file_key_is_refused_with_the_closest_name(tmp_path: Path) -> None:
    """SYNC_BATCH_SIZ = 500 in the TOML file: refused (78), naming it and SYNC_BATCH_SIZE."""
    cfg = tmp_path / "listing-sync.toml"
    cfg.write_text("SYNC_BATCH_SIZ = 500\n")
    with pytest.raises(ConfigError) as info:
        load_settings(dict(BASE), config_file=cfg)
    expected = (
        f"LISTING_SYNC_CONFIG: {cfg}: unknown setting SYNC_BATCH_SIZ (did you mean "
        "SYNC_BATCH_SIZE?); the names are those of the environment variables (README)"
    )
    assert (expected, 78) == (str(info.value), info.value.exit_code)


def test_every_missing_setting_is_named_in_one_message() -> None:
    """No URL, no key, no Google settings for a sync: all four in one error."""
    with pytest.raises(ConfigError) as info:
        load_settings({"HOME": "/home/ops"}, need_sheets=True)
    message = str(info.value)
    assert message.startswith("4 settings are missing: POSTGREST_URL is not set"), message
    for name in (
        "SUPABASE_SERVICE_ROLE_KEY is not set",
        "GOOGLE_APPLICATION_CREDENTIALS is not set",
        "SYNC_SPREADSHEET_ID is not set",
    ):
        assert name in message, message


def test_one_missing_setting_keeps_its_own_message() -> None:
    """Only the key missing: the one-setting message, unchanged."""
    with pytest.raises(ConfigError) as info:
        load_settings({"POSTGREST_URL": "http://127.0.0.1:3000"})
    assert str(info.value).startswith("SUPABASE_SERVICE_ROLE_KEY is not set (nor "), info.value


def test_local_only_commands_need_only_the_state_directory(tmp_path: Path) -> None:
    """breaker/breaker reset: SYNC_STATE_DIR alone loads; no PostgREST or Google settings."""
    s = load_settings({"SYNC_STATE_DIR": str(tmp_path)}, local_only=True)
    assert (tmp_path, "") == (s.state_dir, s.service_role_key.get_secret_value())
