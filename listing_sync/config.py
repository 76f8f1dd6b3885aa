"""Settings from the environment and an optional TOML file, validated once.

Every setting has one environment variable (some have a second spelling kept
from the seed design). A TOML file named by ``--config`` or
``LISTING_SYNC_CONFIG`` may hold the same names as keys (``SYNC_BATCH_SIZE =
500``, case-insensitive); the environment wins over the file.

Errors name the variable and what is wrong in one line and never echo a secret.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .areas import is_named_range, parse_a1_area, parse_tab_names
from .errors import ConfigError


class SecretStr:
    """A secret that never shows in a repr, a log line or a traceback's locals.

    pydantic has one, but importing pydantic costs 45 ms of every run, and a run
    that finds nothing changed never needs pydantic otherwise.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


GOOGLE_SHEETS_ENDPOINT = "https://sheets.googleapis.com"
# systemd's LoadCredential= puts the key here under this name.
CREDENTIAL_NAME = "supabase-service-role-key"
# health/status answer monitoring (NRPE gives up after 10 s): their whole budget, leaving
# room for the interpreter's start-up on a busy host. SYNC_HEALTH_TIMEOUT raises it.
HEALTH_TIMEOUT = 5.0


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, already checked."""

    postgrest_url: str
    service_role_key: SecretStr
    google_credentials: Path | None
    spreadsheet_id: str | None
    sheet_name: str | None
    sheets_api_endpoint: str
    mapping_file: Path | None
    batch_size: int
    batch_max_bytes: int
    concurrency: int  # upserts in flight at once
    rate_limit: float
    retry_attempts: int
    retry_delay: float  # seconds
    breaker_threshold: int
    breaker_timeout: float  # seconds
    state_dir: Path
    max_remove_fraction: float
    health_max_age: float  # seconds
    http_timeout: float  # seconds
    run_timeout: float  # seconds: the whole run's budget, retries included
    metrics_file: Path | None
    ping_url: str | None
    # The Supabase gateway checks the `apikey` header against the project's own keys:
    # with a key for another role (listing_sync) it must be the anon key.
    api_key: SecretStr | None = None
    health_timeout: float = HEALTH_TIMEOUT  # seconds
    # Google's per-minute read quota: a 429 is retried this long after the first one.
    quota_window: float = 70.0  # seconds
    # Several offices on one host (listing-sync@<office>): labels every metric.
    instance: str | None = None
    # SYNC_SHEET_NAME read as a list: () the first tab, ("*",) every visible tab.
    sheet_tabs: tuple[str, ...] = ()
    # SYNC_SHEET_RANGE: an A1 range within each tab (header in its first row) or a named range.
    sheet_range: str | None = None
    # Sign in as this service account (SYNC_GOOGLE_IMPERSONATE), or as this Workspace user
    # (SYNC_GOOGLE_SUBJECT, domain-wide delegation).
    google_impersonate: str | None = None
    google_subject: str | None = None

    def ensure_state_dir(self) -> Path:
        """Create the state directory (0700) if needed; a path that cannot be one is a setting."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"SYNC_STATE_DIR: cannot use {self.state_dir} as the state directory: "
                f"{exc.strerror or exc}"
            ) from None
        if not self.state_dir.is_dir():
            raise ConfigError(f"SYNC_STATE_DIR: {self.state_dir} is not a directory")
        return self.state_dir

    def require_sheets(self) -> None:
        """Fail unless the settings needed to read the sheet are present.

        Every Google credentials file holds a secret (a private key, a refresh token,
        a federation token source): each must be private to its user. Without
        GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default file is used if
        present, else the metadata server of a Google Cloud VM.
        """
        if not self.spreadsheet_id:
            raise ConfigError(
                "SYNC_SPREADSHEET_ID is not set: use the id from the sheet's URL "
                "(https://docs.google.com/spreadsheets/d/<ID>/edit)"
            )
        if self.google_credentials is not None:
            check_private_file(self.google_credentials, "GOOGLE_APPLICATION_CREDENTIALS")
            return
        gcloud = gcloud_credentials_file()
        if gcloud.is_file():
            check_private_file(gcloud, "gcloud application-default credentials")


