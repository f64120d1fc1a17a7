"""Where a decode spends its time: wall-clock seconds per named stage, summed over every lap.

The decoder and the latent coder call `lap` at each stage boundary; the compiled wavefront loop measures
its network and range-decoding time itself and `move`s it out of its lap. The split is always measured
and a benchmark only reads it.
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

    def move(self, source: str, target: str, seconds: float) -> None:
        """Charge `seconds` of stage `source` to `target` instead (time that compiled code measured inside a
        lap)."""
        self.seconds[source] = self.seconds.get(source, 0.0) - seconds
        self.seconds[target] = self.seconds.get(target, 0.0) + seconds

    def restart(self) -> None:
        """Start the next lap now (time since the last lap belongs to no stage)."""
        self._last = time.perf_counter()

    def total(self) -> float:
        return sum(self.seconds.values())
