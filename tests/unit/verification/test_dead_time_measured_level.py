"""Dead time is measured from the MEASURED level before a step (issue 15), not from the commanded one.

Two defects of the old definition, each with synthetic samples whose true dead time is known:
- a DUT that reacts 2 s late but sits at a steady offset inside the band (>= 5 % of the step) was reported
  with dead time 0 (the offset already looked like 5 % of movement);
- a DUT with a sign error (it discharges when told to charge) was reported with dead time 0 on later steps.
"""
import numpy as np
import pytest

from v2g_bench.verification import CommandedProfile, Tolerance, judge_schedule

T = np.arange(0.0, 40.0, 0.05)
TOL = Tolerance(band_w=1000.0, settle_s=5.0, dead_time_max_s=1.0, t90_max_s=6.0, time_outside_max_s=None,
                energy_dev_max_pct=None)


def ramp_after(t, t_react, start_w, end_w, ramp_w_per_s=5000.0):
    return np.where(t < t_react, start_w, np.clip(start_w + np.sign(end_w - start_w) * ramp_w_per_s * (t - t_react),
                                                  min(start_w, end_w), max(start_w, end_w)))


def step(res, at_s):
    return next(s for s in res.metrics["steps"] if abs(s["t_s"] - at_s) < 1e-9)


def test_late_reaction_with_steady_offset_inside_the_band_has_its_real_dead_time():
    cmd = CommandedProfile.from_steps([(0.0, 0.0), (10.0, 10_000.0)], end_s=T[-1])
    offset = 600.0                                   # inside the 1 kW band, 6 % of the 10 kW step
    p = offset + ramp_after(T, 12.0, 0.0, 10_000.0)  # reacts 2 s after the step
    res = judge_schedule(cmd, (T, p), TOL)
    s = step(res, 10.0)
    assert s["measured_before_w"] == pytest.approx(offset)
    # 5 % of 10 kW at 5 kW/s after a 2 s delay: 2.1 s (the old definition said 0)
    assert s["dead_time_s"] == pytest.approx(2.1, abs=0.06)
    failed = {c.name for c in res.failed}
    assert any(n.endswith("dead_time") for n in failed), res.summary()
    assert res.verdict == "fail"


def test_prompt_reaction_with_the_same_offset_passes():
    cmd = CommandedProfile.from_steps([(0.0, 0.0), (10.0, 10_000.0)], end_s=T[-1])
    p = 600.0 + ramp_after(T, 10.2, 0.0, 10_000.0)
    res = judge_schedule(cmd, (T, p), TOL)
    assert step(res, 10.0)["dead_time_s"] == pytest.approx(0.3, abs=0.06)
    assert res.verdict == "pass", res.summary()


def test_sign_error_never_gets_a_dead_time_on_later_steps():
    cmd = CommandedProfile.from_steps([(0.0, 0.0), (10.0, 5000.0), (20.0, -5000.0), (30.0, 5000.0)], end_s=T[-1])
    want = cmd.at(T)
    # the DUT applies every setpoint with the wrong sign, promptly
    p = np.interp(T - 0.2, T, -want)
    res = judge_schedule(cmd, (T, p), TOL)
    for at in (10.0, 20.0, 30.0):
        s = step(res, at)
        assert not np.isfinite(s["dead_time_s"]), s     # it never moved toward the commanded setpoint
    dead_checks = [c for c in res.checks if c.name.endswith("dead_time")]
    assert len(dead_checks) == 3 and all(c.passed is False for c in dead_checks)
    assert all("never moved" in c.detail for c in dead_checks)
    assert res.verdict == "fail"


def test_correct_sign_same_steps_pass():
    cmd = CommandedProfile.from_steps([(0.0, 0.0), (10.0, 5000.0), (20.0, -5000.0), (30.0, 5000.0)], end_s=T[-1])
    p = np.zeros_like(T)
    for a, b, w0, w1 in ((10, 20, 0, 5000), (20, 30, 5000, -5000), (30, 99, -5000, 5000)):
        m = T >= a
        p[m] = ramp_after(T[m], a + 0.2, w0, w1)
    res = judge_schedule(cmd, (T, p), TOL)
    assert [round(step(res, a)["dead_time_s"], 2) for a in (10.0, 20.0, 30.0)] == [0.25, 0.3, 0.3]
    assert res.verdict == "pass", res.summary()
