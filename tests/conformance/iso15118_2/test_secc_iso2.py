"""ISO 15118-2 SECC (DC and AC, EIM) as rows: the ISO 15118-4 cases themselves (ISO 15118-4 is the -2 test
specification) - good case per message, unknown SessionID, out of sequence (a valid ServiceDiscoveryReq instead),
and the oracle on every frame. Applies when the DUT profile claims ISO15118-2 (the virtual DUT does not by default;
`make mutation-iso` runs them with profiles/virtual-dut-all.dut.toml)."""
from v2g_bench.conformance import Case, cases_test
from v2g_bench.conformance.iso15118 import response, session_ok
from v2g_bench.conformance.iso15118_steps import answered, ev_session, oracle_clean, secc_closes_tcp
from v2g_bench.conformance.match import present

STANDARD = "ISO 15118-2"
LINGER_S = 7.0


def tc(scope: str, msg: str, n: int) -> str:
    return f"TC_SECC_{scope}_VTB_{msg}_{n:03d}"


# response -> (-4 good case, fields, request name, -4 unknown-session case, -4 sequence case), DC session
DC = {
    "SessionSetupRes": (tc("CMN", "SessionSetup", 1), {"ResponseCode": "OK_NewSessionEstablished", "EVSEID": present},
                        "SessionSetupReq", None, None),
    "ServiceDiscoveryRes": (tc("CMN", "ServiceDiscovery", 1), {"ResponseCode": "OK", "ChargeService": present},
                            "ServiceDiscoveryReq", tc("CMN", "ServiceDiscovery", 3), None),
    "PaymentServiceSelectionRes": (tc("CMN", "PaymentServiceSelection", 1), {"ResponseCode": "OK"},
                                   "PaymentServiceSelectionReq", tc("CMN", "PaymentServiceSelection", 5),
                                   tc("CMN", "PaymentServiceSelection", 4)),
    "AuthorizationRes": (tc("CMN", "Authorization", 1), {"ResponseCode": "OK", "EVSEProcessing": present},
                         "AuthorizationReq", tc("CMN", "Authorization", 5), tc("CMN", "Authorization", 3)),
    "ChargeParameterDiscoveryRes": (tc("DC", "ChargeParameterDiscovery", 1),
                                    {"ResponseCode": "OK", "EVSEProcessing": present, "DC_EVSEChargeParameter": present},
                                    "ChargeParameterDiscoveryReq", tc("DC", "ChargeParameterDiscovery", 2),
                                    tc("CMN", "ChargeParameterDiscovery", 1)),
    "CableCheckRes": (tc("DC", "CableCheck", 1), {"ResponseCode": "OK", "EVSEProcessing": present},
                      "CableCheckReq", tc("DC", "CableCheck", 4), tc("DC", "CableCheck", 3)),
    "PreChargeRes": (tc("DC", "PreCharge", 1), {"ResponseCode": "OK", "EVSEPresentVoltage": present},
                     "PreChargeReq", tc("DC", "PreCharge", 3), tc("DC", "PreCharge", 2)),
    "PowerDeliveryRes": (tc("DC", "PowerDelivery", 1), {"ResponseCode": "OK"}, "PowerDeliveryReq",
                         tc("DC", "PowerDelivery", 5), tc("DC", "PowerDelivery", 3)),
    "CurrentDemandRes": (tc("DC", "CurrentDemand", 1), {"ResponseCode": "OK", "EVSEPresentVoltage": present,
                                                        "EVSEPresentCurrent": present, "EVSEID": present},
                         "CurrentDemandReq", tc("DC", "CurrentDemand", 4), tc("DC", "CurrentDemand", 3)),
    "WeldingDetectionRes": (tc("DC", "WeldingDetection", 1), {"ResponseCode": "OK", "EVSEPresentVoltage": present},
                            "WeldingDetectionReq", tc("DC", "WeldingDetection", 3), tc("DC", "WeldingDetection", 2)),
    "SessionStopRes": (tc("DC", "SessionStop", 1), {"ResponseCode": "OK"}, "SessionStopReq",
                       tc("DC", "SessionStop", 4), tc("DC", "SessionStop", 3)),
}
AC = {
    "ChargeParameterDiscoveryRes": (tc("AC", "ChargeParameterDiscovery", 1),
                                    {"ResponseCode": "OK", "AC_EVSEChargeParameter": present},
                                    "ChargeParameterDiscoveryReq", tc("AC", "ChargeParameterDiscovery", 3), None),
    "ChargingStatusRes": (tc("AC", "ChargingStatus", 1), {"ResponseCode": "OK", "EVSEID": present},
                          "ChargingStatusReq", tc("AC", "ChargingStatus", 4), tc("AC", "ChargingStatus", 3)),
}


def _short(name: str) -> str:
    return name.removesuffix("Res")


def cases() -> list[Case]:
    rows = []
    for svc, table in (("DC", DC), ("AC", AC)):
        req = ("ISO15118-2", svc)
        for res, (good, want, request, unknown, seq) in table.items():
            block = _short(res)
            rows.append(Case(f"ISO2_{svc}_{block}_good", title=f"{res}: OK and mandatory parameters", standard=STANDARD,
                             block=block, side="SECC", covers=(good,), requires=req,
                             steps=[ev_session(protocol="ISO15118-2", service=svc, control_mode="scheduled"),
                                    response(res, want, req=good)]))
            if unknown:
                rows.append(Case(f"ISO2_{svc}_{block}_unknown_session", title=f"{request} with another SessionID: "
                                 "FAILED_UnknownSession, TCP closed", standard=STANDARD, block=block, side="SECC",
                                 covers=(unknown,), requires=req,
                                 steps=[ev_session(protocol="ISO15118-2", service=svc, control_mode="scheduled",
                                                   linger_s=LINGER_S, misbehave=("wrong_session_id", request)),
                                        answered(res, ResponseCode="FAILED_UnknownSession", req=unknown),
                                        secc_closes_tcp(req=unknown)]))
            if seq and svc == "DC":
                rows.append(Case(f"ISO2_{svc}_{block}_out_of_sequence", title=f"ServiceDiscoveryReq instead of "
                                 f"{request}: FAILED_SequenceError", standard=STANDARD, block=block, side="SECC",
                                 covers=(seq,), requires=req,
                                 steps=[ev_session(protocol="ISO15118-2", service=svc, control_mode="scheduled",
                                                   linger_s=LINGER_S, misbehave=("out_of_sequence", request,
                                                                                 {"replay": "ServiceDiscoveryReq"})),
                                        answered("ServiceDiscoveryRes", ResponseCode="FAILED_SequenceError", req=seq),
                                        secc_closes_tcp(req=seq)]))
    rows.append(Case("ISO2_DC_oracle_every_frame", title="every SECC frame of a -2 DC session is strict-valid EXI "
                     "(own codec) and equals what the EV decoded", standard=STANDARD, block="Oracle", side="SECC",
                     covers=("V2G2-736", "V2GB-15118-ORACLE-01"), requires=("ISO15118-2", "DC"),
                     steps=[ev_session(protocol="ISO15118-2", service="DC", control_mode="scheduled"),
                            session_ok(req="V2GB-15118-ORACLE-01"),
                            oracle_clean(rules=("EXI-strict", "oracle-vs-emulator", "response-type"),
                                         req="V2GB-15118-ORACLE-01")]))
    return rows


CASES = cases()
test_secc_iso2 = cases_test(CASES)
