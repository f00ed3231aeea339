"""The EV behind the emulator: battery, needs and limits. Its requests follow from this model.

SOC follows the energy ACTUALLY moved, not what was requested: `energy_source()` returns cumulative
(into-battery Wh, out-of-battery Wh) counters, e.g. the power analyzer's DC WP+/WP- or the battery
emulator's, on the virtual lab and on a real bench alike. Without a source, the model integrates
the charger's reported present voltage x current (the charger's own measurement) over time.
Sign convention: positive power/current flows INTO the EV battery.
"""
from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from typing import Callable

from v2g_bench.errors import BenchError

EnergySource = Callable[[], tuple[float, float]]   # -> (import_wh, export_wh), cumulative


def _default_ocv() -> list[tuple[float, float]]:
    # NMC-like 96s pack, OCV vs SOC (fraction); smooth enough for precharge targets
    return [(0.0, 300.0), (0.1, 340.0), (0.3, 355.0), (0.5, 365.0), (0.7, 375.0), (0.9, 392.0), (1.0, 403.0)]


@dataclass
class Phase:
    """One step of a session plan: `power_w` (+ charge, - discharge) for `duration_s` seconds of
    charge loop, or until `until_soc` is crossed, whichever first (at least one must be given)."""

    power_w: float
    duration_s: float | None = None
    until_soc: float | None = None

    def __post_init__(self) -> None:
        if self.duration_s is None and self.until_soc is None:
            raise BenchError("a plan phase needs duration_s or until_soc", where="EV plan",
                             fix="e.g. Phase(power_w=5000, duration_s=10)")
        if self.duration_s is not None and self.duration_s < 0:
            raise BenchError(f"negative duration_s {self.duration_s}", where="EV plan", fix="use >= 0")

    @classmethod
    def parse(cls, obj: "Phase | dict | tuple") -> "Phase":
        if isinstance(obj, Phase):
            return obj
        if isinstance(obj, dict):
            return cls(**obj)
        return cls(*obj)


