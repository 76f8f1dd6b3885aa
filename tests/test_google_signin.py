"""Loading Google credentials (sheets.load_credentials): every sign-in way, no network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import google.auth
import pytest
from google.auth import exceptions as auth_exceptions
from google.auth import identity_pool, impersonated_credentials
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from listing_sync.errors import ConfigError
from listing_sync.sheets import SCOPES, SignIn, load_credentials

SA = "sheet-reader@office-project.iam.gserviceaccount.com"
AUDIENCE = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/o"


def write(tmp_path: Path, info: dict[str, Any]) -> Path:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(info), encoding="utf-8")
    path.chmod(0o600)
    return path


def authorized_user(tmp_path: Path) -> Path:
    """A file as `gcloud auth application-default login` writes it."""
    return write(
        tmp_path,
        {
            "type": "authorized_user",
            "client_id": "764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com",
            "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty",
            "refresh_token": "1//0e-refresh-token",
            "account": "tanaka@office.example",
        },
    )


def external_account(tmp_path: Path, **extra: str) -> Path:
    return write(
        tmp_path,
        {
            "type": "external_account",
            "audience": AUDIENCE,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "https://sts.googleapis.com/v1/token",
            "credential_source": {"file": str(tmp_path / "token")},
            **extra,
        },
    )


def service_account_file(tmp_path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return write(
        tmp_path,
        {
            "type": "service_account",
            "project_id": "office-project",
            "private_key_id": "k1",
            "private_key": pem,
            "client_email": SA,
            "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token",
        },
    )


def test_an_authorized_user_file_signs_in_as_that_user(tmp_path: Path) -> None:
    """gcloud's application-default login: user credentials, the account named."""
    credentials, account = load_credentials(SignIn(authorized_user(tmp_path)))
    assert (user_credentials.Credentials, SCOPES) == (type(credentials), credentials.scopes)
    assert "tanaka@office.example (gcloud auth application-default login)" == account


def test_an_external_account_file_loads_without_asking_the_network(tmp_path: Path) -> None:
    """Workload identity federation: identity-pool credentials; no project lookup happens."""
    credentials, account = load_credentials(SignIn(external_account(tmp_path)))
    assert isinstance(credentials, identity_pool.Credentials)
    assert f"the workload identity principal of {AUDIENCE}" == account


def test_an_external_account_that_impersonates_names_the_service_account(
    tmp_path: Path,
) -> None:
    """A federation file with service_account_impersonation_url acts as that account."""
    url = (
        "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
        f"{SA}:generateAccessToken"
    )
    path = external_account(tmp_path, service_account_impersonation_url=url)
    _, account = load_credentials(SignIn(path))
    assert SA == account


def test_impersonation_wraps_the_signed_in_credentials(tmp_path: Path) -> None:
    """SYNC_GOOGLE_IMPERSONATE: act as the service account the sheet is shared with."""
    credentials, account = load_credentials(SignIn(authorized_user(tmp_path), impersonate=SA))
    assert isinstance(credentials, impersonated_credentials.Credentials)
    assert (SA, SA) == (credentials.service_account_email, account)


def test_domain_wide_delegation_acts_as_the_user(tmp_path: Path) -> None:
    """SYNC_GOOGLE_SUBJECT with a key file: the service account acts as that user."""
    path = service_account_file(tmp_path)
    credentials, account = load_credentials(SignIn(path, subject="office@office.example"))
    assert isinstance(credentials, service_account.Credentials)
    assert ("office@office.example", "office@office.example") == (
        credentials._subject,
        account,
    )


def test_a_key_file_names_its_client_email(tmp_path: Path) -> None:
    """A service-account key: the sheet must be shared with its client_email."""
    assert SA == load_credentials(SignIn(service_account_file(tmp_path)))[1]


def test_delegation_needs_a_service_account(tmp_path: Path) -> None:
    """SYNC_GOOGLE_SUBJECT with user credentials and no impersonation is a setting error."""
    with pytest.raises(ConfigError, match="SYNC_GOOGLE_SUBJECT"):
        load_credentials(SignIn(authorized_user(tmp_path), subject="office@office.example"))


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"type": "api_key"}', "is not a Google credentials file (type 'api_key'"),
        ("[1, 2]", "is not a Google credentials file (type None"),
        ("not json", "is not a readable JSON credentials file"),
        ('{"type": "external_account"}', "is not a usable external_account credentials file"),
    ],
)
def test_a_file_that_is_no_credentials_is_a_setting_error(
    tmp_path: Path, content: str, says: str
) -> None:
    """Wrong kinds and shapes name GOOGLE_APPLICATION_CREDENTIALS, not a traceback."""
    path = tmp_path / "c.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match="GOOGLE_APPLICATION_CREDENTIALS") as caught:
        load_credentials(SignIn(path))
    assert says in str(caught.value)


def test_no_file_and_no_default_credentials_is_a_setting_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No file, no gcloud login, not on Google Cloud: one line saying what to set."""

    def nothing(**_: object) -> Any:
        raise auth_exceptions.DefaultCredentialsError("Your default credentials were not found")

    monkeypatch.setattr(google.auth, "default", nothing)
    with pytest.raises(ConfigError, match="GOOGLE_APPLICATION_CREDENTIALS is not set"):
        load_credentials(SignIn())


def test_the_metadata_server_account_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a Google Cloud VM: the VM's service account needs access."""
    from google.auth import compute_engine

    seen: list[object] = []

    def default(scopes: object = None, **_: object) -> Any:
        seen.append(scopes)
        return compute_engine.Credentials(), None

    monkeypatch.setattr(google.auth, "default", default)
    _, account = load_credentials(SignIn())
    assert ([SCOPES], "the service account of this Google Cloud VM (metadata server)") == (
        seen,
        account,
    )
