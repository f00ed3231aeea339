"""The charger as ONE device: its ISO 15118 side (towards our EV emulator) and its OCPP side (towards our CSMS
emulator) must agree, as on a real bidirectional charger. The oracle is never the charger: expected values come
from the EV emulator's own V2GTP trace (what went over the wire from the EV), the CSMS's recorded frames, the
profile the test sent and the instruments."""
from __future__ import annotations

import datetime as dt
import time

from v2g_bench.conformance import Case, V, cases_test, iso15118, judge, ocpp, step
from v2g_bench.conformance.iso15118 import find_key, first_entry, rational, session_result, trace_entries
from v2g_bench.errors import BenchError, Inconclusive, Nonconformance
from v2g_bench.ev.model import Phase
from v2g_bench.verification.compliance import CommandedProfile

STD, SIDE = "ISO 15118-20 + OCPP", "CS"
# EV values distinct from every default of the bench, the lab and the station, so a charger that forwards anything
# but the EV's own parameters is caught
EV_MODEL = dict(max_charge_power_w=7300.0, max_discharge_power_w=6100.0, max_charge_current_a=21.0,
                max_discharge_current_a=17.0, max_voltage_v=441.0, min_voltage_v=262.0, target_soc=0.77,
                departure_s=5400.0)


def check(cond: bool, msg: str, req: str) -> None:
    if not cond:
        raise Nonconformance(msg, req=req)


def dc_link(ctx):
    if ctx.dc_link is None:
        raise BenchError("no battery emulator on the DC link")


def parse_utc(s: str) -> float:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def frame(ctx, name):
    return ctx.vars["_frames"][name]


def ev_sent_needs(entries) -> dict:
    """What the EV sent in DC_ChargeParameterDiscoveryReq and ScheduleExchangeReq (ISO units/signs)."""
    cpd = first_entry(entries, "tx", "DC_ChargeParameterDiscoveryReq")["decoded"]
    se = first_entry(entries, "tx", "ScheduleExchangeReq")["decoded"]
    r = {k: rational(find_key(cpd, k)) for k in (
        "EVMaximumChargePower", "EVMinimumChargePower", "EVMaximumChargeCurrent", "EVMinimumChargeCurrent",
        "EVMaximumVoltage", "EVMinimumVoltage", "EVMaximumDischargePower", "EVMinimumDischargePower",
        "EVMaximumDischargeCurrent", "EVMinimumDischargeCurrent")}
    r["TargetSOC"] = find_key(cpd, "TargetSOC")
    for k in ("EVTargetEnergyRequest", "EVMaximumEnergyRequest", "EVMinimumEnergyRequest"):
        r[k] = rational(find_key(se, k))
    r["DepartureTime"] = find_key(se, "DepartureTime")
    return r


# ------------------------------------------------------------------ (a) EV session -> OCPP transaction + needs
def transaction_follows_session(ctx):
    res = session_result(ctx)
    entries = ctx.vars["entries"] = trace_entries(res)
    started, ended = frame(ctx, "started"), frame(ctx, "ended")
    occupied, charging = frame(ctx, "occupied"), frame(ctx, "charging")
    auth_t = first_entry(entries, "rx", "AuthorizationRes")["t"]
    stop_t = first_entry(entries, "rx", "SessionStopRes")["t"]
    tx = started["transactionInfo"]["transactionId"]
    check(occupied.seq < started.seq, "StatusNotification Occupied did not precede the transaction", "E02.FR.01")
    check(started.t >= auth_t - 0.5, "the transaction started before the EV was authorized", "E02.FR.02")
    check(charging["transactionInfo"]["transactionId"] == tx, "ChargingStateChanged -> Charging of another "
          "transaction", "E01.FR.16")
    check(ended["transactionInfo"]["transactionId"] == tx and ended.t >= stop_t - 0.5,
          "the transaction did not end with the EV's SessionStop", "E15.FR.04")


