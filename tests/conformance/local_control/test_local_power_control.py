"""The charger's local power control (Modbus, Wallbox-Quasar map): it must follow charge and discharge current
setpoints on the DC link, and its round-trip efficiency must meet its claim.

Judged from the power analyzer (an instrument independent of the charger), never from what the charger reports
about itself."""
import time

import numpy as np

from v2g_bench.conformance import Case, cases_test, step
from v2g_bench.errors import BenchError, Inconclusive, Nonconformance
from v2g_bench.verification import efficiency
from v2g_bench.verification.compliance import CommandedProfile
from v2g_bench.verification.plots import plot_power_tracking


def _hold(recorder, seconds: float) -> None:
    """Keep the present setpoint for a stimulus of `seconds` (a test step, not a settle sleep)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        recorder._raise_if_failed()
        time.sleep(min(0.2, max(0.0, end - time.monotonic())))


def _recorder(ctx, name):
    from v2g_bench.harness.sampling import Recorder, dc_power_reader
    rec = Recorder(dc_power_reader(ctx.analyzer, battery=ctx.dc_link), rate_hz=10, name=name).start()
    ctx.on_close(lambda: rec.__exit__(None, None, None))
    return rec


# ----------------------------------------------------------------------------------- V2GB-LC-01 ---
def setpoint_steps(ctx):
    dut = ctx.dut_profile
    i_max = min(dut.charge.current_max_a, dut.discharge.current_max_a)
    steps = [round(0.5 * i_max), -round(0.5 * i_max), 0]
    hold = dut.tolerance("settle_s", 5.0) + 3.0
    rec = ctx.vars["rec"] = _recorder(ctx, "dc-samples.csv")
    commanded = ctx.vars["commanded"] = []
    ctx.charger.start()
    for amps in steps:
        commanded.append((time.monotonic(), amps))
        ctx.charger.set_current(amps)
        _hold(rec, hold)
    ctx.vars["end"] = time.monotonic()
    ctx.attach("setpoints", {"steps_a": steps, "hold_s": hold})


def current_follows(ctx):
    dut = ctx.dut_profile
    tol_a, settle = dut.tolerance("current_abs_a", 0.5), dut.tolerance("settle_s", 5.0)
    s = ctx.vars["rec"].stop()
    commanded, end = ctx.vars["commanded"], ctx.vars["end"]
    if len(s) < 10:
        raise Inconclusive(f"only {len(s)} analyzer samples were taken")
    rows = []
    for k, (t0, amps) in enumerate(commanded):
        t1 = commanded[k + 1][0] if k + 1 < len(commanded) else end
        w = s.between(t0 + settle, t1)
        rows.append({"setpoint_a": amps, "samples": len(w),
                     "max_error_a": float(np.max(np.abs(w["dc_a"] - amps))) if len(w) else float("nan"),
                     "mean_a": float(np.mean(w["dc_a"])) if len(w) else None})
    ctx.attach("tracking", {"tolerance_a": tol_a, "settle_s": settle, "steps": rows})
    v = float(np.median(s["dc_v"]))
    profile = CommandedProfile.from_steps([(t - s.t_s[0], a * v) for t, a in commanded], end - s.t_s[0])
    ctx.attach("dc-power-tracking.png", plot_power_tracking(profile, s.t_s - s.t_s[0], s["dc_w"],
                                                            title="Local control: DC power (setpoint x median V)"))
    for r in rows:
        if r["samples"] == 0:
            raise Inconclusive(f"no samples after settling for setpoint {r['setpoint_a']} A")
        if not r["max_error_a"] <= tol_a:
            raise Nonconformance(f"setpoint {r['setpoint_a']:+} A: DC current off by up to {r['max_error_a']:.2f} A "
                                 f"after {settle:g} s (tolerance {tol_a:g} A)")
    # the sign is the point of a bidirectional test: discharge must really flow out of the battery
    if not rows[1]["mean_a"] < -0.5 * abs(commanded[1][1]):
        raise Nonconformance(f"the discharge setpoint {commanded[1][1]} A did not reverse the DC current "
                             f"(mean {rows[1]['mean_a']:.2f} A)")


# ----------------------------------------------------------------------------------- V2GB-EFF-01 ---
def balanced_cycle(ctx):
    """Charge, then discharge the same DC energy back (SOC returns to its start)."""
    dut, charger, analyzer = ctx.dut_profile, ctx.charger, ctx.analyzer
    amps = ctx.vars["amps"] = round(0.6 * min(dut.charge.current_max_a, dut.discharge.current_max_a))
    charge_s, soc_tol_wh = 12.0, 0.3
    analyzer.integration_reset()
    analyzer.integration_start()
    ctx.vars["t0"] = time.monotonic()
    rec = ctx.vars["rec"] = _recorder(ctx, "rte-samples.csv")
    try:
        charger.set_current(amps)
        charger.start()
        _hold(rec, charge_s)
        charger.set_current(-amps)
        rec.wait_until(lambda r: r["dc_out_wh"] >= r["dc_in_wh"], timeout=4 * charge_s, what="DC energy out = in")
        trim_a = 2                      # ramps and the analyzer's update interval overshoot the balance by ~1 Wh
        for _ in range(3):
            charger.set_current(0)
            rec.wait_until(lambda r: abs(r["dc_a"]) < 0.2, timeout=10, what="current back to 0 A")
            _hold(rec, 1.0)
            _, r = rec.wait_until(lambda r: True, timeout=5, what="a sample")
            gap = r["dc_in_wh"] - r["dc_out_wh"]
            if abs(gap) <= soc_tol_wh / 2:
                break
            charger.set_current(-trim_a if gap > 0 else trim_a)
            rec.wait_until((lambda r: r["dc_out_wh"] >= r["dc_in_wh"]) if gap > 0 else
                           (lambda r: r["dc_in_wh"] >= r["dc_out_wh"]), timeout=60, what="balance trimmed")
    except TimeoutError as e:
        raise Nonconformance(f"the charger did not follow the cycle's setpoints: {e}", req="V2GB-LC-01") from None
    charger.stop()
    analyzer.integration_stop()


def rte_meets_claim(ctx):
    s = ctx.vars["rec"].stop()
    amps, t0 = ctx.vars["amps"], ctx.vars["t0"]
    soc_wh = s["dc_in_wh"] - s["dc_out_wh"]
    cycle = efficiency.cycle_from_counters(s.t_s - t0, s["ac_in_wh"], s["ac_out_wh"], soc_wh,
                                           power_level_w=amps * float(np.median(s["dc_v"])),
                                           dc_import_wh=s["dc_in_wh"], dc_export_wh=s["dc_out_wh"])
    opts = ctx.bench_profile.roles["analyzer"].options
    acc = efficiency.MeterAccuracy(pct_reading=float(opts.get("energy_accuracy_pct_reading", 0.05)),
                                   pct_range=float(opts.get("energy_accuracy_pct_range", 0.05)),
                                   range_w=float(opts.get("energy_range_w", 15000.0)))
    res = efficiency.judge_round_trip([cycle], ac_accuracy=acc, dc_accuracy=acc, soc_tolerance=0.3,
                                      min_rte=ctx.pixit("round_trip_efficiency_min",
                                                        ctx.dut_profile.tolerance("round_trip_efficiency_min", 0.85)))
    ctx.attach("round-trip", res.to_dict())
    ctx.attach("round-trip-summary", res.summary())
    res.assert_pass()


def battery_ready(ctx):
    if ctx.dc_link is None:
        raise BenchError("no battery emulator on the DC link")


CASES = [
    Case("LC-01", title="Charge and discharge current setpoints are followed on the DC link",
         standard="Local control (Modbus)", block="Power control", covers=("V2GB-LC-01",),
         requires=("DC_BPT", "LocalControl"), markers=("power",),
         given=[step("the battery emulator holds the DC link", battery_ready, kind="given")],
         steps=[step("setpoints +50 %, -50 %, 0 of the rated current, each held settle + 3 s", setpoint_steps,
                     kind="stimulus"),
                step("measured DC current within the tolerance after settling, sign reversed on discharge",
                     current_follows, req="V2GB-LC-01", kind="judge")]),
    Case("EFF-01", title="Round-trip efficiency over a balanced cycle meets the claim",
         standard="Local control (Modbus)", block="Efficiency", covers=("V2GB-EFF-01",),
         requires=("DC_BPT", "LocalControl"), markers=("efficiency",),
         given=[step("the battery emulator holds the DC link", battery_ready, kind="given")],
         steps=[step("charge 12 s, discharge the same DC energy back, trim the balance", balanced_cycle,
                     kind="stimulus"),
                step("AC out / AC in meets the claimed minimum (with its uncertainty)", rte_meets_claim,
                     req="V2GB-EFF-01", kind="judge")]),
]
test_local_control = cases_test(CASES)
