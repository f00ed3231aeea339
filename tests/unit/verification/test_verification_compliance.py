"""Power-schedule compliance on synthetic charger responses with known answers."""
import math

import numpy as np
import pytest

from v2g_bench.errors import BenchError, Nonconformance
from v2g_bench.verification import CommandedProfile, SampleError, Tolerance, judge_schedule
from v2g_bench.verification.plots import attach, plot_power_tracking

DT = 0.01


def first_order(cmd: CommandedProfile, t, tau, dead, offset=0.0):
    """Exact response of a first-order lag with dead time to the step profile (continuous time)."""
    p = np.full_like(t, cmd.power_w[0])
    for k in range(1, cmd.starts_s.size):
        dp = cmd.power_w[k] - cmd.power_w[k - 1]
        s = t - cmd.starts_s[k] - dead
        p += np.where(s > 0, dp * (1 - np.exp(-np.clip(s, 0, None) / tau)), 0.0)
    return p + offset


CMD = CommandedProfile.from_steps([(0, 0), (10, 7000), (40, -5000)], 70)
T = np.arange(0, 70 + DT / 2, DT)


def test_timing_figures_match_the_analytic_response():
    tau, dead = 1.0, 0.3
    res = judge_schedule(CMD, (T, first_order(CMD, T, tau, dead)), Tolerance(band_w=100, settle_s=8))
    s = res.metrics["steps"][0]
    assert s["dead_time_s"] == pytest.approx(dead + tau * -math.log(0.95), abs=2e-3)
    assert s["t10_s"] == pytest.approx(dead + tau * -math.log(0.9), abs=2e-3)
    assert s["t50_s"] == pytest.approx(dead + tau * math.log(2), abs=2e-3)
    assert s["t90_s"] == pytest.approx(dead + tau * math.log(10), abs=2e-3)
    assert s["ramp_w_per_s"] == pytest.approx(0.8 * 7000 / (tau * (math.log(10) - -math.log(0.9))), rel=2e-3)
    # settles within 100 W of 7 kW when 7000 e^{-s/tau} = 100
    assert s["settling_s"] == pytest.approx(dead + tau * math.log(70), abs=0.02)
    assert res.verdict == "pass", res.summary()
    assert "DUT profile [power_tracking]" in res.cites


def test_a_lagging_power_stage_fails_t90_and_tracking():
    res = judge_schedule(CMD, (T, first_order(CMD, T, tau=6.0, dead=0.3)), Tolerance(band_w=200, settle_s=5))
    assert res.verdict == "fail"
    failed = {c.name for c in res.failed}
    assert any("t90" in n for n in failed)
    assert "time outside tolerance band" in failed
    with pytest.raises(Nonconformance, match="t90"):
        res.assert_pass()
    png = plot_power_tracking(CMD, T, first_order(CMD, T, 6.0, 0.3), Tolerance(band_w=200), title="lagging stage")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    attach("lagging-power-stage.png", png)


def test_energy_deviation_and_exceedance_by_hand():
    # constant +500 W offset for 30 s at 7 kW -> 500 * 30 / 3.6e6 kWh too much in that interval
    p = first_order(CMD, T, 0.01, 0.0, offset=500.0)
    tol = Tolerance(band_w=1000, energy_dev_max_pct=1.0, energy_dev_floor_kwh=0.001, max_charge_w=7200, max_discharge_w=6000, settle_s=1)
    res = judge_schedule(CMD, (T, p), tol)
    iv = {round(r["start_s"]): r for r in res.metrics["intervals"]}
    # minus what the 10 ms lag loses on the 7 kW step (7000 W * tau)
    assert iv[10]["deviation_kwh"] == pytest.approx((500 * 30 - 7000 * 0.01) / 3.6e6, rel=2e-3)
    assert iv[10]["commanded_kwh"] == pytest.approx(7000 * 30 / 3.6e6)
    # 300 W above the 7.2 kW charge limit for ~30 s -> ~9 kW*s
    assert res.metrics["limit_exceedance_kws"] == pytest.approx(0.3 * 30, rel=0.01)
    assert res.verdict == "fail"
    assert {c.name for c in res.failed} >= {"worst interval energy deviation", "limit exceedance"}