def needs_are_the_evs(ctx):
    entries, n_frame = ctx.vars["entries"], frame(ctx, "needs")
    sent = ev_sent_needs(entries)
    n = n_frame["chargingNeeds"]
    ctx.attach("ev-sent-vs-forwarded", {"ev_sent": sent, "charging_needs": n})
    if sent["EVMaximumChargePower"] != EV_MODEL["max_charge_power_w"]:
        raise BenchError(f"the EV emulator did not send its model's values ({sent['EVMaximumChargePower']})")
    check(frame(ctx, "started").seq < n_frame.seq, "NotifyEVChargingNeeds before the transaction started",
          "TC_Q_101_CS" if ctx.version == "2.1" else "K15.FR.01")
    ch, dis = ctx.dut_profile.charge, ctx.dut_profile.discharge
    dep = parse_utc(n["departureTime"]) - (time.time() - (time.monotonic() - n_frame.t))
    if ctx.version == "2.1":
        req = "TC_Q_101_CS"
        v = n.get("v2xChargingParameters")
        check(v is not None and n["requestedEnergyTransfer"] == "DC_BPT" and n.get("controlMode") == "ScheduledControl",
              f"expected DC_BPT ScheduledControl with v2xChargingParameters, got {n}", req)
        want = {"maxChargePower": min(sent["EVMaximumChargePower"], ch.power_max_w),
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
        got = v
    else:
        req = "K15.FR.01"
        got = n.get("dcChargingParameters")
        check(got is not None and n["requestedEnergyTransfer"] == "DC", f"expected DC with dcChargingParameters: {n}",
              req)
        want = {"evMaxCurrent": sent["EVMaximumChargeCurrent"], "evMaxVoltage": sent["EVMaximumVoltage"],
                "evMaxPower": sent["EVMaximumChargePower"], "energyAmount": max(sent["EVTargetEnergyRequest"], 0.0)}
    check(abs(dep - sent["DepartureTime"]) <= 5.0,
          f"departureTime is {dep:.0f} s after the frame; the EV asked {sent['DepartureTime']} s", req)
    wrong = {k: (got.get(k), e) for k, e in want.items() if got.get(k) is None or abs(float(got[k]) - e) > 0.01}
    check(not wrong, f"charging parameters differ from what the EV sent (field: (forwarded, expected)): {wrong}", req)


def session_case() -> Case:
    return Case(
        "COMB-01", title="The EV's -20 session drives the OCPP transaction and the EV's needs reach the CSMS",
        standard=STD, block="Transaction and charging needs", side=SIDE, versions=("2.0.1", "2.1"),
        covers=("TC_E_46_CS", "TC_Q_101_CS", "K15.FR.01", "E02.FR.02", "V2GB-COUPLING-01"),
        requires=("ISO15118-20", "DC_BPT", "scheduled"),
        given=[ocpp.connected(), step("the battery emulator holds the DC link", dc_link, kind="given")],
        steps=[iso15118.session(service="DC_BPT", control_mode="scheduled", ev_model=EV_MODEL,
                                plan=[Phase(4000, 2.0), Phase(-3000, 2.0)], timeout_s=60),
               iso15118.session_ok(req="V2GB-COUPLING-01"),
               ocpp.expect("StatusNotification", connectorStatus="Occupied", save_as="occupied", req="E02.FR.01"),
               ocpp.expect("TransactionEvent", eventType="Started", triggerReason="Authorized",
                           transactionInfo={"chargingState": "EVConnected"}, save_as="started", req="E02.FR.02"),
               ocpp.expect("TransactionEvent", eventType="Updated", triggerReason="ChargingStateChanged",
                           transactionInfo={"chargingState": "Charging"}, save_as="charging", req="E01.FR.16"),
               ocpp.expect("TransactionEvent", eventType="Ended", triggerReason="StopAuthorized",
                           transactionInfo={"stoppedReason": "StoppedByEV"}, save_as="ended", req="E15.FR.04"),
               ocpp.expect("NotifyEVChargingNeeds", save_as="needs", req="K15.FR.01"),
               ocpp.expect("StatusNotification", connectorStatus="Available", save_as="available", req="E15.FR.04",
                           fresh=True),
               step("the transaction follows the EV's session (authorized, charging, stopped by the EV)",
                    transaction_follows_session, req="E02.FR.02", kind="judge"),
               step("NotifyEVChargingNeeds carries what the EV sent, as OCPP defines each field", needs_are_the_evs,
                    req="K15.FR.01", kind="judge")])


# ------------------------------------------------------- (b) CSMS discharge profile limits the EV's grant
PERIODS = [(0, -4000.0), (8, -2000.0)]            # discharge setpoints, bench sign


def set_discharge_profile(ctx):
    prof = ctx.csms.charging_profile(7, "TxProfile", PERIODS,
                                     transaction_id=ctx.vars["started"]["transactionInfo"]["transactionId"])
    start_wall = parse_utc(prof["chargingSchedule"][0]["startSchedule"])
    ctx.vars["profile_start"] = time.monotonic() - (time.time() - start_wall)
    return {"evseId": 1, "chargingProfile": prof}


def expected_grants(ctx):
    """min(EV request, profile) at each DC_ChargeLoopReq the EV sent, from the EV's own request and the profile."""
    entries = trace_entries(session_result(ctx))
    dut = ctx.dut_profile
    accepted, start = ctx.vars["accepted_t"], ctx.vars["profile_start"]
    out = []
    for e in entries:
        if e["dir"] != "tx" or e["name"] != "DC_ChargeLoopReq":
            continue
        ev_ch = rational(find_key(e["decoded"], "EVMaximumChargePower")) or 0.0
        ev_dis = abs(rational(find_key(e["decoded"], "EVMaximumDischargePower")) or 0.0)
        want = min(ev_ch, dut.charge.power_max_w) if ev_ch > 0 else -min(ev_dis, dut.discharge.power_max_w)
        if e["t"] >= accepted:
            active = [p for s, p in PERIODS if e["t"] >= start + s]
            if active:
                want = max(active[-1], -min(ev_dis, dut.discharge.power_max_w)) if ev_dis > 0 else 0.0
        out.append((e["t"], want))
    if len(out) < 20:
        raise Inconclusive(f"only {len(out)} charge loops")
    steps = [out[0]] + [g for a, g in zip(out, out[1:]) if abs(g[1] - a[1]) > 1.0]
    levels = sorted({round(p) for _, p in steps})
    if not (-4000 in levels and -3000 in levels and -2000 in levels):
        raise Inconclusive(f"the run did not exercise min(EV, profile) at every level: {levels}")
    ctx.vars["commanded"] = CommandedProfile.from_steps(steps, out[-1][0])
    ctx.attach("expected-grants", {"steps": steps, "profile_periods": PERIODS})


def profile_case() -> Case:
    def note_accepted(ctx):
        ctx.vars["accepted_t"] = ctx.last_wire_t
    return Case(
        "COMB-02", title="A CSMS discharge profile limits what the charger grants the EV (measured)",
        standard=STD, block="K Smart charging (measured power)", side=SIDE, versions=("2.0.1", "2.1"),
        covers=("K01.FR.07", "TC_Q_109_CS", "V2GB-COUPLING-02"), requires=("ISO15118-20", "DC_BPT", "dynamic", "V2X"),
        markers=("power",),
        given=[ocpp.connected(), step("the battery emulator holds the DC link", dc_link, kind="given")],
        steps=[judge.record_dc_power(save_as="dc", with_battery=False),
               # the EV first asks less than the profile allows (its request wins), then more (the profile wins)
               iso15118.session(service="DC_BPT", control_mode="dynamic", background=True, timeout_s=60,
                                plan=[Phase(-3000, 4.0), Phase(-8000, 11.0), Phase(0, 1.5)]),
               ocpp.expect("TransactionEvent", eventType="Started", within_s=20, save_as="started"),
               ocpp.call("SetChargingProfile", set_discharge_profile),
               ocpp.answer(status="Accepted", req="K01.FR.07"),
               step("note when the profile was accepted (wire time)", note_accepted, kind="stimulus"),
               iso15118.session_ok(req="V2GB-COUPLING-02"),
               step("expected grant = min(EV request, profile) per charge loop, from the EV's trace", expected_grants,
                    kind="judge"),
               judge.power_follows("commanded", samples="dc", req="V2GB-COUPLING-02", min_samples=20,
                                   title="DC power vs min(EV request, CSMS profile)",
                                   max_charge_w=lambda ctx: ctx.dut_profile.tolerance("power_abs_w", 500),
                                   max_discharge_w=lambda ctx: 4000.0 + ctx.dut_profile.tolerance("power_abs_w", 500))])


# ------------------------------------------------------ (c) TransactionEvent registers vs the analyzer
def registers_case() -> Case:
    def flowed(ctx):
        a0, a1 = ctx.vars["energy0"], {e: ctx.analyzer.energy_wh(e) for e in (1, 2)}
        din, dout = a1[1][0] - a0[1][0], a1[1][1] - a0[1][1]
        check(din >= 2.0 and dout >= 2.0, f"energy did not flow both ways: in {din:.2f} Wh, out {dout:.2f} Wh",
              "V2GB-COUPLING-03")
    return Case(
        "COMB-03", title="TransactionEvent energy registers agree with the analyzer over an EV session",
        standard=STD, block="Transaction energy", side=SIDE, versions=("2.0.1", "2.1"),
        covers=("TC_Q_100_CS", "V2GB-COUPLING-03"), requires=("ISO15118-20", "DC_BPT", "dynamic"),
        given=[ocpp.connected(), step("the battery emulator holds the DC link", dc_link, kind="given"),
               judge.save_analyzer_energy("energy0")],
        steps=[iso15118.session(service="DC_BPT", control_mode="dynamic", timeout_s=60,
                                plan=[Phase(8000, 5.0), Phase(-7000, 5.0)]),
               iso15118.session_ok(req="V2GB-COUPLING-03"),
               ocpp.expect("TransactionEvent", eventType="Started", save_as="started"),
               ocpp.expect("TransactionEvent", eventType="Ended", save_as="ended",
                           transactionInfo={"transactionId": V("started.transactionInfo.transactionId")}),
               step("energy flowed both ways on the DC link", flowed, req="V2GB-COUPLING-03", kind="judge"),
               judge.energy_registers_match("started", "ended", req="V2GB-COUPLING-03")])


# ------------------------------------------------- (d) scheduled mode: the offered schedule is the CSMS's
LIMIT_W = 5000.0


def offered_schedule_is_composite(ctx):
    entries = ctx.vars["entries"] = trace_entries(session_result(ctx))
    se = first_entry(entries, "rx", "ScheduleExchangeRes")["decoded"]
    tup = find_key(se, "ScheduleTuple")[0]
    charge = [rational(x["Power"]) for x in find_key(tup["ChargingSchedule"], "PowerScheduleEntry")]
    dis_sched = tup.get("DischargingSchedule")
    discharge = [rational(x["Power"]) for x in find_key(dis_sched, "PowerScheduleEntry")] if dis_sched else []
    ctx.attach("offered-schedule", {"charging_w": charge, "discharging_w": discharge})
    check(charge and all(abs(p - LIMIT_W) < 1.0 for p in charge),
          f"ChargingSchedule offers {charge} W; the CSMS's TxDefaultProfile allows {LIMIT_W:g} W", "V2GB-COUPLING-04")
    check(all(abs(p) < 1.0 for p in discharge),
          f"DischargingSchedule offers {discharge} W although the profile is ChargingOnly", "V2GB-COUPLING-04")


def stage_keeps_to_profile(ctx):
    s = ctx.vars["dc"].stop()
    entries, dut = ctx.vars["entries"], ctx.dut_profile
    loops = [e["t"] for e in entries if e["dir"] == "tx" and e["name"] == "DC_ChargeLoopReq"]
    if len(loops) < 10:
        raise Inconclusive(f"only {len(loops)} charge loops")
    band = dut.tolerance("power_abs_w", 500.0) + dut.tolerance("power_rel", 0.02) * LIMIT_W
    steady = s.between(loops[0] + dut.tolerance("settle_s", 5.0), loops[-1])["dc_w"]
    if len(steady) <= 5:
        raise Inconclusive("no steady samples")
    peak = float(max(s.between(loops[0], loops[-1])["dc_w"]))
    check(peak <= LIMIT_W + band, f"the stage exceeded the profile: {peak:.0f} W > {LIMIT_W:g} W", "K01.FR.07")
    check(abs(float(steady.mean()) - LIMIT_W) <= band,
          f"steady DC power {float(steady.mean()):.0f} W, expected min(EV 8000, profile {LIMIT_W:g}) W", "K01.FR.07")


def scheduled_case() -> Case:
    def clear_later(ctx):
        ctx.on_close(lambda: ctx.csms.clear_charging_profile(9))
    return Case(
        "COMB-04", title="Scheduled mode: ScheduleExchangeRes offers the CSMS's composite schedule, the stage keeps it",
        standard=STD, block="ScheduleExchange x K Smart charging", side="SECC", versions=("2.1",),
        covers=("K01.FR.01", "K01.FR.07", "V2GB-COUPLING-04"), requires=("ISO15118-20", "DC_BPT", "scheduled"),
        markers=("power",),
        given=[ocpp.connected(), step("the battery emulator holds the DC link", dc_link, kind="given")],
        steps=[ocpp.call("SetChargingProfile", lambda ctx: {"evseId": 1, "chargingProfile": ctx.csms.charging_profile(
                   9, "TxDefaultProfile", [(0, LIMIT_W)], stack_level=1)}),
               ocpp.answer(status="Accepted", req="K01.FR.01"),
               step("the profile is cleared at the end", clear_later, kind="stimulus"),
               judge.record_dc_power(save_as="dc", with_battery=False),
               iso15118.session(service="DC_BPT", control_mode="scheduled", timeout_s=60, plan=[Phase(8000, 7.0)]),
               iso15118.session_ok(req="V2GB-COUPLING-04"),
               step("the offered ChargingSchedule is the profile's limit, no discharge offered",
                    offered_schedule_is_composite, req="V2GB-COUPLING-04", kind="judge"),
               step("the stage ran at min(EV 8 kW, profile 5 kW), never above (analyzer)", stage_keeps_to_profile,
                    req="K01.FR.07", kind="judge")])


# ------------------------------------------- (e) CSMS remote stop during an EV session ends it on both sides
PLAN_S = 30.0


def power_flows(ctx):
    deadline = time.monotonic() + 15
    p = ctx.dc_link.read().power_w
    while p < 3000 and time.monotonic() < deadline:    # power must flow before the stop means anything
        time.sleep(0.1)
        p = ctx.dc_link.read().power_w
    if p < 3000:
        raise Inconclusive(f"no charging power before the remote stop ({p:.0f} W)")
    ctx.vars["t_stop"] = time.monotonic()


def both_sides_stopped(ctx):
    res = session_result(ctx)
    entries = trace_entries(res)
    terminate = [e for e in entries if e["dir"] == "rx" and e["name"] == "DC_ChargeLoopRes"
                 and find_key(e["decoded"], "EVSENotification") == "Terminate"]
    after = [e["name"] for e in entries if terminate and e["dir"] == "tx" and e["t"] >= terminate[0]["t"]]
    power_after = ctx.dc_link.read().power_w
    ctx.attach("remote-stop", {"stop_to_terminate_s": terminate[0]["t"] - ctx.vars["t_stop"] if terminate else None,
                               "ev_sent_after_terminate": after, "power_after_w": power_after,
                               "session_wall_s": res.wall_s})
    check(bool(terminate), "the charger never told the EV to terminate (no EVSENotification Terminate in "
          "DC_ChargeLoopRes)", "V2GB-COUPLING-05")
    check("SessionStopReq" in after and res.rx_names and res.rx_names[-1] == "SessionStopRes",
          f"the EV's session did not end with SessionStop after Terminate: {after[-5:]}", "V2GB-COUPLING-05")
    check(res.wall_s < PLAN_S, f"the EV session ran its whole plan ({res.wall_s:.1f} s): the stop did not reach it",
          "V2GB-COUPLING-05")
    check(abs(power_after) <= ctx.dut_profile.tolerance("power_abs_w", 500.0),
          f"{power_after:.0f} W still flowing after the session ended", "F03.FR.04")


def remote_stop_case() -> Case:
    return Case(
        "COMB-05", title="A CSMS remote stop during an EV session ends it on both sides",
        standard=STD, block="F Remote control", side="SECC", versions=("2.0.1", "2.1"),
        covers=("TC_F_08_CS", "F03.FR.02", "F03.FR.04", "V2GB-COUPLING-05"),
        requires=("ISO15118-20", "DC_BPT", "dynamic"),
        given=[ocpp.connected(), step("the battery emulator holds the DC link", dc_link, kind="given")],
        steps=[iso15118.session(service="DC_BPT", control_mode="dynamic", background=True, timeout_s=60,
                                plan=[Phase(6000, PLAN_S)]),
               ocpp.expect("TransactionEvent", eventType="Started", within_s=20, save_as="started"),
               ocpp.expect("TransactionEvent", eventType="Updated", transactionInfo={"chargingState": "Charging"},
                           within_s=20),
               step("charging power flows (analyzer)", power_flows, kind="stimulus"),
               ocpp.call("RequestStopTransaction",
                         {"transactionId": V("started.transactionInfo.transactionId")}),
               ocpp.answer(status="Accepted", req="F03.FR.02"),
               ocpp.expect("TransactionEvent", eventType="Ended", triggerReason="RemoteStop",
                           transactionInfo={"stoppedReason": "Remote"}, within_s=10, save_as="ended",
                           req="F03.FR.04"),
               ocpp.expect("StatusNotification", connectorStatus="Available", within_s=10, req="F03.FR.04",
                           fresh=True),
               step("the EV was told to terminate and stopped; no power flows", both_sides_stopped,
                    req="V2GB-COUPLING-05", kind="judge")])


CASES = [session_case(), profile_case(), registers_case(), scheduled_case(), remote_stop_case()]
test_combined = cases_test(CASES)
