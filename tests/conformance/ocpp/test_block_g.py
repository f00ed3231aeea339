"""OCPP block G — Availability (connector status, ChangeAvailability for EVSE / station, persistence over a
reset) and block P — DataTransfer / customData: OCTT charging-station cases as rows."""
from v2g_bench.conformance import cases_test
from v2g_bench.conformance import ocpp
from v2g_bench.conformance.ocpp_steps import started, tc


def availability(status: str, evse: dict | None = None):
    return ocpp.call("ChangeAvailability", {"operationalStatus": status, **({"evse": evse} if evse else {})})


EVSE1 = {"id": 1}

CASES = [
    tc("TC_G_01_CS", "Connector goes Available -> Occupied", block="G", actions=("plug_in",),
       covers=("G01.FR.01",),
       steps=[ocpp.dut_action("plug_in"),
              ocpp.expect("StatusNotification", connectorStatus="Occupied", evseId=1, within_s=10)]),
    tc("TC_G_02_CS", "Connector goes Occupied -> Available", block="G", actions=("plug_in", "unplug"),
       steps=[ocpp.dut_action("plug_in"),
              ocpp.expect("StatusNotification", connectorStatus="Occupied", within_s=10),
              ocpp.dut_action("unplug"),
              ocpp.expect("StatusNotification", connectorStatus="Available", within_s=10)]),
    tc("TC_G_03_CS", "EVSE set inoperative", block="G",
       covers=("G03.FR.01", "G03.FR.02", "G03.FR.04", "G03.FR.06"),
       steps=[availability("Inoperative", EVSE1), ocpp.answer(status="Accepted"),
              ocpp.expect("StatusNotification", connectorStatus="Unavailable", evseId=1, within_s=10)]),
    tc("TC_G_04_CS", "EVSE set operative again", block="G",
       steps=[availability("Inoperative", EVSE1), ocpp.answer(status="Accepted"),
              ocpp.expect("StatusNotification", connectorStatus="Unavailable", within_s=10),
              availability("Operative", EVSE1), ocpp.answer(status="Accepted"),
              ocpp.expect("StatusNotification", connectorStatus="Available", within_s=10)]),
    tc("TC_G_05_CS", "Whole station set inoperative", block="G",
       steps=[availability("Inoperative"), ocpp.answer(status="Accepted"),
              ocpp.expect("StatusNotification", connectorStatus="Unavailable", within_s=10)]),
    tc("TC_G_06_CS", "Whole station set operative again", block="G",
       steps=[availability("Inoperative"), ocpp.answer(status="Accepted"),
              ocpp.expect("StatusNotification", connectorStatus="Unavailable", within_s=10),
              availability("Operative"), ocpp.answer(status="Accepted"),
              ocpp.expect("StatusNotification", connectorStatus="Available", within_s=10)]),
    tc("TC_G_09_CS", "EVSE operative -> operative", block="G",
       steps=[availability("Operative", EVSE1), ocpp.answer(status="Accepted")]),
    tc("TC_G_11_CS", "EVSE availability change during a transaction is scheduled", block="G",
       actions=("start_transaction",),
       steps=[*started(), availability("Inoperative", EVSE1), ocpp.answer(status="Scheduled"),
              ocpp.no_call("StatusNotification", for_s=1.5, connectorStatus="Unavailable")]),
    tc("TC_G_12_CS", "Station operative -> operative", block="G",
       steps=[availability("Operative"), ocpp.answer(status="Accepted")]),
    tc("TC_G_14_CS", "Station availability change during a transaction is scheduled", block="G",
       actions=("start_transaction",),
       steps=[*started(), availability("Inoperative"), ocpp.answer(status="Scheduled")]),
    tc("TC_G_18_CS", "EVSE inoperative survives a reset", block="G", requires=("RESET",),
       steps=[availability("Inoperative", EVSE1), ocpp.answer(status="Accepted"),
              ocpp.expect("StatusNotification", connectorStatus="Unavailable", within_s=10),
              ocpp.call("Reset", {"type": "Immediate"}), ocpp.answer(status="Accepted"),
              ocpp.expect("BootNotification", reason="RemoteReset", within_s=30),
              ocpp.expect("StatusNotification", connectorStatus="Unavailable", within_s=15)]),
    tc("TC_P_01_CS", "DataTransfer with an unknown vendor refused", block="P",
       steps=[ocpp.call("DataTransfer", {"vendorId": "com.example.unknown-vendor", "messageId": "Hello"}),
              ocpp.answer(status="UnknownVendorId")]),
    tc("TC_P_03_CS", "customData in a request is ignored gracefully", block="P",
       steps=[ocpp.call("GetVariables", {"customData": {"vendorId": "com.example", "extra": 1},
                                         "getVariableData": [{"component": {"name": "OCPPCommCtrlr"},
                                                              "variable": {"name": "HeartbeatInterval"}}]}),
              ocpp.answer(getVariableResult=[{"attributeStatus": "Accepted"}])]),
    tc("TC_P_04_CS", "customData inside a charging profile accepted", block="P",
       steps=[ocpp.call("SetChargingProfile", lambda ctx: {"evseId": 1, "chargingProfile": {
                  **ctx.csms.charging_profile(41, "TxDefaultProfile", [(0, 6000)]),
                  "customData": {"vendorId": "com.example", "note": "ignored"}}}),
              ocpp.answer(status="Accepted")]),
]

test_block_g = cases_test(CASES)
