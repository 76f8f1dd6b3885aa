"""Commands that need no stack: --version, mint-key, and the common options on every command."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys

import pytest

from listing_sync import __version__

SECRET = "a-jwt-secret-of-at-least-32-characters!"


def cli(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "SYNC_"))}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "listing_sync", *args],
        env=full,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_version_prints_the_package_version() -> None:
    """`listing-sync --version` prints the installed version and exits 0."""
    result = cli("--version")
    assert (0, f"listing-sync {__version__}\n") == (result.returncode, result.stdout), result.stderr


@pytest.mark.parametrize("via", ["env", "stdin"])
def test_mint_key_signs_an_hs256_key_for_the_role(via: str) -> None:
    """mint-key takes the secret from SUPABASE_JWT_SECRET or stdin and signs role + exp."""
    env = {"SUPABASE_JWT_SECRET": SECRET} if via == "env" else {}
    stdin = SECRET + "\n" if via == "stdin" else ""
    result = cli("mint-key", "--role", "listing_sync", "--expires-in", "2d", env=env, input=stdin)
    assert 0 == result.returncode, result.stderr
    token = result.stdout.strip()
    head, body, signature = token.split(".")
    expected = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert expected == _b64decode(signature)
    claims = json.loads(_b64decode(body))
    assert ("listing_sync", 2 * 86400) == (claims["role"], claims["exp"] - claims["iat"])
    assert SECRET not in result.stdout + result.stderr


def test_mint_key_without_a_secret_is_a_usage_error() -> None:
    """No secret in the environment or on stdin: exit 2 with one line saying where to put it."""
    result = cli("mint-key", input="")
    assert 2 == result.returncode, result.stdout + result.stderr
    assert [
        "listing-sync: error: no JWT secret: set SUPABASE_JWT_SECRET or pipe the secret on stdin"
    ] == result.stderr.splitlines()


def test_mint_key_refuses_a_bad_lifetime() -> None:
    """--expires-in takes 365d, 12h or seconds; anything else is exit 2."""
    result = cli("mint-key", "--expires-in", "soon", env={"SUPABASE_JWT_SECRET": SECRET})
    assert 2 == result.returncode, result.stderr
    assert "--expires-in must be a duration" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["sync", "all"],
        ["sync", "numbers"],
        ["status"],
        ["health"],
        ["breaker"],
        ["breaker", "reset"],
        ["mint-key"],
    ],
)
def test_every_command_takes_the_common_options(command: list[str]) -> None:
    """The options declared once appear in every command's --help."""
    result = cli(*command, "--help")
    assert 0 == result.returncode, result.stderr
    for option in (
        "--json",
        "--quiet",
        "--verbose",
        "--log-format",
        "--config",
        "--allow-insecure-http",
    ):
        assert option in result.stdout, f"{option} missing from {' '.join(command)} --help"


class _Libc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


def test_malloc_heaps_are_shared_unless_the_operator_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI asks glibc for two heaps (M_ARENA_MAX), but leaves MALLOC_ARENA_MAX alone."""
    import ctypes

    from listing_sync import cli as cli_module

    libc = _Libc()
    monkeypatch.setattr(ctypes, "CDLL", lambda name: libc)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    cli_module._share_malloc_heaps()
    assert [(-8, 2)] == libc.calls

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    cli_module._share_malloc_heaps()
    assert [(-8, 2)] == libc.calls
