"""Economics of a plan or of measured power: arbitrage revenue, demand-charge saving, degradation cost.

Everything is compared with the uncontrolled baseline a charger without a scheduler would do: charge at full
power from arrival until the departure target is reached, never discharge.
"""
from __future__ import annotations

import numpy as np

from v2g_bench.scheduler.model import EVRequest, Site, interval_window

from v2g_bench.verification.result import Check, SampleError, VerificationResult, as_series


class EconomicsResult(VerificationResult):
    pass


def uncontrolled_power_kw(site: Site, ev: EVRequest) -> np.ndarray:
    """Charge at max power from arrival until the target (departure target) is reached."""
    a, b = interval_window(site, ev)
    p = np.zeros(site.n)
    soc = ev.soc_kwh
    goal = max(ev.target_kwh, ev.min_kwh)
    for t in range(a, b):
        need = goal - soc
        if need <= 1e-12:
            break
        kw = min(ev.max_charge_kw, need / (ev.eta_charge * site.h))
        p[t] = kw
        soc += ev.eta_charge * site.h * kw
    return p


def _bill(site: Site, ev_power_kw: np.ndarray, evs: list[EVRequest] | None, curtailed_kw=None):
    grid = site.base_kw() + ev_power_kw.sum(axis=0) + (0.0 if curtailed_kw is None else curtailed_kw)
    h = site.h
    imp = float(h * np.dot(site.import_price, np.clip(grid, 0, None)))
    exp = float(h * np.dot(site.export_price, np.clip(-grid, 0, None)))
    demand = site.demand_charge_per_kw * float(max(0.0, grid.max()))
    deg = 0.0
    if evs is not None:
        for ev, p in zip(evs, ev_power_kw):
            deg += ev.degradation_per_kwh * h * float(np.sum(ev.eta_charge * np.clip(p, 0, None)
                                                             + np.clip(-p, 0, None) / ev.eta_discharge))
    return {"import_cost": imp, "export_revenue": exp, "energy_cost": imp - exp, "demand_charge": demand,
            "degradation": deg, "total": imp - exp + demand + deg, "peak_kw": float(grid.max())}


def judge_economics(site: Site, evs: list[EVRequest], power_kw, *, min_saving: float | None = 0.0,
                    currency: str = "EUR", curtailed_kw=None) -> EconomicsResult:
    """`power_kw` is (N, T) per EV (planned, or measured averaged per interval), + = into the EV.

    Checks that the controlled operation is not dearer than the uncontrolled baseline (or saves at least
    `min_saving`); note that the uncontrolled baseline ignores the site limit (that is what a dumb charger does).
    """
    P = np.atleast_2d(as_series("power_kw", np.asarray(power_kw, float).ravel(), where="economics"))
    P = P.reshape(len(evs), -1)
    if P.shape[1] != site.n:
        raise SampleError(f"power_kw has {P.shape[1]} intervals, the tariff has {site.n}", where="economics")
    base = np.array([uncontrolled_power_kw(site, ev) for ev in evs])
    ctrl = _bill(site, P, evs, curtailed_kw)
    # the baseline curtails only what the export limit forces
    unc_grid = site.base_kw() + base.sum(axis=0)
    unc_curt = (np.clip(-unc_grid - site.export_limit_kw, 0, None)
                if site.export_limit_kw is not None and site.pv_kw is not None else None)
    unc = _bill(site, base, evs, unc_curt)
    res = EconomicsResult("economics")
    m = res.metrics
    m["controlled"], m["uncontrolled"] = ctrl, unc
    m["arbitrage_revenue"] = unc["energy_cost"] - ctrl["energy_cost"]
    m["demand_charge_saving"] = unc["demand_charge"] - ctrl["demand_charge"]
    m["degradation_cost"] = ctrl["degradation"]
    m["extra_degradation_cost"] = ctrl["degradation"] - unc["degradation"]
    m["net_saving"] = unc["total"] - ctrl["total"]
    m["currency"] = currency
    res.checks.append(Check("net saving vs uncontrolled charging", m["net_saving"], min_saving, currency, ">=",
                            cite="scheduler objective (import - export + demand + degradation)",
                            detail=f"arbitrage {m['arbitrage_revenue']:.2f}, demand {m['demand_charge_saving']:.2f}, "
                                   f"extra degradation {m['extra_degradation_cost']:.2f}"))
    return res
