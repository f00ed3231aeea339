"""Response-time limits the oracle judges each SECC response by, with where each number comes from.

ISO 15118-20 V2G_SECC_Msg_Performance_Time is public only for a few messages (../shared/CATALOGUE.md
Part 2b: Table 215 AuthorizationReq 1.5 s; Table 217 DC_CableCheck/PreCharge/WeldingDetection 1.5 s,
DC_ChargeLoop 0.25 s). For every other message the limit is the EV's V2G_EVCC_Msg_Timeout for it:
a response later than that is useless to any EV (the SECC's performance time is shorter still).
-2 and DIN: the EV's message timeouts likewise (CurrentDemand 0.25 s).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    seconds: float
    source: str
    req: str | None = None           # the requirement ID the cases cite for it


def _n(name: str) -> str:
    return name.replace("_", "").lower().removesuffix("req").removesuffix("res")


_P20 = "ISO 15118-20 V2G_SECC_Msg_Performance_Time"
_E20 = "ISO 15118-20 V2G_EVCC_Msg_Timeout (upper bound)"
ISO20 = {
    "authorization": Limit(1.5, _P20 + " (Table 215)"),
    "dccablecheck": Limit(1.5, _P20 + " (Table 217)", "V2G20-1502"),
    "dcprecharge": Limit(1.5, _P20 + " (Table 217)", "V2G20-1502"),
    "dcweldingdetection": Limit(1.5, _P20 + " (Table 217)", "V2G20-1502"),
    "dcchargeloop": Limit(0.25, _P20 + " (Table 217)", "V2G20-1502"),
    "acchargeloop": Limit(0.5, _E20 + " for AC_ChargeLoopReq (Table 216)", "V2G20-1500"),
    "servicedetail": Limit(5.0, _E20),
    "certificateinstallation": Limit(5.0, _E20),
}
ISO20_DEFAULT = Limit(2.0, _E20)
ISO2 = {"currentdemand": Limit(0.25, "ISO 15118-2 V2G_EVCC_Msg_Timeout (upper bound)"),
        "servicedetail": Limit(5.0, "ISO 15118-2 V2G_EVCC_Msg_Timeout (upper bound)"),
        "paymentdetails": Limit(5.0, "ISO 15118-2 V2G_EVCC_Msg_Timeout (upper bound)"),
        "certificateinstallation": Limit(5.0, "ISO 15118-2 V2G_EVCC_Msg_Timeout (upper bound)"),
        "powerdelivery": Limit(5.0, "ISO 15118-2 V2G_EVCC_Msg_Timeout (upper bound)")}
ISO2_DEFAULT = Limit(2.0, "ISO 15118-2 V2G_EVCC_Msg_Timeout (upper bound)")
DIN = {"currentdemand": Limit(0.25, "DIN 70121 V2G_EVCC_Msg_Timeout (upper bound)")}
DIN_DEFAULT = Limit(2.0, "DIN 70121 V2G_EVCC_Msg_Timeout (upper bound)")
SAP = Limit(2.0, "SupportedAppProtocolReq timeout of the EV (upper bound)")

# after a final response (FAILED_*, SessionStopRes) the SECC closes TCP within this (ISO 15118-4
# par_CMN_TCP_Connection_Termination_Timeout)
TCP_TERMINATION_S = 5.0


def response_limit(family: str, request_name: str) -> Limit:
    """family: "-20" | "-2" | "DIN" | "SAP"."""
    if family == "SAP":
        return SAP
    key = _n(request_name)
    if family == "-20":
        return ISO20.get(key, ISO20_DEFAULT)
    if family == "-2":
        return ISO2.get(key, ISO2_DEFAULT)
    return DIN.get(key, DIN_DEFAULT)
