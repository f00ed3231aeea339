"""The charger as ONE device: its ISO 15118 side (towards our EV emulator) and its OCPP side (towards our
CSMS emulator) must agree, as on a real bidirectional charger.

- the EV's -20 DC_BPT session makes the station start and end an OCPP transaction, and the EV's needs
  reach the CSMS in NotifyEVChargingNeeds with the values the EV actually sent (TC_Q_101_CS-like);
- a CSMS discharge TxProfile limits what the charger grants the EV: the measured DC power follows
  min(EV request, profile) within the DUT's tolerances and never exceeds the profile;
- in scheduled mode the ScheduleExchangeRes offers the CSMS's composite schedule;
- the energy registers of the TransactionEvents agree with the power analyzer.

The oracle is never the charger: expected values come from the EV emulator's own V2GTP trace (what
went over the wire from the EV), the CSMS's recorded frames, the profile the test sent and the
instruments.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from v2g_bench.errors import Inconclusive, Nonconformance
from v2g_bench.ev.model import Phase
from v2g_bench.harness.sampling import Recorder
from v2g_bench.verification.compliance import CommandedProfile, Tolerance, judge_schedule
from v2g_bench.csms.payloads import energy_registers

def versions(ids_21: tuple, ids_201: tuple) -> list:
    """Both OCPP versions, each with the test-case IDs it covers (block Q exists in 2.1 only)."""
    return [pytest.param("2.1", marks=[pytest.mark.ocpp21, pytest.mark.covers(*ids_21)], id="ocpp2.1"),
            pytest.param("2.0.1", marks=[pytest.mark.ocpp201, pytest.mark.covers(*ids_201)], id="ocpp2.0.1")]

# EV values distinct from every default of the bench, the lab and the station, so a charger that
# forwards anything but the EV's own parameters is caught
EV_MODEL = dict(max_charge_power_w=7300.0, max_discharge_power_w=6100.0, max_charge_current_a=21.0,
                max_discharge_current_a=17.0, max_voltage_v=441.0, min_voltage_v=262.0, target_soc=0.77,
                departure_s=5400.0)


# --------------------------------------------------------------------------------------------- helpers
def connect_station(csms, dut, bench_profile, version: str) -> None:
    opts = bench_profile.roles["csms"].options
    dut.connect_ocpp(csms.url_for(opts["station_id"]), security_profile=int(opts.get("security_profile", 1)),
                     password=opts.get("password"), ocpp_version=version)
    csms.expect("BootNotification", timeout=15)


def start_session(ev, **kw):
    """run_session in a thread: the test talks to the CSMS while the EV's session runs."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="ev-session")
    fut = pool.submit(ev.run_session, **kw)
    pool.shutdown(wait=False)
    return fut


def finish(fut, evidence, timeout: float):
    res = fut.result(timeout=timeout)
    evidence.attach_text("session-summary", res.summary())
    if not res.passed:
        raise Nonconformance(f"the -20 DC_BPT session failed at {res.step}: {res.reason}; last messages: "
                             f"{' | '.join(res.last_messages)}", req="V2GB-15118-BPT-01")
    return res


def ev_trace(res) -> list[dict]:
    """The EV emulator's own record of the wire (tx = what the EV sent)."""
    if not res.trace_path:
        raise Inconclusive("the EV emulator wrote no V2GTP trace")
    with open(res.trace_path, encoding="utf-8") as f:
        return [e for e in map(json.loads, f) if e.get("dir") in ("tx", "rx")]


def find(obj: Any, key: str):
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            r = find(v, key)
            if r is not None:
                return r
    elif isinstance(obj, list):
        for v in obj:
            r = find(v, key)
            if r is not None:
                return r
    return None


def rational(v) -> float | None:
    if v is None:
        return None
    return float(v["Value"]) * 10.0 ** int(v.get("Exponent", 0))


