"""Inputs and outputs of the reference scheduler, with strict validation.

Units are in the names: power in kW, energy in kWh, prices per kWh, time in seconds from the plan
start ("now"). kW/kWh rather than W/J because tariffs are quoted per kWh and the LP is better scaled.
Sign: positive power flows INTO the EV battery (charging), negative is discharge (V2G).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from v2g_bench.errors import BenchError


class ScheduleInputError(BenchError):
    """A scheduler input is malformed (NaN price, mismatched lengths, negative capacity...)."""


class InfeasibleSchedule(BenchError):
    """The request cannot be met; `reasons` lists each violated constraint in plain words.

    `shortfall_kwh` maps EV name -> kWh missing at its departure (when that is the cause).
    """

    def __init__(self, reasons: list[str], *, where: str | None = None,
                 shortfall_kwh: dict[str, float] | None = None, fix: str | None = None):
        self.reasons = list(reasons)
        self.shortfall_kwh = dict(shortfall_kwh or {})
        what = "infeasible request: " + ("; ".join(self.reasons))
        super().__init__(what, where=where, fix=fix)


def _array(name: str, values, n: int | None, *, where: str, allow_negative: bool = True) -> np.ndarray:
    if values is None:
        raise ScheduleInputError(f"{name} is missing", where=where, fix=f"give {name} for every interval")
    try:
        a = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ScheduleInputError(f"{name} is not a list of numbers ({e})", where=where) from None
    if a.size == 0:
        raise ScheduleInputError(f"{name} is empty", where=where, fix=f"give {name} for every interval")
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise ScheduleInputError(f"{name}[{bad[0]}] is {a[bad[0]]} ({bad.size} non-finite values)",
                                 where=where, fix="every interval needs a finite number")
    if n is not None and a.size != n:
        raise ScheduleInputError(f"{name} has {a.size} intervals, expected {n} (the import price length)",
                                 where=where, fix="give all per-interval series the same length")
    if not allow_negative and (a < 0).any():
        i = int(np.flatnonzero(a < 0)[0])
        raise ScheduleInputError(f"{name}[{i}] = {a[i]} is negative", where=where)
    return a


def _finite(name: str, v, *, where: str, lo: float | None = None, hi: float | None = None,
            lo_open: bool = False) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ScheduleInputError(f"{name} = {v!r} is not a number", where=where) from None
    if not math.isfinite(x):
        raise ScheduleInputError(f"{name} = {x} is not finite", where=where)
    if lo is not None and (x <= lo if lo_open else x < lo):
        raise ScheduleInputError(f"{name} = {x} must be {'>' if lo_open else '>='} {lo}", where=where)
    if hi is not None and x > hi:
        raise ScheduleInputError(f"{name} = {x} must be <= {hi}", where=where)
    return x


@dataclass
class Site:
    """The grid connection: tariff per interval plus optional building load, PV and limits."""

    import_price: np.ndarray                    # per kWh drawn from the grid
    export_price: np.ndarray | None = None      # per kWh fed in; defaults to the import price
    dt_s: float = 900.0
    load_kw: np.ndarray | None = None           # site load besides the EVs (>= 0)
    pv_kw: np.ndarray | None = None             # PV production (>= 0), may be curtailed
    import_limit_kw: float | None = None        # connection limit (peak shaving)
    export_limit_kw: float | None = None
    demand_charge_per_kw: float = 0.0           # on the peak import over the horizon
    start_s: float = 0.0                        # plan start on the caller's clock (for periods)
    name: str = "site"

    def __post_init__(self):
        w = f"site {self.name!r}"
        self.dt_s = _finite("dt_s", self.dt_s, where=w, lo=0, lo_open=True)
        self.import_price = _array("import_price", self.import_price, None, where=w)
        n = self.import_price.size
        self.export_price = (self.import_price.copy() if self.export_price is None
                             else _array("export_price", self.export_price, n, where=w))
        if self.load_kw is not None:
            self.load_kw = _array("load_kw", self.load_kw, n, where=w, allow_negative=False)
        if self.pv_kw is not None:
            self.pv_kw = _array("pv_kw", self.pv_kw, n, where=w, allow_negative=False)
        for k in ("import_limit_kw", "export_limit_kw"):
            v = getattr(self, k)
            if v is not None:
                setattr(self, k, _finite(k, v, where=w, lo=0))
        self.demand_charge_per_kw = _finite("demand_charge_per_kw", self.demand_charge_per_kw, where=w, lo=0)
        above = np.flatnonzero(self.export_price > self.import_price + 1e-12)
        if above.size:
            i = int(above[0])
            # Selling above the buying price in the same interval is an unbounded arbitrage loop
            # through the meter: no physical plan corresponds to it.
            raise ScheduleInputError(
                f"export_price[{i}] = {self.export_price[i]} exceeds import_price[{i}] = {self.import_price[i]}",
                where=w, fix="the feed-in price must not exceed the import price in an interval")

    @property
    def n(self) -> int:
        return int(self.import_price.size)

    @property
    def h(self) -> float:
        return self.dt_s / 3600.0

    @property
    def needs_meter(self) -> bool:
        """True when EV costs are not separable per EV (load, PV, limits or demand charge)."""
        return (self.load_kw is not None or self.pv_kw is not None or self.import_limit_kw is not None
                or self.export_limit_kw is not None or self.demand_charge_per_kw > 0)

    def base_kw(self) -> np.ndarray:
        """Site net demand without EVs and without curtailment (kW, + = import)."""
        b = np.zeros(self.n)
        if self.load_kw is not None:
            b += self.load_kw
        if self.pv_kw is not None:
            b -= self.pv_kw
        return b


@dataclass
class EVRequest:
    """One EV's battery, its present state and what the driver asked for."""

    name: str
    capacity_kwh: float
    soc_kwh: float                    # present energy in the battery
    target_kwh: float                 # required at departure
    departure_s: float                # seconds from the plan start
    max_charge_kw: float              # grid-side limits
    max_discharge_kw: float = 0.0
    floor_kwh: float = 0.0            # never below (battery protection)
    reserve_kwh: float = 0.0          # never below (backup reserve, V2H)
    arrival_s: float = 0.0
    eta_charge: float = 0.95          # battery energy in / grid energy in
    eta_discharge: float = 0.95       # grid energy out / battery energy out
    degradation_per_kwh: float = 0.0  # cost per kWh of battery throughput (in + out)
    # optional part-load efficiency: ((width_kw, eta), ...) grid-side segments from 0 to the max power,
    # eta not rising with power (convex losses, see part_load_curve); replaces eta_charge / eta_discharge
    charge_curve: tuple | None = None
    discharge_curve: tuple | None = None

    def __post_init__(self):
        w = f"ev {self.name!r}"
        self.capacity_kwh = _finite("capacity_kwh", self.capacity_kwh, where=w, lo=0, lo_open=True)
        for k in ("soc_kwh", "target_kwh", "floor_kwh", "reserve_kwh", "max_charge_kw",
                  "max_discharge_kw", "degradation_per_kwh", "arrival_s"):
            setattr(self, k, _finite(k, getattr(self, k), where=w, lo=0))
        self.departure_s = _finite("departure_s", self.departure_s, where=w)
        if self.departure_s <= 0:
            raise ScheduleInputError(f"departure_s = {self.departure_s} is not after now (0 s)", where=w,
                                     fix="departure must lie in the future")
        if self.departure_s <= self.arrival_s:
            raise ScheduleInputError(f"departure_s = {self.departure_s} is not after arrival_s = {self.arrival_s}",
                                     where=w)
        for k in ("eta_charge", "eta_discharge"):
            setattr(self, k, _finite(k, getattr(self, k), where=w, lo=0, lo_open=True, hi=1.0))
        for key, pmax in (("charge_curve", self.max_charge_kw), ("discharge_curve", self.max_discharge_kw)):
            curve = getattr(self, key)
            if curve is None:
                continue
            try:
                curve = tuple((float(wd), float(eta)) for wd, eta in curve)
            except (TypeError, ValueError):
                raise ScheduleInputError(f"{key} must be a list of (width_kw, eta) pairs", where=w) from None
            if not curve:
                raise ScheduleInputError(f"{key} is empty", where=w)
            for k, (wd, eta) in enumerate(curve):
                if not (math.isfinite(wd) and wd > 0) or not (math.isfinite(eta) and 0 < eta <= 1):
                    raise ScheduleInputError(f"{key}[{k}] = ({wd}, {eta}): width must be > 0 and eta in (0, 1]",
                                             where=w)
                if k and eta > curve[k - 1][1] + 1e-12:
                    raise ScheduleInputError(
                        f"{key}[{k}] efficiency {eta} is above the previous segment's {curve[k - 1][1]}", where=w,
                        fix="part-load losses must be convex (efficiency not rising with power) for the LP")
            if abs(sum(wd for wd, _ in curve) - pmax) > 1e-6 * max(1.0, pmax):
                raise ScheduleInputError(f"{key} widths sum to {sum(wd for wd, _ in curve):g} kW, not the "
                                         f"max power {pmax:g} kW", where=w)
            setattr(self, key, curve)
        if self.soc_kwh > self.capacity_kwh + 1e-9:
            raise ScheduleInputError(f"soc_kwh = {self.soc_kwh} exceeds capacity_kwh = {self.capacity_kwh}", where=w)

    @property
    def min_kwh(self) -> float:
        return max(self.floor_kwh, self.reserve_kwh)


