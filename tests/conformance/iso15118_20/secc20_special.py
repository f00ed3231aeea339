"""ISO 15118-20 SECC cases beyond the per-message pattern: V2GTP framing, SDP, SAP, session identity, invalid
parameter values, control-mode variants, BPT limits on measured power, a charger-side stop, and the oracle's
independence check. See secc20_rows.py for the conventions."""
from __future__ import annotations

import threading
import time

from v2g_bench.conformance import Case, step
from v2g_bench.conformance.iso15118 import response, session_ok
from v2g_bench.conformance.iso15118_steps import (
    answered, ev_session, first_response, measured_discharge_current_within, measured_discharge_within,
    measured_power_tracks_target, not_answered, oracle_clean,
    present_values_track_measured, secc_closes_tcp, session_of, value_of,
)
from v2g_bench.conformance.match import present
from v2g_bench.errors import Inconclusive, Nonconformance

from secc20_pause import pause_cases
from secc20_rows import LINGER_S, STANDARD, TCP_CLOSE_S, good_case, performance_case
from secc20_security import security_cases

S20 = "urn:iso:std:iso:15118:-20:DC"


def _app(ns: str, schema_id: int, priority: int):
    from iso15118.shared.messages.app_protocol import AppProtocol
    return AppProtocol(ProtocolNamespace=ns, VersionNumberMajor=1 if "-20" in ns else 2, VersionNumberMinor=0,
                       SchemaID=schema_id, Priority=priority)


def _offer_unknown(_original):
    return [_app("urn:example:not-a-v2g-protocol:2030", 1, 1)]


def _offer_two_priorities(original):
    # the -20 DC namespace twice: SchemaID 1 at priority 2, SchemaID 2 at priority 1: a charger must answer the
    # EV's highest priority among what it supports, SchemaID 2 (V2G20-169)
    return [_app(S20, 1, 2), _app(S20, 2, 1)]


def v2gtp_case(cid: str, tc: str, title: str, params: dict, kind: str = "raw_header") -> Case:
    return Case(f"ISO20_V2GTP_{cid}", title=title, standard=STANDARD, block="V2GTP", side="SECC",
                covers=(tc,), requires=("ISO15118-20", "DC_BPT"),
                steps=[ev_session(misbehave=(kind, "SessionSetupReq", params), timeout_s=30, response_floor_s=3.0),
                       not_answered(req=tc)])


def _session_ids_differ(ctx):
    ids = []
    for name in ("first", "second"):
        rows = [r for r in _trace(session_of(ctx, name)) if r.get("dir") == "rx" and r.get("name") == "SessionSetupRes"]
        if not rows:
            raise Inconclusive(f"the {name} session got no SessionSetupRes")
        ids.append(rows[0]["decoded"]["SessionSetupRes"]["Header"]["SessionID"])
    ctx.attach("session-ids", ids)
    a, b = (int(x, 16) for x in ids)
    if a == b:
        raise Nonconformance(f"two new sessions got the same SessionID {ids[0]}", req="V2G20-2621")
    if bin(a ^ b).count("1") < 8:
        raise Nonconformance(f"SessionIDs {ids[0]} and {ids[1]} differ in {bin(a ^ b).count('1')} bits only: "
                             "not random", req="V2G20-2621")


def _trace(res) -> list[dict]:
    import json
    with open(res.trace_path, encoding="utf-8") as f:
        return [json.loads(x) for x in f if x.strip()]


def _cpd_within_ratings(body, ctx):
    d = ctx.dut_profile
    out = []
    for key, rating in (("EVSEMaximumChargePower", d.charge.power_max_w),
                        ("EVSEMaximumDischargePower", d.discharge.power_max_w if d.discharge else None)):
        v = value_of(body, key)
        if rating is None:
            continue
        if v is None:
            out.append(f"{key} missing (the DUT claims BPT)")
        elif not 0 < v <= rating * 1.0001:
            out.append(f"{key} = {v:g} W, the DUT profile rates {rating:g} W")
    return "; ".join(out) or None


