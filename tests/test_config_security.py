"""Key handling and transport rules of config.load_settings (no network, no stack)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from listing_sync.config import check_private_file, load_settings
from listing_sync.errors import ConfigError

KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoibGlzdGluZ19zeW5jIn0.c2lnbmF0dXJlLW9mLXRoZS1rZXk"


def env(**values: str) -> dict[str, str]:
    base = {"POSTGREST_URL": "http://127.0.0.1:3000", "SUPABASE_SERVICE_ROLE_KEY": KEY}
    base.update(values)
    return {k: v for k, v in base.items() if v != ""}


def private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    "url",
    [
        "http://db.example.com:3000",
        "http://10.0.0.7/rest/v1",
        "http://[2001:db8::1]:3000",
    ],
)
def test_plain_http_to_another_host_needs_the_flag(url: str) -> None:
    """Without allow_insecure_http a non-loopback http:// URL is a ConfigError (exit 78)."""
    with pytest.raises(ConfigError) as info:
        load_settings(env(POSTGREST_URL=url))
    assert 78 == info.value.exit_code
    assert "use https:// or pass --allow-insecure-http" in str(info.value)


@pytest.mark.parametrize(
    "url", ["http://db.example.com:3000", "http://10.0.0.7/rest/v1", "http://[2001:db8::1]:3000"]
)
def test_allow_insecure_http_accepts_any_host(url: str) -> None:
    """allow_insecure_http=True (the --allow-insecure-http flag) lets the URL through."""
    settings = load_settings(env(POSTGREST_URL=url), allow_insecure_http=True)
    assert url.rstrip("/") == settings.postgrest_url


def test_allow_insecure_http_also_from_the_environment() -> None:
    """SYNC_ALLOW_INSECURE_HTTP=1 works like the flag (for an env file)."""
    settings = load_settings(
        env(POSTGREST_URL="http://db.example.com", SYNC_ALLOW_INSECURE_HTTP="1")
    )
    assert "http://db.example.com" == settings.postgrest_url


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:3000", "http://localhost:3000", "http://[::1]:3000", "https://x.co"]
)
def test_loopback_and_https_need_no_flag(url: str) -> None:
    """Loopback over http and any host over https are fine as they are."""
    assert url == load_settings(env(POSTGREST_URL=url)).postgrest_url


def test_key_file_is_read_and_stripped(tmp_path: Path) -> None:
    """SUPABASE_SERVICE_ROLE_KEY_FILE: the file's key, without its trailing newline."""
    key_file = private(tmp_path / "key", KEY + "\n")
    settings = load_settings(
        env(SUPABASE_SERVICE_ROLE_KEY="", SUPABASE_SERVICE_ROLE_KEY_FILE=str(key_file))
    )
    assert KEY == settings.service_role_key.get_secret_value()


def test_key_from_credentials_directory(tmp_path: Path) -> None:
    """$CREDENTIALS_DIRECTORY/supabase-service-role-key is used when nothing else is set."""
    private(tmp_path / "supabase-service-role-key", KEY + "\n", 0o440)
    settings = load_settings(env(SUPABASE_SERVICE_ROLE_KEY="", CREDENTIALS_DIRECTORY=str(tmp_path)))
    assert KEY == settings.service_role_key.get_secret_value()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_key_file_readable_by_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    """A key file any other user can read: exit 78 with the path and `chmod 600`."""
    key_file = private(tmp_path / "key", KEY, mode)
    with pytest.raises(ConfigError) as info:
        load_settings(
            env(SUPABASE_SERVICE_ROLE_KEY="", SUPABASE_SERVICE_ROLE_KEY_FILE=str(key_file))
        )
    assert (
        f"SUPABASE_SERVICE_ROLE_KEY_FILE: {key_file} is readable by group or others "
        f"(mode {mode:o}); run: chmod 600 {key_file}"
    ) == str(info.value)


@pytest.mark.parametrize(
    "bad",
    [KEY + "\n# prod", KEY[:20] + " " + KEY[20:], KEY + "\u2019", "\u201c" + KEY + "\u201d"],
)
def test_key_with_spaces_lines_or_non_ascii_is_refused_unechoed(tmp_path: Path, bad: str) -> None:
    """A key that could not be sent as a header is refused, and the error never quotes it."""
    key_file = private(tmp_path / "key", bad)
    for values in (
        {"SUPABASE_SERVICE_ROLE_KEY": bad},
        {"SUPABASE_SERVICE_ROLE_KEY": "", "SUPABASE_SERVICE_ROLE_KEY_FILE": str(key_file)},
    ):
        with pytest.raises(ConfigError) as info:
            load_settings(env(**values))
        assert "must hold only the key" in str(info.value)
        assert KEY[-12:] not in str(info.value)


def test_google_key_in_the_credentials_directory_may_show_group_bits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd's ACL shows as mode 440 inside $CREDENTIALS_DIRECTORY: accepted there only."""
    creds = tmp_path / "creds"
    creds.mkdir()
    inside = private(creds / "google-key.json", "{}", 0o440)
    outside = private(tmp_path / "google-key.json", "{}", 0o440)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    check_private_file(inside, "GOOGLE_APPLICATION_CREDENTIALS")
    with pytest.raises(ConfigError):
        check_private_file(outside, "GOOGLE_APPLICATION_CREDENTIALS")


@pytest.mark.parametrize(
    ("anon", "expected_apikey"), [(None, KEY), ("eyJhbm9uIjp0cnVlfQ.e30.YW5vbi1zaWc", None)]
)
def test_apikey_header_is_the_anon_key_when_given(
    anon: str | None, expected_apikey: str | None
) -> None:
    """SUPABASE_ANON_KEY goes in `apikey` (Supabase's gateway); the role key stays the Bearer."""
    from listing_sync import wiring
    from listing_sync.postgrest import PostgrestClient

    values = {"SUPABASE_ANON_KEY": anon} if anon else {}
    settings = load_settings(env(**values))
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json=[])

    client = PostgrestClient(
        settings.postgrest_url,
        settings.service_role_key.get_secret_value(),
        guard=wiring.guards(settings, probe=True).postgrest,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
    )
    assert [] == client.select("sync_state", select="id", limit=1)
    assert (f"Bearer {KEY}", expected_apikey or anon) == (
        seen[0]["authorization"],
        seen[0]["apikey"],
    )
