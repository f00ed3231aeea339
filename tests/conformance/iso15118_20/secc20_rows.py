"""ISO 15118-20 SECC cases as rows, in the ISO 15118-4 pattern per message group (docs/iso15118-suite.md):

- good: the message group's response in a real session has ResponseCode OK and its mandatory parameters;
- out of sequence: the EV replays its previous request instead -> FAILED_SequenceError, then the SECC closes TCP;
- unknown session: the request carries another SessionID -> FAILED_UnknownSession, then the SECC closes TCP;
- performance: each response within its limit, from the capture's wire timestamps;
- no next request (slow, one per state group): the SECC closes TCP after V2G_SECC_Sequence_Timeout (60 s).

Each row cites the -20 requirement it checks (../shared/CATALOGUE.md Part 2) and the ISO 15118-4 case it descends
from (Part 3 naming; the -4 number read from the public ATS port, rcuquemelle/ISO15118_4_TestEnv). The defect of the
simulated charger that makes each row fail is in MUTATIONS (the case x defect table).
"""
from __future__ import annotations

from v2g_bench.conformance import Case
from v2g_bench.conformance.iso15118 import response
from v2g_bench.conformance.iso15118_steps import (
    answered, ev_session, oracle_clean, response_time, secc_closes_tcp,
)
from v2g_bench.conformance.match import ANY, present, where

STANDARD = "ISO 15118-20"
LINGER_S = 7.0          # the EV waits this long after a final response for the SECC to close TCP (limit 5 s)
TCP_CLOSE_S = 5.0       # ISO 15118-4 par_CMN_TCP_Connection_Termination_Timeout
SEQUENCE_TIMEOUT_S = 60.0
LOOP_SEQUENCE_TIMEOUT_S = 0.5    # after AC_/DC_ChargeLoopRes (CATALOGUE Part 2b)


def _cmn(msg: str, n: int) -> str:
    return f"TC_SECC_CMN_VTB_{msg}_{n:03d}"


def _dc(msg: str, n: int) -> str:
    return f"TC_SECC_DC_VTB_{msg}_{n:03d}"


def _ac(msg: str, n: int) -> str:
    return f"TC_SECC_AC_VTB_{msg}_{n:03d}"


