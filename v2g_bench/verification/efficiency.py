"""Round-trip efficiency AC -> DC -> AC from energy counters, per power level, with its uncertainty.

A cycle charges from the grid and discharges back until the battery is at the SOC it started from, so the
battery's stored energy cancels and RTE = E_ac_out / E_ac_in. With DC counters too, the one-way
efficiencies eta_charge = E_dc_in / E_ac_in and eta_discharge = E_ac_out / E_dc_out follow.

Uncertainty (GUM): each counter's stated accuracy +-(pct_reading % of reading + pct_range % of range * time)
is taken as the half-width of a rectangular distribution (u = a / sqrt(3)); the two counters are treated as
uncorrelated (conservative: a common gain error would cancel in the ratio); U = k * u_c with k = 2.
Decision rule against a claimed minimum (guarded acceptance, ILAC-G8): pass if RTE - U >= claim, fail if
RTE + U < claim, otherwise inconclusive.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from v2g_bench.verification.result import Check, SampleError, VerificationResult, as_series, as_timestamps

CITE_RTE = "ILAC-G8:09/2019 guarded acceptance; JCGM 100:2008 (GUM)"


class EfficiencyResult(VerificationResult):
    pass


@dataclass(frozen=True)
class MeterAccuracy:
    """Stated accuracy of an energy channel: +-(pct_reading % of reading + pct_range % of range_w over the time)."""

    pct_reading: float
    pct_range: float = 0.0
    range_w: float = 0.0

    def limit_wh(self, energy_wh: float, duration_s: float) -> float:
        return self.pct_reading / 100 * abs(energy_wh) + self.pct_range / 100 * self.range_w * duration_s / 3600


@dataclass
class Cycle:
    power_level_w: float
    ac_in_wh: float
    ac_out_wh: float
    soc_start: float              # same unit for start and end (kWh or %)
    soc_end: float
    charge_duration_s: float
    discharge_duration_s: float
    dc_in_wh: float | None = None
    dc_out_wh: float | None = None


def cycle_from_counters(t_s, ac_import_wh, ac_export_wh, soc, *, power_level_w: float,
                        dc_import_wh=None, dc_export_wh=None) -> Cycle:
    """A cycle from cumulative counters sampled over it (first sample = start, last = end)."""
    w = "round-trip counters"
    t = as_timestamps("t_s", t_s, where=w)
    n = t.size
    imp = as_series("ac_import_wh", ac_import_wh, where=w, n=n)
    exp = as_series("ac_export_wh", ac_export_wh, where=w, n=n)
    s = as_series("soc", soc, where=w, n=n)
    for name, c in (("ac_import_wh", imp), ("ac_export_wh", exp)):
        back = np.flatnonzero(np.diff(c) < -1e-9)
        if back.size:
            raise SampleError(f"{name}[{back[0] + 1}] decreased: an energy counter must not run backwards "
                              f"(reset or wrap during the cycle?)", where=w)
    moving_in = np.append(np.diff(imp) > 0, False)
    moving_out = np.append(np.diff(exp) > 0, False)
    dt = np.append(np.diff(t), 0.0)
    kw = {}
    if dc_import_wh is not None and dc_export_wh is not None:
        kw["dc_in_wh"] = float(np.ptp(as_series("dc_import_wh", dc_import_wh, where=w, n=n)))
        kw["dc_out_wh"] = float(np.ptp(as_series("dc_export_wh", dc_export_wh, where=w, n=n)))
    return Cycle(power_level_w, float(imp[-1] - imp[0]), float(exp[-1] - exp[0]), float(s[0]), float(s[-1]),
                 float(np.sum(dt[moving_in])), float(np.sum(dt[moving_out])), **kw)


def judge_round_trip(cycles: list[Cycle], *, ac_accuracy: MeterAccuracy, dc_accuracy: MeterAccuracy | None = None,
                     soc_tolerance: float, min_rte: float | None = None, k: float = 2.0) -> EfficiencyResult:
    res = EfficiencyResult("round-trip efficiency")
    levels = []
    for i, cy in enumerate(cycles):
        where = f"cycle {i} ({cy.power_level_w:g} W)"
        row = {"power_level_w": cy.power_level_w, "ac_in_wh": cy.ac_in_wh, "ac_out_wh": cy.ac_out_wh}
        if cy.ac_in_wh <= 0 or cy.ac_out_wh <= 0:
            raise SampleError(f"ac_in_wh = {cy.ac_in_wh}, ac_out_wh = {cy.ac_out_wh}: both must be > 0", where=where)
        if abs(cy.soc_end - cy.soc_start) > soc_tolerance:
            res.reasons.append(f"{where}: SOC {cy.soc_start:g} -> {cy.soc_end:g} differs by more than "
                               f"{soc_tolerance:g}: stored energy does not cancel, no RTE")
            row["rte"] = float("nan")
            levels.append(row)
            continue
        rte = cy.ac_out_wh / cy.ac_in_wh
        u_in = ac_accuracy.limit_wh(cy.ac_in_wh, cy.charge_duration_s) / math.sqrt(3)
        u_out = ac_accuracy.limit_wh(cy.ac_out_wh, cy.discharge_duration_s) / math.sqrt(3)
        u_rel = math.hypot(u_in / cy.ac_in_wh, u_out / cy.ac_out_wh)
        row.update({"rte": rte, "u_rte": rte * u_rel, "U_rte": k * rte * u_rel, "k": k})
        if cy.dc_in_wh is not None and cy.dc_out_wh is not None and cy.dc_in_wh > 0 and cy.dc_out_wh > 0:
            row["eta_charge"] = cy.dc_in_wh / cy.ac_in_wh
            row["eta_discharge"] = cy.ac_out_wh / cy.dc_out_wh
            if dc_accuracy is not None:
                ud_in = dc_accuracy.limit_wh(cy.dc_in_wh, cy.charge_duration_s) / math.sqrt(3)
                ud_out = dc_accuracy.limit_wh(cy.dc_out_wh, cy.discharge_duration_s) / math.sqrt(3)
                row["U_eta_charge"] = k * row["eta_charge"] * math.hypot(ud_in / cy.dc_in_wh, u_in / cy.ac_in_wh)
                row["U_eta_discharge"] = k * row["eta_discharge"] * math.hypot(u_out / cy.ac_out_wh,
                                                                                ud_out / cy.dc_out_wh)
        levels.append(row)
        if min_rte is not None:
            U = row["U_rte"]
            chk = Check(f"RTE at {cy.power_level_w / 1000:g} kW", rte, min_rte, "", ">=", cite=CITE_RTE,
                        detail=f"{100 * rte:.2f} % +- {100 * U:.2f} % (k={k:g})")
            if rte - U >= min_rte:
                chk.passed = True
            elif rte + U < min_rte:
                chk.passed = False
            else:
                chk.passed = None
                res.reasons.append(f"RTE at {cy.power_level_w:g} W: {rte:.4f} +- {U:.4f} straddles the claim {min_rte:g}")
            res.checks.append(chk)
        else:
            res.checks.append(Check(f"RTE at {cy.power_level_w / 1000:g} kW", rte, None, "", cite=CITE_RTE,
                                    detail=f"{100 * rte:.2f} % +- {100 * row['U_rte']:.2f} % (k={k:g})"))
    res.metrics["levels"] = levels
    if min_rte is None and not res.reasons:
        # measured only: a verdict needs a claim; report as pass when every cycle gave a number
        res.checks.append(Check("cycles with a valid RTE", float(sum(np.isfinite(r["rte"]) for r in levels)),
                                float(len(levels)), "", ">="))
    return res
