"""Plain-words explanations for requests that cannot be met.

Two layers: `precheck` catches contradictions in one EV's own numbers before any solve; when the LP is
still infeasible (several EVs competing for a site limit, PV surplus...), `explain_infeasible` re-solves an
elastic copy (departure targets and site limits may be missed at a large penalty) and reports exactly which
constraint gave way and by how much.
"""
from __future__ import annotations

import numpy as np

from v2g_bench.scheduler.model import EVRequest, InfeasibleSchedule, Site, interval_window


def _hours(s: float) -> str:
    return f"{s / 3600:.2f} h"


def precheck(site: Site, evs: list[EVRequest]) -> None:
    reasons: list[str] = []
    short: dict[str, float] = {}
    for ev in evs:
        n = f"EV {ev.name!r}"
        if ev.min_kwh > ev.capacity_kwh:
            which = "reserve" if ev.reserve_kwh >= ev.floor_kwh else "floor"
            reasons.append(f"{n}: SOC {which} {ev.min_kwh:g} kWh is above the capacity {ev.capacity_kwh:g} kWh")
            continue
        if ev.target_kwh > ev.capacity_kwh + 1e-9:
            reasons.append(f"{n}: departure target {ev.target_kwh:g} kWh is above the capacity "
                           f"{ev.capacity_kwh:g} kWh (by {ev.target_kwh - ev.capacity_kwh:.3f} kWh)")
            short[ev.name] = ev.target_kwh - ev.capacity_kwh
            continue
        if ev.floor_kwh > ev.target_kwh + 1e-9:
            reasons.append(f"{n}: SOC floor {ev.floor_kwh:g} kWh is above the departure target "
                           f"{ev.target_kwh:g} kWh (by {ev.floor_kwh - ev.target_kwh:.3f} kWh): the target "
                           f"is meaningless, the request is contradictory")
            continue
        if ev.soc_kwh < ev.min_kwh - 1e-9:
            which = "reserve" if ev.reserve_kwh >= ev.floor_kwh else "floor"
            reasons.append(f"{n}: present SOC {ev.soc_kwh:g} kWh is already below the {which} "
                           f"{ev.min_kwh:g} kWh (by {ev.min_kwh - ev.soc_kwh:.3f} kWh)")
            continue
        a, b = interval_window(site, ev)
        plugged_h = max(0, b - a) * site.h
        from v2g_bench.scheduler.lp import battery_side_kw
        cell_kw = float(battery_side_kw(ev, np.array([ev.max_charge_kw]), np.zeros(1))[0][0])
        reach = min(ev.capacity_kwh, ev.soc_kwh + cell_kw * plugged_h)
        if reach < ev.target_kwh - 1e-9:
            miss = ev.target_kwh - reach
            short[ev.name] = miss
            reasons.append(
                f"{n}: departure target {ev.target_kwh:g} kWh is unreachable, short by {miss:.3f} kWh: from "
                f"{ev.soc_kwh:g} kWh, {ev.max_charge_kw:g} kW for the {plugged_h:.2f} h plugged in before "
                f"departure ({_hours(ev.departure_s)} from now) at efficiency {cell_kw / max(ev.max_charge_kw, 1e-12):.3g} adds at most "
                f"{reach - ev.soc_kwh:.3f} kWh")
    if site.import_limit_kw is not None:
        # the limit must hold even with every EV discharging at full power and all PV used
        base = site.base_kw()
        relief_t = np.zeros(site.n)
        for ev in evs:
            a, b = interval_window(site, ev)
            relief_t[a:b] += ev.max_discharge_kw
        for t in range(site.n):
            over = base[t] - relief_t[t] - site.import_limit_kw
            if over > 1e-9:
                reasons.append(f"site: load at interval {t} ({_hours(t * site.dt_s)} from now) exceeds the "
                               f"import limit {site.import_limit_kw:g} kW by {over:.3f} kW even with every EV "
                               f"discharging at full power ({over * site.h:.3f} kWh in that interval)")
                break
    if reasons:
        raise InfeasibleSchedule(reasons, where=f"site {site.name!r}", shortfall_kwh=short,
                                 fix="lower the target, extend the stay, raise the power or the site limit")


def explain_infeasible(scheduler, site: Site, evs: list[EVRequest], metering: str) -> InfeasibleSchedule:
    from v2g_bench.scheduler.lp import _layout

    L = _layout(site, len(evs), metering, elastic=True, evs=evs)
    x = scheduler._solve(L, site, evs)
    if x is None:  # pragma: no cover - the elastic model is feasible by construction
        return InfeasibleSchedule(["no plan exists even with targets and limits relaxed"], where=f"site {site.name!r}")
    reasons, short = [], {}
    s = L.slack0
    for i, ev in enumerate(evs):
        miss = float(x[s + i])
        if miss > 1e-6:
            short[ev.name] = miss
            reasons.append(f"EV {ev.name!r}: departure target {ev.target_kwh:g} kWh is short by {miss:.3f} kWh "
                           f"(shared site limit / competing EVs leave too little charging energy before "
                           f"{_hours(ev.departure_s)} from now)")
    over_imp = x[s + L.N:s + L.N + L.T]
    over_exp = x[s + L.N + L.T:s + L.N + 2 * L.T]
    for label, over in (("import", over_imp), ("export", over_exp)):
        bad = np.flatnonzero(over > 1e-6)
        if bad.size:
            reasons.append(f"site {label} limit exceeded in {bad.size} interval(s), worst at interval {int(bad[np.argmax(over[bad])])} "
                           f"by {float(over.max()):.3f} kW ({float(over.sum() * site.h):.3f} kWh in total)")
    if not reasons:
        reasons.append("the constraints are jointly contradictory (no single target or limit explains it)")
    return InfeasibleSchedule(reasons, where=f"site {site.name!r}", shortfall_kwh=short,
                              fix="lower the targets, extend the stays, or raise the site limit")