# message group -> (request, response, services it occurs with, -4 ancestors: good, sequence, unknown session,
# sequence timeout; mandatory content of the good response)
OK = {"ResponseCode": "OK"}
GROUPS = {
    "SessionSetup": ("SessionSetupReq", "SessionSetupRes", "any",
                     (_cmn("SessionSetup", 1), _cmn("SessionSetup", 2), None, _cmn("SessionSetup", 3)),
                     {"ResponseCode": "OK_NewSessionEstablished", "EVSEID": present,
                      "Header.SessionID": where(lambda s: int(str(s), 16) != 0, "non-zero")}),
    "AuthorizationSetup": ("AuthorizationSetupReq", "AuthorizationSetupRes", "any", (None, None, None, None),
                           {**OK, "AuthorizationServices": ANY, "CertificateInstallationService": present}),
    "Authorization": ("AuthorizationReq", "AuthorizationRes", "any",
                      (_cmn("Authorization", 1), _cmn("Authorization", 3), _cmn("Authorization", 5),
                       _cmn("Authorization", 8)), {**OK, "EVSEProcessing": present}),
    "ServiceDiscovery": ("ServiceDiscoveryReq", "ServiceDiscoveryRes", "any",
                         (_cmn("ServiceDiscovery", 1), _cmn("ServiceDiscovery", 2), _cmn("ServiceDiscovery", 3),
                          _cmn("ServiceDiscovery", 4)),
                         {**OK, "ServiceRenegotiationSupported": present, "EnergyTransferServiceList": present}),
    "ServiceDetail": ("ServiceDetailReq", "ServiceDetailRes", "any",
                      (_cmn("ServiceDetail", 1), _cmn("ServiceDetail", 3), _cmn("ServiceDetail", 5),
                       _cmn("ServiceDetail", 9)), {**OK, "ServiceID": present, "ServiceParameterList": present}),
    "ServiceSelection": ("ServiceSelectionReq", "ServiceSelectionRes", "any",
                         (_cmn("PaymentServiceSelection", 1), _cmn("PaymentServiceSelection", 4),
                          _cmn("PaymentServiceSelection", 5), _cmn("PaymentServiceSelection", 8)), OK),
    "DC_ChargeParameterDiscovery": ("DC_ChargeParameterDiscoveryReq", "DC_ChargeParameterDiscoveryRes", "DC",
                                    (_dc("ChargeParameterDiscovery", 1), _cmn("ChargeParameterDiscovery", 1),
                                     _dc("ChargeParameterDiscovery", 2), _cmn("ChargeParameterDiscovery", 2)), OK),
    "ScheduleExchange": ("ScheduleExchangeReq", "ScheduleExchangeRes", "any", (None, None, None, None),
                         {**OK, "EVSEProcessing": present}),
    "DC_CableCheck": ("DC_CableCheckReq", "DC_CableCheckRes", "DC",
                      (_dc("CableCheck", 1), _dc("CableCheck", 3), _dc("CableCheck", 4), _dc("CableCheck", 5)),
                      {**OK, "EVSEProcessing": present}),
    "DC_PreCharge": ("DC_PreChargeReq", "DC_PreChargeRes", "DC",
                     (_dc("PreCharge", 1), _dc("PreCharge", 2), _dc("PreCharge", 3), _dc("PreCharge", 4)),
                     {**OK, "EVSEPresentVoltage": present}),
    "PowerDelivery": ("PowerDeliveryReq", "PowerDeliveryRes", "any",
                      (_dc("PowerDelivery", 1), _dc("PowerDelivery", 3), _dc("PowerDelivery", 5),
                       _dc("PowerDelivery", 9)), OK),
    "DC_ChargeLoop": ("DC_ChargeLoopReq", "DC_ChargeLoopRes", "DC",
                      (_dc("CurrentDemand", 1), _dc("CurrentDemand", 3), _dc("CurrentDemand", 4),
                       _dc("CurrentDemand", 5)),
                      {**OK, "EVSEPresentCurrent": present, "EVSEPresentVoltage": present,
                       "EVSEPowerLimitAchieved": present, "EVSECurrentLimitAchieved": present,
                       "EVSEVoltageLimitAchieved": present}),
    "DC_WeldingDetection": ("DC_WeldingDetectionReq", "DC_WeldingDetectionRes", "DC",
                            (_dc("WeldingDetection", 1), _dc("WeldingDetection", 2), _dc("WeldingDetection", 3),
                             _dc("WeldingDetection", 4)), {**OK, "EVSEPresentVoltage": present}),
    "SessionStop": ("SessionStopReq", "SessionStopRes", "any",
                    (_dc("SessionStop", 1), _dc("SessionStop", 3), _dc("SessionStop", 4), _dc("SessionStop", 5)), OK),
    "AC_ChargeParameterDiscovery": ("AC_ChargeParameterDiscoveryReq", "AC_ChargeParameterDiscoveryRes", "AC",
                                    (_ac("ChargeParameterDiscovery", 1), _cmn("ChargeParameterDiscovery", 1),
                                     _ac("ChargeParameterDiscovery", 3), _cmn("ChargeParameterDiscovery", 2)), OK),
    "AC_ChargeLoop": ("AC_ChargeLoopReq", "AC_ChargeLoopRes", "AC",
                      (_ac("ChargingStatus", 1), _ac("ChargingStatus", 3), _ac("ChargingStatus", 4),
                       _ac("ChargingStatus", 5)), OK),
}
# the requirement each good response checks besides the -4 case (SECC side, catalogue Part 2)
GOOD_REQ = {"SessionSetup": "V2G20-2106", "AuthorizationSetup": "V2G20-2566", "Authorization": "V2G20-2219",
            "ServiceDiscovery": "V2G20-1249", "ServiceDetail": "V2G20-425", "ServiceSelection": "V2G20-433",
            "DC_ChargeParameterDiscovery": "V2G20-2654", "ScheduleExchange": "V2G20-1600",
            "DC_CableCheck": "V2G20-1502", "DC_PreCharge": "V2G20-1502", "PowerDelivery": "V2G20-1600",
            "DC_ChargeLoop": "V2G20-1502", "DC_WeldingDetection": "V2G20-1502", "SessionStop": "V2G20-1633",
            "AC_ChargeParameterDiscovery": "V2G20-1500", "AC_ChargeLoop": "V2G20-1500"}
