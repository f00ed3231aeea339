"""OCPP smart charging with discharge: the power that actually flows (measured on the DC link by
the power analyzer) must follow the charging profile the CSMS sets, and the energy registers the
station reports in its TransactionEvents must agree with the analyzer's integrators.

What the OCTT cases only read back (the composite schedule), this checks in watts."""
import time

import pytest

from v2g_bench.errors import Inconclusive, Nonconformance
from v2g_bench.harness.sampling import Recorder, dc_power_reader
from v2g_bench.verification.compliance import CommandedProfile, Tolerance, judge_schedule
from v2g_bench.verification.plots import plot_power_tracking
from v2g_bench.csms.payloads import energy_registers

VERSIONS = [pytest.param("2.0.1", marks=[pytest.mark.ocpp201, pytest.mark.covers("K01.FR.07", "V2GB-OCPP-PWR-01")],
                         id="ocpp2.0.1"),
            pytest.param("2.1", marks=[pytest.mark.ocpp21, pytest.mark.covers("TC_Q_104_CS", "Q03.FR.01", "V2GB-OCPP-PWR-01")],
                         id="ocpp2.1")]


@pytest.fixture
def transaction(csms, dut, analyzer, bench_profile, request):
    """The station connected to the CSMS with a transaction running: (version, transaction id, Started frame)."""
    version = request.param
    opts = bench_profile.roles["csms"].options
    dut.connect_ocpp(csms.url_for(opts["station_id"]), security_profile=int(opts.get("security_profile", 1)),
                     password=opts.get("password"), ocpp_version=version)
    csms.expect("BootNotification", timeout=15)
    # the analyzer integrates from just before the transaction, so its counters and the station's
    # registers (Started -> Ended) cover the same energy
    analyzer.integration_reset()
    analyzer.integration_start()
    dut.start_transaction()
    started = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Started", timeout=15)
    return version, started["transactionInfo"]["transactionId"], started


@pytest.mark.power
@pytest.mark.requires("DC_BPT")
@pytest.mark.parametrize("transaction", VERSIONS, indirect=True)
def test_discharge_profile_is_followed_and_metered(transaction, csms, dut, dc_link, analyzer, dut_profile, evidence):
    version, tx, started = transaction
    p_chg = 0.5 * dut_profile.charge.power_max_w
    p_dis = -0.5 * dut_profile.discharge.power_max_w
    step_s = 10.0
    periods = [(0, p_chg), (int(step_s), p_dis), (int(2 * step_s), 0.0)]
    with Recorder(dc_power_reader(analyzer, battery=dc_link), rate_hz=10, name="dc-samples.csv") as rec:
        prof = csms.charging_profile(1, "TxProfile", periods, transaction_id=tx)
        t0 = time.monotonic()
        answer = csms.set_charging_profile(1, prof)
        if answer.get("status") != "Accepted":
            raise Nonconformance(f"SetChargingProfile with a discharge period was answered {answer}", req="K01.FR.07")
        end = t0 + 3 * step_s
        while time.monotonic() < end:               # the profile itself is the stimulus: let it run
            rec.wait_until(lambda r: True, timeout=5, what="an analyzer sample")
    dut.stop_transaction()
    ended = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Ended", timeout=15)
    analyzer.integration_stop()
    final = dc_power_reader(analyzer)()           # the integrators' final values, after Ended
    s = rec.samples()
    if len(s) < 50:
        raise Inconclusive(f"only {len(s)} analyzer samples in {3 * step_s:g} s")
    commanded = CommandedProfile.from_steps([(t0 + a, w) for a, w in periods], end)
    tol = Tolerance(band_w=dut_profile.tolerance("power_abs_w", 500.0),
                    band_pct=100 * dut_profile.tolerance("power_rel", 0.02),
                    settle_s=dut_profile.tolerance("settle_s", 5.0),
                    dead_time_max_s=dut_profile.tolerance("dead_time_max_s", 2.0),
                    t90_max_s=dut_profile.tolerance("t90_max_s", 6.0),
                    max_charge_w=dut_profile.charge.power_max_w, max_discharge_w=dut_profile.discharge.power_max_w,
                    energy_dev_max_pct=None, cite=f"OCPP {version} charging profile; DUT profile [tolerances]")
    res = judge_schedule(commanded, (s.t_s, s["dc_w"]), tol)
    evidence.attach_json("power-compliance", res.to_dict())
    evidence.attach_png("power-tracking", plot_power_tracking(commanded, s.t_s, s["dc_w"], tol,
                                                              title=f"OCPP {version}: DC power vs charging profile"))
    # energy: the station's registers (its own meter) against the analyzer's integrators
    imp0, exp0 = energy_registers(started)
    imp1, exp1 = energy_registers(ended)
    energy = {"station_import_wh": imp1 - imp0, "station_export_wh": exp1 - exp0,
              "analyzer_ac_in_wh": final["ac_in_wh"], "analyzer_ac_out_wh": final["ac_out_wh"],
              "analyzer_dc_in_wh": final["dc_in_wh"], "analyzer_dc_out_wh": final["dc_out_wh"]}
    evidence.attach_json("energy", energy)
    res.assert_pass()
    rel = dut_profile.tolerance("energy_rel", 0.02)
    for station_key, ana_key in (("station_import_wh", "analyzer_ac_in_wh"), ("station_export_wh", "analyzer_ac_out_wh")):
        a, b = energy[station_key], energy[ana_key]
        # plus 0.5 Wh: the two integrate over instants up to ~0.2 s apart at up to 11 kW
        if not abs(a - b) <= max(0.5, rel * abs(b)):
            raise Nonconformance(f"{station_key} = {a:.2f} Wh but the analyzer measured {b:.2f} Wh "
                                 f"(tolerance {100 * rel:g} % or 0.5 Wh)", req="TC_Q_100_CS")
