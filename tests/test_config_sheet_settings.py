"""Settings of issue 10: where the data is (range, tabs) and how to sign in to Google."""

from __future__ import annotations

from pathlib import Path

import pytest

from listing_sync.config import load_settings
from listing_sync.errors import ConfigError

BASE = {
    "POSTGREST_URL": "http://127.0.0.1:3000",
    "SUPABASE_SERVICE_ROLE_KEY": "sekrit-key-value-1234567890",
    "HOME": "/home/ops",
    "SYNC_SPREADSHEET_ID": "abc",
}


def test_tabs_and_range_are_read_once() -> None:
    """SYNC_SHEET_NAME becomes a tab list; SYNC_SHEET_RANGE is kept as written."""
    s = load_settings(
        BASE | {"SYNC_SHEET_NAME": '販売中,"東京, 品川"', "SYNC_SHEET_RANGE": " A3:P "}
    )
    assert (("販売中", "東京, 品川"), "A3:P") == (s.sheet_tabs, s.sheet_range)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SYNC_SHEET_RANGE", "A:P"),
        ("SYNC_SHEET_RANGE", "P3:A"),
        ("SYNC_SHEET_NAME", ","),
        ("SYNC_GOOGLE_IMPERSONATE", "sheet-reader"),
        ("SYNC_GOOGLE_SUBJECT", "@office.example"),
    ],
)
def test_a_malformed_sheet_or_sign_in_setting_names_itself(variable: str, value: str) -> None:
    """Each malformed setting is a one-line configuration error naming the variable."""
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        load_settings(BASE | {variable: value})


def test_sign_in_accounts_are_settings() -> None:
    """SYNC_GOOGLE_IMPERSONATE and SYNC_GOOGLE_SUBJECT reach the settings."""
    sa = "reader@office-project.iam.gserviceaccount.com"
    s = load_settings(
        BASE | {"SYNC_GOOGLE_IMPERSONATE": sa, "SYNC_GOOGLE_SUBJECT": "office@office.example"}
    )
    assert (sa, "office@office.example") == (s.google_impersonate, s.google_subject)


def test_without_a_file_the_sheet_needs_no_credentials_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No GOOGLE_APPLICATION_CREDENTIALS: Application Default Credentials will be asked."""
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    s = load_settings(BASE)
    s.require_sheets()
    assert s.google_credentials is None


def test_gcloud_application_default_file_must_be_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gcloud's application-default file holds a refresh token: 0644 is refused."""
    (tmp_path / "application_default_credentials.json").write_text("{}")
    (tmp_path / "application_default_credentials.json").chmod(0o644)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    with pytest.raises(ConfigError, match=r"gcloud application-default credentials.*chmod 600"):
        load_settings(BASE).require_sheets()
