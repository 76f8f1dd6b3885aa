"""Make any text that leaves the process encodable: sync_state writes, output, logs.

A sheet can hold what neither JSON-over-UTF-8 nor PostgreSQL text can carry: a NUL
byte (PostgreSQL refuses it, 22P05) or a lone surrogate (a ``LEFT()`` over an emoji
makes one; UTF-8 encoders and PostgREST refuse it, PGRST102). Such a character is
replaced by a visible escape, ``\\u0000`` or ``\\udc80``, so the value stays
recognisable in ``status`` and logs and every write of the run's record succeeds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# NUL and every surrogate code point: a well-formed str never holds a surrogate
# (pairs are decoded into one code point), so any surrogate here is a lone one.
_UNENCODABLE = re.compile("[\x00\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def clean_text(text: str) -> str:
    """Return ``text`` with NUL and lone surrogates written as ``\\uXXXX`` escapes."""
    return _UNENCODABLE.sub(_escape, text)


def clean(value: Any) -> Any:
    """Return ``value`` (str, list, tuple, dict, scalar) with every string cleaned."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value
