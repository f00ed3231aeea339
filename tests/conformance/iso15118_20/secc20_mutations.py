"""The case x defect table of the ISO 15118-20 SECC suite: for every case, a switchable defect of the simulated
charger's SECC (v2g_bench/lab/charger/secc_defects.py) that must make it fail, or the reason none can.

CI_SUBSET: one (cheap) case per defect, run in the default suite; `make mutation-iso` runs the whole table.
"""
from __future__ import annotations

from secc20_rows import AC_GROUPS, DC_GROUPS, GROUPS, TIMEOUT_GROUPS

# late responses: later than limit + the overload slack (1 s) the virtual lab is allowed on a loaded machine,
# earlier than the EV's response floor (8 s)
_LATE_S = {"DC_ChargeLoop": 2.0, "AC_ChargeLoop": 2.5, "Authorization": 3.0, "DC_CableCheck": 3.0,
           "DC_PreCharge": 3.0, "DC_WeldingDetection": 3.0, "ServiceDetail": 6.5}


def _late(group: str) -> tuple[str, dict]:
    return ("late_response", {"message": GROUPS[group][1], "seconds": _LATE_S.get(group, 3.5)})


def _wrong(group: str, code: str = "FAILED") -> tuple[str, dict]:
    return ("wrong_response_code", {"message": GROUPS[group][1], "code": code})