def first(entries, direction: str, name: str) -> dict:
    for e in entries:
        if e["dir"] == direction and e["name"] == name:
            return e
    raise Inconclusive(f"no {name} ({direction}) in the EV's trace")


def ev_sent_needs(entries) -> dict:
    """What the EV sent in DC_ChargeParameterDiscoveryReq and ScheduleExchangeReq (ISO units/signs)."""
    cpd = first(entries, "tx", "DC_ChargeParameterDiscoveryReq")["decoded"]
    se = first(entries, "tx", "ScheduleExchangeReq")["decoded"]
    r = {k: rational(find(cpd, k)) for k in (
        "EVMaximumChargePower", "EVMinimumChargePower", "EVMaximumChargeCurrent", "EVMinimumChargeCurrent",
        "EVMaximumVoltage", "EVMinimumVoltage", "EVMaximumDischargePower", "EVMinimumDischargePower",
        "EVMaximumDischargeCurrent", "EVMinimumDischargeCurrent")}
    r["TargetSOC"] = find(cpd, "TargetSOC")
    for k in ("EVTargetEnergyRequest", "EVMaximumEnergyRequest", "EVMinimumEnergyRequest"):
        r[k] = rational(find(se, k))
    r["DepartureTime"] = find(se, "DepartureTime")
    return r


def parse_utc(s: str) -> float:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def check(cond: bool, msg: str, req: str) -> None:
    if not cond:
        raise Nonconformance(msg, req=req)


# ---------------------------------------------------------------------- (a) EV session -> OCPP + needs
@pytest.mark.iso15118_20
@pytest.mark.requires("DC_BPT", "scheduled")
@pytest.mark.parametrize("version", versions(("TC_Q_101_CS", "TC_E_46_CS", "V2GB-COUPLING-01"),
                                             ("TC_E_46_CS", "V2GB-COUPLING-01")))