def _stop_when_charging(ctx):
    """The charger ends the session on its own once power flows (lab control op; a real bench: operator stop)."""
    control = ctx.dut.control

    def run():
        end = time.monotonic() + 40
        while time.monotonic() < end:
            try:
                if control.call("secc_status").get("mode") in ("dynamic", "scheduled"):
                    time.sleep(1.0)
                    control.call("secc.request_stop", reason="Local")
                    return
            except Exception:  # noqa: BLE001 - the session step judges what happened
                return
            time.sleep(0.2)
    threading.Thread(target=run, name="charger-stop", daemon=True).start()


def _ended_by_terminate(ctx):
    res = session_of(ctx)
    rows = [r for r in _trace(res) if r.get("dir") == "rx" and r.get("name") == "DC_ChargeLoopRes"]
    notes = [((r["decoded"]["DC_ChargeLoopRes"].get("EVSEStatus") or {}).get("EVSENotification")) for r in rows]
    ctx.attach("evse-notifications", notes)
    if "Terminate" in notes:
        # the bench EV's reaction (a figure, not a verdict on the charger): from the first Terminate to its
        # PowerDeliveryReq (Stop), on the trace's clock
        trace = _trace(res)
        t_term = rows[notes.index("Terminate")].get("t")
        stop = next((r for r in trace if r.get("dir") == "tx" and r.get("name") == "PowerDeliveryReq"
                     and t_term is not None and r.get("t", 0) > t_term), None)
        if stop is not None:
            ctx.attach("ev-reaction", {"terminate_rx_t": t_term, "power_delivery_stop_tx_t": stop["t"],
                                       "ev_reaction_s": round(stop["t"] - t_term, 4)})
    if "Terminate" not in notes:
        raise Nonconformance("the charger stopped (operator stop) but no DC_ChargeLoopRes carried EVSENotification "
                             "Terminate", req="V2GB-15118-STOP-01")
    if res.wall_s >= LONG_PLAN_S:
        raise Nonconformance(f"the session ran its whole {LONG_PLAN_S:g} s plan despite the charger's stop",
                             req="V2GB-15118-STOP-01")


BPT_EV_MAX_DISCHARGE_W = 4000.0
BPT_EV_MAX_DISCHARGE_A = 8.0       # ~3 kW at the lab battery's ~370 V: below the stage's and the plan's power


