"""A small strict parser for the Prometheus text exposition format (version 0.0.4).

Enough to read back what ``listing_sync.notify`` writes and to reject anything
node_exporter's textfile collector would reject: bad names, bad label syntax,
samples before their TYPE, a TYPE given twice, a metric split in two groups,
the same series twice, or a file that does not end with a newline.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_SAMPLE = re.compile(rf"^({NAME})(\{{.*\}})?\s+(\S+)(?:\s+(-?\d+))?$")
_LABEL_PAIR = re.compile(rf'\s*({LABEL})="((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

Series = tuple[str, frozenset[tuple[str, str]]]


class ParseError(ValueError):
    """The text is not valid Prometheus exposition format."""


@dataclass
class Metrics:
    """What a file holds: types, help texts and sample values by series."""

    types: dict[str, str] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)
    samples: dict[Series, float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        """Return the value of one series (KeyError if absent)."""
        return self.samples[(name, frozenset(labels.items()))]

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        """Return every series of ``name`` by its label set."""
        return {labels: v for (n, labels), v in self.samples.items() if n == name}


def _labels(text: str, line_no: int) -> frozenset[tuple[str, str]]:
    inner = text[1:-1]
    pairs: dict[str, str] = {}
    pos = 0
    while pos < len(inner):
        match = _LABEL_PAIR.match(inner, pos)
        if not match:
            raise ParseError(f"line {line_no}: bad label syntax in {text!r}")
        name, raw = match.group(1), match.group(2)
        if name in pairs:
            raise ParseError(f"line {line_no}: label {name!r} twice")
        pairs[name] = raw.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        pos = match.end()
    return frozenset(pairs.items())


def _float(text: str, line_no: int) -> float:
    special = {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}
    if text in special:
        return special[text]
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
        raise ParseError(f"line {line_no}: bad value {text!r}")
    return float(text)


def parse(text: str) -> Metrics:
    """Parse ``text`` strictly; raise ParseError at the first problem."""
    if not text.endswith("\n"):
        raise ParseError("the last line must end with a newline")
    out = Metrics()
    finished: set[str] = set()
    current: str | None = None
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not re.fullmatch(NAME, name):
                    raise ParseError(f"line {line_no}: bad metric name {name!r}")
                if parts[1] == "TYPE":
                    kind = parts[3] if len(parts) == 4 else ""
                    if kind not in _TYPES:
                        raise ParseError(f"line {line_no}: bad type {kind!r}")
                    if name in out.types:
                        raise ParseError(f"line {line_no}: TYPE of {name} given twice")
                    if any(n == name for n, _ in out.samples):
                        raise ParseError(f"line {line_no}: TYPE of {name} after its samples")
                    out.types[name] = kind
                else:
                    if name in out.help:
                        raise ParseError(f"line {line_no}: HELP of {name} given twice")
                    out.help[name] = parts[3] if len(parts) == 4 else ""
            continue
        match = _SAMPLE.match(line)
        if not match:
            raise ParseError(f"line {line_no}: not a sample: {line!r}")
        name, labels_text, value = match.group(1), match.group(2), match.group(3)
        if name != current:
            if name in finished:
                raise ParseError(f"line {line_no}: samples of {name} are not grouped")
            if current is not None:
                finished.add(current)
            current = name
        labels = _labels(labels_text, line_no) if labels_text else frozenset()
        key = (name, labels)
        if key in out.samples:
            raise ParseError(f"line {line_no}: series {name}{labels_text or ''} twice")
        out.samples[key] = _float(value, line_no)
    return out