def test_ev_session_drives_transaction_and_needs(version, ev, csms, dut, dc_link, bench_profile, dut_profile, evidence):
    connect_station(csms, dut, bench_profile, version)
    for k, v in EV_MODEL.items():
        setattr(ev.model, k, v)
    res = finish(start_session(ev, protocol="ISO15118-20", service="DC_BPT", control_mode="scheduled",
                               plan=[Phase(4000, 2.0), Phase(-3000, 2.0)], timeout=60), evidence, 90)
    started = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Started", timeout=10)
    ended = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Ended", timeout=10)
    needs_f = csms.expect("NotifyEVChargingNeeds", timeout=10)
    occupied = csms.expect("StatusNotification", where=lambda m: m["connectorStatus"] == "Occupied", timeout=10)
    available = csms.expect("StatusNotification", where=lambda m: m["connectorStatus"] == "Available"
                            and m.seq > ended.seq, timeout=10)
    charging = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Updated"
                           and m["triggerReason"] == "ChargingStateChanged"
                           and m["transactionInfo"].get("chargingState") == "Charging", timeout=10)
    entries = ev_trace(res)
    sent = ev_sent_needs(entries)
    evidence.attach_json("ev-sent-vs-forwarded", {"ev_sent": sent, "charging_needs": needs_f["chargingNeeds"]})

    # transaction follows the EV's session (E02/E15; TxStartPoint Authorized)
    auth_t = first(entries, "rx", "AuthorizationRes")["t"]
    stop_t = first(entries, "rx", "SessionStopRes")["t"]
    tx = started["transactionInfo"]["transactionId"]
    check(occupied.seq < started.seq, "StatusNotification Occupied did not precede the transaction", "E02.FR.01")
    check(started["triggerReason"] == "Authorized" and started["transactionInfo"].get("chargingState") == "EVConnected",
          f"Started: triggerReason {started['triggerReason']}, chargingState "
          f"{started['transactionInfo'].get('chargingState')} (expected Authorized / EVConnected)", "E02.FR.02")
    check(started.t >= auth_t - 0.5, "the transaction started before the EV was authorized", "E02.FR.02")
    check(charging["transactionInfo"]["chargingState"] == "Charging"
          and charging["transactionInfo"]["transactionId"] == tx, "no ChargingStateChanged -> Charging", "E01.FR.16")
    check(ended["transactionInfo"]["transactionId"] == tx and ended.t >= stop_t - 0.5,
          "the transaction did not end with the EV's SessionStop", "E15.FR.04")
    check(ended["transactionInfo"].get("stoppedReason") == "StoppedByEV" and ended["triggerReason"] == "StopAuthorized",
          f"Ended after SessionStopReq: stoppedReason {ended['transactionInfo'].get('stoppedReason')}, triggerReason "
          f"{ended['triggerReason']} (expected StoppedByEV / StopAuthorized, E15.FR.04 errata)", "E15.FR.04")
    check(available.seq > ended.seq, "connector not Available after the session", "E15")
    check(started.seq < needs_f.seq, "NotifyEVChargingNeeds before the transaction started", "TC_Q_101_CS")

    # the needs are the EV's, as OCPP defines each field (max: min(EV, EVSE); min: max(EV, EVSE))
    n = needs_f["chargingNeeds"]
    ch, dis = dut_profile.charge, dut_profile.discharge
    dep = parse_utc(n["departureTime"]) - (time.time() - (time.monotonic() - needs_f.t))
    check(abs(dep - sent["DepartureTime"]) <= 5.0,
          f"departureTime is {dep:.0f} s after the frame; the EV asked {sent['DepartureTime']} s", "TC_Q_101_CS")
    if version == "2.1":
        v = n.get("v2xChargingParameters")
        check(v is not None and n["requestedEnergyTransfer"] == "DC_BPT" and n.get("controlMode") == "ScheduledControl",
              f"expected DC_BPT ScheduledControl with v2xChargingParameters, got {n}", "TC_Q_101_CS")
        expect = {"maxChargePower": min(sent["EVMaximumChargePower"], ch.power_max_w),
                  "minChargePower": sent["EVMinimumChargePower"],
                  "maxChargeCurrent": min(sent["EVMaximumChargeCurrent"], ch.current_max_a),
                  "minChargeCurrent": sent["EVMinimumChargeCurrent"],
                  "maxDischargePower": min(abs(sent["EVMaximumDischargePower"]), dis.power_max_w),
                  "minDischargePower": abs(sent["EVMinimumDischargePower"]),
                  "maxDischargeCurrent": min(abs(sent["EVMaximumDischargeCurrent"]), dis.current_max_a),
                  "minDischargeCurrent": abs(sent["EVMinimumDischargeCurrent"]),
                  "maxVoltage": min(sent["EVMaximumVoltage"], ch.voltage_max_v),
                  "minVoltage": max(sent["EVMinimumVoltage"], ch.voltage_min_v),
                  "evTargetEnergyRequest": sent["EVTargetEnergyRequest"],
                  "evMaxEnergyRequest": sent["EVMaximumEnergyRequest"],
                  "evMinEnergyRequest": sent["EVMinimumEnergyRequest"], "targetSoC": sent["TargetSOC"]}
        wrong = {k: (v.get(k), e) for k, e in expect.items() if v.get(k) is None or abs(float(v[k]) - e) > 0.01}
        check(not wrong, f"v2xChargingParameters differ from what the EV sent (field: (forwarded, expected)): {wrong}",
              "TC_Q_101_CS")
        assert v["maxDischargePower"] >= 0 and v["maxChargePower"] >= 0   # OCPP 2.1: magnitudes
    else:
        d = n.get("dcChargingParameters")
        check(d is not None and n["requestedEnergyTransfer"] == "DC", f"expected DC with dcChargingParameters: {n}",
              "K15.FR.01")
        expect = {"evMaxCurrent": sent["EVMaximumChargeCurrent"], "evMaxVoltage": sent["EVMaximumVoltage"],
                  "evMaxPower": sent["EVMaximumChargePower"],
                  "energyAmount": max(sent["EVTargetEnergyRequest"], 0.0)}
        wrong = {k: (d.get(k), e) for k, e in expect.items() if d.get(k) is None or abs(float(d[k]) - e) > 0.01}
        check(not wrong, f"dcChargingParameters differ from what the EV sent (field: (forwarded, expected)): {wrong}",
              "K15.FR.01")
    # sanity of the oracle itself: the EV really sent our model's values
    assert sent["EVMaximumChargePower"] == EV_MODEL["max_charge_power_w"]
    assert sent["EVMaximumDischargePower"] == EV_MODEL["max_discharge_power_w"]


