"""Small helpers shared by the devstack modules."""

from __future__ import annotations

import socket
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


class StackError(RuntimeError):
    """A part of the local stack could not be started or used."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, max_chars: int = 4000) -> str:
    """Return the end of a log file (or a note that it is missing)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    if len(text) > max_chars:
        text = "...\n" + text[-max_chars:]
    return text.strip() or "(log is empty)"
