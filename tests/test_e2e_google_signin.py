"""Google sign-in without a key file (issue 10), end to end through google-auth.

A workload identity federation (``external_account``) file: google-auth reads the
identity provider's token from ``credential_source`` and exchanges it at the STS
``token_url`` (here the local Sheets server) for an access token. No service-account
key is anywhere in the environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from e2e_util import FAST_ENV, full_sync, listings, outcome, output, row, runs, set_sheet, summary

from devstack import LocalStack

AUDIENCE = (
    "//iam.googleapis.com/projects/123456789012/locations/global/"
    "workloadIdentityPools/office-pool/providers/office-oidc"
)
OIDC_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjcm9uLWhvc3QifQ.c2lnbmF0dXJl"


def federation_file(stack: LocalStack, tmp_path: Path, mode: int = 0o600) -> Path:
    """Write an external_account file (and its OIDC token file) as gcloud would create them."""
    token = tmp_path / "oidc-token"
    token.write_text(OIDC_TOKEN, encoding="utf-8")
    token.chmod(0o600)
    path = tmp_path / "wif.json"
    path.write_text(
        json.dumps(
            {
                "type": "external_account",
                "audience": AUDIENCE,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": stack.sheets.sts_url,
                "credential_source": {"file": str(token)},
            }
        ),
        encoding="utf-8",
    )
    path.chmod(mode)
    return path


def test_a_sync_signs_in_through_workload_identity_federation(
    clean_stack: LocalStack, run_cli, tmp_path: Path
) -> None:
    """An external_account file, no key file: the token is exchanged at the STS; rows land."""
    clean_stack.sheets.trust_subject_token(OIDC_TOKEN, "principal://office-pool/cron-host")
    set_sheet(clean_stack, [row("F-1"), row("F-2")])
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(federation_file(clean_stack, tmp_path))}
    assert not any(
        "private_key" in Path(v).read_text(encoding="utf-8")
        for v in env.values()
        if os.path.isfile(v)
    ), "no key file in the environment"
    data = full_sync(run_cli, env=env)
    assert outcome(total=2, success=2) == summary(data)
    assert ["F-1", "F-2"] == list(listings(clean_stack))
    assert [AUDIENCE] == clean_stack.sheets.exchanges


def test_a_refused_federation_token_fails_the_run_naming_the_token(
    clean_stack: LocalStack, run_cli, tmp_path: Path
) -> None:
    """The STS refuses the identity provider's token: exit 69 at once, nothing is written."""
    clean_stack.sheets.trust_subject_token("another-token", "principal://office-pool/other")
    set_sheet(clean_stack, [row("F-1")])
    env = {
        **FAST_ENV,
        "GOOGLE_APPLICATION_CREDENTIALS": str(federation_file(clean_stack, tmp_path)),
    }
    r = run_cli("sync", "all", env=env)
    assert 69 == r.returncode, output(r)
    assert "could not get an access token" in r.stderr, output(r)
    assert "retrying" not in r.stderr, "a refused token is not retried"
    assert {} == listings(clean_stack)
    assert ["failed"] == [run["status"] for run in runs(clean_stack)]


def test_a_group_readable_federation_file_is_refused(
    clean_stack: LocalStack, run_cli, tmp_path: Path
) -> None:
    """Every credential file holds a secret: a 0644 external_account file exits 78."""
    set_sheet(clean_stack, [row("F-1")])
    path = federation_file(clean_stack, tmp_path, mode=0o644)
    r = run_cli("sync", "all", env={**FAST_ENV, "GOOGLE_APPLICATION_CREDENTIALS": str(path)})
    assert 78 == r.returncode, output(r)
    assert f"run: chmod 600 {path}" in r.stderr, output(r)
    assert [] == runs(clean_stack)