def special_cases() -> list[Case]:
    rows = [
        # --- V2GTP framing (ISO 15118-4 V2GTPSessionSetup): the SECC ignores a frame it cannot accept
        v2gtp_case("wrong_version", "TC_SECC_CMN_VTB_V2GTPSessionSetup_004",
                   "protocol version 0xFF in the V2GTP header: not answered", {"version": 0xFF, "inverse": 0x00}),
        v2gtp_case("inverse_mismatch", "TC_SECC_CMN_VTB_V2GTPSessionSetup_005",
                   "inverse protocol version 0xFF (not ~0x01): not answered", {"inverse": 0xFF}),
        v2gtp_case("unknown_payload_type", "TC_SECC_CMN_VTB_V2GTPSessionSetup_003",
                   "payload type 0x7001: not answered", {"payload_type": 0x7001}),
        v2gtp_case("length_zero", "TC_SECC_CMN_VTB_V2GTPSessionSetup_002",
                   "payload length 0 with an EXI body following: not answered", {"length": 0}),
        v2gtp_case("length_beyond_data", "TC_SECC_CMN_VTB_V2GTPSessionSetup_002",
                   "payload length beyond the data sent: not answered", {"length": 4096}),
        Case("ISO20_V2GTP_header_of_responses", title="every response carries version 0x01/0xFE and a -20 payload type",
             standard=STANDARD, block="V2GTP", side="SECC", covers=("TC_SECC_CMN_VTB_V2GTPSessionSetup_001",),
             requires=("ISO15118-20", "DC_BPT"),
             steps=[ev_session(), oracle_clean(rules=("V2GTP-header",), req="TC_SECC_CMN_VTB_V2GTPSessionSetup_001")]),
        # --- SDP
        Case("ISO20_SDP_no_security", title="SDP request without security: response without TLS, TCP, a port",
             standard=STANDARD, block="SDP", side="SECC", covers=("TC_SECC_CMN_VTB_SDP_001",),
             requires=("ISO15118-20", "DC_BPT"),
             steps=[ev_session(), oracle_clean(rules=("SDP-security", "SDP-transport", "V2GTP-header"),
                                               req="TC_SECC_CMN_VTB_SDP_001")]),
        # --- SupportedAppProtocol
        Case("ISO20_SAP_no_common_protocol", title="only an unknown namespace offered: Failed_NoNegotiation, TCP closed",
             standard=STANDARD, block="SupportedAppProtocol", side="SECC",
             covers=("TC_SECC_CMN_VTB_SupportedAppProtocol_002", "V2G20-1633"), requires=("ISO15118-20", "DC_BPT"),
             steps=[ev_session(linger_s=LINGER_S, timeout_s=30,
                               misbehave=("mutate", "SupportedAppProtocolReq",
                                          {"path": "app_protocol", "value": _offer_unknown})),
                    answered("supportedAppProtocolRes", ResponseCode="Failed_NoNegotiation",
                             req="TC_SECC_CMN_VTB_SupportedAppProtocol_002"),
                    secc_closes_tcp(within_s=TCP_CLOSE_S, req="V2G20-1633")]),
        Case("ISO20_SAP_priority", title="the -20 namespace offered at priorities 2 (SchemaID 1) and 1 (SchemaID 2): "
             "the SECC answers SchemaID 2", standard=STANDARD, block="SupportedAppProtocol", side="SECC",
             covers=("TC_SECC_CMN_VTB_SupportedAppProtocol_001", "V2G20-169"), requires=("ISO15118-20", "DC_BPT"),
             steps=[ev_session(misbehave=("mutate", "SupportedAppProtocolReq",
                                          {"path": "app_protocol", "value": _offer_two_priorities})),
                    answered("supportedAppProtocolRes", ResponseCode="OK_SuccessfulNegotiation", SchemaID=2,
                             req="V2G20-169")]),
        Case("ISO20_SAP_not_without_TLS", title="-20 is not selected over plain TCP (TLS 1.3 is mandatory for -20)",
             standard=STANDARD, block="SupportedAppProtocol", side="SECC", covers=("V2G20-2356", "V2G20-1805"),
             requires=("ISO15118-20", "DC_BPT"),
             description="Fails against the virtual lab's default SECC: it selects -20 over TCP (enforce_tls = false, "
                         "the DUT profile claims tls = false) - a real nonconformance kept visible.",
             steps=[ev_session(), oracle_clean(rules=("-20-without-TLS",), ignore=(), req="V2G20-2356")]),
        # --- session identity
        Case("ISO20_SessionSetup_id_entropy", title="two new sessions get different, random-looking SessionIDs",
             standard=STANDARD, block="SessionSetup", side="SECC", covers=("V2G20-2621", "V2G20-2106"),
             requires=("ISO15118-20", "DC_BPT"),
             steps=[ev_session(save_as="first", misbehave=("wrong_session_id", "ServiceDiscoveryReq"), timeout_s=30),
                    ev_session(save_as="second", misbehave=("wrong_session_id", "ServiceDiscoveryReq"), timeout_s=30),
                    step("the two SessionIDs differ in many bits", _session_ids_differ, req="V2G20-2621")]),
        Case("ISO20_SessionSetup_replayed", title="SessionSetupReq again mid-session: FAILED_SequenceError in a "
             "schema-valid SessionSetupRes, TCP closed", standard=STANDARD, block="SessionSetup", side="SECC",
             covers=("TC_SECC_CMN_VTB_SessionSetup_002", "V2G20-459", "V2G20-736"), requires=("ISO15118-20", "DC_BPT"),
             description="Fails against the iso15118 stack: its FAILED SessionSetupRes carries an empty EVSEID, "
                         "which is not valid EXI for the -20 schema (found by the oracle, bit position named).",
             steps=[ev_session(linger_s=LINGER_S, misbehave=("out_of_sequence", "ServiceDiscoveryReq",
                                                             {"replay": "SessionSetupReq"})),
                    oracle_clean(rules=("EXI-strict",), req="V2G20-736"),
                    answered("SessionSetupRes", ResponseCode="FAILED_SequenceError", req="V2G20-459"),
                    secc_closes_tcp(within_s=TCP_CLOSE_S, req="V2G20-1633")]),
        # --- invalid parameter values
        Case("ISO20_ServiceDetail_invalid_service", title="ServiceDetailReq for a service never offered: "
             "FAILED_ServiceIDInvalid", standard=STANDARD, block="ServiceDetail", side="SECC",
             covers=("V2G20-425", "V2G20-464"), requires=("ISO15118-20", "DC_BPT"),
             steps=[ev_session(linger_s=LINGER_S, misbehave=("mutate", "ServiceDetailReq",
                                                             {"path": "service_id", "value": 60000})),
                    answered("ServiceDetailRes", ResponseCode="FAILED_ServiceIDInvalid", req="V2G20-464")]),
        Case("ISO20_ServiceSelection_invalid_pair", title="ServiceSelectionReq with a ServiceID never offered: "
             "FAILED_ServiceSelectionInvalid", standard=STANDARD, block="ServiceSelection", side="SECC",
             covers=("V2G20-433", "V2G20-467"), requires=("ISO15118-20", "DC_BPT"),
             steps=[ev_session(linger_s=LINGER_S, misbehave=("mutate", "ServiceSelectionReq",
                                                             {"path": "selected_energy_service.service_id",
                                                              "value": 60000})),
                    answered("ServiceSelectionRes", ResponseCode="FAILED_ServiceSelectionInvalid", req="V2G20-467")]),
        Case("ISO20_ServiceSelection_invalid_parameter_set", title="ServiceSelectionReq with a ParameterSetID never "
             "offered: FAILED_ServiceSelectionInvalid", standard=STANDARD, block="ServiceSelection", side="SECC",
             covers=("V2G20-433", "V2G20-467"), requires=("ISO15118-20", "DC_BPT"),
             steps=[ev_session(linger_s=LINGER_S, misbehave=("mutate", "ServiceSelectionReq",
                                                             {"path": "selected_energy_service.parameter_set_id",
                                                              "value": 60000})),
                    answered("ServiceSelectionRes", ResponseCode="FAILED_ServiceSelectionInvalid", req="V2G20-467")]),
        Case("ISO20_Authorization_selection_not_offered", title="AuthorizationReq selecting PnC when only EIM was "
             "offered: WARNING_AuthorizationSelectionInvalid", standard=STANDARD, block="Authorization", side="SECC",
             covers=("V2G20-2209", "V2G20-2226"), requires=("ISO15118-20", "DC_BPT"),
             steps=[ev_session(linger_s=LINGER_S, misbehave=("mutate", "AuthorizationReq",
                                                             {"path": "selected_auth_service", "value": _pnc})),
                    answered("AuthorizationRes", ResponseCode="WARNING_AuthorizationSelectionInvalid",
                             req="V2G20-2209")]),
        Case("ISO20_DC_ChargeParameterDiscovery_wrong_parameter", title="DC_ChargeParameterDiscoveryReq with a "
             "maximum voltage below the minimum: FAILED_WrongChargeParameter", standard=STANDARD,
             block="DC_ChargeParameterDiscovery", side="SECC", covers=("V2G20-2272",),
             requires=("ISO15118-20", "DC_BPT"),
             steps=[ev_session(linger_s=LINGER_S, misbehave=("mutate", "DC_ChargeParameterDiscoveryReq",
                                                             {"path": "bpt_dc_params.ev_max_voltage",
                                                              "value": _rational(10)})),
                    answered("DC_ChargeParameterDiscoveryRes", ResponseCode="FAILED_WrongChargeParameter",
                             req="V2G20-2272")]),
        Case("ISO20_AuthorizationSetup_EIM_vs_PnC", title="AuthorizationSetupRes offers the claimed methods; the EIM "
             "element only when PnC is not offered, the PnC element (GenChallenge) when it is", standard=STANDARD,
             block="AuthorizationSetup", side="SECC", covers=("V2G20-1220", "V2G20-2567", "V2G20-1219", "V2G20-2566"),
             requires=("ISO15118-20", "DC_BPT"),
             steps=[ev_session(), first_response("AuthorizationSetupRes", "methods and element consistent",
                                                 _auth_setup_consistent, req="V2G20-1220")]),
        # --- content per control mode and service (V2G20-1600: the variant of the selected control mode)
        Case("ISO20_ScheduleExchange_DC_BPT_scheduled_variant", title="ScheduleExchangeRes in Scheduled mode carries "
             "a Scheduled_SEResControlMode", standard=STANDARD, block="ScheduleExchange", side="SECC",
             covers=("V2G20-1600",), requires=("ISO15118-20", "DC_BPT", "scheduled"),
             steps=[ev_session(control_mode="scheduled"),
                    response("ScheduleExchangeRes", {"ResponseCode": "OK", "Scheduled_SEResControlMode": present}, req="V2G20-1600")]),
        Case("ISO20_ScheduleExchange_DC_BPT_dynamic_variant", title="ScheduleExchangeRes in Dynamic mode carries "
             "a Dynamic_SEResControlMode", standard=STANDARD, block="ScheduleExchange", side="SECC",
             covers=("V2G20-1600",), requires=("ISO15118-20", "DC_BPT", "dynamic"),
             steps=[ev_session(control_mode="dynamic"),
                    response("ScheduleExchangeRes", {"ResponseCode": "OK", "Dynamic_SEResControlMode": present}, req="V2G20-1600")]),
        Case("ISO20_DC_ChargeLoop_DC_BPT_dynamic_variant", title="DC_ChargeLoopRes in BPT Dynamic mode carries the "
             "BPT dynamic parameters", standard=STANDARD, block="DC_ChargeLoop", side="SECC",
             covers=("V2G20-1600",), requires=("ISO15118-20", "DC_BPT", "dynamic"),
             steps=[ev_session(control_mode="dynamic"),
                    response("DC_ChargeLoopRes", {"ResponseCode": "OK", "BPT_Dynamic_DC_CLResControlMode": present}, req="V2G20-1600")]),
        Case("ISO20_DC_ChargeLoop_DC_BPT_scheduled_variant", title="DC_ChargeLoopRes in BPT Scheduled mode carries "
             "the BPT scheduled parameters", standard=STANDARD, block="DC_ChargeLoop", side="SECC",
             covers=("V2G20-1600",), requires=("ISO15118-20", "DC_BPT", "scheduled"),
             steps=[ev_session(control_mode="scheduled"),
                    response("DC_ChargeLoopRes", {"ResponseCode": "OK", "BPT_Scheduled_DC_CLResControlMode": present}, req="V2G20-1600")]),
        Case("ISO20_DC_ChargeParameterDiscovery_BPT_limits", title="DC_ChargeParameterDiscoveryRes (BPT) states "
             "charge and discharge limits within the DUT's ratings", standard=STANDARD,
             block="DC_ChargeParameterDiscovery", side="SECC", covers=("V2G20-2188",),
             requires=("ISO15118-20", "DC_BPT"),
             steps=[ev_session(), first_response("DC_ChargeParameterDiscoveryRes", "limits within the DUT's "
                                                 "ratings, discharge present", _cpd_within_ratings, req="V2G20-2188")]),
        Case("ISO20_DC_ChargeLoop_limits_within_discovery", title="limits in DC_ChargeLoopRes stay within those of "
             "DC_ChargeParameterDiscoveryRes", standard=STANDARD, block="DC_ChargeLoop", side="SECC",
             covers=("V2G20-2654", "V2G20-2655"), requires=("ISO15118-20", "DC_BPT"),
             steps=[ev_session(), oracle_clean(rules=("loop-limit",), req="V2G20-2654")]),
        # --- BPT on measured power (battery emulator on the DC link; the EV reads the analyzer)
        Case("ISO20_BPT_discharge_within_EV_limit", title="dynamic BPT: measured discharge never beyond the EV's "
             "maximum discharge power", standard=STANDARD, block="BPT measured", side="SECC",
             covers=("V2GB-15118-BPT-02",), requires=("ISO15118-20", "DC_BPT", "dynamic"), markers=("power",),
             steps=[ev_session(control_mode="dynamic", measure=True,
                               ev_model={"max_discharge_power_w": BPT_EV_MAX_DISCHARGE_W},
                               plan=lambda ctx: _discharge_plan()),
                    measured_discharge_within(BPT_EV_MAX_DISCHARGE_W, req="V2GB-15118-BPT-02")]),
        Case("ISO20_BPT_discharge_current_within_EV_limit", title="dynamic BPT: measured discharge current never "
             "beyond the EV's maximum discharge current", standard=STANDARD, block="BPT measured", side="SECC",
             covers=("V2GB-15118-BPT-03",), requires=("ISO15118-20", "DC_BPT", "dynamic"), markers=("power",),
             steps=[ev_session(control_mode="dynamic", measure=True,
                               ev_model={"max_discharge_current_a": BPT_EV_MAX_DISCHARGE_A},
                               plan=lambda ctx: _discharge_plan(-6000.0)),
                    measured_discharge_current_within(BPT_EV_MAX_DISCHARGE_A, req="V2GB-15118-BPT-03")]),
        Case("ISO20_BPT_scheduled_tracks_target", title="scheduled BPT: measured DC power follows the EV's target "
             "through charge and discharge within the DUT's band", standard=STANDARD, block="BPT measured",
             side="SECC", covers=("V2GB-15118-BPT-04",), requires=("ISO15118-20", "DC_BPT", "scheduled"),
             markers=("power",),
             steps=[ev_session(control_mode="scheduled", measure=True, plan=lambda ctx: _tracking_plan()),
                    measured_power_tracks_target(req="V2GB-15118-BPT-04")]),
        Case("ISO20_BPT_dynamic_within_EV_window", title="dynamic BPT: measured DC power stays within the power "
             "window the EV offers (charge, then discharge) once settled", standard=STANDARD, block="BPT measured",
             side="SECC", covers=("V2GB-15118-BPT-02",), requires=("ISO15118-20", "DC_BPT", "dynamic"),
             markers=("power",),
             steps=[ev_session(control_mode="dynamic", measure=True, plan=lambda ctx: _tracking_plan()),
                    measured_power_tracks_target(window=True, req="V2GB-15118-BPT-02")]),
        Case("ISO20_BPT_present_values_follow_measured", title="present V x I in DC_ChargeLoopRes follows the "
             "measured DC power through charge and discharge", standard=STANDARD, block="BPT measured", side="SECC",
             covers=("V2GB-15118-PV-01",), requires=("ISO15118-20", "DC_BPT"), markers=("power",),
             steps=[ev_session(measure=True, plan=lambda ctx: _bpt_plan()),
                    present_values_track_measured(req="V2GB-15118-PV-01")]),
        # --- the charger ends the session on its own
        Case("ISO20_EVSE_initiated_stop", title="a charger-side stop reaches the EV as EVSENotification Terminate and "
             "ends the session", standard=STANDARD, block="DC_ChargeLoop", side="SECC",
             covers=("V2GB-15118-STOP-01",), requires=("ISO15118-20", "DC_BPT"), lab_only=True,
             steps=[step("the charger stops once power flows (operator stop)", _stop_when_charging, kind="action"),
                    ev_session(plan=lambda ctx: _long_plan(), timeout_s=60),
                    step("EVSENotification Terminate, the session ended early", _ended_by_terminate,
                         req="V2GB-15118-STOP-01")]),
        # --- MeteringConfirmation (only a DUT claiming it; iso15118 0.31.2 has none: the virtual DUT cannot claim it)
        Case("ISO20_MeteringConfirmation_trigger", title="a charger that asks for a metering confirmation "
             "(EVSENotification MeteringConfirmation) sends the MeterInfo to be confirmed in the same response",
             standard=STANDARD, block="MeteringConfirmation", side="SECC", covers=("V2G20-1919", "V2G20-1083"),
             requires=("ISO15118-20", "DC_BPT", "MeteringConfirmation"),
             description="Needs the MeteringConfirmation claim. The EV emulator's stack cannot send "
                         "MeteringConfirmationReq on its own, so the row judges the charger's trigger; a session in "
                         "which the charger never asks is inconclusive.",
             steps=[ev_session(plan=lambda ctx: _long_plan()),
                    step("MeteringConfirmation notifications carry MeterInfo", _metering_trigger,
                         req="V2G20-1919")]),
        # --- independence: our own strict decoding of every SECC frame equals the emulator's
        Case("ISO20_oracle_every_frame", title="every SECC frame is strict-valid EXI of its namespace and decodes to "
             "what the EV emulator received", standard=STANDARD, block="Oracle", side="SECC",
             covers=("V2GB-15118-ORACLE-01", "V2G20-736"), requires=("ISO15118-20", "DC_BPT"),
             steps=[ev_session(), session_ok(req="V2GB-15118-ORACLE-01"),
                    oracle_clean(rules=("EXI-strict", "oracle-vs-emulator", "no-response",
                                                      "unsolicited", "after-final"), req="V2GB-15118-ORACLE-01")]),
    ]
    # control-mode / service variants of the good cases where the content differs by mode
    for svc, mode in (("DC_BPT", "scheduled"), ("DC", "dynamic"), ("DC", "scheduled")):
        for g in ("DC_ChargeParameterDiscovery", "ScheduleExchange", "PowerDelivery", "DC_ChargeLoop",
                  "DC_WeldingDetection"):
            rows.append(good_case(g, svc, mode))
        rows.append(performance_case("DC_ChargeLoop", svc, mode))
    return rows + security_cases() + pause_cases()


