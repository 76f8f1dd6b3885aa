"""How the pipeline reports progress: the CLI draws it, tests ignore it."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Where a stage reports what it is doing and how far it got."""

    def phase(self, name: str, total: int | None = None) -> None: ...

    def advance(self, amount: int = 1) -> None: ...


class NoProgress:
    """Progress that goes nowhere."""

    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass
