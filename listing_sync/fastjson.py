"""Read JSON with orjson, exactly as the standard library would.

orjson parses the 2 MB Sheets responses and PostgREST pages several times faster, but
reads an integer beyond 64 bits as a float (123456789012345678901234567890 becomes
1.2345678901234568e+29), where ``json`` keeps every digit; a numeric column or a cell
can hold such a number. A body with a run of 19 digits anywhere goes to the standard
library; the run is found in C (every digit made "0", every other byte " ", then a
substring search), as a regex trying every position of 2 MB costs more than the parse.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

_DIGITS_AS_ZEROS: Final = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_RUN: Final = b"0" * 19


def loads(raw: bytes) -> Any:
    """Return the JSON value of ``raw``; raise ``ValueError`` if it is not JSON."""
    if _LONG_RUN in raw.translate(_DIGITS_AS_ZEROS):
        return json.loads(raw)
    return orjson.loads(raw)