# what an out-of-sequence EV sends instead of the group's request: as ISO 15118-4 does, a valid ServiceDiscoveryReq
# (replayed) once one was sent; before that a replayed SessionSetupReq; at ServiceDiscovery the AuthorizationReq
# (TC_SECC_CMN_VTB_ServiceDiscovery_002)
def replayed_instead(group: str) -> str:
    if group in ("AuthorizationSetup", "Authorization"):
        return "SessionSetupReq"
    if group == "ServiceDiscovery":
        return "AuthorizationReq"
    return "ServiceDiscoveryReq"


def _requires(service: str, mode: str | None) -> tuple[str, ...]:
    return ("ISO15118-20", service) + ((mode,) if mode else ())


def _covers(*ids) -> tuple[str, ...]:
    return tuple(i for i in ids if i)


def good_case(group: str, service: str = "DC_BPT", mode: str = "dynamic", suffix: str = "") -> Case:
    req_name, res_name, _, anc, want = GROUPS[group]
    rid = GOOD_REQ[group]
    return Case(f"ISO20_{group}_{service}_{mode}_good{suffix}", title=f"{res_name}: OK and mandatory parameters "
                f"({service}, {mode})", standard=STANDARD, block=group, side="SECC",
                covers=_covers(anc[0], rid), requires=_requires(service, mode),
                steps=[ev_session(service=service, control_mode=mode),
                       response(res_name, want, req=anc[0] or rid),
                       oracle_clean(rules=("EXI-strict", "response-type", "session-id-changed", "V2GTP-header"),
                                    req="V2G20-736")])


def sequence_case(group: str, service: str = "DC_BPT", mode: str = "dynamic") -> Case:
    req_name, res_name, _, anc, _want = GROUPS[group]
    prev = replayed_instead(group)
    answer = prev.replace("Req", "Res")
    return Case(f"ISO20_{group}_{service}{'' if mode == 'dynamic' else '_' + mode}_out_of_sequence", title=f"{prev} instead of {req_name}: "
                "FAILED_SequenceError, TCP closed", standard=STANDARD, block=group, side="SECC",
                covers=_covers(anc[1], "V2G20-459", "V2G20-1633"), requires=_requires(service, mode),
                steps=[ev_session(service=service, control_mode=mode, linger_s=LINGER_S,
                                  misbehave=("out_of_sequence", req_name, {"replay": prev})),
                       answered(answer, ResponseCode="FAILED_SequenceError", req="V2G20-459"),
                       secc_closes_tcp(within_s=TCP_CLOSE_S, req="V2G20-1633")])


def unknown_session_case(group: str, service: str = "DC_BPT", mode: str = "dynamic") -> Case:
    req_name, res_name, _, anc, _want = GROUPS[group]
    return Case(f"ISO20_{group}_{service}{'' if mode == 'dynamic' else '_' + mode}_unknown_session", title=f"{req_name} with another SessionID: "
                "FAILED_UnknownSession, TCP closed", standard=STANDARD, block=group, side="SECC",
                covers=_covers(anc[2], "V2G20-460", "V2G20-1633"), requires=_requires(service, mode),
                steps=[ev_session(service=service, control_mode=mode, linger_s=LINGER_S,
                                  misbehave=("wrong_session_id", req_name)),
                       answered(res_name, ResponseCode="FAILED_UnknownSession", req="V2G20-460"),
                       secc_closes_tcp(within_s=TCP_CLOSE_S, req="V2G20-1633")])


