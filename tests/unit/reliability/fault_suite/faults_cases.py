"""The fault matrix's cases: one test per fault type, run by test_reliability_fault_matrix.py through the real
plugin against the virtual lab (not collected by the normal run: the file name is not test_*.py).

Each case drives power as a conformance test does (battery emulator on, the charger asked for current
over Modbus, samples streamed to evidence), injects ONE fault through the lab's control port, and
reacts as the bench's code does. The verdict the plugin gives is the thing under test: error when the
bench failed, failed only when the charger did, inconclusive when nothing can be judged.
After every case (after the Bench unwound the roles) the lab's energy flow is recorded for the matrix.
"""
import json
import os
import time

import pytest

from v2g_bench.errors import BenchError, Inconclusive, LimitViolation, Nonconformance
from v2g_bench.harness.sampling import Recorder, dc_power_reader

AMPS = 20                      # the charger's current setpoint (A, + = into the EV battery)
OFF_WAIT_S = 8.0               # the RP7900 watchdog (2 s) must have switched the output off by then


@pytest.fixture(autouse=True)
def lab_after_case(request, lab):
    """Before: no fault left over. After the Bench's unwind: record the energy flow, then reset the lab."""
    ctl = lab.control(timeout=5.0)
    ctl.clear_faults()
    ctl.call("emulator", clear_protection=True)
    yield
    t0 = time.monotonic()
    while True:
        st = ctl.state()
        off = not st["battery_output_on"] and abs(st["dc_current_a"]) < 0.5
        if off or time.monotonic() - t0 > OFF_WAIT_S:
            break
        time.sleep(0.1)
    with open(os.environ["V2G_FAULT_LOG"], "a") as f:
        f.write(json.dumps({"nodeid": request.node.nodeid, "kind": "state", "outputs_off": off,
                            "battery_output_on": st["battery_output_on"], "dc_current_a": st["dc_current_a"],
                            "off_after_s": round(time.monotonic() - t0, 2)}) + "\n")
    # requests held back by a `delay` fault are still answered later: let them land before the next case
    late = [f.get("delay_s", 0.0) for f in ctl.call("faults")["faults"].values() if f.get("name") == "delay"]
    ctl.clear_faults()
    if late:
        time.sleep(max(late) + 0.5)
    ctl.call("outputs_off")
    ctl.call("emulator", clear_protection=True)
    ctl.close()


def power_up(battery, charger, evidence, *, feed_watchdog=True, analyzer=None):
    """Battery emulator on (limits read back), the charger asked for AMPS, samples streamed to evidence."""
    battery.apply_limits()
    battery.set_voltage(370.0)
    battery.output_on()
    charger.set_current(AMPS)
    charger.start()
    rec = Recorder(dc_power_reader(analyzer, battery=battery if feed_watchdog else None), rate_hz=10).start()
    evidence.attach_json("setup", {"amps": AMPS, "feed_watchdog": feed_watchdog})
    return rec


def reach(rec, amps, within_s, req="DC current follows the local setpoint"):
    """The DUT's current reaches 90 % of `amps` within `within_s`, or the DUT failed."""
    try:
        return rec.wait_until(lambda r: r["dc_a"] >= 0.9 * amps, within_s, f"{0.9 * amps:g} A on the DC link")
    except TimeoutError as e:
        raise Nonconformance(f"the charger did not deliver 90 % of {amps} A within {within_s:g} s ({e})",
                             req=req) from None


def drain(can, quiet_s=0.3):
    """Frames received before the fault are no sign of life now: empty the receive queue."""
    end = time.monotonic() + 5.0
    while time.monotonic() < end and can.bus.recv(timeout=quiet_s) is not None:
        pass


def check_protection(battery):
    latched = [k for k, v in battery.protection_status().items() if v]
    if latched or not battery.output_is_on():
        raise BenchError(f"the battery emulator's output is off (protection: {latched or 'none'})",
                         fix="read battery.protection_status() and the instrument's error queue")


