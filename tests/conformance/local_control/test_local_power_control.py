"""The charger's local power control (Modbus, Wallbox-Quasar map): it must follow charge and
discharge current setpoints on the DC link, and its round-trip efficiency must meet its claim.

Judged from the power analyzer (an instrument independent of the charger), never from what the
charger reports about itself."""
import time

import numpy as np
import pytest

from v2g_bench.errors import Inconclusive, Nonconformance
from v2g_bench.harness.sampling import Recorder, dc_power_reader
from v2g_bench.verification import efficiency
from v2g_bench.verification.compliance import CommandedProfile
from v2g_bench.verification.plots import plot_power_tracking


def _hold(recorder: Recorder, seconds: float) -> None:
    """Keep the present setpoint for a stimulus of `seconds` (a test step, not a settle sleep)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        recorder._raise_if_failed()
        time.sleep(min(0.2, max(0.0, end - time.monotonic())))


@pytest.mark.power
@pytest.mark.requires("DC_BPT", "LocalControl")
@pytest.mark.covers("V2GB-LC-01")
def test_charge_and_discharge_current_setpoints_are_followed(dc_link, charger, analyzer, dut_profile, evidence):
    tol_a = dut_profile.tolerance("current_abs_a", 0.5)
    settle = dut_profile.tolerance("settle_s", 5.0)
    i_max = min(dut_profile.charge.current_max_a, dut_profile.discharge.current_max_a)
    steps = [round(0.5 * i_max), -round(0.5 * i_max), 0]
    hold = settle + 3.0
    commanded = []
    with Recorder(dc_power_reader(analyzer, battery=dc_link), rate_hz=10, name="dc-samples.csv") as rec:
        charger.start()
        for amps in steps:
            commanded.append((time.monotonic(), amps))
            charger.set_current(amps)
            _hold(rec, hold)
        end = time.monotonic()
    s = rec.samples()
    if len(s) < 10:
        raise Inconclusive(f"only {len(s)} analyzer samples were taken")
    rows = []
    for k, (t0, amps) in enumerate(commanded):
        t1 = commanded[k + 1][0] if k + 1 < len(commanded) else end
        w = s.between(t0 + settle, t1)
        err = float(np.max(np.abs(w["dc_a"] - amps))) if len(w) else float("nan")
        rows.append({"setpoint_a": amps, "samples": len(w), "max_error_a": err,
                     "mean_a": float(np.mean(w["dc_a"])) if len(w) else None})
    evidence.attach_json("tracking", {"tolerance_a": tol_a, "settle_s": settle, "steps": rows})
    v = float(np.median(s["dc_v"]))
    profile = CommandedProfile.from_steps([(t - s.t_s[0], a * v) for t, a in commanded], end - s.t_s[0])
    evidence.attach_png("dc-power-tracking", plot_power_tracking(profile, s.t_s - s.t_s[0], s["dc_w"],
                                                               title="Local control: DC power (setpoint x median V)"))
    for r in rows:
        if r["samples"] == 0:
            raise Inconclusive(f"no samples after settling for setpoint {r['setpoint_a']} A")
        if not r["max_error_a"] <= tol_a:
            raise Nonconformance(f"setpoint {r['setpoint_a']:+} A: DC current off by up to {r['max_error_a']:.2f} A "
                                 f"after {settle:g} s (tolerance {tol_a:g} A)", req="V2GB-LC-01")
    # the sign is the point of a bidirectional test: discharge must really flow out of the battery
    assert rows[1]["mean_a"] < -0.5 * abs(steps[1]), "discharge setpoint did not reverse the DC current"


@pytest.mark.efficiency
@pytest.mark.requires("DC_BPT", "LocalControl")
@pytest.mark.covers("V2GB-EFF-01")
def test_round_trip_efficiency_meets_the_claim(dc_link, charger, analyzer, dut_profile, bench_profile, evidence):
    """Charge, then discharge the same DC energy back (SOC returns to its start); RTE = AC out / AC in."""
    amps = round(0.6 * min(dut_profile.charge.current_max_a, dut_profile.discharge.current_max_a))
    charge_s = 12.0
    soc_tol_wh = 0.3          # start and end state of charge must agree within this (Wh of battery energy)
    analyzer.integration_reset()
    analyzer.integration_start()
    t0 = time.monotonic()
    with Recorder(dc_power_reader(analyzer, battery=dc_link), rate_hz=10, name="rte-samples.csv") as rec:
        charger.set_current(amps)
        charger.start()
        _hold(rec, charge_s)
        # discharge until the DC energy out equals the DC energy in (dc_in stops growing once discharging)
        charger.set_current(-amps)
        rec.wait_until(lambda r: r["dc_out_wh"] >= r["dc_in_wh"], timeout=4 * charge_s, what="DC energy out = in")
        # trim at low current: ramps and the analyzer's update interval overshoot the balance by ~1 Wh
        trim_a = 2
        for _ in range(3):
            charger.set_current(0)
            _, r = rec.wait_until(lambda r: abs(r["dc_a"]) < 0.2, timeout=10, what="current back to 0 A")
            _hold(rec, 1.0)                                    # let the integrators catch up with the stop
            _, r = rec.wait_until(lambda r: True, timeout=5, what="a sample")
            gap = r["dc_in_wh"] - r["dc_out_wh"]               # > 0: battery still above its start SOC
            if abs(gap) <= soc_tol_wh / 2:
                break
            charger.set_current(-trim_a if gap > 0 else trim_a)
            rec.wait_until((lambda r: r["dc_out_wh"] >= r["dc_in_wh"]) if gap > 0 else
                           (lambda r: r["dc_in_wh"] >= r["dc_out_wh"]), timeout=60, what="balance trimmed")
        charger.stop()
    analyzer.integration_stop()
    s = rec.samples()
    soc_wh = s["dc_in_wh"] - s["dc_out_wh"]
    cycle = efficiency.cycle_from_counters(s.t_s - t0, s["ac_in_wh"], s["ac_out_wh"], soc_wh,
                                           power_level_w=amps * float(np.median(s["dc_v"])),
                                           dc_import_wh=s["dc_in_wh"], dc_export_wh=s["dc_out_wh"])
    opts = bench_profile.roles["analyzer"].options
    acc = efficiency.MeterAccuracy(pct_reading=float(opts.get("energy_accuracy_pct_reading", 0.05)),
                                   pct_range=float(opts.get("energy_accuracy_pct_range", 0.05)),
                                   range_w=float(opts.get("energy_range_w", 15000.0)))
    res = efficiency.judge_round_trip([cycle], ac_accuracy=acc, dc_accuracy=acc, soc_tolerance=soc_tol_wh,
                                      min_rte=dut_profile.tolerance("round_trip_efficiency_min", 0.85))
    evidence.attach_json("round-trip", res.to_dict())
    evidence.attach_text("round-trip-summary", res.summary())
    res.assert_pass()
