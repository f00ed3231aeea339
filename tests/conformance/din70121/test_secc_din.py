"""DIN SPEC 70121 SECC (DC, EIM) as rows: good case per message, unknown SessionID, out of sequence, the SDP
rule of DIN (TCP without TLS), and the oracle on every frame. The DIN cases descend from the ISO 15118-4 DC cases
(DIN 70121 is the DC subset of -2's first edition); DIN's own requirement IDs are cited where a public source
quotes them (V2G-DC-618, V2G-DC-418 in the iso15118 stack). Applies when the DUT claims DIN70121."""
from v2g_bench.conformance import Case, cases_test
from v2g_bench.conformance.iso15118 import response, session_ok
from v2g_bench.conformance.iso15118_steps import answered, ev_session, oracle_clean, secc_closes_tcp
from v2g_bench.conformance.match import present

STANDARD = "DIN SPEC 70121"
LINGER_S = 7.0
REQ = ("DIN70121", "DC")


def tc(scope: str, msg: str, n: int) -> str:
    return f"TC_SECC_{scope}_VTB_{msg}_{n:03d}"


GOOD = {
    "SessionSetupRes": (tc("CMN", "SessionSetup", 1), {"ResponseCode": "OK_NewSessionEstablished", "EVSEID": present}),
    "ServiceDiscoveryRes": (tc("CMN", "ServiceDiscovery", 1), {"ResponseCode": "OK", "ChargeService": present}),
    "ServicePaymentSelectionRes": (tc("CMN", "PaymentServiceSelection", 1), {"ResponseCode": "OK"}),
    "ContractAuthenticationRes": (tc("CMN", "Authorization", 1), {"ResponseCode": "OK", "EVSEProcessing": present}),
    "ChargeParameterDiscoveryRes": (tc("DC", "ChargeParameterDiscovery", 1), {"ResponseCode": "OK",
                                                                              "DC_EVSEChargeParameter": present}),
    "CableCheckRes": ("V2G-DC-418", {"ResponseCode": "OK", "EVSEProcessing": present}),
    "PreChargeRes": (tc("DC", "PreCharge", 1), {"ResponseCode": "OK", "EVSEPresentVoltage": present}),
    "PowerDeliveryRes": (tc("DC", "PowerDelivery", 1), {"ResponseCode": "OK"}),
    "CurrentDemandRes": (tc("DC", "CurrentDemand", 1), {"ResponseCode": "OK", "EVSEPresentVoltage": present,
                                                        "EVSEPresentCurrent": present}),
    "WeldingDetectionRes": (tc("DC", "WeldingDetection", 1), {"ResponseCode": "OK"}),
    "SessionStopRes": (tc("DC", "SessionStop", 1), {"ResponseCode": "OK"}),
}
UNKNOWN = {"ServiceDiscoveryReq": tc("CMN", "ServiceDiscovery", 3),
           "ChargeParameterDiscoveryReq": tc("DC", "ChargeParameterDiscovery", 2),
           "CableCheckReq": tc("DC", "CableCheck", 4), "CurrentDemandReq": tc("DC", "CurrentDemand", 4)}
SEQUENCE = {"ChargeParameterDiscoveryReq": tc("CMN", "ChargeParameterDiscovery", 1),
            "CurrentDemandReq": tc("DC", "CurrentDemand", 3)}


def cases() -> list[Case]:
    rows = []
    for res, (cid, want) in GOOD.items():
        block = res.removesuffix("Res")
        rows.append(Case(f"DIN_{block}_good", title=f"{res}: OK and mandatory parameters", standard=STANDARD,
                         block=block, side="SECC", covers=(cid,), requires=REQ,
                         steps=[ev_session(protocol="DIN70121", service="DC", control_mode="scheduled"),
                                response(res, want, req=cid)]))
    for request, cid in UNKNOWN.items():
        res = request.replace("Req", "Res")
        block = request.removesuffix("Req")
        rows.append(Case(f"DIN_{block}_unknown_session", title=f"{request} with another SessionID: "
                         "FAILED_UnknownSession, TCP closed", standard=STANDARD, block=block, side="SECC",
                         covers=(cid,), requires=REQ,
                         steps=[ev_session(protocol="DIN70121", service="DC", control_mode="scheduled",
                                           linger_s=LINGER_S, misbehave=("wrong_session_id", request)),
                                answered(res, ResponseCode="FAILED_UnknownSession", req=cid),
                                secc_closes_tcp(req=cid)]))
    for request, cid in SEQUENCE.items():
        block = request.removesuffix("Req")
        rows.append(Case(f"DIN_{block}_out_of_sequence", title=f"ServiceDiscoveryReq instead of {request}: "
                         "FAILED_SequenceError", standard=STANDARD, block=block, side="SECC", covers=(cid,),
                         requires=REQ,
                         steps=[ev_session(protocol="DIN70121", service="DC", control_mode="scheduled",
                                           linger_s=LINGER_S, misbehave=("out_of_sequence", request,
                                                                         {"replay": "ServiceDiscoveryReq"})),
                                answered("ServiceDiscoveryRes", ResponseCode="FAILED_SequenceError", req=cid),
                                secc_closes_tcp(req=cid)]))
    rows.append(Case("DIN_SDP_tcp_without_tls", title="SDP response: TCP, no transport layer security", standard=STANDARD,
                     block="SDP", side="SECC", covers=("V2G-DC-618",), requires=REQ,
                     steps=[ev_session(protocol="DIN70121", service="DC", control_mode="scheduled"),
                            oracle_clean(rules=("SDP-security", "SDP-transport"), req="V2G-DC-618")]))
    rows.append(Case("DIN_oracle_every_frame", title="every SECC frame of a DIN session is strict-valid EXI (own "
                     "codec) and equals what the EV decoded", standard=STANDARD, block="Oracle", side="SECC",
                     covers=("V2GB-15118-ORACLE-01",), requires=REQ,
                     steps=[ev_session(protocol="DIN70121", service="DC", control_mode="scheduled"),
                            session_ok(req="V2GB-15118-ORACLE-01"),
                            oracle_clean(rules=("EXI-strict", "oracle-vs-emulator", "response-type"),
                                         req="V2GB-15118-ORACLE-01")]))
    return rows


CASES = cases()
test_secc_din = cases_test(CASES)