def performance_case(group: str, service: str = "DC_BPT", mode: str = "dynamic") -> Case:
    req_name, res_name, _, anc, _want = GROUPS[group]
    # Tables 216/217 (V2G20-1500/1502) bind the AC/DC-specific messages; the others are judged against the EV's
    # message timeout, under the ISO 15118-4 good case they descend from
    req = "V2G20-1500" if group.startswith("AC_") else "V2G20-1502" if group.startswith("DC_") else anc[0]
    return Case(f"ISO20_{group}_{service}_{mode}_performance", title=f"{res_name} within its performance time "
                "(wire timestamps)", standard=STANDARD, block=group, side="SECC",
                covers=_covers(anc[0], req if req != anc[0] else None), requires=_requires(service, mode),
                markers=("timing",),
                steps=[ev_session(service=service, control_mode=mode), response_time(req_name, req=req)])


def timeout_case(group: str, service: str = "DC_BPT", mode: str = "dynamic") -> Case:
    """The EV goes silent before `group`'s request: the SECC closes TCP after its sequence timeout - 60 s, but 0.5 s
    after a charge-loop response (Tables 216/217: V2G20-1500/1502), so the loop rows are not slow."""
    req_name, res_name, _, anc, _want = GROUPS[group]
    loop = group.endswith("ChargeLoop")
    timeout = LOOP_SEQUENCE_TIMEOUT_S if loop else SEQUENCE_TIMEOUT_S
    req = ("V2G20-1500" if group.startswith("AC_") else "V2G20-1502") if loop else "V2G20-443"
    return Case(f"ISO20_{group}_{service}_sequence_timeout", title=f"no {req_name}: the SECC closes TCP after "
                f"V2G_SECC_Sequence_Timeout ({timeout:g} s)", standard=STANDARD, block=group, side="SECC",
                slow=not loop, covers=_covers(anc[3], req), requires=_requires(service, mode), markers=("timing",),
                steps=[ev_session(service=service, control_mode=mode, timeout_s=timeout + 15,
                                  misbehave=("stop_answering", req_name)),
                       secc_closes_tcp(within_s=timeout + TCP_CLOSE_S, at_least_s=timeout * 0.9, req=req)])


DC_GROUPS = ["SessionSetup", "AuthorizationSetup", "Authorization", "ServiceDiscovery", "ServiceDetail",
             "ServiceSelection", "DC_ChargeParameterDiscovery", "ScheduleExchange", "DC_CableCheck", "DC_PreCharge",
             "PowerDelivery", "DC_ChargeLoop", "DC_WeldingDetection", "SessionStop"]
AC_GROUPS = ["AC_ChargeParameterDiscovery", "AC_ChargeLoop"]
# one silence case per state group (ISO 15118-4 pattern): set-up, authorization, service, parameters, energy
TIMEOUT_GROUPS = ["SessionSetup", "Authorization", "ServiceDiscovery", "DC_ChargeParameterDiscovery",
                  "DC_CableCheck", "DC_ChargeLoop", "SessionStop"]


def message_group_cases() -> list[Case]:
    rows: list[Case] = []
    for g in DC_GROUPS:
        rows.append(good_case(g))
        if g != "SessionSetup":
            rows.append(sequence_case(g))
            rows.append(unknown_session_case(g))
        if g.startswith("DC_") or GROUPS[g][3][0]:      # a limit to cite: Table 217 or the -4 ancestor
            rows.append(performance_case(g))
    for g in ("PowerDelivery", "DC_ChargeLoop"):        # the negative pattern in Scheduled mode too
        rows += [sequence_case(g, "DC_BPT", "scheduled"), unknown_session_case(g, "DC_BPT", "scheduled")]
    for g in AC_GROUPS:
        rows += [good_case(g, "AC", "scheduled"), sequence_case(g, "AC", "scheduled"),
                 unknown_session_case(g, "AC", "scheduled"), performance_case(g, "AC", "scheduled"),
                 good_case(g, "AC_BPT", "dynamic"), sequence_case(g, "AC_BPT", "dynamic"),
                 unknown_session_case(g, "AC_BPT", "dynamic"), performance_case(g, "AC_BPT", "dynamic")]
    return rows


def timeout_cases() -> list[Case]:
    return [timeout_case(g) for g in TIMEOUT_GROUPS]
