"""An independent exact solver for one EV (per-EV billing), used to cross-check HiGHS in tests.

Method: backward dynamic programming over the battery energy with EXACT convex piecewise-linear value
functions (no SOC grid). In battery units (x = energy into the cells, y = energy out of the cells) one
interval costs a*x + b*y with a = p_imp/eta_c + k_deg and b = k_deg - p_exp*eta_d; the step cost as a
function of the SOC change is the infimal convolution of two linear pieces, and the value function of the
previous interval is the infimal convolution of the next one with that step cost, clipped to the SOC bounds.
Infimal convolution of convex PWL functions = merge their slopes in sorted order, so each step is exact.
Shares no code with the LP (no HiGHS, no scipy).

`exclusive=True` forbids charging and discharging in the same interval by enumerating the charge/discharge
mode of every interval where both are possible (2^m DPs): only for small cases.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from v2g_bench.scheduler.model import EVRequest, Site, interval_window


@dataclass
class _PWL:
    """Convex piecewise-linear on [x0, x0 + sum(lengths)]: value v0 at x0, then (slope, length) ascending."""

    x0: float
    v0: float
    segs: list

    @property
    def x1(self) -> float:
        return self.x0 + sum(L for _, L in self.segs)

    def value(self, x: float) -> float:
        if x < self.x0 - 1e-9 or x > self.x1 + 1e-9:
            return math.inf
        v, at = self.v0, self.x0
        for s, L in self.segs:
            if x - at <= 0:
                break
            step = min(L, x - at)
            v += s * step
            at += step
        return v

    def reflect(self) -> "_PWL":  # g(z) = f(-z)
        return _PWL(-self.x1, self.value(self.x1), [(-s, L) for s, L in reversed(self.segs)])

    def infconv(self, other: "_PWL") -> "_PWL":
        segs = sorted(self.segs + other.segs, key=lambda sl: sl[0])
        return _PWL(self.x0 + other.x0, self.v0 + other.v0, [(s, L) for s, L in segs if L > 0])

    def clip(self, lo: float, hi: float) -> "_PWL | None":
        a, b = max(lo, self.x0), min(hi, self.x1)
        if a > b + 1e-9:
            return None
        b = max(a, b)
        segs, at = [], self.x0
        for s, L in self.segs:
            s0, s1 = max(at, a), min(at + L, b)
            if s1 > s0:
                segs.append((s, s1 - s0))
            at += L
        return _PWL(a, self.value(a), segs)


def _step(charge: list, discharge: list, mode: str | None) -> _PWL:
    """Cost of moving the SOC by delta in one interval. `charge`: (cost per cell kWh, cell kWh) pieces,
    `discharge`: (cost per cell kWh, cell kWh) pieces (delta goes down by their length)."""
    if mode == "charge":
        discharge = []
    elif mode == "discharge":
        charge = []
    Y = sum(L for _, L in discharge)
    v0 = sum(b * L for b, L in discharge)
    pieces = [(-b, L) for b, L in discharge] + list(charge)
    return _PWL(-Y, v0, sorted([sl for sl in pieces if sl[1] > 0], key=lambda sl: sl[0]))


def reference_cost(site: Site, ev: EVRequest, *, exclusive: bool = False) -> float | None:
    """Minimum cost (import - export + degradation) for one EV billed on its own; None if infeasible."""
    a_win, b_win = interval_window(site, ev)
    both = [t for t in range(a_win, b_win) if ev.max_charge_kw > 0 and ev.max_discharge_kw > 0]
    if not exclusive or not both:
        return _dp(site, ev, {})
    if len(both) > 14:
        raise ValueError("exclusive reference is exponential: use at most 14 intervals with both directions")
    best = None
    for modes in itertools.product(("charge", "discharge"), repeat=len(both)):
        v = _dp(site, ev, dict(zip(both, modes)))
        if v is not None and (best is None or v < best):
            best = v
    return best


def _dp(site: Site, ev: EVRequest, modes: dict) -> float | None:
    a_win, b_win = interval_window(site, ev)
    h, T = site.h, site.n
    k = ev.degradation_per_kwh
    lo_min = ev.min_kwh

    def bounds(j):  # SOC index j = 1..T (after interval j-1)
        lo = max(lo_min, ev.target_kwh) if j >= b_win else lo_min
        return lo, ev.capacity_kwh

    V = _PWL(*bounds(T)[:1], 0.0, [(0.0, bounds(T)[1] - bounds(T)[0])]) if bounds(T)[1] >= bounds(T)[0] else None
    if V is None:
        return None
    for t in range(T - 1, -1, -1):
        on = a_win <= t < b_win
        ccurve = ev.charge_curve or ((ev.max_charge_kw, ev.eta_charge),)
        dcurve = ev.discharge_curve or ((ev.max_discharge_kw, ev.eta_discharge),)
        # per segment: cell kWh it can move and its cost per cell kWh
        charge = [(site.import_price[t] / eta + k, eta * h * w) for w, eta in ccurve] if on else []
        discharge = [(k - site.export_price[t] * eta, h * w / eta) for w, eta in dcurve] if on else []
        W = V.infconv(_step(charge, discharge, modes.get(t)).reflect())
        if t == 0:
            v = W.value(ev.soc_kwh)
            return None if math.isinf(v) else v
        V = W.clip(*bounds(t))
        if V is None:
            return None
    return None  # pragma: no cover
