"""The lab's one clock: plant time = real time x time_scale, monotonic."""
from __future__ import annotations

import math
import threading
import time
from typing import Callable

from v2g_bench.errors import LabError

# ------------------------------------------------------------------------------------------ clock


class LabClock:
    """Plant time in seconds: real time x `time_scale` (>= 1), monotonic, rebased on scale changes.

    `manual=True` gives a clock that only moves with `advance(dt)`: unit tests and determinism
    checks use it so the same seed and the same clock give bit-identical samples.
    """

    def __init__(self, time_scale: float = 1.0, *, manual: bool = False, start: float = 0.0,
                 source: Callable[[], float] = time.monotonic):
        self._check_scale(time_scale)
        self._source = source
        self._scale = float(time_scale)
        self._manual = manual
        self._base_plant = float(start)
        self._base_real = source()
        self._last = float(start)
        self._lock = threading.Lock()

    @staticmethod
    def _check_scale(x: float) -> None:
        if not (isinstance(x, (int, float)) and math.isfinite(x) and x >= 1.0):
            raise LabError(f"time_scale must be a finite number >= 1, got {x!r}",
                           where="LabClock", fix="use 1 for real time, e.g. 100 for 100x faster")

    @property
    def time_scale(self) -> float:
        return self._scale

    @property
    def manual(self) -> bool:
        return self._manual

    def now(self) -> float:
        with self._lock:
            if self._manual:
                return self._last
            t = self._base_plant + (self._source() - self._base_real) * self._scale
            if t < self._last:          # guard the monotonic promise against float rounding
                t = self._last
            self._last = t
            return t

    def set_time_scale(self, time_scale: float) -> None:
        self._check_scale(time_scale)
        now = self.now()
        with self._lock:
            self._base_plant, self._base_real, self._scale = now, self._source(), float(time_scale)

    def advance(self, dt: float) -> float:
        """Manual clocks only: move plant time forward by `dt` seconds."""
        if not self._manual:
            raise LabError("advance() on a real-time clock", where="LabClock",
                           fix="create the clock with manual=True")
        if dt < 0 or not math.isfinite(dt):
            raise LabError(f"cannot advance by {dt!r}", where="LabClock", fix="dt must be >= 0")
        with self._lock:
            self._last += dt
            return self._last

    def real_delay(self, plant_seconds: float) -> float:
        """Wall-clock seconds that `plant_seconds` of plant time take (for sleeps in front-ends)."""
        return plant_seconds / self._scale