def part_load_curve(p_max_kw: float, loss_w: tuple[float, float, float], *, segments: int = 4,
                    direction: str = "charge") -> tuple:
    """Segments ((width_kw, eta), ...) from a converter loss model P_loss = a + b|P| + c P^2 (W, P in W, grid side).

    Each segment's efficiency is its marginal one, so the LP sees the convex part of the losses exactly at the
    segment edges. The constant a (no-load loss) is left out: it needs an on/off binary per interval and, for
    a charger that stays on, does not depend on the plan.
    """
    _, b, c = (float(v) for v in loss_w)
    edges = np.linspace(0.0, p_max_kw * 1000.0, segments + 1)
    out = []
    for p0, p1 in zip(edges[:-1], edges[1:]):
        dloss = b * (p1 - p0) + c * (p1 ** 2 - p0 ** 2)
        eta = (1.0 - dloss / (p1 - p0)) if direction == "charge" else (p1 - p0) / ((p1 - p0) + dloss)
        out.append(((p1 - p0) / 1000.0, float(eta)))
    return tuple(out)


@dataclass
class CostBreakdown:
    import_cost: float
    export_revenue: float
    degradation: float
    demand_charge: float

    @property
    def total(self) -> float:
        return self.import_cost - self.export_revenue + self.degradation + self.demand_charge

    def as_dict(self) -> dict:
        return {"import_cost": self.import_cost, "export_revenue": self.export_revenue,
                "degradation": self.degradation, "demand_charge": self.demand_charge, "total": self.total}