# ------------------------------------------------------- (b) CSMS discharge profile limits the EV's grant
def _expected_grants(entries, profile_start_mono: float, accepted_mono: float, periods, rating_dis_w: float,
                     rating_ch_w: float) -> list[tuple[float, float]]:
    """(t, expected DC power) at each DC_ChargeLoopReq the EV sent: min(EV, profile) computed here, from
    the EV's own request and the profile the test sent (a setpoint p < 0: discharge at p, no more than
    the EV offers; an EV that offers no discharge gets nothing)."""
    out = []
    for e in entries:
        if e["dir"] != "tx" or e["name"] != "DC_ChargeLoopReq":
            continue
        ev_ch = rational(find(e["decoded"], "EVMaximumChargePower")) or 0.0
        ev_dis = abs(rational(find(e["decoded"], "EVMaximumDischargePower")) or 0.0)
        want = min(ev_ch, rating_ch_w) if ev_ch > 0 else -min(ev_dis, rating_dis_w)
        if e["t"] >= accepted_mono:
            active = [p for s, p in periods if e["t"] >= profile_start_mono + s]
            sp = active[-1] if active else None
            if sp is not None:
                want = max(sp, -min(ev_dis, rating_dis_w)) if ev_dis > 0 else 0.0
        out.append((e["t"], want))
    return out


@pytest.mark.iso15118_20
@pytest.mark.power
@pytest.mark.requires("DC_BPT", "dynamic", "V2X")
@pytest.mark.parametrize("version", versions(("TC_Q_109_CS", "V2GB-COUPLING-02"), ("K01.FR.07", "V2GB-COUPLING-02")))
def test_discharge_profile_limits_ev_grant(version, ev, csms, dut, dc_link, bench_profile, dut_profile, evidence):
    connect_station(csms, dut, bench_profile, version)
    # the EV first asks less than the profile allows (the EV's request wins), then more (the profile wins)
    plan = [Phase(-3000, 4.0), Phase(-8000, 11.0), Phase(0, 1.5)]
    periods = [(0, -4000.0), (8, -2000.0)]            # discharge setpoints, bench sign
    with Recorder(lambda: {"dc_w": dc_link.read().power_w}, rate_hz=10, name="dc-samples.csv") as rec:
        fut = start_session(ev, protocol="ISO15118-20", service="DC_BPT", control_mode="dynamic", plan=plan,
                            timeout=60)
        started = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Started", timeout=20)
        prof = csms.charging_profile(7, "TxProfile", periods, transaction_id=started["transactionInfo"]["transactionId"])
        start_wall = parse_utc(prof["chargingSchedule"][0]["startSchedule"])
        profile_start_mono = time.monotonic() - (time.time() - start_wall)
        answer = csms.set_charging_profile(1, prof)
        accepted_mono = time.monotonic()
        if answer.get("status") != "Accepted":
            raise Nonconformance(f"SetChargingProfile (discharge TxProfile during the EV session): {answer}",
                                 req="K01.FR.07")
        res = finish(fut, evidence, 90)
    entries = ev_trace(res)
    grants = _expected_grants(entries, profile_start_mono, accepted_mono, periods,
                              dut_profile.discharge.power_max_w, dut_profile.charge.power_max_w)
    if len(grants) < 20:
        raise Inconclusive(f"only {len(grants)} charge loops")
    steps = [grants[0]] + [g for a, g in zip(grants, grants[1:]) if abs(g[1] - a[1]) > 1.0]
    commanded = CommandedProfile.from_steps(steps, grants[-1][0])
    s = rec.samples()
    tol = Tolerance.from_dut_tolerances(dut_profile.tolerances, max_charge_w=dut_profile.tolerance("power_abs_w", 500),
                                        max_discharge_w=4000.0 + dut_profile.tolerance("power_abs_w", 500),
                                        energy_dev_max_pct=None,
                                        cite=f"OCPP {version} TxProfile x ISO 15118-20 dynamic; DUT [tolerances]")
    verdict = judge_schedule(commanded, (s.t_s, s["dc_w"]), tol)
    evidence.attach_json("expected-grants", {"steps": steps, "profile_periods": periods,
                                             "profile_accepted_after_s": accepted_mono - profile_start_mono})
    evidence.attach_json("power-compliance", verdict.to_dict())
    try:
        from v2g_bench.verification.plots import plot_power_tracking
        evidence.attach_png("power-tracking", plot_power_tracking(commanded, s.t_s, s["dc_w"], tol,
                                                                  title="DC power vs min(EV request, CSMS profile)"))
    except Exception as e:  # noqa: BLE001 - a plot is evidence, not the verdict
        evidence.attach_text("plot-error", repr(e))
    levels = sorted({round(p) for _, p in steps})
    assert -4000 in levels and -3000 in levels and -2000 in levels, f"the test did not exercise min(): {levels}"
    verdict.assert_pass()


