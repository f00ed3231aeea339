"""Guarantees the charger (or a plan) must keep, from SOC and power samples.

* SOC never below the floor or the backup reserve (worst deficit in kWh, time below in s)
* departure SOC met (shortfall in kWh, SOC interpolated at the departure time)
* power limits per direction (peak and exceedance in kW*s)
* never charging and discharging at the same time (needs both directions measured separately, e.g. the
  analyzer's import/export channels or the module currents; a single signed channel cannot show it)
"""
from __future__ import annotations

import numpy as np

from v2g_bench.verification.compliance import integrate
from v2g_bench.verification.result import Check, VerificationResult, as_series, as_timestamps

CITE_SOC = "ISO 15118-20 EVMinimumEnergyRequest / OCPP 2.1 V2X (SOC limits)"
CITE_DEP = "ISO 15118-20 DepartureTime + EVTargetEnergyRequest"
CITE_LIM = "DUT profile power limits / OCPP 2.1 Q (dischargeLimit)"


class GuaranteeResult(VerificationResult):
    pass


def judge_guarantees(t_s, soc_kwh, power_w=None, *, floor_kwh: float = 0.0, reserve_kwh: float = 0.0,
                     target_kwh: float | None = None, departure_s: float | None = None,
                     max_charge_w: float | None = None, max_discharge_w: float | None = None,
                     limit_tolerance_w: float = 0.0, soc_tolerance_kwh: float = 0.0,
                     charge_w=None, discharge_w=None, simultaneous_tolerance_w: float = 50.0) -> GuaranteeResult:
    w = "guarantee samples"
    t = as_timestamps("t_s", t_s, where=w)
    soc = as_series("soc_kwh", soc_kwh, where=w, n=t.size)
    res = GuaranteeResult("guarantees")
    m, c = res.metrics, res.checks
    lower = max(floor_kwh, reserve_kwh)
    which = "backup reserve" if reserve_kwh >= floor_kwh and reserve_kwh > 0 else "SOC floor"
    deficit = np.clip(lower - soc, 0, None)
    dt = np.diff(t, append=2 * t[-1] - t[-2])  # the last sample stands for one more period
    m["min_soc_kwh"] = float(soc.min())
    m["soc_deficit_kwh"] = float(deficit.max())
    m["time_below_s"] = float(np.sum(dt[deficit > soc_tolerance_kwh]))
    c.append(Check(f"SOC below {which}", m["soc_deficit_kwh"], soc_tolerance_kwh, "kWh", cite=CITE_SOC,
                   detail=f"min SOC {m['min_soc_kwh']:.3f} kWh vs {lower:g} kWh, {m['time_below_s']:.1f} s below"))
    if target_kwh is not None:
        if departure_s is None:
            dep_soc = float(soc[-1])
            m["departure_s"] = float(t[-1])
        elif departure_s > t[-1] + 1e-9:
            res.reasons.append(f"samples end at {t[-1]:.1f} s, before the departure at {departure_s:.1f} s")
            dep_soc = float("nan")
        else:
            dep_soc = float(np.interp(departure_s, t, soc))
            m["departure_s"] = float(departure_s)
        m["departure_soc_kwh"] = dep_soc
        m["departure_shortfall_kwh"] = max(0.0, target_kwh - dep_soc) if np.isfinite(dep_soc) else float("nan")
        c.append(Check("departure SOC shortfall", m["departure_shortfall_kwh"], soc_tolerance_kwh, "kWh", cite=CITE_DEP,
                       detail=f"{dep_soc:.3f} kWh at departure vs target {target_kwh:g} kWh"))
    if power_w is not None:
        p = as_series("power_w", power_w, where=w, n=t.size)
        m["max_charge_w"] = float(max(0.0, p.max()))
        m["max_discharge_w"] = float(max(0.0, -p.min()))
        if max_charge_w is not None:
            over = np.clip(p - max_charge_w - limit_tolerance_w, 0, None)
            c.append(Check("charge power above limit", m["max_charge_w"], max_charge_w + limit_tolerance_w, "W",
                           cite=CITE_LIM, detail=f"{integrate(t, over, t[0], t[-1]) / 1000:.3f} kW*s beyond"))
        if max_discharge_w is not None:
            over = np.clip(-p - max_discharge_w - limit_tolerance_w, 0, None)
            c.append(Check("discharge power above limit", m["max_discharge_w"], max_discharge_w + limit_tolerance_w,
                           "W", cite=CITE_LIM, detail=f"{integrate(t, over, t[0], t[-1]) / 1000:.3f} kW*s beyond"))
    if charge_w is not None or discharge_w is not None:
        if charge_w is None or discharge_w is None:
            res.reasons.append("simultaneous charge/discharge needs both charge_w and discharge_w")
        else:
            cw = as_series("charge_w", charge_w, where=w, n=t.size)
            dw = as_series("discharge_w", discharge_w, where=w, n=t.size)
            both = (cw > simultaneous_tolerance_w) & (dw > simultaneous_tolerance_w)
            m["simultaneous_s"] = float(np.sum(dt[both]))
            c.append(Check("simultaneous charge and discharge", m["simultaneous_s"], 0.0, "s", cite=CITE_LIM,
                           detail=f"{int(both.sum())} samples with both > {simultaneous_tolerance_w:g} W"))
    return res


def judge_plan_guarantees(plan, ev_request, *, tolerance_kwh: float = 1e-6) -> GuaranteeResult:
    """The same guarantees on a scheduler plan (reference check of the scheduler itself)."""
    e = plan.ev(ev_request.name)
    t = plan.start_s + plan.dt_s * np.arange(plan.n + 1)
    power = np.append(e.power_kw, e.power_kw[-1]) * 1000.0
    b = min(int(np.floor(ev_request.departure_s / plan.dt_s + 1e-9)), plan.n)
    return judge_guarantees(
        t, e.soc_kwh, power, floor_kwh=ev_request.floor_kwh, reserve_kwh=ev_request.reserve_kwh,
        target_kwh=ev_request.target_kwh, departure_s=plan.start_s + b * plan.dt_s,
        max_charge_w=ev_request.max_charge_kw * 1000, max_discharge_w=ev_request.max_discharge_kw * 1000,
        limit_tolerance_w=1e-3, soc_tolerance_kwh=tolerance_kwh,
        charge_w=np.append(e.charge_kw, 0.0) * 1000, discharge_w=np.append(e.discharge_kw, 0.0) * 1000,
        simultaneous_tolerance_w=1e-3)
