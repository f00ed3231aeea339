"""The scenario verdict (v2g_bench.scenarios.judges) on synthetic measurements of known quality: a charger that
follows the plan passes; one that under-delivers, breaks the site limit, ignores a frequency step or leaves the
house dark fails on the criterion it broke - and nothing else is blamed."""
import numpy as np
import pytest

from v2g_bench.scenarios.judges import judge_run
from v2g_bench.scenarios.runner import Commanded, RunRecord, Trace, clip_to_dut, plan_scenario
from v2g_bench.scheduler.scenario import scenario_from_dict

DUT = {"tolerances": {"power_abs_w": 300.0, "power_rel": 0.02, "settle_s": 5.0, "energy_rel": 0.02}}
RATINGS = {"charge": {"power_max_w": 11000.0, "current_max_a": 40.0},
           "discharge": {"power_max_w": 11000.0, "current_max_a": 40.0}}


def scenario(**extra):
    d = {"scenario": {"name": "synthetic", "kind": "peak_shaving", "dt_s": 900, "hours": 4, "start": "08:00"},
         "tariff": {"import_price_by_hour": [0.30, 0.10, 0.40, 0.20]},
         "site": {"load_kw_by_hour": [20, 20, 40, 20], "import_limit_kw": 45.0},
         "ev": [{"name": "a", "capacity_kwh": 60, "soc_pct": 40, "target_pct": 60, "floor_pct": 20,
                 "arrival": "08:00", "departure": "12:00", "max_charge_kw": 11, "max_discharge_kw": 11}]}
    for k, v in extra.items():
        d[k] = v
    return scenario_from_dict(d)