# ------------------------------------------------------ (c) TransactionEvent registers vs the analyzer
@pytest.mark.iso15118_20
@pytest.mark.requires("DC_BPT", "dynamic")
@pytest.mark.parametrize("version", versions(("TC_Q_100_CS", "V2GB-COUPLING-03"), ("V2GB-COUPLING-03",)))
def test_transaction_energy_registers_match_analyzer(version, ev, csms, dut, dc_link, analyzer, bench_profile,
                                                     dut_profile, evidence):
    connect_station(csms, dut, bench_profile, version)
    analyzer.integration_reset()          # before the session: the EV reads the analyzer while it runs
    analyzer.integration_start()
    a0 = {e: analyzer.energy_wh(e) for e in (1, 2)}
    finish(start_session(ev, protocol="ISO15118-20", service="DC_BPT", control_mode="dynamic",
                         plan=[Phase(8000, 5.0), Phase(-7000, 5.0)], timeout=60), evidence, 90)
    started = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Started", timeout=10)
    ended = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Ended", timeout=10)
    a1 = {e: analyzer.energy_wh(e) for e in (1, 2)}
    imp0, exp0 = energy_registers(started)
    imp1, exp1 = energy_registers(ended)
    # the station's billing meter is on the grid side (AC, element 2); report the DC side too
    energy = {"station_import_wh": imp1 - imp0, "station_export_wh": exp1 - exp0,
              "analyzer_ac_in_wh": a1[2][0] - a0[2][0], "analyzer_ac_out_wh": a1[2][1] - a0[2][1],
              "analyzer_dc_in_wh": a1[1][0] - a0[1][0], "analyzer_dc_out_wh": a1[1][1] - a0[1][1]}
    evidence.attach_json("energy", energy)
    if energy["analyzer_dc_in_wh"] < 2.0 or energy["analyzer_dc_out_wh"] < 2.0:
        raise Nonconformance(f"energy did not flow both ways: {energy}", req="V2GB-COUPLING-03")
    rel = dut_profile.tolerance("energy_rel", 0.02)
    for station_key, ana_key in (("station_import_wh", "analyzer_ac_in_wh"), ("station_export_wh", "analyzer_ac_out_wh")):
        a, b = energy[station_key], energy[ana_key]
        # plus 0.5 Wh: the register readings and the analyzer's reads are up to ~0.3 s apart, and the
        # analyzer also counts the idle stage (standby) around the transaction
        if not abs(a - b) <= max(0.5, rel * abs(b)):
            raise Nonconformance(f"{station_key} = {a:.2f} Wh but the analyzer measured {b:.2f} Wh "
                                 f"(tolerance {100 * rel:g} % or 0.5 Wh)", req="TC_Q_100_CS")