def _email(src: _Source, name: str) -> str | None:
    _, value = src.get(name)
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.count("@") != 1 or value.startswith("@") or value.endswith("@") or " " in value:
        raise ConfigError(f"{name}: {value!r} is not an account's email address")
    return value


# Every name a config file may hold. load_settings also accepts any name it asked for,
# so a setting added later is known without being listed here.
KNOWN_SETTINGS = frozenset(
    {
        "POSTGREST_URL",
        "SUPABASE_URL",
        "SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_SERVICE_ROLE_KEY_FILE",
        "SUPABASE_ANON_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "SYNC_SPREADSHEET_ID",
        "SYNC_SHEET_NAME",
        "SYNC_SHEET_RANGE",
        "SYNC_GOOGLE_IMPERSONATE",
        "SYNC_GOOGLE_SUBJECT",
        "SYNC_SHEETS_API_ENDPOINT",
        "SYNC_MAPPING",
        "SYNC_BATCH_SIZE",
        "SYNC_BATCH_MAX_BYTES",
        "SYNC_CONCURRENCY",
        "SYNC_RATE_LIMIT",
        "SYNC_RETRY_ATTEMPTS",
        "SYNC_RETRY_DELAY",
        "SYNC_CIRCUIT_BREAKER_THRESHOLD",
        "CIRCUIT_BREAKER_THRESHOLD",
        "SYNC_CIRCUIT_BREAKER_TIMEOUT",
        "CIRCUIT_BREAKER_TIMEOUT",
        "SYNC_STATE_DIR",
        "SYNC_MAX_REMOVE_FRACTION",
        "SYNC_HEALTH_MAX_AGE",
        "SYNC_HEALTH_TIMEOUT",
        "SYNC_HTTP_TIMEOUT",
        "SYNC_RUN_TIMEOUT",
        "SYNC_SHEETS_QUOTA_WINDOW",
        "SYNC_METRICS_FILE",
        "SYNC_PING_URL",
        "SYNC_ALLOW_INSECURE_HTTP",
        "SYNC_INSTANCE",
    }
)


def _check_known_keys(path: Path, keys: set[str], known: set[str]) -> None:
    """Refuse a config file key no setting reads: a typo would silently keep the default."""
    unknown = sorted(keys - known)
    if not unknown:
        return
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        parts.append(f"{key} (did you mean {close[0]}?)" if close else key)
    raise ConfigError(
        f"LISTING_SYNC_CONFIG: {path}: unknown setting{'s' if len(parts) > 1 else ''} "
        f"{', '.join(parts)}; the names are those of the environment variables (README)"
    )


