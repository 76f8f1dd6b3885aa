"""Read JSON with orjson, exactly as the standard library would.

orjson parses the 2 MB Sheets responses and PostgREST pages several times faster, but
reads an integer beyond 64 bits as a float (123456789012345678901234567890 becomes
1.2345678901234568e+29), where ``json`` keeps every digit; a numeric column or a cell
can hold such a number. A body where a number of 19 digits or more may start goes to
the standard library. The check runs in C: every digit becomes "0", every byte a JSON
number can follow (``[``, ``:``, ``,``, whitespace) becomes ":", every other byte " "
(a minus sign stays), then two substring searches. Digits inside a string follow a
letter or a quote, so the hex digests of a page of hashes (a run of 19 digits in one
of every few hundred) do not send the page to the slow parser; a regex trying every
position of 2 MB would cost more than the parse.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson


def _table() -> bytes:
    table = bytearray(b" " * 256)
    for byte in b"0123456789":
        table[byte] = ord("0")
    for byte in b"[:, \t\r\n":
        table[byte] = ord(":")
    table[ord("-")] = ord("-")
    return bytes(table)


_SHAPES: Final = _table()
_RUN: Final = b"0" * 19
_AFTER: Final = b":" + _RUN
_AFTER_MINUS: Final = b":-" + _RUN


def loads(raw: bytes) -> Any:
    """Return the JSON value of ``raw``; raise ``ValueError`` if it is not JSON."""
    shapes = (b":" + raw).translate(_SHAPES)  # ":" for a number at the very start
    if _AFTER in shapes or _AFTER_MINUS in shapes:
        return json.loads(raw)
    return orjson.loads(raw)
