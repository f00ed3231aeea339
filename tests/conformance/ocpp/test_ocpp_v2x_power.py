"""OCPP smart charging with discharge: the power that actually flows (measured on the DC link by the power analyzer)
must follow the charging profile the CSMS sets, and the energy registers the station reports in its
TransactionEvents must agree with the analyzer's integrators. What the OCTT cases only read back (the composite
schedule), this checks in watts."""
import time

from v2g_bench.conformance import Case, V, cases_test, judge, ocpp, step
from v2g_bench.verification.compliance import CommandedProfile

STEP_S = 10.0


def discharge_profile(ctx):
    """+50 % of the rated charge power, then -50 % of the rated discharge power, then 0 (bench sign)."""
    dut = ctx.dut_profile
    periods = [(0, 0.5 * dut.charge.power_max_w), (int(STEP_S), -0.5 * dut.discharge.power_max_w),
               (int(2 * STEP_S), 0.0)]
    ctx.vars["periods"] = periods
    tx = ctx.vars["started"]["transactionInfo"]["transactionId"]
    return {"evseId": 1, "chargingProfile": ctx.csms.charging_profile(1, "TxProfile", periods, transaction_id=tx)}


def let_profile_run(ctx):
    """The profile itself is the stimulus: hold for its three periods while the analyzer samples."""
    t0 = ctx.last_wire_t
    end = t0 + 3 * STEP_S
    rec = ctx.vars["dc"]
    while time.monotonic() < end:
        rec.wait_until(lambda r: True, timeout=5, what="an analyzer sample")
    ctx.vars["commanded"] = CommandedProfile.from_steps([(t0 + a, w) for a, w in ctx.vars["periods"]], end)


CASES = [
    Case("OCPP-PWR-01", title="A discharge TxProfile is followed in watts and metered right",
         standard="OCPP", block="K Smart charging (measured power)", versions=("2.0.1", "2.1"),
         covers=("K01.FR.07", "V2GB-OCPP-PWR-01", "V2GB-COUPLING-03"), requires=("DC_BPT",),
         actions=("start_transaction", "stop_transaction"), markers=("power",),
         given=[ocpp.connected(),
                step("the battery emulator holds the DC link", lambda ctx: ctx.dc_link, kind="given"),
                judge.save_analyzer_energy("energy0"),
                ocpp.dut_action("start_transaction"),
                ocpp.expect("TransactionEvent", eventType="Started", within_s=15, save_as="started")],
         steps=[judge.record_dc_power(save_as="dc"),
                ocpp.call("SetChargingProfile", discharge_profile),
                ocpp.answer(status="Accepted", req="K01.FR.07"),
                step("hold the profile's three periods (charge, discharge, zero)", let_profile_run, kind="stimulus"),
                judge.power_follows("commanded", samples="dc", req="V2GB-OCPP-PWR-01",
                                    title=lambda ctx: f"OCPP {ctx.version}: DC power vs charging profile"),
                ocpp.dut_action("stop_transaction"),
                ocpp.expect("TransactionEvent", eventType="Ended", within_s=15, save_as="ended",
                            transactionInfo={"transactionId": V("started.transactionInfo.transactionId")}),
                judge.energy_registers_match("started", "ended", req="V2GB-COUPLING-03")]),
]
test_ocpp_power = cases_test(CASES)