# ------------------------------------------------- (d) scheduled mode: the offered schedule is the CSMS's
@pytest.mark.iso15118_20
@pytest.mark.ocpp21
@pytest.mark.requires("DC_BPT", "scheduled")
@pytest.mark.covers("V2GB-COUPLING-04")          # the -20 analogue of TC_K_53_CS (HLC load levelling, -2)
def test_scheduled_offer_is_composite_schedule(ev, csms, dut, dc_link, bench_profile, dut_profile, evidence):
    connect_station(csms, dut, bench_profile, "2.1")
    limit_w = 5000.0
    prof = csms.charging_profile(9, "TxDefaultProfile", [(0, limit_w)], stack_level=1)
    answer = csms.set_charging_profile(1, prof)
    if answer.get("status") != "Accepted":
        raise Nonconformance(f"SetChargingProfile TxDefaultProfile: {answer}", req="K01.FR.01")
    try:
        with Recorder(lambda: {"dc_w": dc_link.read().power_w}, rate_hz=10, name="dc-samples.csv") as rec:
            res = finish(start_session(ev, protocol="ISO15118-20", service="DC_BPT", control_mode="scheduled",
                                       plan=[Phase(8000, 7.0)], timeout=60), evidence, 90)
    finally:
        csms.clear_charging_profile(9)
    entries = ev_trace(res)
    se = first(entries, "rx", "ScheduleExchangeRes")["decoded"]
    tup = find(se, "ScheduleTuple")[0]
    charge = [rational(x["Power"]) for x in find(tup["ChargingSchedule"], "PowerScheduleEntry")]
    dis_sched = tup.get("DischargingSchedule")
    discharge = [rational(x["Power"]) for x in find(dis_sched, "PowerScheduleEntry")] if dis_sched else []
    evidence.attach_json("offered-schedule", {"charging_w": charge, "discharging_w": discharge})
    check(charge and all(abs(p - limit_w) < 1.0 for p in charge),
          f"ChargingSchedule offers {charge} W; the CSMS's TxDefaultProfile allows {limit_w:g} W", "V2G20-2623")
    check(all(abs(p) < 1.0 for p in discharge),
          f"DischargingSchedule offers {discharge} W although the profile is ChargingOnly", "V2G20-2623")
    # the EV asked 8 kW; the stage ran at the profile's 5 kW (after settling), never above it
    s = rec.samples()
    loops = [e["t"] for e in entries if e["dir"] == "tx" and e["name"] == "DC_ChargeLoopReq"]
    if len(loops) < 10:
        raise Inconclusive(f"only {len(loops)} charge loops")
    band = dut_profile.tolerance("power_abs_w", 500.0) + dut_profile.tolerance("power_rel", 0.02) * limit_w
    settle = dut_profile.tolerance("settle_s", 5.0)
    steady = s.between(loops[0] + settle, loops[-1])["dc_w"]
    check(len(steady) > 5, "no steady samples", "V2GB-COUPLING-04")
    check(float(max(s.between(loops[0], loops[-1])["dc_w"])) <= limit_w + band,
          f"the stage exceeded the profile: {max(s['dc_w']):.0f} W > {limit_w:g} W", "K01.FR.07")
    check(abs(float(steady.mean()) - limit_w) <= band,
          f"steady DC power {float(steady.mean()):.0f} W, expected min(EV 8000, profile {limit_w:g}) W", "K01.FR.07")