@dataclass
class EVPlan:
    name: str
    charge_kw: np.ndarray        # grid side, >= 0
    discharge_kw: np.ndarray     # grid side, >= 0
    soc_kwh: np.ndarray          # n+1 values: at the start of each interval and at the end
    degradation: float

    @property
    def power_kw(self) -> np.ndarray:
        """Signed grid-side power, + = into the EV."""
        return self.charge_kw - self.discharge_kw


@dataclass
class Plan:
    """A cost-optimal plan for one site (one or many EVs)."""

    dt_s: float
    start_s: float
    evs: list[EVPlan]
    grid_kw: np.ndarray          # site net import incl. EVs (kW, + = import)
    curtailed_kw: np.ndarray
    cost: CostBreakdown
    method: str                  # "lp", "lp+milp(k binaries)", "dantzig-wolfe(...)"
    solve_time_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.grid_kw.size)

    def ev(self, name: str) -> EVPlan:
        for e in self.evs:
            if e.name == name:
                return e
        raise KeyError(name)

    @property
    def times_s(self) -> np.ndarray:
        return self.start_s + self.dt_s * np.arange(self.n)

    def to_dict(self) -> dict:
        return {
            "dt_s": self.dt_s, "start_s": self.start_s, "method": self.method,
            "solve_time_s": self.solve_time_s, "notes": self.notes,
            "cost": self.cost.as_dict(),
            "grid_kw": self.grid_kw.tolist(), "curtailed_kw": self.curtailed_kw.tolist(),
            "evs": [{"name": e.name, "power_kw": e.power_kw.tolist(), "soc_kwh": e.soc_kwh.tolist(),
                     "degradation": e.degradation} for e in self.evs],
        }


def interval_window(site: Site, ev: EVRequest) -> tuple[int, int]:
    """Intervals [a, b) in which the EV is plugged in; its target applies to the SOC at index b.

    An interval counts only if the EV is there for all of it: a plan never asks for power from an
    EV that has already left.
    """
    a = int(math.ceil(ev.arrival_s / site.dt_s - 1e-9))
    b = int(math.floor(ev.departure_s / site.dt_s + 1e-9))
    if b > site.n:
        raise ScheduleInputError(
            f"departure_s = {ev.departure_s} is after the end of the price horizon ({site.n * site.dt_s:g} s)",
            where=f"ev {ev.name!r}", fix="extend the price series to cover the departure")
    return a, b