def _metering_trigger(ctx):
    res = session_of(ctx)
    rows = [r for r in _trace(res) if r.get("dir") == "rx" and r.get("name") in ("DC_ChargeLoopRes",
                                                                                 "AC_ChargeLoopRes")]
    asks = []
    for r in rows:
        body = r["decoded"][r["name"]]
        if (body.get("EVSEStatus") or {}).get("EVSENotification") == "MeteringConfirmation":
            asks.append(body)
    ctx.attach("metering-confirmation-requests", len(asks))
    if not asks:
        raise Inconclusive(f"the charger never asked for a metering confirmation in {len(rows)} charge-loop "
                           "responses (the EV emulator cannot start one)")
    missing = [i for i, b in enumerate(asks) if not b.get("MeterInfo")]
    if missing:
        raise Nonconformance(f"{len(missing)} of {len(asks)} responses with EVSENotification MeteringConfirmation "
                             "carry no MeterInfo to confirm", req="V2G20-1919")


def _auth_setup_consistent(body, ctx):
    services = body.get("AuthorizationServices") or []
    services = services if isinstance(services, list) else [services]
    offered = {str(x) for x in services}
    # the EIM element is empty in the schema: its presence is the key, not a value
    if "PnC" in offered:
        if "PnC_ASResAuthorizationMode" not in body:
            return f"PnC offered ({sorted(offered)}) without the PnC element (GenChallenge)"
    elif "EIM" in offered and "EIM_ASResAuthorizationMode" not in body:
        return "only EIM offered but no EIM element"
    claimed = {a.upper() for a in ctx.dut_profile.auth}
    unclaimed = {o for o in offered if o.upper() not in claimed}
    if unclaimed:
        return f"offers {sorted(unclaimed)} the DUT does not claim (claims {sorted(claimed)})"
    return None


def _pnc(_original):
    from iso15118.shared.messages.enums import AuthEnum
    return AuthEnum.PNC


def _rational(volts: float):
    def make(_original):
        from iso15118.shared.messages.iso15118_20.common_types import RationalNumber
        return RationalNumber.get_rational_repr(volts)
    return make


def _bpt_plan():
    from v2g_bench.ev.model import Phase
    return [Phase(4000.0, 4.0), Phase(-4000.0, 4.0)]


LONG_PLAN_S = 30.0


def _long_plan():
    from v2g_bench.ev.model import Phase
    return [Phase(3000.0, LONG_PLAN_S)]


def _discharge_plan(discharge_w: float = -BPT_EV_MAX_DISCHARGE_W):
    from v2g_bench.ev.model import Phase
    return [Phase(1000.0, 1.0), Phase(discharge_w, 5.0)]


TRACK_PHASE_S = 8.0      # > the DUT's settle_s (5 s): the last 3 s of each phase are judged


def _tracking_plan():
    from v2g_bench.ev.model import Phase
    return [Phase(4000.0, TRACK_PHASE_S), Phase(-4000.0, TRACK_PHASE_S)]
