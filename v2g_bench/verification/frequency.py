"""Frequency response (FCR-style droop) from timestamped frequency and power samples.

Expected response: dP = droop * (f - f0) beyond the deadband (under-frequency -> less charging / more
discharge, sign + = into the EV), clipped to the reserved power. Measured after the frequency first leaves
the deadband (the event):
  activation delay     time until the power has moved 10 % of the expected full response
  full activation      time until it stays within the droop tolerance of the expected response
  droop accuracy       mean measured dP / expected dP over the hold window, in %
  hold time            how long it then stays within tolerance while the deviation persists
Anchors (defaults are arguments, so a DUT/TSO profile can change them):
  ENTSO-E SOGL (EU 2017/1485) Annex V: CE FCR full activation within 30 s at +-200 mHz;
  RfG (EU 2016/631) Art. 15(2)(d): initial delay <= 2 s; FCR endurance 15 min (SOGL Art. 156).
"""
from __future__ import annotations

import numpy as np

from v2g_bench.verification.result import Check, VerificationResult, as_series, as_timestamps

CITE_FULL = "SOGL 2017/1485 Annex V (FCR full activation 30 s)"
CITE_DELAY = "RfG 2016/631 Art.15(2)(d) (initial delay 2 s)"
CITE_HOLD = "SOGL 2017/1485 Art.156 (FCR endurance)"


class FrequencyResponseResult(VerificationResult):
    pass


def expected_response_w(f_hz, *, nominal_hz: float, droop_w_per_hz: float, deadband_hz: float,
                        reserved_w: float | None) -> np.ndarray:
    df = np.asarray(f_hz, float) - nominal_hz
    eff = np.sign(df) * np.clip(np.abs(df) - deadband_hz, 0, None)
    dp = droop_w_per_hz * eff
    if reserved_w is not None:
        dp = np.clip(dp, -reserved_w, reserved_w)
    return dp


def judge_frequency_response(t_s, frequency_hz, power_w, *, nominal_hz: float = 50.0, droop_w_per_hz: float,
                             deadband_hz: float = 0.0, baseline_w: float | None = None,
                             reserved_w: float | None = None, activation_delay_max_s: float | None = 2.0,
                             full_activation_max_s: float | None = 30.0, droop_tolerance_pct: float = 10.0,
                             hold_min_s: float | None = None) -> FrequencyResponseResult:
    w = "frequency response samples"
    t = as_timestamps("t_s", t_s, where=w)
    f = as_series("frequency_hz", frequency_hz, where=w, n=t.size)
    p = as_series("power_w", power_w, where=w, n=t.size)
    res = FrequencyResponseResult("frequency response")
    m = res.metrics
    dev = np.abs(f - nominal_hz) > deadband_hz + 1e-12
    if not dev.any():
        res.reasons.append(f"the frequency never left the deadband {nominal_hz:g} +- {deadband_hz:g} Hz")
        return res
    i0 = int(np.flatnonzero(dev)[0])
    if i0 == 0:
        res.reasons.append("no samples before the frequency event: baseline unknown")
        return res
    t_ev = float(t[i0])
    base = float(np.mean(p[:i0])) if baseline_w is None else float(baseline_w)
    exp = expected_response_w(f, nominal_hz=nominal_hz, droop_w_per_hz=droop_w_per_hz, deadband_hz=deadband_hz,
                              reserved_w=reserved_w)
    dp = p - base
    after = t >= t_ev
    # window in which the deviation persists (same sign as at the event)
    sgn = np.sign(exp[i0]) if exp[i0] != 0 else np.sign(f[i0] - nominal_hz)
    persist = after & dev & (np.sign(f - nominal_hz) == np.sign(f[i0] - nominal_hz))
    last = int(np.flatnonzero(persist)[-1])
    end_ev = float(t[last])  # last sample still outside the deadband: the response is judged up to here
    win = (t >= t_ev) & (t <= end_ev)
    full = float(np.max(np.abs(exp[win]))) if win.any() else 0.0
    m.update({"event_t_s": t_ev, "baseline_w": base, "expected_full_w": float(sgn * full),
              "deviation_hz": float(f[i0] - nominal_hz), "event_end_s": end_ev})
    if full <= 0:
        res.reasons.append("expected response is zero (deviation inside the deadband after clipping)")
        return res
    rel = t[win] - t_ev
    y = dp[win] * sgn / full  # 1.0 = full expected response
    # activation delay: 10 % of the full response
    reach = np.flatnonzero(y >= 0.10)
    m["activation_delay_s"] = float(rel[reach[0]]) if reach.size else float("inf")
    tol = droop_tolerance_pct / 100.0
    within = np.abs(dp[win] - exp[win]) <= tol * np.maximum(np.abs(exp[win]), 1e-9)
    # full activation: from here on (within the event) it stays within tolerance
    if within[-1]:
        out = np.flatnonzero(~within)
        k = 0 if out.size == 0 else int(out[-1]) + 1
        m["full_activation_s"] = float(rel[k])
        hold = win.copy()
        hold[np.flatnonzero(win)[:k]] = False
        m["hold_s"] = float(rel[-1] - rel[k])
        m["droop_accuracy_pct"] = float(100.0 * np.mean(dp[hold] / exp[hold])) if hold.any() else float("nan")
    else:
        m["full_activation_s"] = float("inf")
        m["hold_s"] = 0.0
        tail = win & (t >= t_ev + (full_activation_max_s or 0.0))
        m["droop_accuracy_pct"] = (float(100.0 * np.mean(dp[tail] / exp[tail])) if tail.any() and np.all(exp[tail] != 0)
                                   else float("nan"))
    c = res.checks
    observed = end_ev - t_ev
    c.append(Check("activation delay", m["activation_delay_s"], activation_delay_max_s, "s", cite=CITE_DELAY))
    full_chk = Check("time to full activation", m["full_activation_s"], full_activation_max_s, "s", cite=CITE_FULL)
    if not np.isfinite(m["full_activation_s"]) and full_activation_max_s is not None and observed < full_activation_max_s:
        # not reached yet, but the data (or the event) ended before the allowed time: no verdict
        full_chk.passed = None
        res.reasons.append(f"the event was observed for {observed:.1f} s only, less than the "
                           f"{full_activation_max_s:g} s allowed for full activation")
    c.append(full_chk)
    acc = m["droop_accuracy_pct"]
    acc_chk = Check("droop accuracy error", abs(acc - 100.0) if np.isfinite(acc) else float("inf"),
                    droop_tolerance_pct, "%", cite=CITE_FULL, detail=f"measured/expected = {acc:.2f} %")
    if full_chk.passed is None and not np.isfinite(acc):
        acc_chk.passed = None   # nothing after full activation to average over
    c.append(acc_chk)
    if hold_min_s is not None:
        hold = Check("hold time", m["hold_s"], hold_min_s, "s", ">=", cite=CITE_HOLD,
                     detail=f"event lasted {observed:.1f} s in the samples")
        if hold.passed is False and np.isfinite(m["full_activation_s"]) and \
                observed - m["full_activation_s"] < hold_min_s:
            hold.passed = None   # it held for as long as the event (or the recording) lasted
            res.reasons.append(f"the event lasted {observed:.1f} s: too short to show a {hold_min_s:g} s hold")
        c.append(hold)
    return res