# ------------------------------------------------------------------------------- bench faults ---
def test_instrument_disconnect(battery, analyzer, charger, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    lab.control().inject_fault("disconnect", transport="battery_scpi")
    battery.read()


def test_instrument_no_answer(battery, analyzer, charger, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    lab.control().inject_fault("drop", transport="battery_scpi")
    battery.read()


def test_analyzer_late_answer(battery, analyzer, charger, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    rec.stop()
    lab.control().inject_fault("delay", transport="analyzer_scpi", delay_s=3.0)
    analyzer.read()


def test_analyzer_dropout(battery, analyzer, charger, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    lab.control().inject_fault("disconnect", transport="analyzer_scpi")
    rec.wait_until(lambda r: r["dc_a"] < -1e9, 10, "samples after the analyzer dropped out")   # what a judge waits on


def test_watchdog_trip(battery, analyzer, charger, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer, feed_watchdog=False)
    reach(rec, AMPS, 15)
    # the bench hangs: no battery I/O for longer than its watchdog delay (this wait IS the fault)
    time.sleep(battery.watchdog_s + 1.0)
    rec.stop()
    check_protection(battery)


@pytest.mark.parametrize("trip", ["ovp_trip", "ocp_trip", "opp_trip"])
def test_protection_trip(trip, battery, analyzer, charger, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    lab.control().inject_fault(trip)
    rec.stop()
    check_protection(battery)


def test_meter_device_failure(battery, analyzer, charger, meter, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    lab.control().inject_fault("modbus_exception", unit=2, code=4)
    meter.power_w()


def test_modbus_disconnect(battery, analyzer, charger, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    lab.control().inject_fault("disconnect", transport="modbus")
    charger.state()


def test_modbus_late_answer(battery, analyzer, charger, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    lab.control().inject_fault("delay", transport="modbus", delay_s=4.0)
    charger.state()


def test_can_bms_silent(battery, analyzer, charger, can, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    lab.control().inject_fault("drop", transport="can")
    drain(can)
    can.status(timeout_s=2.0)


def test_can_disconnect(battery, analyzer, charger, can, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    lab.control().inject_fault("disconnect", transport="can")
    drain(can)
    can.status(timeout_s=2.0)


def test_setpoint_beyond_bench_limits(battery, analyzer, charger, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    before = lab.control().call("emulator")["emulator"]["voltage_set_v"]
    try:
        battery.set_voltage(10_000.0)
    except LimitViolation:
        after = lab.control().call("emulator")["emulator"]["voltage_set_v"]
        evidence.attach_json("voltage_set_v", {"before": before, "after": after})
        assert after == before, "a refused setpoint reached the instrument"
        raise


def test_evidence_disk_full(battery, analyzer, charger, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    trace = evidence.path("trace.jsonl")
    trace.unlink(missing_ok=True)
    trace.symlink_to("/dev/full")          # the kernel's own "no space left on device"
    with open(trace, "w") as f:
        f.write(json.dumps({"frame": "x" * 4096}) + "\n")
        f.flush()


def test_analyzer_frozen(battery, analyzer, charger, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    lab.control().inject_fault("frozen", source="analyzer")
    charger.set_current(AMPS // 2)
    _, row = rec.wait_until(lambda r: abs(r["batt_a"] - AMPS // 2) < 2, 15, "the battery emulator to see the step")
    a = analyzer.read()[1].current_a
    if abs(a - row["batt_a"]) > 2:
        raise BenchError(f"the analyzer reads {a:.1f} A while the battery emulator reads {row['batt_a']:.1f} A: "
                         "one of the two bench instruments is wrong (frozen?)", fix="check the analyzer")


# ------------------------------------------------------------------------------- DUT faults ---
def test_dut_contactor_stuck_open(battery, analyzer, charger, lab, evidence, dut_profile):
    lab.control().inject_fault("contactor", stuck="open")
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, dut_profile.tolerance("t90_max_s", 6.0))


def test_dut_derated(battery, analyzer, charger, lab, evidence, dut_profile):
    lab.control().inject_fault("derate", factor=0.3)
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, dut_profile.tolerance("t90_max_s", 6.0))


def test_dut_too_slow(battery, analyzer, charger, lab, evidence, dut_profile):
    lab.control().inject_fault("lag", tau_s=60.0)
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, dut_profile.tolerance("t90_max_s", 6.0))


# ---------------------------------------------------------------------- nothing to judge ---
def _grid_window(analyzer, rec, lab, seconds=1.0):
    """A judged window is only valid with a nominal grid (50 Hz +- 0.2, 230 V +- 10 %)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ac = analyzer.read()[2]
        if abs(ac.frequency_hz - 50.0) > 0.2 or abs(ac.voltage_v - 230.0) > 23.0:
            raise Inconclusive(f"the grid left its nominal window during the measurement ({ac.frequency_hz:.2f} Hz, "
                               f"{ac.voltage_v:.0f} V): the charger may respond to it by design; repeat the test")
        time.sleep(0.1)


def test_grid_frequency_event_during_window(battery, analyzer, charger, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    lab.control().inject_fault("grid_freq_step", df_hz=-0.6)
    _grid_window(analyzer, rec, lab)


def test_grid_voltage_event_during_window(battery, analyzer, charger, lab, evidence):
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    lab.control().inject_fault("grid_voltage_step", dv_v=-46.0)
    _grid_window(analyzer, rec, lab)


def test_samples_too_sparse_to_judge(battery, analyzer, charger, lab, evidence):
    lab.control().inject_fault("delay", transport="analyzer_scpi", delay_s=0.6)
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    time.sleep(3.0)
    t = rec.samples().t_s
    rate = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else 0.0
    if rate < 5.0:
        raise Inconclusive(f"the analyzer delivered {rate:.1f} samples/s (< 5): too sparse to judge a t90; "
                           "the bench was late, not the charger")
    reach(rec, AMPS, 15)


# ------------------------------------------------------------------ OCPP: TLS, link, reboot, clock ---
# Each drives power first (so "outputs off" after the unwind means something), then connects the simulated
# charger to a CSMS and injects one fault. Which side caused it decides the verdict: the CSMS emulator's
# bench-fault channel (bench_fault(), provisioned credentials, its own certificate) turns a station the BENCH
# kept away into an error; the same symptom caused by the charger stays a Nonconformance (failed).
def csms_login(bench_profile):
    o = bench_profile.roles["csms"].options
    return o["station_id"], o["password"]


def ocpp_transaction(csms, dut, bench_profile):
    """The charger connected (SP1), TxUpdatedInterval 1 s, a transaction started; returns its id."""
    sid, pw = csms_login(bench_profile)
    csms.provisioned(sid, password=pw)
    dut.connect_ocpp(csms.url_for(sid), security_profile=1, password=pw, ocpp_version="2.0.1")
    csms.expect("BootNotification", timeout=15)
    csms.set_variables([("SampledDataCtrlr", "TxUpdatedInterval", "1")])
    dut.start_transaction()
    started = csms.expect("TransactionEvent", lambda m: m["eventType"] == "Started", timeout=15)
    return started["transactionInfo"]["transactionId"]


def expect_update(csms, tx, timeout=4.0):
    """A running transaction reports its meter values every TxUpdatedInterval (1 s here)."""
    return csms.expect("TransactionEvent", lambda m: m["eventType"] == "Updated"
                       and m["transactionInfo"]["transactionId"] == tx, timeout=timeout)


def tls_csms(evidence, pki, cert, key, security_profile):
    from v2g_bench.csms.emulator import CSMSEmulator
    return CSMSEmulator({"security_profile": security_profile, "password": "virtual-lab-password-0001",
                         "tls_cert": str(cert), "tls_key": str(key), "tls_client_ca": str(pki.ca_cert)},
                        evidence=evidence, name="csms-tls").start()


def test_tls_csms_certificate_expired(battery, analyzer, charger, dut, lab, evidence, bench_profile, tmp_path):
    """Bench side: the CSMS's own server certificate has expired; the charger rightly refuses the handshake."""
    from v2g_bench.csms.pki import TestPKI
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    pki = TestPKI.create(tmp_path / "pki")
    csms = tls_csms(evidence, pki, *pki.expired_server_cert(), security_profile=2)
    try:
        sid, pw = csms_login(bench_profile)
        r = dut.op("station.connect", url=csms.url_for(sid), security_profile=2, password=pw,
                   ca_cert=str(pki.ca_cert), timeout_s=5, reconnect=False)
        evidence.attach_json("station.connect", r)
        csms.wait_for_station(sid, timeout=3)
    finally:
        csms.close()


def test_tls_station_certificate_expired(battery, analyzer, charger, dut, lab, evidence, bench_profile, tmp_path):
    """Charger side: the charger presents an expired client certificate (security profile 3)."""
    from v2g_bench.csms.pki import TestPKI
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    pki = TestPKI.create(tmp_path / "pki")
    csms = tls_csms(evidence, pki, pki.server_cert, pki.server_key, security_profile=3)
    try:
        sid, _ = csms_login(bench_profile)
        cert, key = pki.station_cert(sid, expired=True)
        r = dut.op("station.connect", url=csms.url_for(sid), security_profile=3, ca_cert=str(pki.ca_cert),
                   client_cert=str(cert), client_key=str(key), timeout_s=5, reconnect=False)
        evidence.attach_json("station.connect", r)
        csms.wait_for_station(sid, timeout=3)
    finally:
        csms.close()


def test_ocpp_network_cut_by_bench_mid_transaction(battery, analyzer, charger, csms, dut, lab, evidence, bench_profile):
    """Bench side: the bench's network to the charger goes down mid-transaction (declared on the channel)."""
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    tx = ocpp_transaction(csms, dut, bench_profile)
    expect_update(csms, tx)
    with csms.bench_fault("the bench's network switch port to the charger went down"):
        dut.op("station.cut_network")
        expect_update(csms, tx)


def test_ocpp_charger_drops_link_mid_transaction(battery, analyzer, charger, csms, dut, lab, evidence, bench_profile):
    """Charger side: the charger closes its OCPP connection mid-transaction and stays away."""
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    tx = ocpp_transaction(csms, dut, bench_profile)
    expect_update(csms, tx)
    dut.op("station.disconnect")
    expect_update(csms, tx)


def test_station_reboot_supply_cycled_by_bench(battery, analyzer, charger, csms, dut, lab, evidence, bench_profile):
    """Bench side: the bench's mains relay to the charger drops out mid-transaction: it reboots."""
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    tx = ocpp_transaction(csms, dut, bench_profile)
    t0 = time.monotonic()
    with csms.bench_fault("the bench's mains relay to the charger dropped out (supply cycled)"):
        dut.op("station.power_cycle")
        csms.expect("BootNotification", timeout=15)
    csms.assert_no_reboot(t0)
    expect_update(csms, tx)


def test_station_reboots_by_itself(battery, analyzer, charger, csms, dut, lab, evidence, bench_profile):
    """Charger side: the charger reboots mid-transaction, nobody asked (no Reset, supply steady)."""
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    ocpp_transaction(csms, dut, bench_profile)
    t0 = time.monotonic()
    dut.op("station.power_cycle")           # from the CSMS's side: an unexplained reboot
    csms.expect("BootNotification", timeout=15)
    csms.assert_no_reboot(t0)


def test_clock_jump_on_station(battery, analyzer, charger, csms, dut, lab, evidence, bench_profile):
    """Charger side: the charger's wall clock jumps 10 min ahead; its TransactionEvent timestamps say so."""
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    tx = ocpp_transaction(csms, dut, bench_profile)
    csms.judge_station_clock(expect_update(csms, tx))           # in step before the jump
    dut.op("station.clock_step", dt_s=600.0)
    csms.judge_station_clock(expect_update(csms, tx))


def test_clock_jump_on_bench(battery, analyzer, charger, csms, dut, lab, evidence, bench_profile, monkeypatch):
    """Bench side: the bench's own wall clock steps 10 min (a bad NTP answer on the bench PC)."""
    import datetime as dt

    from v2g_bench.csms import recording
    from v2g_bench.csms.ocpp_time import ocpp_time, utc_now
    rec = power_up(battery, charger, evidence, analyzer=analyzer)
    reach(rec, AMPS, 15)
    tx = ocpp_transaction(csms, dut, bench_profile)
    csms.judge_station_clock(expect_update(csms, tx))
    monkeypatch.setattr(recording, "utc_now_iso", lambda: ocpp_time(utc_now() + dt.timedelta(seconds=600)))
    csms.judge_station_clock(expect_update(csms, tx))