def record(sc, *, gain=1.0, extra_load_w=0.0, fcr_response=True, serve_house=True, dt=5.0, delay_s=0.0):
    """A measured run: the charger delivers gain x the commanded power (plus what the scenario's events ask),
    each change `delay_s` plant seconds late."""
    evs = clip_to_dut(sc, RATINGS, None)
    plan = plan_scenario(sc, evs)
    n = plan.n
    starts = [k * sc.site.dt_s for k in range(n)]
    p_cmd = plan.evs[0].power_kw * 1000.0
    t = np.arange(0.0, n * sc.site.dt_s + dt / 2, dt)
    k = np.clip((t // sc.site.dt_s).astype(int), 0, n - 1)
    kd = np.clip(((t - delay_s) // sc.site.dt_s).astype(int), 0, n - 1)
    p = np.where(t >= delay_s, gain * p_cmd[kd], 0.0)
    f = np.full_like(t, 50.0)
    events = {}
    load = sc.site.load_kw[k] * 1000.0 + extra_load_w
    unserved = np.zeros_like(t)
    fr = sc.frequency_response
    if fr:
        at, until = fr["step_at_s"], fr["step_at_s"] + fr["hold_s"] + 60
        m = (t >= at) & (t < until)
        f[m] += fr["step_hz"]
        dp = np.sign(fr["step_hz"]) * min((abs(fr["step_hz"]) - fr["deadband_hz"]) * fr["droop_kw_per_hz"],
                                          fr["reserved_kw"]) * 1000.0
        if fcr_response:
            p[m] += dp
        events["frequency_step"] = {"at_s": at, "until_s": until, "evse": 1}
    if sc.grid_loss:
        g = sc.grid_loss
        m = (t >= g["at_s"]) & (t < g["at_s"] + g["duration_s"])
        events["grid_loss"] = {"at_s": g["at_s"], "until_s": g["at_s"] + g["duration_s"], "evse": 1, "transfer_s": 0.5}
        if serve_house:
            p[m & (t >= g["at_s"] + 0.5)] = -load[m & (t >= g["at_s"] + 0.5)]
            unserved[m & (t < g["at_s"] + 0.5)] = load[m & (t < g["at_s"] + 0.5)]
        else:
            p[m] = 0.0
            unserved[m] = load[m]
    e = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(t))]) / 3600.0
    e_in = np.concatenate([[0.0], np.cumsum(np.clip(0.5 * (p[1:] + p[:-1]), 0, None) * np.diff(t))]) / 3600.0
    e_out = e_in - e
    tr = Trace()
    for j in range(t.size):
        tr.add({"grid_w": load[j] + p[j], "load_w": load[j], "pv_w": 0.0, "unserved_w": unserved[j],
                "evse": [{"freq_hz": f[j], "dc_w": p[j], "ac_w": p[j], "dc_import_wh": e_in[j],
                          "dc_export_wh": e_out[j], "ac_import_wh": e_in[j], "ac_export_wh": e_out[j]}]}, t[j])
    return RunRecord(scenario=sc, plan=plan, plans=[(0.0, plan)], evs=evs, window=(0.0, n * sc.site.dt_s),
                     time_scale=1.0, trace=tr, commanded=[Commanded(starts, list(p_cmd), n * sc.site.dt_s)],
                     prices=(sc.site.import_price, sc.site.export_price), wall_s=10.0, scheduler_s=0.01,
                     ocpp_version="2.0.1", latency_plant_s=2 * dt, events=events)


def failed_parts(v):
    return sorted({name.split(" ")[0] for name, p in v.parts.items() if p.verdict == "fail"})


def test_a_charger_that_follows_the_plan_passes():
    v = judge_run(record(scenario()), DUT)
    assert v.verdict == "pass", v.summary()
    assert {"compliance a", "guarantees a", "cost", "site"} <= set(v.parts)


def test_under_delivery_fails_compliance_departure_and_cost():
    v = judge_run(record(scenario(), gain=0.7), DUT)
    assert v.verdict == "fail"
    assert {"compliance", "guarantees"} <= set(failed_parts(v)), v.summary()
    assert "site" not in failed_parts(v)
    assert any("departure SOC shortfall" in f for f in v.failures())


def test_site_limit_breach_is_blamed_on_the_site_only():
    v = judge_run(record(scenario(), extra_load_w=20000.0), DUT)
    assert failed_parts(v) == ["site"], v.summary()


FR = {"nominal_hz": 50.0, "step_hz": -0.2, "step_at_s": 1200.0, "deadband_hz": 0.01, "droop_kw_per_hz": 25.0,
      "reserved_kw": 5.0, "endurance_min": 15.0, "full_activation_s": 30.0, "hold_s": 900.0, "ev": "a"}


def test_frequency_step_answered_passes_and_ignored_fails():
    sc = scenario(frequency_response=FR)
    assert judge_run(record(sc), DUT).verdict == "pass"
    v = judge_run(record(sc, fcr_response=False), DUT)
    assert "frequency" in failed_parts(v), v.summary()
    assert v.parts["frequency"].check("time to full activation").passed is False


def test_house_left_dark_on_grid_loss_fails_the_backup():
    sc = scenario(site={"load_kw_by_hour": [1.5, 1.2, 2.0, 0.8]},
                  grid_loss={"at": "10:00", "duration_min": 30, "transfer_time_max_s": 2.0, "ev": "a"})
    ok = judge_run(record(sc, dt=0.5), DUT)          # samples fine enough to time a 2 s transfer
    assert ok.parts["backup"].verdict == "pass", ok.summary()
    v = judge_run(record(sc, serve_house=False, dt=0.5), DUT)
    assert v.parts["backup"].verdict == "fail"
    assert v.parts["backup"].check("backup transfer time").passed is False


@pytest.mark.parametrize("gain", [0.999, 1.001])
def test_metering_noise_inside_the_dut_tolerance_passes(gain):
    assert judge_run(record(scenario(), gain=gain), DUT).verdict == "pass"


def test_a_lab_stall_excuses_only_what_it_explains():
    """The virtual DUT shares the machine: a small miss that a 0.5 s stall at x900 explains is inconclusive; a
    charger at 30 % of its command fails all the same."""
    stall = {"max_lag_s": 0.5, "allowed_s": 0.25, "stalls": [[3600.0, 0.5]]}
    small = record(scenario(), gain=0.96)
    assert judge_run(small, DUT).verdict == "fail"
    small.time_scale, small.events["lab_stalls"] = 900.0, stall
    v = judge_run(small, DUT)
    assert v.verdict == "inconclusive", v.summary()
    assert any("stalled up to 0.50 s" in r for r in v.reasons())
    big = record(scenario(), gain=0.3)
    big.time_scale, big.events["lab_stalls"] = 900.0, stall
    v = judge_run(big, DUT)
    assert v.verdict == "fail" and "compliance" in failed_parts(v), v.summary()


def test_step_timing_is_judged_in_compressed_runs_with_the_limits_scaled():
    """x10: the DUT's control path is wall-clock, so 2 s dead time / 6 s t90 are 20 s / 60 s of plant time. A charger
    answering 10 plant s (1 s wall) late passes the step timing; 30 plant s (3 s wall) late fails the dead time."""
    dut = {"tolerances": {**DUT["tolerances"], "dead_time_max_s": 2.0, "t90_max_s": 6.0}}

    def timing(delay_s):
        rec = record(scenario(), delay_s=delay_s, dt=1.0)
        rec.time_scale = 10.0
        checks = [c for c in judge_run(rec, dut).parts["compliance a"].checks if "dead_time" in c.name]
        assert checks and all(c.limit == 20.0 for c in checks)
        return checks
    assert all(c.passed for c in timing(10.0))
    late = timing(30.0)
    assert not any(c.passed for c in late), [c.line() for c in late]
