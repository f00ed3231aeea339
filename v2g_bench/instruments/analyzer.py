"""Role API: PowerAnalyzer (DC link and AC side measured by an instrument independent of the DUT).

Sign: each element's + direction follows the bench wiring, declared in the role options
`element_sign = { "1" = 1, "2" = 1 }` (the virtual lab: element 1 = DC link, + = into the EV
battery; element 2 = AC, + = import from the grid). A -1 flips P, I and swaps the energy directions.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from v2g_bench.errors import InstrumentError
from v2g_bench.roles import RoleConfig, RoleDriver


@dataclass(frozen=True)
class ElementReading:
    voltage_v: float
    current_a: float
    power_w: float
    power_factor: float          # NaN where undefined (DC)
    frequency_hz: float          # NaN where undefined (DC)
    energy_in_wh: float          # integrated energy in the + direction since integration reset
    energy_out_wh: float         # ... in the - direction (a positive number)


@dataclass(frozen=True)
class AnalyzerReading:
    """All elements from ONE acquisition (one query), stamped with time.monotonic()."""

    t: float
    elements: dict[int, ElementReading]

    def __getitem__(self, element: int) -> ElementReading:
        return self.elements[element]


class Element:
    """Per-element sub-object: `analyzer.element(1).set_ranges(voltage_v=1000, current_a=50)`."""

    def __init__(self, analyzer: "PowerAnalyzer", number: int):
        self.analyzer, self.number = analyzer, number

    def set_ranges(self, *, voltage_v: float | None = None, current_a: float | None = None) -> None:
        self.analyzer._set_ranges(self.number, voltage_v, current_a)

    def read(self) -> ElementReading:
        return self.analyzer.read()[self.number]


class PowerAnalyzer(RoleDriver):
    roles: ClassVar[tuple[str, ...]] = ("analyzer",)
    transport: ClassVar[str] = "visa"

    def __init__(self, *, name: str, options: dict[str, Any] | None, instrument_name: str):
        self.name = name
        self.instrument_name = instrument_name
        self.options = dict(options or {})
        self.elements = [int(e) for e in self.options.get("elements", [1, 2])]
        signs = self.options.get("element_sign", {})
        self.sign = {e: float(signs.get(str(e), signs.get(e, 1))) for e in self.elements}

    @classmethod
    def validate_config(cls, cfg: RoleConfig) -> list[str]:
        problems = [] if cfg.resource else [f"{cfg.where('resource')}: missing (a VISA resource string)"]
        for k, v in dict(cfg.options.get("element_sign", {})).items():
            if v not in (1, -1):
                problems.append(f"{cfg.where('element_sign.' + str(k))}: must be 1 or -1, got {v!r}")
        return problems

    def element(self, number: int) -> Element:
        if number not in self.elements:
            raise InstrumentError(f"element {number} is not configured (elements = {self.elements})",
                                  instrument=self.instrument_name)
        return Element(self, number)

    def _apply_sign(self, e: int, u, i, p, pf, f, e_pos, e_neg) -> ElementReading:
        s = self.sign[e]
        if s < 0:
            e_pos, e_neg = e_neg, e_pos
        return ElementReading(u, s * i, s * p, pf, f, abs(e_pos), abs(e_neg))

    def read(self) -> AnalyzerReading:
        t0 = time.monotonic()
        raw = self._acquire()
        t = (t0 + time.monotonic()) / 2
        return AnalyzerReading(t, {e: self._apply_sign(e, *raw[e]) for e in self.elements})

    # integration and rate: vendor primitives
    def integration_start(self) -> None: raise NotImplementedError
    def integration_stop(self) -> None: raise NotImplementedError
    def integration_reset(self) -> None: raise NotImplementedError
    def integration_state(self) -> str: raise NotImplementedError
    def set_update_interval(self, seconds: float) -> None: raise NotImplementedError

    def energy_wh(self, element: int) -> tuple[float, float]:
        r = self.read()[element]
        return r.energy_in_wh, r.energy_out_wh

    def safe_state(self) -> None:
        """An analyzer has no output; nothing to make safe (integration is left as it is)."""

    def _acquire(self) -> dict[int, tuple]: raise NotImplementedError
    def _set_ranges(self, element: int, voltage_v: float | None, current_a: float | None) -> None:
        raise NotImplementedError


def parse_analyzer_value(text: str) -> float:
    """Numbers, plus the analyzers' 'no data' spellings (NAN, INF, Hioki's +777.77E+9 ...) -> NaN."""
    t = text.strip()
    if t.upper() in ("NAN", "INF", "-INF", "+INF", "NAN\n"):
        return math.nan
    v = float(t)
    if abs(v) >= 7.7e11 or abs(v) in (999.99e9, 888.88e9, 777.77e9):
        return math.nan
    return v
