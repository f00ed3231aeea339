"""Timestamped sampling of an instrument in a background thread, written to evidence as it goes.

`Recorder(read, rate_hz)` calls `read()` (which returns a flat dict of numbers) at a fixed rate on
`time.monotonic()`, appends each row to a CSV in the test's evidence folder immediately (so a crash
still leaves the samples), and keeps them in memory for the verdict. The recorder owns the
instrument while it runs: do not query the same instrument from the test at the same time.
"""
from __future__ import annotations

import csv
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from v2g_bench.errors import BenchError, InstrumentError
from v2g_bench.harness.evidence import Evidence


@dataclass
class Samples:
    t_s: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def between(self, t0: float, t1: float) -> "Samples":
        m = (self.t_s >= t0) & (self.t_s <= t1)
        return Samples(self.t_s[m], {k: v[m] for k, v in self.columns.items()})

    def __len__(self) -> int:
        return int(self.t_s.size)


class Recorder:
    def __init__(self, read: Callable[[], dict], rate_hz: float = 10.0, *, name: str = "samples.csv",
                 max_consecutive_errors: int = 3):
        if not (0 < rate_hz <= 1000):
            raise BenchError(f"sample rate {rate_hz} Hz is outside 0..1000 Hz")
        self.read, self.period = read, 1.0 / rate_hz
        self.rows: list[tuple[float, dict]] = []
        self.error: BaseException | None = None
        self.max_errors = max_consecutive_errors
        ev = Evidence.current()
        self.path: Path | None = ev.path(name) if ev is not None else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="v2g-recorder", daemon=True)
        self._lock = threading.Lock()
        self._new = threading.Condition(self._lock)
        self.t0 = time.monotonic()

    def _run(self) -> None:
        f = open(self.path, "w", newline="") if self.path else None
        writer = None
        errors = 0
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    values = self.read()
                    errors = 0
                except Exception as e:  # noqa: BLE001 - a dead instrument ends the recording, loudly
                    errors += 1
                    if errors >= self.max_errors:
                        self.error = e
                        return
                    continue
                t = time.monotonic()
                with self._new:
                    self.rows.append((t, values))
                    self._new.notify_all()
                if f is not None:
                    try:
                        if writer is None:
                            writer = csv.writer(f)
                            writer.writerow(["t_s", *values])
                        writer.writerow([f"{t - self.t0:.4f}", *values.values()])
                        f.flush()
                    except OSError as e:
                        # evidence that cannot be written (disk full) ends the recording loudly: a verdict
                        # must never rest on samples the report cannot show
                        self.error = BenchError(f"cannot write the samples' evidence {self.path}: {e}",
                                                fix="free disk space for reports/")
                        return
                next_t += self.period
                self._stop.wait(max(0.0, next_t - time.monotonic()))
        finally:
            if f is not None:
                try:
                    f.close()
                except OSError as e:
                    self.error = self.error or BenchError(f"cannot write the samples' evidence {self.path}: {e}")
            with self._new:
                self._new.notify_all()

    def start(self) -> "Recorder":
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> Samples:
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise BenchError(f"the sampling thread did not stop within {timeout:g} s (instrument hung?)")
        self._raise_if_failed()
        return self.samples()

    def _raise_if_failed(self) -> None:
        if isinstance(self.error, BenchError):
            raise self.error
        if self.error is not None:
            raise InstrumentError(f"sampling failed {self.max_errors} times in a row: {self.error}",
                                  instrument="recorder") from self.error

    def samples(self) -> Samples:
        with self._lock:
            rows = list(self.rows)
        if not rows:
            return Samples(np.array([]), {})
        keys = list(rows[0][1])
        return Samples(np.array([t for t, _ in rows]), {k: np.array([r[k] for _, r in rows], float) for k in keys})

    def wait_until(self, predicate: Callable[[dict], bool], timeout: float, what: str = "condition") -> tuple[float, dict]:
        """Block until a new sample satisfies `predicate`; TimeoutError naming `what` otherwise."""
        deadline = time.monotonic() + timeout
        with self._new:
            seen = len(self.rows)        # only samples taken from now on count
            while True:
                for t, row in self.rows[seen:]:
                    if predicate(row):
                        return t, row
                seen = len(self.rows)
                self._raise_if_failed()
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    last = self.rows[-1][1] if self.rows else None
                    raise TimeoutError(f"{what} not reached within {timeout:g} s (last sample: {last})")
                self._new.wait(min(left, 0.5))

    def __enter__(self) -> "Recorder":
        return self.start()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5.0)


def dc_power_reader(analyzer, element: int = 1, ac_element: int | None = 2, battery=None) -> Callable[[], dict]:
    """A read() for Recorder from a PowerAnalyzer role: DC (and AC) V, I, P and energy counters.

    With `battery`, the battery emulator's own V/I is sampled too — which also keeps its
    communication watchdog fed while a test holds a setpoint."""
    def read() -> dict:
        r = analyzer.read()
        dc = r[element]
        row = {"dc_v": dc.voltage_v, "dc_a": dc.current_a, "dc_w": dc.power_w,
               "dc_in_wh": dc.energy_in_wh, "dc_out_wh": dc.energy_out_wh}
        if ac_element is not None and ac_element in r.elements:
            ac = r[ac_element]
            row.update({"ac_w": ac.power_w, "ac_in_wh": ac.energy_in_wh, "ac_out_wh": ac.energy_out_wh})
        if battery is not None:
            b = battery.read()
            row.update({"batt_v": b.voltage_v, "batt_a": b.current_a})
        return row
    return read
