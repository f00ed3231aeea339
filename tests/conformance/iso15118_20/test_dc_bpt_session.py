"""ISO 15118-20 DC bidirectional power transfer (DC_BPT), played by our EV emulator against the charger's SECC: a
session charges, then discharges, then stops — and the charger's own claims are checked against independent
instruments: the present V x I it reports equals the analyzer's DC energy; energy flows both ways; every
DC_ChargeLoopRes comes within V2G_SECC_Msg_Performance_Time (0.25 s, Table 217), measured on the capture."""
import numpy as np

from v2g_bench.conformance import Case, cases_test, iso15118, judge, step
from v2g_bench.errors import Inconclusive, Nonconformance
from v2g_bench.ev.model import Phase


def plan(ctx):
    dut = ctx.dut_profile
    return [Phase(0.5 * dut.charge.power_max_w, 5.0), Phase(-0.5 * dut.discharge.power_max_w, 5.0), Phase(0, 1.5)]


def both_ways(ctx):
    a0, a1 = ctx.vars["energy0"][1], ctx.analyzer.energy_wh(1)
    ctx.vars["measured"] = m = {"in_wh": a1[0] - a0[0], "out_wh": a1[1] - a0[1]}
    ctx.attach("dc-energy", m)
    if m["in_wh"] < 1.0 or m["out_wh"] < 1.0:
        raise Nonconformance(f"energy did not flow both ways on the DC link: in {m['in_wh']:.2f} Wh, "
                             f"out {m['out_wh']:.2f} Wh (analyzer element 1)")


def present_values_match_analyzer(ctx):
    res, m = iso15118.session_result(ctx), ctx.vars["measured"]
    h = [x for x in res.history if x["evse_v"] is not None and x["evse_a"] is not None]
    if len(h) < 10:
        raise Inconclusive(f"only {len(h)} charge loops with present values reported")
    t = np.array([x["t"] for x in h])
    p = np.array([x["evse_v"] * x["evse_a"] for x in h])
    reported = float(np.trapezoid(p, t) / 3600.0)
    measured = m["in_wh"] - m["out_wh"]
    # 0.3 Wh + the DUT's energy tolerance + 1 % for sampling the present values once per loop; a charger that
    # echoes the requested power instead of measuring misses the ramps (~0.8 Wh each at 5 kW/s) and fails
    tol = 0.3 + (ctx.dut_profile.tolerance("energy_rel", 0.02) + 0.01) * (m["in_wh"] + m["out_wh"])
    ctx.attach("present-values-vs-analyzer", {"reported_net_wh": reported, "measured_net_wh": measured,
                                              "tolerance_wh": tol})
    if abs(reported - measured) > tol:
        raise Nonconformance(f"present V x I reported in DC_ChargeLoopRes integrates to {reported:.2f} Wh, "
                             f"the analyzer measured {measured:.2f} Wh (tolerance {tol:.2f} Wh)")


def bpt_case(mode: str) -> Case:
    return Case(
        f"ISO20-DC-BPT-01-{mode}", title=f"DC_BPT {mode}: charge, discharge, stop; present values and loop timing",
        standard="ISO 15118-20", block="DC_ChargeLoop (BPT)", side="SECC",
        covers=("V2GB-15118-BPT-01", "V2GB-15118-PV-01", "V2G20-1502"), requires=("ISO15118-20", "DC_BPT", mode),
        markers=("timing", "power"),
        given=[step("the battery emulator holds the DC link", lambda ctx: ctx.dc_link, kind="given"),
               judge.save_analyzer_energy("energy0", reset=False)],
        steps=[iso15118.session(service="DC_BPT", control_mode=mode, plan=plan),
               iso15118.session_ok(req="V2GB-15118-BPT-01"),
               step("energy flowed both ways on the DC link (analyzer)", both_ways, req="V2GB-15118-BPT-01",
                    kind="judge"),
               step("reported present V x I, integrated, equals the analyzer's DC energy",
                    present_values_match_analyzer, req="V2GB-15118-PV-01", kind="judge"),
               iso15118.response("DC_ChargeLoopRes", ResponseCode="OK", req="V2GB-15118-BPT-01"),
               iso15118.performance_time("DC_ChargeLoopReq", normative_s=0.25, req="V2G20-1502",
                                         timer="secc_charge_loop_performance_time_s")])


CASES = [bpt_case("scheduled"), bpt_case("dynamic")]
test_dc_bpt = cases_test(CASES)