def _read_config_file(path: Path) -> dict[str, str]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"LISTING_SYNC_CONFIG: file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"LISTING_SYNC_CONFIG: cannot read {path}: {exc}") from None
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, dict | list):
            raise ConfigError(f"LISTING_SYNC_CONFIG: {path}: {key} must be a plain value")
        out[key.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


class _Source:
    """Look up settings: environment first, then the config file."""

    def __init__(self, env: Mapping[str, str], file_values: Mapping[str, str]) -> None:
        self.env = env
        self.file = file_values
        self.asked: set[str] = set()

    def get(self, *names: str) -> tuple[str, str | None]:
        """Return (the name that was used, its value) for the first name set."""
        self.asked.update(names)
        for name in names:
            value = self.env.get(name)
            if value is not None and value.strip() != "":
                return name, value.strip()
        for name in names:
            value = self.file.get(name)
            if value is not None and value.strip() != "":
                return name, value.strip()
        return names[0], None

    def number(
        self,
        *names: str,
        default: float,
        kind: type[int] | type[float] = int,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        name, raw = self.get(*names)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise ConfigError(f"{name} must be {noun}, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{name} must be at least {minimum:g}, got {raw!r}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{name} must be at most {maximum:g}, got {raw!r}")
        return value

    def duration(self, name: str, *, default: float, unit: float) -> float:
        """Parse a duration: a bare number is in ``unit`` seconds; 90s, 30m, 26h, 2d also work."""
        _, raw = self.get(name)
        if raw is None:
            return default
        units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
        text = raw.lower()
        factor = unit
        if text and text[-1] in units:
            factor, text = units[text[-1]], text[:-1]
        try:
            value = float(text) * factor
        except ValueError:
            raise ConfigError(
                f"{name} must be a duration such as 26h or 90m, got {raw!r}"
            ) from None
        if value <= 0:
            raise ConfigError(f"{name} must be positive, got {raw!r}")
        return value

    def path(self, *names: str) -> Path | None:
        _, raw = self.get(*names)
        return Path(raw).expanduser() if raw else None


def _in_credentials_directory(path: Path) -> bool:
    """Tell whether ``path`` is one of the credentials systemd passed to this unit."""
    creds_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if not creds_dir:
        return False
    try:
        return path.resolve().is_relative_to(Path(creds_dir).resolve())
    except OSError:
        return False


def gcloud_credentials_file() -> Path:
    """Return where ``gcloud auth application-default login`` writes its credentials."""
    root = os.environ.get("CLOUDSDK_CONFIG")
    if root:
        return Path(root) / "application_default_credentials.json"
    return Path.home() / ".config" / "gcloud" / "application_default_credentials.json"


def check_private_file(path: Path, variable: str) -> None:
    """Refuse a secret file that is missing or readable by group or others."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{variable}: file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{variable}: {path} is not a regular file")
    # systemd (LoadCredential=) grants the unit's user read access by an ACL, which
    # shows as group bits; those files are private to the unit already.
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and not _in_credentials_directory(path):
        raise ConfigError(
            f"{variable}: {path} is readable by group or others (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(name: str, url: str, *, allow_insecure_http: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL, got {url!r}")
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"{name} uses plain http:// to {parts.hostname}, which would send the key in clear; "
            "use https:// or pass --allow-insecure-http"
        )
    return url.rstrip("/")


def _checked_key(key: str, where: str) -> SecretStr:
    """Refuse a key with whitespace or non-ASCII characters inside, without echoing it.

    Such a key cannot be sent as a header: the HTTP library's error would quote it.
    """
    if not all("!" <= ch <= "~" for ch in key):
        raise ConfigError(
            f"{where} must hold only the key: it contains a space, a line break or a "
            "non-ASCII character (a second line, a comment, a smart quote?)"
        )
    return SecretStr(key)


def _service_role_key(src: _Source) -> SecretStr:
    name, raw = src.get("SUPABASE_SERVICE_ROLE_KEY")
    if raw is not None:
        return _checked_key(raw, name)
    variable, key_file = src.get("SUPABASE_SERVICE_ROLE_KEY_FILE")
    if key_file is None:
        creds_dir = src.env.get("CREDENTIALS_DIRECTORY")
        if creds_dir and (Path(creds_dir) / CREDENTIAL_NAME).exists():
            variable, key_file = "CREDENTIALS_DIRECTORY", str(Path(creds_dir) / CREDENTIAL_NAME)
    if key_file is None:
        raise ConfigError(
            "SUPABASE_SERVICE_ROLE_KEY is not set (nor SUPABASE_SERVICE_ROLE_KEY_FILE): "
            "give the project's service-role key or a file holding it"
        )
    path = Path(key_file).expanduser()
    # systemd credentials are private to the unit already; their mode is not ours to judge.
    if variable != "CREDENTIALS_DIRECTORY":
        check_private_file(path, variable)
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror}") from None
    if not key:
        raise ConfigError(f"{variable}: {path} is empty")
    return _checked_key(key, f"{variable}: {path}")


_REQUIRED = {
    "POSTGREST_URL": "POSTGREST_URL is not set (nor SUPABASE_URL): give the Supabase project URL "
    "or a PostgREST base URL",
    "SUPABASE_SERVICE_ROLE_KEY": "SUPABASE_SERVICE_ROLE_KEY is not set (nor "
    "SUPABASE_SERVICE_ROLE_KEY_FILE): give the project's service-role key or a file holding it",
    "GOOGLE_APPLICATION_CREDENTIALS": "GOOGLE_APPLICATION_CREDENTIALS is not set: point it at "
    "the service-account key file (JSON) that can read the sheet",
    "SYNC_SPREADSHEET_ID": "SYNC_SPREADSHEET_ID is not set: use the id from the sheet's URL "
    "(https://docs.google.com/spreadsheets/d/<ID>/edit)",
}


def _require_all(src: _Source, *, need_sheets: bool, local_only: bool) -> None:
    """Raise one ConfigError listing every required setting that is missing."""
    missing = []
    if not local_only:
        if src.get("POSTGREST_URL")[1] is None and src.get("SUPABASE_URL")[1] is None:
            missing.append("POSTGREST_URL")
        has_key = any(
            src.get(n)[1] is not None
            for n in ("SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_SERVICE_ROLE_KEY_FILE")
        )
        creds_dir = src.env.get("CREDENTIALS_DIRECTORY")
        if not has_key and not (creds_dir and (Path(creds_dir) / CREDENTIAL_NAME).exists()):
            missing.append("SUPABASE_SERVICE_ROLE_KEY")
    if need_sheets:
        missing += [
            n
            for n in ("GOOGLE_APPLICATION_CREDENTIALS", "SYNC_SPREADSHEET_ID")
            if src.get(n)[1] is None
        ]
    if len(missing) == 1:
        raise ConfigError(_REQUIRED[missing[0]])
    if missing:
        raise ConfigError(
            f"{len(missing)} settings are missing: " + "; ".join(_REQUIRED[n] for n in missing)
        )


def _instance(src: _Source) -> str | None:
    _, value = src.get("SYNC_INSTANCE")
    if value is not None and not all(ch.isalnum() or ch in "_.@-" for ch in value):
        raise ConfigError(
            f"SYNC_INSTANCE must be a plain name (letters, digits, _ . @ -), got {value!r}"
        )
    return value


def _api_key(src: _Source) -> SecretStr | None:
    name, raw = src.get("SUPABASE_ANON_KEY")
    return None if raw is None else _checked_key(raw, name)


def _default_state_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")) / ".local" / "state")
    return Path(base).expanduser() / "listing-sync"


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    config_file: Path | None = None,
    allow_insecure_http: bool = False,
    need_sheets: bool = False,
    local_only: bool = False,
) -> Settings:
    """Read and check every setting; raise ConfigError naming the first bad one.

    Missing required settings are reported together, in one message. ``need_sheets``:
    the command reads the sheet (sync). ``local_only``: the command reads only the
    state directory (breaker), so PostgREST's URL and key are not required (and empty).
    """
    env = os.environ if env is None else env
    if config_file is None and env.get("LISTING_SYNC_CONFIG"):
        config_file = Path(env["LISTING_SYNC_CONFIG"]).expanduser()
    file_values = _read_config_file(config_file) if config_file else {}
    if config_file is not None:
        _check_known_keys(config_file, set(file_values), set(KNOWN_SETTINGS))
    src = _Source(env, file_values)
    _require_all(src, need_sheets=need_sheets, local_only=local_only)

    _, insecure = src.get("SYNC_ALLOW_INSECURE_HTTP")
    allow_insecure_http = allow_insecure_http or (insecure or "").lower() in ("1", "true", "yes")

    name, url = src.get("POSTGREST_URL")
    if url is None:
        name, supabase_url = src.get("SUPABASE_URL")
        if supabase_url is None:
            # Only for local_only: _require_all refused a missing URL otherwise.
            supabase_url = ""
        url = supabase_url.rstrip("/") + "/rest/v1" if supabase_url else ""
    postgrest_url = _check_url(name, url, allow_insecure_http=allow_insecure_http) if url else ""

    _, endpoint = src.get("SYNC_SHEETS_API_ENDPOINT")
    sheets_api_endpoint = _check_url(
        "SYNC_SHEETS_API_ENDPOINT",
        endpoint or GOOGLE_SHEETS_ENDPOINT,
        allow_insecure_http=allow_insecure_http,
    )

    mapping_file = src.path("SYNC_MAPPING")
    if mapping_file is not None and not mapping_file.is_file():
        problem = "is not a file" if mapping_file.exists() else "does not exist"
        noun = "" if mapping_file.exists() else "file "
        raise ConfigError(f"SYNC_MAPPING: {noun}{mapping_file} {problem}")

    _, metrics = src.get("SYNC_METRICS_FILE")
    _, ping_url = src.get("SYNC_PING_URL")
    if ping_url is not None:
        ping_url = _check_url("SYNC_PING_URL", ping_url, allow_insecure_http=True)

    sheet_name = src.get("SYNC_SHEET_NAME")[1]
    sheet_range = src.get("SYNC_SHEET_RANGE")[1]
    if sheet_range is not None:
        sheet_range = sheet_range.strip()
        if parse_a1_area(sheet_range) is None and not is_named_range(sheet_range):
            raise ConfigError(
                f"SYNC_SHEET_RANGE: {sheet_range!r} is neither an A1 range within the tab "
                "(like A3:P: the header is its first row) nor the name of a named range"
            )

    google_impersonate = _email(src, "SYNC_GOOGLE_IMPERSONATE")
    google_subject = _email(src, "SYNC_GOOGLE_SUBJECT")

    return Settings(
        postgrest_url=postgrest_url,
        service_role_key=SecretStr("") if local_only else _service_role_key(src),
        google_credentials=src.path("GOOGLE_APPLICATION_CREDENTIALS"),
        spreadsheet_id=src.get("SYNC_SPREADSHEET_ID")[1],
        sheet_name=sheet_name,
        sheet_tabs=parse_tab_names(sheet_name) if sheet_name else (),
        sheet_range=sheet_range or None,
        google_impersonate=google_impersonate,
        google_subject=google_subject,
        sheets_api_endpoint=sheets_api_endpoint,
        mapping_file=mapping_file,
        # Not the seed's 100 rows at 10 requests/s (1,000 rows/s: 100 s for 100,000 at any
        # distance, its batch tuned for a service writing five at a time): 1000-row
        # batches, 5 in flight, at most 50 requests/s (README, "Throughput of the defaults").
        batch_size=int(src.number("SYNC_BATCH_SIZE", default=1000, minimum=1, maximum=100_000)),
        batch_max_bytes=int(
            src.number("SYNC_BATCH_MAX_BYTES", default=4 * 1024 * 1024, minimum=1024)
        ),
        concurrency=int(src.number("SYNC_CONCURRENCY", default=5, minimum=1, maximum=32)),
        rate_limit=src.number("SYNC_RATE_LIMIT", default=50.0, kind=float, minimum=0.01),
        retry_attempts=int(src.number("SYNC_RETRY_ATTEMPTS", default=3, minimum=1, maximum=20)),
        retry_delay=src.number("SYNC_RETRY_DELAY", default=1000, kind=float, minimum=0) / 1000,
        breaker_threshold=int(
            src.number(
                "SYNC_CIRCUIT_BREAKER_THRESHOLD", "CIRCUIT_BREAKER_THRESHOLD", default=5, minimum=1
            )
        ),
        breaker_timeout=src.number(
            "SYNC_CIRCUIT_BREAKER_TIMEOUT",
            "CIRCUIT_BREAKER_TIMEOUT",
            default=60000,
            kind=float,
            minimum=0,
        )
        / 1000,
        state_dir=src.path("SYNC_STATE_DIR") or _default_state_dir(env),
        max_remove_fraction=src.number(
            "SYNC_MAX_REMOVE_FRACTION", default=0.2, kind=float, minimum=0, maximum=1
        ),
        health_max_age=src.duration("SYNC_HEALTH_MAX_AGE", default=26 * 3600.0, unit=3600.0),
        http_timeout=src.duration("SYNC_HTTP_TIMEOUT", default=30.0, unit=1.0),
        run_timeout=src.duration("SYNC_RUN_TIMEOUT", default=3600.0, unit=1.0),
        metrics_file=Path(metrics).expanduser() if metrics else None,
        ping_url=ping_url,
        api_key=_api_key(src),
        health_timeout=src.duration("SYNC_HEALTH_TIMEOUT", default=HEALTH_TIMEOUT, unit=1.0),
        instance=_instance(src),
        quota_window=src.number(
            "SYNC_SHEETS_QUOTA_WINDOW", default=70.0, kind=float, minimum=0, maximum=3600
        ),
    )