def test_time_outside_band_counts_only_steady_state():
    p = first_order(CMD, T, 0.2, 0.0)
    p[(T >= 20) & (T < 22)] += 1000.0        # a 2 s excursion in steady state
    res = judge_schedule(CMD, (T, p), Tolerance(band_w=300, settle_s=3, time_outside_max_s=1.0))
    assert res.metrics["time_outside_band_s"] == pytest.approx(2.0, abs=2 * DT)
    assert res.check("time outside tolerance band").passed is False


def test_out_of_order_samples_name_the_field():
    t = T.copy()
    t[100], t[101] = t[101], t[100]
    with pytest.raises(SampleError, match=r"t_s\[101\].*out of order") as ex:
        judge_schedule(CMD, (t, np.zeros_like(t)))
    assert isinstance(ex.value, BenchError)


def test_nan_power_names_the_field_and_index():
    p = np.zeros_like(T)
    p[42] = np.nan
    with pytest.raises(SampleError, match=r"power_w\[42\] is nan"):
        judge_schedule(CMD, {"t_s": T, "power_w": p})


def test_length_mismatch_and_bad_profile():
    with pytest.raises(SampleError, match="power_w has 3 values but the timestamps have 4"):
        judge_schedule(CMD, ([0, 1, 2, 3], [0, 0, 0]))
    with pytest.raises(SampleError, match="end_s"):
        CommandedProfile.from_steps([(0, 0), (10, 1)], 5)


def test_no_overlap_is_inconclusive_not_pass():
    res = judge_schedule(CMD, (np.arange(100.0, 110.0), np.zeros(10)))
    assert res.verdict == "inconclusive"


def test_tolerance_from_dut_profile_rejects_unknown_keys():
    tol = Tolerance.from_dut_profile({"band_w": 250.0, "t90_max_s": 3.0})
    assert tol.band_w == 250 and tol.t90_max_s == 3
    with pytest.raises(SampleError, match="unknown tolerance key"):
        Tolerance.from_dut_profile({"band": 1})


def test_partial_coverage_or_a_sampling_gap_is_inconclusive():
    p = first_order(CMD, T, 0.2, 0.0)
    keep = T < 50                                     # sampling stopped 20 s early
    res = judge_schedule(CMD, (T[keep], p[keep]), Tolerance(band_w=300))
    assert res.verdict == "inconclusive" and "samples cover" in res.reasons[0]
    assert res.metrics["coverage"] == pytest.approx(50 / 70, abs=1e-3)
    gap = (T < 20) | (T > 25)                         # 5 s without samples
    res = judge_schedule(CMD, (T[gap], p[gap]), Tolerance(band_w=300))
    assert res.verdict == "inconclusive" and "gap of 5.0" in res.reasons[0]


def test_tolerance_from_the_dut_profile_tolerances_table():
    import tomllib
    from pathlib import Path
    dut = tomllib.loads((Path(__file__).parents[3] / "profiles" / "virtual-dut.dut.toml").read_text())
    tol = Tolerance.from_dut_tolerances(dut["tolerances"], max_charge_w=11000, max_discharge_w=10000,
                                        energy_dev_max_pct=None)
    assert tol.band_w == dut["tolerances"]["power_abs_w"]
    assert tol.band_pct == pytest.approx(100 * dut["tolerances"]["power_rel"])
    assert tol.t90_max_s == dut["tolerances"]["t90_max_s"] and tol.max_discharge_w == 10000
    with pytest.raises(SampleError, match="tolerances.power_abs_w"):
        Tolerance.from_dut_tolerances({"power_abs_w": float("nan")})
