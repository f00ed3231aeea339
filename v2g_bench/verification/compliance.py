"""Power-schedule compliance: measured power (timestamped samples) against the commanded step profile.

Definitions (all times from the instant the new setpoint applies, movement from the MEASURED level before it):
  dead time       first time the power has moved 5 % of the commanded step, in its direction
  t10 / t50 / t90 first time it covered 10 / 50 / 90 % of the way to the new setpoint (interpolated)
  settling time   when the error last left the tolerance band before the next step (inf if never settled)
  ramp rate       0.8 * |step| / (t90 - t10)
  steady state    samples later than `settle_s` after a setpoint change: RMS / max error and the time outside
                  the band are computed there, so an allowed transient is not counted twice
  energy          per commanded interval: integral of the measured power (trapezoid, interpolated at the interval
                  edges) minus commanded power x duration
  exceedance      integral of power beyond the charge / discharge limits, in kW*s, from settle_s after the
                  profile starts (the DUT may ramp down from a higher pre-profile level) to its end
Units: W, s, kWh for energies, kW*s for exceedance. Sign: + = into the EV.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from v2g_bench.verification.result import Check, SampleError, VerificationResult, as_series, as_timestamps

CITE_PROFILE = "DUT profile [power_tracking]"
CITE_OCPP = "OCPP 2.0.1 K01/K08 (charging profile shall be followed)"


class ComplianceResult(VerificationResult):
    pass


@dataclass
class CommandedProfile:
    """A step profile on the samples' clock: power_w[k] applies from starts_s[k] until the next start/end_s."""

    starts_s: np.ndarray
    power_w: np.ndarray
    end_s: float

    def __post_init__(self):
        w = "commanded profile"
        self.starts_s = as_timestamps("starts_s", self.starts_s, where=w, min_len=1)
        self.power_w = as_series("power_w", self.power_w, where=w, n=self.starts_s.size)
        self.end_s = float(self.end_s)
        if not np.isfinite(self.end_s) or self.end_s <= self.starts_s[-1]:
            raise SampleError(f"end_s = {self.end_s} is not after the last start {self.starts_s[-1]}", where=w)

    @property
    def ends_s(self) -> np.ndarray:
        return np.append(self.starts_s[1:], self.end_s)

    def at(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        k = np.clip(np.searchsorted(self.starts_s, t, side="right") - 1, 0, self.starts_s.size - 1)
        return self.power_w[k]

    @classmethod
    def from_steps(cls, steps, end_s: float) -> "CommandedProfile":
        steps = list(steps)
        return cls(np.array([s[0] for s in steps], float), np.array([s[1] for s in steps], float), end_s)

    @classmethod
    def from_schedule(cls, schedule: dict, t0_s: float = 0.0) -> "CommandedProfile":
        """From an OCPP-style charging schedule (startPeriod s, limit W, duration s) starting at t0_s."""
        from v2g_bench.scheduler.ocpp import periods_to_steps
        starts, limits, duration = periods_to_steps(schedule)
        return cls(t0_s + starts, limits, t0_s + duration)

    @classmethod
    def from_plan(cls, plan, ev: str | None = None, t0_s: float = 0.0) -> "CommandedProfile":
        from v2g_bench.scheduler.ocpp import to_charging_schedule
        return cls.from_schedule(to_charging_schedule(plan, ev), t0_s)

    def scaled(self, time_scale: float, t0_s: float = 0.0) -> "CommandedProfile":
        """Compress time (a lab running x times faster than real time): plan second s -> t0 + s / scale."""
        base = self.starts_s[0]
        return CommandedProfile(t0_s + (self.starts_s - base) / time_scale, self.power_w.copy(),
                                t0_s + (self.end_s - base) / time_scale)


@dataclass
class Tolerance:
    """What the DUT must achieve; None disables a criterion (it is still measured and reported)."""

    band_w: float = 500.0                 # absolute tracking band
    band_pct: float = 0.0                 # plus this % of |setpoint|
    settle_s: float = 5.0                 # transient allowance after each setpoint change
    dead_time_max_s: float | None = 1.0
    t90_max_s: float | None = 5.0
    settling_max_s: float | None = None
    rms_max_w: float | None = None
    max_error_w: float | None = None
    time_outside_max_s: float | None = 0.0
    energy_dev_max_pct: float | None = 2.0
    energy_dev_floor_kwh: float = 0.005   # absolute allowance so near-zero intervals are not judged in %
    ramp_max_w_per_s: float | None = None  # grid code: not faster than
    ramp_min_w_per_s: float | None = None  # DUT claim: at least
    max_charge_w: float | None = None
    max_discharge_w: float | None = None
    exceedance_max_kws: float | None = 0.0
    min_step_w: float = 1000.0            # smaller setpoint changes are not analysed as steps
    coverage_slack_s: float = 0.5         # samples may start/end this much inside the profile
    max_sample_gap_s: float | None = 1.0  # a longer gap between samples makes the verdict inconclusive
    cite: str = CITE_PROFILE

    @classmethod
    def from_dut_profile(cls, table: dict, *, where: str = "dut profile [power_tracking]") -> "Tolerance":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(table) - known)
        if unknown:
            raise SampleError(f"unknown tolerance key(s) {', '.join(unknown)}", where=where,
                              fix=f"allowed: {', '.join(sorted(known))}")
        return cls(**table)

    @classmethod
    def from_dut_tolerances(cls, tolerances: dict, *, max_charge_w: float | None = None,
                            max_discharge_w: float | None = None, **overrides) -> "Tolerance":
        """From the DUT profile's [tolerances] table (power_abs_w, power_rel, settle_s, dead_time_max_s,
        t90_max_s); its other keys (energy_rel, current_abs_a, round_trip_efficiency_min) belong to other judges."""
        mapping = {"power_abs_w": ("band_w", 1.0), "power_rel": ("band_pct", 100.0), "settle_s": ("settle_s", 1.0),
                   "dead_time_max_s": ("dead_time_max_s", 1.0), "t90_max_s": ("t90_max_s", 1.0)}
        kw = {}
        for key, (field_name, scale) in mapping.items():
            if key in tolerances:
                v = tolerances[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                    raise SampleError(f"tolerances.{key} = {v!r} must be a number >= 0", where="DUT profile")
                kw[field_name] = float(v) * scale
        kw.update(max_charge_w=max_charge_w, max_discharge_w=max_discharge_w)
        kw.update(overrides)
        return cls(**kw)

    def band_at(self, setpoint_w: np.ndarray) -> np.ndarray:
        return self.band_w + self.band_pct / 100.0 * np.abs(setpoint_w)


def _normalise_samples(samples) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(samples, dict):
        t, p = samples.get("t_s"), samples.get("power_w")
    elif isinstance(samples, (tuple, list)) and len(samples) == 2:
        t, p = samples
    else:
        t, p = getattr(samples, "t_s", None), getattr(samples, "power_w", None)
    t = as_timestamps("t_s", t, where="measured samples")
    p = as_series("power_w", p, where="measured samples", n=t.size)
    return t, p


def integrate(t: np.ndarray, y: np.ndarray, a: float, b: float) -> float:
    """Trapezoid integral of the sampled y over [a, b] (values interpolated at the edges)."""
    inside = (t > a) & (t < b)
    tt = np.concatenate([[a], t[inside], [b]])
    yy = np.concatenate([[np.interp(a, t, y)], y[inside], [np.interp(b, t, y)]])
    return float(np.sum(0.5 * (yy[1:] + yy[:-1]) * np.diff(tt)))


def _crossing(t, y, level):
    """First time the normalised response y reaches `level` (interpolated); inf if it never does in the
    window (nan is kept for "not applicable": a step the DUT had already made)."""
    idx = np.flatnonzero(y >= level)
    if idx.size == 0:
        return float("inf")
    i = int(idx[0])
    if i == 0:
        return float(t[0])
    t0, t1, y0, y1 = t[i - 1], t[i], y[i - 1], y[i]
    return float(t0 + (level - y0) / (y1 - y0) * (t1 - t0)) if y1 != y0 else float(t1)


def pre_step_level(t: np.ndarray, p: np.ndarray, ts: float, window_s: float) -> float:
    """The MEASURED level just before a step at ts: the mean of the samples in [ts - window_s, ts) (the
    value interpolated at ts when none fall there). Judging from the commanded level instead would count a
    steady offset inside the band as movement (dead time 0 for a DUT that has not reacted yet)."""
    m = (t >= ts - window_s) & (t < ts)
    return float(np.mean(p[m])) if m.any() else float(np.interp(ts, t, p))


def step_responses(cmd: CommandedProfile, t: np.ndarray, p: np.ndarray, tol: Tolerance) -> list[dict]:
    """Per commanded step: dead time / t10 / t50 / t90 measured from the measured level before the step.

    Dead time: the power has moved 5 % of the commanded step from that level IN THE COMMANDED DIRECTION (a DUT
    that moves the wrong way - a sign error - never gets a dead time). tXX: it has covered XX % of the way from
    that level to the new setpoint; when the DUT already sat within 5 % of the step of the new setpoint, there is
    no way to cover and tXX is not measured (nan)."""
    out = []
    ends = cmd.ends_s
    for k in range(1, cmd.starts_s.size):
        dp = cmd.power_w[k] - cmd.power_w[k - 1]
        if abs(dp) < tol.min_step_w:
            continue
        ts, te = cmd.starts_s[k], ends[k]
        m = (t >= ts) & (t < te)
        if m.sum() < 2 or t[0] > ts:
            continue
        # the level before the step: measured over the last settle_s (at most half the previous interval)
        window = max(min(tol.settle_s, 0.5 * (ts - cmd.starts_s[k - 1])), 1e-9)
        p0 = pre_step_level(t, p, ts, window)
        tt = np.concatenate([[ts], t[m]])
        pp = np.concatenate([[np.interp(ts, t, p)], p[m]])
        rel = tt - ts
        toward = (pp - p0) * np.sign(dp) / abs(dp)       # fraction of the commanded step moved its way
        way = cmd.power_w[k] - p0
        r = {"t_s": float(ts), "from_w": float(cmd.power_w[k - 1]), "to_w": float(cmd.power_w[k]),
             "measured_before_w": p0, "dead_time_s": _crossing(rel, toward, 0.05)}
        if way * np.sign(dp) > 0.05 * abs(dp):
            y = (pp - p0) / way
            r.update(t10_s=_crossing(rel, y, 0.10), t50_s=_crossing(rel, y, 0.50), t90_s=_crossing(rel, y, 0.90))
        else:
            r.update(t10_s=float("nan"), t50_s=float("nan"), t90_s=float("nan"),
                     note=f"measured {p0:.0f} W before the step, already at the new setpoint: no tXX")
        band = tol.band_at(np.array([cmd.power_w[k]]))[0]
        outside = np.flatnonzero(np.abs(pp - cmd.power_w[k]) > band)
        if outside.size == 0:
            r["settling_s"] = 0.0
        elif outside[-1] == pp.size - 1:
            r["settling_s"] = float("inf")
        else:
            r["settling_s"] = float(rel[outside[-1] + 1])
        r["ramp_w_per_s"] = (0.8 * abs(way) / (r["t90_s"] - r["t10_s"])
                             if np.isfinite(r["t90_s"]) and r["t90_s"] > r["t10_s"] else float("nan"))
        out.append(r)
    return out


def judge_schedule(commanded: CommandedProfile, samples, tolerance: Tolerance | None = None) -> ComplianceResult:
    """Judge measured power against the commanded profile; see the module doc for the definitions."""
    tol = tolerance or Tolerance()
    t, p = _normalise_samples(samples)
    res = ComplianceResult("power-schedule compliance")
    lo, hi = commanded.starts_s[0], commanded.end_s
    cover = (t >= lo) & (t <= hi)
    if cover.sum() < 2:
        res.reasons.append(f"no samples inside the commanded profile [{lo:.3f}, {hi:.3f}] s "
                           f"(samples span [{t[0]:.3f}, {t[-1]:.3f}] s)")
        return res
    # a verdict on part of the profile is not a verdict on the profile: say so (inconclusive), never pass it
    span = min(t[-1], hi) - max(t[0], lo)
    m0 = res.metrics
    m0["coverage"] = float(span / (hi - lo))
    m0["max_sample_gap_s"] = float(np.max(np.diff(t[cover]))) if cover.sum() > 1 else float("inf")
    if t[0] > lo + tol.coverage_slack_s or t[-1] < hi - tol.coverage_slack_s:
        res.reasons.append(f"samples cover [{max(t[0], lo):.3f}, {min(t[-1], hi):.3f}] s of the profile "
                           f"[{lo:.3f}, {hi:.3f}] s ({100 * m0['coverage']:.1f} %)")
    if tol.max_sample_gap_s is not None and m0["max_sample_gap_s"] > tol.max_sample_gap_s:
        res.reasons.append(f"a gap of {m0['max_sample_gap_s']:.3f} s between samples exceeds "
                           f"max_sample_gap_s = {tol.max_sample_gap_s:g} s: what happened in it is unknown")
    tc, pc = t[cover], p[cover]
    cmd = commanded.at(tc)
    err = pc - cmd
    band = tol.band_at(cmd)
    # steady-state mask: not within settle_s of a setpoint change
    k = np.searchsorted(commanded.starts_s, tc, side="right") - 1
    since = tc - commanded.starts_s[np.clip(k, 0, None)]
    steady = since >= tol.settle_s
    dt = np.diff(tc, append=2 * tc[-1] - tc[-2])  # the last sample stands for one more period
    m = res.metrics
    m["samples"] = int(tc.size)
    m["rms_error_w_all"] = float(np.sqrt(np.mean(err ** 2)))
    m["max_error_w_all"] = float(np.max(np.abs(err)))
    if steady.any():
        m["rms_error_w"] = float(np.sqrt(np.mean(err[steady] ** 2)))
        m["max_error_w"] = float(np.max(np.abs(err[steady])))
    else:
        m["rms_error_w"] = m["max_error_w"] = float("nan")
        res.reasons.append(f"no steady-state samples (every sample is within settle_s = {tol.settle_s} s of a change)")
    m["time_outside_band_s"] = float(np.sum(dt[steady & (np.abs(err) > band)]))
    # per-interval energy
    rows = []
    for a, b, w in zip(commanded.starts_s, commanded.ends_s, commanded.power_w):
        if t[0] > a + 1e-9 or t[-1] < b - 1e-9:
            continue  # interval not fully covered by samples: no energy verdict for it
        e_meas = integrate(t, p, a, b) / 3.6e6
        e_cmd = w * (b - a) / 3.6e6
        allow = max(tol.energy_dev_floor_kwh, (tol.energy_dev_max_pct or 0.0) / 100 * abs(e_cmd))
        rows.append({"start_s": float(a), "end_s": float(b), "commanded_kwh": e_cmd, "measured_kwh": e_meas,
                     "deviation_kwh": e_meas - e_cmd,
                     "deviation_pct": (100 * (e_meas - e_cmd) / abs(e_cmd)) if e_cmd else float("nan"),
                     "allowed_kwh": allow})
    m["intervals"] = rows
    if not rows:
        res.reasons.append("no commanded interval is fully covered by samples (no energy verdict)")
    # limits
    exc = np.zeros_like(p)
    if tol.max_charge_w is not None:
        exc += np.clip(p - tol.max_charge_w, 0, None)
    if tol.max_discharge_w is not None:
        exc += np.clip(-p - tol.max_discharge_w, 0, None)
    # only while the profile applies, after the same settling allowance as tracking: before it the DUT may
    # legitimately run at other limits and needs time to ramp into the new ones
    a_exc, b_exc = max(t[0], lo + tol.settle_s), min(t[-1], hi)
    m["limit_exceedance_kws"] = integrate(t, exc, a_exc, b_exc) / 1000.0 if b_exc > a_exc else 0.0
    steps = step_responses(commanded, t, p, tol)
    m["steps"] = steps
    c = res.checks
    cite = tol.cite
    c.append(Check("max steady-state error", m["max_error_w"], tol.max_error_w, "W", cite=cite))
    c.append(Check("RMS steady-state error", m["rms_error_w"], tol.rms_max_w, "W", cite=cite))
    c.append(Check("time outside tolerance band", m["time_outside_band_s"], tol.time_outside_max_s, "s", cite=cite,
                   detail=f"band {tol.band_w:g} W + {tol.band_pct:g} % of setpoint, after {tol.settle_s:g} s settling"))
    if rows:
        worst = max(rows, key=lambda r: abs(r["deviation_kwh"]) / r["allowed_kwh"])
        c.append(Check("worst interval energy deviation", abs(worst["deviation_kwh"]),
                       worst["allowed_kwh"] if tol.energy_dev_max_pct is not None else None, "kWh", cite=CITE_OCPP,
                       detail=f"interval at {worst['start_s']:.1f} s: {worst['measured_kwh']:.4f} kWh measured vs "
                              f"{worst['commanded_kwh']:.4f} kWh commanded"))
    c.append(Check("limit exceedance", m["limit_exceedance_kws"],
                   tol.exceedance_max_kws if (tol.max_charge_w is not None or tol.max_discharge_w is not None) else None,
                   "kW*s", cite=cite))
    for s in steps:
        label = f"step {s['from_w']:.0f}->{s['to_w']:.0f} W at {s['t_s']:.2f} s"
        for key, limit, unit, op in (("dead_time_s", tol.dead_time_max_s, "s", "<="),
                                     ("t90_s", tol.t90_max_s, "s", "<="),
                                     ("settling_s", tol.settling_max_s, "s", "<=")):
            v = s[key]
            if key == "t90_s" and "note" in s:
                continue   # the DUT sat at the new setpoint before the step: nothing to time (dead time still judged)
            chk = Check(f"{label}: {key[:-2]}", v if np.isfinite(v) else float("inf"), limit, unit, op, cite=cite)
            if limit is not None and not np.isfinite(v):
                chk.passed = False
                chk.detail = ("never moved toward the new setpoint" if key == "dead_time_s" else "never reached")
            c.append(chk)
        if tol.ramp_max_w_per_s is not None and np.isfinite(s["ramp_w_per_s"]):
            c.append(Check(f"{label}: ramp", s["ramp_w_per_s"], tol.ramp_max_w_per_s, "W/s", "<=", cite=cite))
        if tol.ramp_min_w_per_s is not None:
            c.append(Check(f"{label}: ramp", s["ramp_w_per_s"] if np.isfinite(s["ramp_w_per_s"]) else 0.0,
                           tol.ramp_min_w_per_s, "W/s", ">=", cite=cite))
    return res