def mutations() -> dict[str, tuple[str, dict]]:
    m: dict[str, tuple[str, dict]] = {}
    for g in DC_GROUPS:
        m[f"ISO20_{g}_DC_BPT_dynamic_good"] = ("zero_session_id", {}) if g == "SessionSetup" else _wrong(g)
        if g != "SessionSetup":
            m[f"ISO20_{g}_DC_BPT_out_of_sequence"] = ("ignore_sequence", {})
            m[f"ISO20_{g}_DC_BPT_unknown_session"] = ("accept_any_session_id", {})
        if g.startswith("DC_") or GROUPS[g][3][0]:
            m[f"ISO20_{g}_DC_BPT_dynamic_performance"] = _late(g)
    for g in ("PowerDelivery", "DC_ChargeLoop"):
        m[f"ISO20_{g}_DC_BPT_scheduled_out_of_sequence"] = ("ignore_sequence", {})
        m[f"ISO20_{g}_DC_BPT_scheduled_unknown_session"] = ("accept_any_session_id", {})
    for g in AC_GROUPS:
        m[f"ISO20_{g}_AC_scheduled_good"] = _wrong(g)
        m[f"ISO20_{g}_AC_scheduled_out_of_sequence"] = ("ignore_sequence", {})
        m[f"ISO20_{g}_AC_scheduled_unknown_session"] = ("accept_any_session_id", {})
        m[f"ISO20_{g}_AC_scheduled_performance"] = _late(g)
        m[f"ISO20_{g}_AC_BPT_dynamic_good"] = _wrong(g)
        m[f"ISO20_{g}_AC_BPT_out_of_sequence"] = ("ignore_sequence", {})
        m[f"ISO20_{g}_AC_BPT_unknown_session"] = ("accept_any_session_id", {})
        m[f"ISO20_{g}_AC_BPT_dynamic_performance"] = _late(g)
    for g in TIMEOUT_GROUPS:
        m[f"ISO20_{g}_DC_BPT_sequence_timeout"] = ("never_timeout", {})
    for svc, mode in (("DC_BPT", "scheduled"), ("DC", "dynamic"), ("DC", "scheduled")):
        for g in ("DC_ChargeParameterDiscovery", "ScheduleExchange", "PowerDelivery", "DC_ChargeLoop",
                  "DC_WeldingDetection"):
            m[f"ISO20_{g}_{svc}_{mode}_good"] = _wrong(g)
        m[f"ISO20_DC_ChargeLoop_{svc}_{mode}_performance"] = _late("DC_ChargeLoop")
    m.update({
        "ISO20_V2GTP_wrong_version": ("answer_invalid_v2gtp", {}),
        "ISO20_V2GTP_inverse_mismatch": ("answer_invalid_v2gtp", {}),
        "ISO20_V2GTP_unknown_payload_type": ("answer_invalid_v2gtp", {}),
        "ISO20_V2GTP_header_of_responses": ("bad_response_header", {}),
        "ISO20_SAP_no_common_protocol": ("sap_accept_unknown", {}),
        "ISO20_SAP_priority": ("sap_lowest_priority", {}),
        "ISO20_SessionSetup_id_entropy": ("reuse_session_id", {}),
        "ISO20_SessionSetup_replayed": ("ignore_sequence", {}),
        "ISO20_ServiceDetail_invalid_service": ("wrong_response_code", {"message": "ServiceDetailRes", "code": "OK"}),
        "ISO20_ServiceSelection_invalid_pair": ("wrong_response_code", {"message": "ServiceSelectionRes",
                                                                        "code": "OK"}),
        "ISO20_Authorization_selection_not_offered": ("wrong_response_code", {"message": "AuthorizationRes",
                                                                              "code": "OK"}),
        "ISO20_DC_ChargeParameterDiscovery_wrong_parameter": ("wrong_response_code", {
            "message": "DC_ChargeParameterDiscoveryRes", "code": "OK"}),
        "ISO20_ServiceSelection_invalid_parameter_set": ("wrong_response_code", {"message": "ServiceSelectionRes",
                                                                                 "code": "OK"}),
        "ISO20_ScheduleExchange_DC_BPT_scheduled_variant": _wrong("ScheduleExchange"),
        "ISO20_ScheduleExchange_DC_BPT_dynamic_variant": _wrong("ScheduleExchange"),
        "ISO20_DC_ChargeLoop_DC_BPT_dynamic_variant": _wrong("DC_ChargeLoop"),
        "ISO20_DC_ChargeLoop_DC_BPT_scheduled_variant": _wrong("DC_ChargeLoop"),
        "ISO20_DC_ChargeParameterDiscovery_BPT_limits": ("overstate_ratings", {}),
        "ISO20_DC_ChargeLoop_limits_within_discovery": ("loop_limits_beyond_cpd", {}),
        "ISO20_BPT_discharge_within_EV_limit": ("exceed_discharge_limit", {}),
        "ISO20_BPT_present_values_follow_measured": ("stale_present_values", {}),
        "ISO20_BPT_discharge_current_within_EV_limit": ("exceed_discharge_limit", {}),
        "ISO20_BPT_scheduled_tracks_target": ("exceed_discharge_limit", {}),
        "ISO20_BPT_dynamic_within_EV_window": ("exceed_discharge_limit", {}),
        "ISO20_EVSE_initiated_stop": ("no_terminate_notification", {}),
        "ISO20_oracle_every_frame": ("empty_evseid", {}),
        "ISO20_AuthorizationSetup_EIM_vs_PnC": ("pnc_listed_with_eim_element", {}),
        # TLS / PnC / SDP security (secc20_security.py)
        "ISO20_SDP_tls_requested": ("sdp_ignore_tls_request", {}),
        "ISO20_TLS_13": ("offer_tls12", {}),
        "ISO20_TLS_chain_not_expired": ("expired_certificate", {}),
        "ISO20_TLS_chain_trusted": ("untrusted_certificate", {}),
        "ISO20_AuthorizationSetup_PnC_over_TLS": _wrong("AuthorizationSetup"),
        "ISO20_Authorization_PnC_good": _wrong("Authorization"),
        "ISO20_Authorization_PnC_wrong_signature": ("accept_bad_signature", {}),
        "ISO20_SDP_no_security": ("sdp_tls_to_tcp_request", {}),
        # pause / resume (secc20_pause.py)
        "ISO20_SessionSetup_resume_unknown": ("join_any_session", {}),
    })
    return m


