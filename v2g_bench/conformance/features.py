"""The feature names a case may `require`: what a DUT profile can claim (its PICS). A case requiring a name that
no profile can ever claim would be skipped forever and look like coverage: it is refused at collection instead."""
from __future__ import annotations

from v2g_bench.profiles import AUTH_MODES, CONTROL_MODES, ENERGY_SERVICES, OCPP_VERSIONS, PROTOCOLS

# [claims] features = [...] of a DUT profile: optional capabilities, each with what it means. Add a line here
# when a suite needs a new one (and say in docs/writing-a-conformance-test.md what claiming it means).
OPTIONAL_FEATURES: dict[str, str] = {
    "V2X": "OCPP 2.1 V2X (block Q): operation modes, setpoints, discharge limits",
    "DER": "OCPP 2.1 DER control (block R)",
    "OFFLINETXQUEUE": "queues transaction events while offline and sends them in order (E04, seqNo)",
    "LOCALCONTROL": "local power control over Modbus (Quasar-like map)",
    "PAUSE": "ISO 15118-20 pause and resume (SessionStop Pause, OK_OldSessionJoined)",
    "WELDINGDETECTION": "DC_WeldingDetection at the end of a DC session",
    "METERINGCONFIRMATION": "ISO 15118-20 MeteringConfirmation",
    "VEHICLECHECKIN": "ISO 15118-20 VehicleCheckIn/Out (WPT/ACDP)",
    "SCHEDULERENEGOTIATION": "ISO 15118-20 schedule renegotiation",
    "CP": "IEC 61851-1 control pilot reachable by the bench (EV-side interface board or the virtual lab)",
    "SLAC": "ISO 15118-3 SLAC over HomePlug Green PHY",
    "RESET": "OCPP Reset (B11/B12)",
    "NETWORKPROFILES": "OCPP SetNetworkProfile (B09/B10)",
    "LOCALAUTHLIST": "OCPP local authorization list (D)",
    "AUTHCACHE": "OCPP authorization cache (C12)",
    "RESERVATION": "OCPP reservations (H)",
    "ISO15118CERTS": "OCPP ISO 15118 certificate management (M)",
    "FREQUENCYRESPONSE": "frequency-watt response (scenario: frequency response)",
    "BACKUP": "V2H backup power on grid loss (scenario: V2H backup)",
    "SITEMANAGEMENT": "several EVSEs behind one grid connection (scenario: fleet, peak shaving)",
}


def known_features() -> set[str]:
    out = set(ENERGY_SERVICES) | set(CONTROL_MODES) | set(PROTOCOLS) | set(AUTH_MODES) | set(OPTIONAL_FEATURES)
    out |= {f"OCPP{v}" for v in OCPP_VERSIONS} | {"TLS", "DISCHARGE", "SP1", "SP2", "SP3"}
    return out


def normalise(feature: str) -> str:
    return feature.upper().replace(" ", "")