@dataclass
class EVModel:
    capacity_wh: float = 60_000.0
    soc: float = 0.5                     # fraction 0..1
    target_soc: float = 0.8
    min_soc: float = 0.2
    departure_s: float = 7200.0          # seconds from session start
    max_charge_power_w: float = 11_000.0
    max_discharge_power_w: float = 11_000.0
    max_charge_current_a: float = 30.0
    max_discharge_current_a: float = 30.0
    max_voltage_v: float = 450.0
    min_voltage_v: float = 250.0
    r_ohm: float = 0.05
    ocv_table: list[tuple[float, float]] = field(default_factory=_default_ocv)
    energy_source: EnergySource | None = None
    # dynamic mode: offer both directions at once (what the EV accepts, the charger / CSMS decides), as an EV
    # on a V2G site does; False: the plan phase's sign says the one direction offered (the conformance cases)
    offer_both: bool = False

    _soc0: float = field(init=False, default=0.0)
    _e0: tuple[float, float] | None = field(init=False, default=None)
    _integrated_wh: float = field(init=False, default=0.0)
    _last_t: float | None = field(init=False, default=None)
    current_a: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        problems = []
        if self.capacity_wh <= 0:
            problems.append(f"capacity_wh must be > 0 (got {self.capacity_wh})")
        for name in ("soc", "target_soc", "min_soc"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                problems.append(f"{name} must be within 0..1 (got {v})")
        if self.min_soc > self.target_soc:
            problems.append(f"min_soc {self.min_soc} > target_soc {self.target_soc}")
        if problems:
            raise BenchError("; ".join(problems), where="EV model", fix="fix the [roles.ev.model] values")
        self.ocv_table = sorted((float(s), float(v)) for s, v in self.ocv_table)
        self._soc0 = self.soc

    # --- battery ---------------------------------------------------------------------------
    def ocv(self, soc: float | None = None) -> float:
        s = self.soc if soc is None else soc
        xs = [p[0] for p in self.ocv_table]
        i = bisect.bisect_left(xs, s)
        if i <= 0:
            return self.ocv_table[0][1]
        if i >= len(xs):
            return self.ocv_table[-1][1]
        (s0, v0), (s1, v1) = self.ocv_table[i - 1], self.ocv_table[i]
        return v0 + (v1 - v0) * (s - s0) / (s1 - s0)

    def terminal_voltage(self, current_a: float | None = None) -> float:
        i = self.current_a if current_a is None else current_a
        return self.ocv() + i * self.r_ohm

    # --- energy bookkeeping ------------------------------------------------------------------
    def start(self) -> None:
        """Mark the session start: later SOC = SOC at start + moved energy / capacity."""
        self._soc0 = self.soc
        self._integrated_wh = 0.0
        self._last_t = None
        self._e0 = self.energy_source() if self.energy_source else None

    def moved_wh(self) -> float:
        """Net energy into the battery since start() (+ charge)."""
        if self.energy_source and self._e0 is not None:
            imp, exp = self.energy_source()
            return (imp - self._e0[0]) - (exp - self._e0[1])
        return self._integrated_wh

    def observe(self, voltage_v: float, current_a: float, now: float | None = None) -> None:
        """Feed the charger's present V and I (used for SOC only without an energy source)."""
        now = time.monotonic() if now is None else now
        if self._last_t is not None and not self.energy_source:
            self._integrated_wh += voltage_v * self.current_a * (now - self._last_t) / 3600.0
        self._last_t = now
        self.current_a = current_a

    def update_soc(self) -> float:
        self.soc = min(1.0, max(0.0, self._soc0 + self.moved_wh() / self.capacity_wh))
        return self.soc

    # --- requests ----------------------------------------------------------------------------
    def allowed_power(self, power_w: float) -> float:
        """Clip a wished power to the EV's limits and its SOC window (+ charge)."""
        if power_w > 0:
            if self.soc >= self.target_soc:
                return 0.0
            return min(power_w, self.max_charge_power_w,
                       self.max_charge_current_a * self.terminal_voltage(0.0))
        if power_w < 0:
            if self.soc <= self.min_soc:
                return 0.0
            return -min(-power_w, self.max_discharge_power_w,
                        self.max_discharge_current_a * self.terminal_voltage(0.0))
        return 0.0

    def target_current(self, power_w: float) -> float:
        p = self.allowed_power(power_w)
        return p / max(self.terminal_voltage(0.0), 1.0)

    def energy_request_wh(self, target_soc: float | None = None) -> float:
        """Energy to reach the target SOC (+ charge needed, - surplus)."""
        t = self.target_soc if target_soc is None else target_soc
        return (t - self.soc) * self.capacity_wh

    def max_energy_request_wh(self) -> float:
        return (1.0 - self.soc) * self.capacity_wh

    def min_energy_request_wh(self) -> float:
        return (self.min_soc - self.soc) * self.capacity_wh


@dataclass
class PlanCursor:
    """Walks a plan while the charge loop runs (time from the monotonic clock)."""

    phases: list[Phase]
    index: int = 0
    phase_started: float | None = None

    @property
    def done(self) -> bool:
        return self.index >= len(self.phases)

    @property
    def current(self) -> Phase | None:
        return None if self.done else self.phases[self.index]

    def advance(self, model: EVModel, now: float | None = None) -> Phase | None:
        """Move past finished phases; returns the active phase or None when the plan is done."""
        now = time.monotonic() if now is None else now
        while not self.done:
            ph = self.phases[self.index]
            if self.phase_started is None:
                self.phase_started = now
            finished = ph.duration_s is not None and now - self.phase_started >= ph.duration_s
            if ph.until_soc is not None:
                finished = finished or (model.soc >= ph.until_soc if ph.power_w > 0 else model.soc <= ph.until_soc)
            if ph.power_w != 0 and model.allowed_power(ph.power_w) == 0:
                finished = True      # the EV cannot do this phase any more (SOC window)
            if not finished:
                return ph
            self.index += 1
            self.phase_started = None
        return None