# cases no defect of the simulated charger can make fail, and why (docs/iso15118-suite.md)
NO_DEFECT = {
    "ISO20_V2GTP_length_zero": "the frame carries no message: nothing a charger could answer (framing layer)",
    "ISO20_V2GTP_length_beyond_data": "the charger waits for bytes that never come: it cannot answer what it "
                                      "never received",
    "ISO20_MeteringConfirmation_trigger": "iso15118 0.31.2 (the simulated charger's SECC) has no MeteringConfirmation "
                                          "(a TODO in its -20 charge loop): no DUT of this lab can claim it",
    "ISO20_SessionSetup_resume_paused": "the defect-free simulated charger already fails it (iso15118 0.31.2 never "
                                        "joins a paused -20 session)",
    "ISO20_SAP_not_without_TLS": "the defect-free simulated charger already violates it (selects -20 over TCP)",
}

# one cheap case per defect: the CI subset (every defect exercised in the default run, except never_timeout,
# which needs the 60 s sequence timeout: slow, make mutation-iso)
CI_SUBSET = {
    "accept_any_session_id": "ISO20_ServiceDiscovery_DC_BPT_unknown_session",
    "ignore_sequence": "ISO20_AuthorizationSetup_DC_BPT_out_of_sequence",
    "late_response": "ISO20_Authorization_DC_BPT_dynamic_performance",
    "wrong_response_code": "ISO20_ServiceDiscovery_DC_BPT_dynamic_good",
    "stale_present_values": "ISO20_BPT_present_values_follow_measured",
    "exceed_discharge_limit": "ISO20_BPT_discharge_within_EV_limit",
    "loop_limits_beyond_cpd": "ISO20_DC_ChargeLoop_limits_within_discovery",
    "answer_invalid_v2gtp": "ISO20_V2GTP_wrong_version",
    "bad_response_header": "ISO20_V2GTP_header_of_responses",
    "empty_evseid": "ISO20_oracle_every_frame",
    "overstate_ratings": "ISO20_DC_ChargeParameterDiscovery_BPT_limits",
    "zero_session_id": "ISO20_SessionSetup_DC_BPT_dynamic_good",
    "reuse_session_id": "ISO20_SessionSetup_id_entropy",
    "sap_lowest_priority": "ISO20_SAP_priority",
    "sap_accept_unknown": "ISO20_SAP_no_common_protocol",
    "no_terminate_notification": "ISO20_EVSE_initiated_stop",
    "pnc_listed_with_eim_element": "ISO20_AuthorizationSetup_EIM_vs_PnC",
    "offer_tls12": "ISO20_TLS_13",
    "expired_certificate": "ISO20_TLS_chain_not_expired",
    "untrusted_certificate": "ISO20_TLS_chain_trusted",
    "accept_bad_signature": "ISO20_Authorization_PnC_wrong_signature",
    "sdp_ignore_tls_request": "ISO20_SDP_tls_requested",
    "sdp_tls_to_tcp_request": "ISO20_SDP_no_security",
    "join_any_session": "ISO20_SessionSetup_resume_unknown",
}
# a charger that crashes or floods mid-case (test_charger_crash_mid_case_...: failed verdict, safe bench, evidence)
CRASH_DEFECTS = {"reset_at": {"message": "DC_ChargeLoopRes"}, "flood_at": {"message": "DC_ChargeLoopRes", "kbytes": 256}}
# defects whose CI row is not their table row (keep_tcp_open breaks every "TCP closed" step)
CI_EXTRA = {"ISO20_Authorization_DC_BPT_unknown_session": ("keep_tcp_open", {})}


def derive(case) -> tuple[str, dict] | None:
    """The defect for a row of the -2 / DIN tables (same pattern as the -20 table), from its steps."""
    from v2g_bench.conformance.iso15118 import response
    from v2g_bench.conformance.iso15118_steps import answered, oracle_clean

    for s in case.steps:
        if isinstance(s, answered):
            code = str(s.want.get("ResponseCode", ""))
            if "UnknownSession" in code:
                return ("accept_any_session_id", {})
            if "SequenceError" in code:
                return ("ignore_sequence", {})
        if isinstance(s, oracle_clean) and s.rules and "EXI-strict" in s.rules:
            return ("empty_evseid", {})
        if isinstance(s, oracle_clean) and s.rules and "SDP-security" in s.rules:
            return ("sdp_tls_to_tcp_request", {})
        if isinstance(s, response):
            return ("wrong_response_code", {"message": s.message, "code": "FAILED"})
    return None