# ------------------------------------------- (e) CSMS remote stop during an EV session ends it on both sides
@pytest.mark.iso15118_20
@pytest.mark.requires("DC_BPT", "dynamic")
@pytest.mark.parametrize("version", versions(("TC_F_08_CS", "V2GB-COUPLING-05"), ("TC_F_08_CS", "V2GB-COUPLING-05")))
def test_remote_stop_ends_ev_session(version, ev, csms, dut, dc_link, bench_profile, dut_profile, evidence):
    connect_station(csms, dut, bench_profile, version)
    plan_s = 30.0
    fut = start_session(ev, protocol="ISO15118-20", service="DC_BPT", control_mode="dynamic",
                        plan=[Phase(6000, plan_s)], timeout=60)
    started = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Started", timeout=20)
    csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Updated"
                and m["transactionInfo"].get("chargingState") == "Charging", timeout=20)
    deadline = time.monotonic() + 15
    p = dc_link.read().power_w
    while p < 3000 and time.monotonic() < deadline:    # poll: power must flow before the stop means anything
        time.sleep(0.1)
        p = dc_link.read().power_w
    if p < 3000:
        raise Inconclusive(f"no charging power before the remote stop ({p:.0f} W)")
    t_stop = time.monotonic()
    answer = csms.request_stop_transaction(started["transactionInfo"]["transactionId"])
    check(answer.get("status") == "Accepted", f"RequestStopTransaction answered {answer}", "F03.FR.02")
    ended = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Ended", timeout=10)
    res = fut.result(timeout=60)
    evidence.attach_text("session-summary", res.summary())
    entries = ev_trace(res)
    terminate = [e for e in entries if e["dir"] == "rx" and e["name"] == "DC_ChargeLoopRes"
                 and find(e["decoded"], "EVSENotification") == "Terminate"]
    after = [e["name"] for e in entries if terminate and e["dir"] == "tx" and e["t"] >= terminate[0]["t"]]
    available = csms.expect("StatusNotification", where=lambda m: m["connectorStatus"] == "Available"
                            and m.seq > ended.seq, timeout=10)
    power_after = dc_link.read().power_w
    stop_req_t = next((e["t"] for e in entries if e["dir"] == "tx" and e["name"] == "SessionStopReq"), None)
    evidence.attach_json("remote-stop", {"stop_to_ended_s": ended.t - t_stop,
                                         "stop_to_terminate_s": terminate[0]["t"] - t_stop if terminate else None,
                                         "stop_to_ev_session_stop_s": None if stop_req_t is None else stop_req_t - t_stop,
                                         "ev_sent_after_terminate": after, "power_after_w": power_after,
                                         "session_wall_s": res.wall_s})
    check(ended["transactionInfo"].get("stoppedReason") == "Remote" and ended["triggerReason"] == "RemoteStop",
          f"Ended: stoppedReason {ended['transactionInfo'].get('stoppedReason')}, triggerReason "
          f"{ended['triggerReason']} (expected Remote / RemoteStop)", "F03.FR.04")
    check(bool(terminate), "the charger never told the EV to terminate (no EVSENotification Terminate in "
          "DC_ChargeLoopRes)", "V2GB-COUPLING-05")
    check("SessionStopReq" in after and res.rx_names and res.rx_names[-1] == "SessionStopRes",
          f"the EV's session did not end with SessionStop after Terminate: {after[-5:]}", "V2GB-COUPLING-05")
    check(res.wall_s < plan_s, f"the EV session ran its whole plan ({res.wall_s:.1f} s): the stop did not reach it",
          "V2GB-COUPLING-05")
    check(abs(power_after) <= dut_profile.tolerance("power_abs_w", 500.0),
          f"{power_after:.0f} W still flowing after the session ended", "F03.FR.04")
    check(available.seq > ended.seq, "connector not Available after the stop", "F03")
