"""Where a decode spends its time: wall-clock seconds per named stage, summed over every lap.

The decoder and the latent coder call `lap` at each stage boundary (thousands of times per frame in the
wavefront loop, at about 0.1 us each), so the split is always measured and a benchmark only reads it.
"""

from __future__ import annotations

import time


class StageTimes:
    """Seconds per stage; `lap(name)` charges the time since the previous lap (or creation) to `name`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now

    def restart(self) -> None:
        """Start the next lap now (time since the last lap belongs to no stage)."""
        self._last = time.perf_counter()

    def total(self) -> float:
        return sum(self.seconds.values())
