"""Wall time of each step of bringing the node up or down, printed as it goes and kept for reports."""

from __future__ import annotations

import time
from collections.abc import Callable


class Timings:
    """Wall time of each step, printed as it goes and kept for the report."""

    def __init__(self, echo: Callable[[str], None] = print) -> None:
        self.steps: dict[str, float] = {}
        self._echo = echo
        self._t0 = time.monotonic()

    def step(self, name: str, action: Callable[[], object]) -> None:
        started = time.monotonic()
        action()
        self.steps[name] = round(time.monotonic() - started, 1)
        self._echo(f"  {name:<34} {self.steps[name]:6.1f} s")

    @property
    def total_s(self) -> float:
        return round(time.monotonic() - self._t0, 1)
