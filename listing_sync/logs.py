"""Log lines on stderr: their format (text or JSON), their level, and secret redaction.

``setup_logging`` returns a ``Logs`` object that the CLI keeps for the command and
passes on: it prints the final error line and the few lines cron should mail, and
redacts every secret it was told of (``add_secret``), in its own lines and in
every log record, whatever library logged it.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from .sanitize import clean_text

LOGGER = "listing_sync"
REDACTED = "[REDACTED]"


class Verbosity(Protocol):
    @property
    def verbose(self) -> bool: ...

    @property
    def quiet(self) -> bool: ...


class Redactor:
    """Replace known secrets in text; secrets shorter than 8 characters are ignored."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if secret and len(secret) >= 8 and secret not in self.secrets:
            self.secrets.append(secret)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        # Whatever is redacted is about to be printed: make it encodable as well.
        return clean_text(text)


class RedactFilter(logging.Filter):
    """Replace secrets in every log record, whatever code logged them."""

    def __init__(self, secrets: Iterable[str] | Redactor = ()) -> None:
        super().__init__()
        self.redactor = secrets if isinstance(secrets, Redactor) else Redactor(secrets)

    @property
    def secrets(self) -> list[str]:
        return self.redactor.secrets

    def filter(self, record: logging.LogRecord) -> bool:
        # Always, even with no secret yet: redaction also escapes what cannot be encoded.
        record.msg = self.redactor(record.getMessage())
        record.args = None
        # The traceback is text too (exception messages): render and redact it here.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        return True


def _traceback(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_text:
        return record.exc_text
    return formatter.formatException(record.exc_info) if record.exc_info else None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created).astimezone().isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("sync_id", "event"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        traceback = _traceback(self, record)
        if traceback:
            entry["traceback"] = traceback
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"listing-sync: {record.levelname.lower()}: {record.getMessage()}"
        traceback = _traceback(self, record)
        return f"{line}\n{traceback}" if traceback else line


class Logs:
    """The logging set-up of one command (see ``setup_logging``)."""

    def __init__(self, *, as_json: bool, redactor: Redactor) -> None:
        self.as_json = as_json
        self.redactor = redactor
        self.logger = logging.getLogger(LOGGER)

    def add_secret(self, secret: str) -> None:
        """Redact ``secret`` from now on, everywhere."""
        self.redactor.add(secret)

    def redact(self, text: str) -> str:
        return self.redactor(text)

    def error_line(self, message: str) -> None:
        """Print the one-line error on stderr (a JSON log record with --log-format json)."""
        message = self.redact(" ".join(message.split()))
        if self.as_json:
            self.logger.error("%s", message)
        else:
            print(f"listing-sync: error: {message}", file=sys.stderr)

    def problem_lines(self, lines: Iterable[str]) -> None:
        """Print a few lines about a run that was not clean on stderr (JSON records if asked)."""
        for line in lines:
            if self.as_json:
                self.logger.warning("%s", line)
            else:
                print(self.redact(line), file=sys.stderr)


def setup_logging(mode: Verbosity, *, log_format: str, secrets: Iterable[str] = ()) -> Logs:
    """Send the core's log lines to stderr in the chosen format; return the set-up."""
    logger = logging.getLogger(LOGGER)
    logger.handlers.clear()
    logger.propagate = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    redactor = Redactor(secrets)
    redact = RedactFilter(redactor)
    handler.addFilter(redact)
    logger.addHandler(handler)
    # Warnings from the libraries underneath (google, httpx) get the same format and
    # redaction instead of Python's bare last-resort handler.
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "listing_sync", False)]:
        root.removeHandler(old)
    foreign = logging.StreamHandler(sys.stderr)
    foreign.listing_sync = True  # type: ignore[attr-defined]
    foreign.setFormatter(handler.formatter)
    foreign.addFilter(redact)
    foreign.setLevel(logging.WARNING)
    root.addHandler(foreign)
    if mode.verbose:
        logger.setLevel(logging.DEBUG)
    elif mode.quiet:
        logger.setLevel(logging.ERROR)
    else:
        logger.setLevel(logging.WARNING)
    return Logs(as_json=log_format == "json", redactor=redactor)
