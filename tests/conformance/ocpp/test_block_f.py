"""OCPP block F — Remote control (remote start/stop, unlock, trigger message): OCTT charging-station cases
as rows."""
from v2g_bench.conformance import V, cases_test
from v2g_bench.conformance import ocpp
from v2g_bench.conformance.match import ANY
from v2g_bench.conformance.ocpp_steps import started, tc

TX = V("started.transactionInfo.transactionId")


def remote_start(remote_start_id: int, token: str = "REMOTE-TOKEN", **extra):
    return ocpp.call("RequestStartTransaction", {"remoteStartId": remote_start_id, "evseId": 1,
                                                 "idToken": {"idToken": token, "type": "Central"}, **extra})


def authorize_remote_start(value: str):
    return ocpp.call("SetVariables", {"setVariableData": [{"component": {"name": "AuthCtrlr"},
                                                           "variable": {"name": "AuthorizeRemoteStart"},
                                                           "attributeValue": value}]}, save_as="setting")


def trigger(message: str, evse: dict | None = None):
    return ocpp.call("TriggerMessage", {"requestedMessage": message, **({"evse": evse} if evse else {})})


CASES = [
    tc("TC_F_01_CS", "Remote start after the EV is plugged in", block="F", actions=("plug_in",),
       steps=[ocpp.dut_action("plug_in"),
              ocpp.expect("StatusNotification", connectorStatus="Occupied", within_s=10),
              remote_start(101), ocpp.answer(status="Accepted"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Started", triggerReason="RemoteStart",
                          **{"transactionInfo.remoteStartId": 101, "idToken.idToken": "REMOTE-TOKEN"})]),
    tc("TC_F_02_CS", "Remote start before plug-in, AuthorizeRemoteStart = true", block="F",
       steps=[authorize_remote_start("true"), ocpp.answer(setVariableResult=[{"attributeStatus": "Accepted"}],
                                                          of="setting"),
              remote_start(102), ocpp.answer(status="Accepted"),
              ocpp.expect("Authorize", within_s=10, **{"idToken.idToken": "REMOTE-TOKEN"}),
              ocpp.expect("TransactionEvent", within_s=15, eventType="Started",
                          **{"transactionInfo.remoteStartId": 102})]),
    tc("TC_F_03_CS", "Remote start before plug-in, AuthorizeRemoteStart = false", block="F",
       steps=[authorize_remote_start("false"), ocpp.answer(setVariableResult=[{"attributeStatus": "Accepted"}],
                                                           of="setting"),
              remote_start(103), ocpp.answer(status="Accepted"),
              ocpp.expect("TransactionEvent", within_s=15, eventType="Started",
                          **{"transactionInfo.remoteStartId": 103}),
              ocpp.no_call("Authorize", for_s=1.0)]),
    tc("TC_F_05_CS", "Unlock refused during an authorized transaction", block="F", actions=("start_transaction",),
       steps=[*started(),
              ocpp.call("UnlockConnector", {"evseId": 1, "connectorId": 1}),
              ocpp.answer(status="OngoingAuthorizedTransaction"),
              ocpp.no_call("TransactionEvent", for_s=1.5, eventType="Ended")]),
    tc("TC_F_06_CS", "Unlock without a transaction", block="F",
       steps=[ocpp.call("UnlockConnector", {"evseId": 1, "connectorId": 1}), ocpp.answer(status="Unlocked")]),
    tc("TC_F_08_CS", "Remote stop ends the transaction", block="F", actions=("start_transaction",),
       steps=[*started(),
              ocpp.call("RequestStopTransaction", {"transactionId": TX}), ocpp.answer(status="Accepted"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended", triggerReason="RemoteStop",
                          **{"transactionInfo.transactionId": TX, "transactionInfo.stoppedReason": "Remote"})]),
    tc("TC_F_09_CS", "Remote stop for an unknown transaction refused", block="F",
       steps=[ocpp.call("RequestStopTransaction", {"transactionId": "no-such-transaction"}),
              ocpp.answer(status="Rejected")]),
    tc("TC_F_10_CS", "Unlock of an unknown connector", block="F",
       steps=[ocpp.call("UnlockConnector", {"evseId": 1, "connectorId": 7}), ocpp.answer(status="UnknownConnector")]),
    tc("TC_F_11_CS", "Trigger MeterValues for one EVSE", block="F",
       steps=[trigger("MeterValues", {"id": 1}), ocpp.answer(status="Accepted"),
              ocpp.expect("MeterValues", within_s=10, evseId=1)]),
    tc("TC_F_12_CS", "Trigger MeterValues for all EVSEs", block="F",
       steps=[trigger("MeterValues"), ocpp.answer(status="Accepted"),
              ocpp.expect("MeterValues", within_s=10, evseId=ANY)]),
    tc("TC_F_13_CS", "Trigger TransactionEvent for one EVSE", block="F", actions=("start_transaction",),
       steps=[*started(), trigger("TransactionEvent", {"id": 1}), ocpp.answer(status="Accepted"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Updated", triggerReason="Trigger",
                          **{"transactionInfo.transactionId": TX})]),
    tc("TC_F_14_CS", "Trigger TransactionEvent for all EVSEs", block="F", actions=("start_transaction",),
       steps=[*started(), trigger("TransactionEvent"), ocpp.answer(status="Accepted"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Updated", triggerReason="Trigger")]),
    tc("TC_F_15_CS", "Trigger LogStatusNotification while idle", block="F",
       steps=[trigger("LogStatusNotification"), ocpp.answer(status="Accepted"),
              ocpp.expect("LogStatusNotification", within_s=10, status="Idle")]),
    tc("TC_F_17_CS", "Trigger FirmwareStatusNotification with an EVSE given", block="F",
       steps=[trigger("FirmwareStatusNotification", {"id": 1}), ocpp.answer(status="Accepted"),
              ocpp.expect("FirmwareStatusNotification", within_s=10, status="Idle")]),
    tc("TC_F_18_CS", "Trigger FirmwareStatusNotification while idle", block="F",
       steps=[trigger("FirmwareStatusNotification"), ocpp.answer(status="Accepted"),
              ocpp.expect("FirmwareStatusNotification", within_s=10, status="Idle")]),
    tc("TC_F_20_CS", "Trigger Heartbeat", block="F",
       steps=[trigger("Heartbeat"), ocpp.answer(status="Accepted"), ocpp.expect("Heartbeat", within_s=10)]),
    tc("TC_F_23_CS", "Trigger StatusNotification, EVSE available", block="F",
       steps=[trigger("StatusNotification", {"id": 1, "connectorId": 1}), ocpp.answer(status="Accepted"),
              ocpp.expect("StatusNotification", within_s=10, connectorStatus="Available", evseId=1, connectorId=1)]),
    tc("TC_F_24_CS", "Trigger StatusNotification, EVSE occupied", block="F", actions=("plug_in",),
       steps=[ocpp.dut_action("plug_in"),
              ocpp.expect("StatusNotification", connectorStatus="Occupied", within_s=10),
              trigger("StatusNotification", {"id": 1, "connectorId": 1}), ocpp.answer(status="Accepted"),
              ocpp.expect("StatusNotification", within_s=10, connectorStatus="Occupied", evseId=1, connectorId=1)]),
    tc("TC_F_26_CS", "Trigger BootNotification refused after an accepted boot", block="F",
       steps=[trigger("BootNotification"), ocpp.answer(status="Rejected"), ocpp.no_call("BootNotification", for_s=1)]),
    tc("TC_F_27_CS", "Trigger for a message the station does not implement", block="F",
       steps=[trigger("PublishFirmwareStatusNotification"), ocpp.answer(status="NotImplemented")]),
    # -- second batch ------------------------------------------------------------------------------------
    tc("TC_F_04_CS", "Remote start, the EV never plugs in: the transaction times out", block="F",
       steps=[ocpp.call("SetVariables", {"setVariableData": [{"component": {"name": "TxCtrlr"},
                                                              "variable": {"name": "EVConnectionTimeOut"},
                                                              "attributeValue": "2"}]}, save_as="setting"),
              ocpp.answer(setVariableResult=[{"attributeStatus": "Accepted"}], of="setting"),
              remote_start(104), ocpp.answer(status="Accepted"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Started", triggerReason="RemoteStart",
                          save_as="started", **{"transactionInfo.remoteStartId": 104}),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended", triggerReason="EVConnectTimeout",
                          **{"transactionInfo.transactionId": TX, "transactionInfo.stoppedReason": "Timeout"})]),
    tc("TC_F_07_CS", "Unlock without a cable present", block="F",
       steps=[ocpp.call("UnlockConnector", {"evseId": 1, "connectorId": 1}), ocpp.answer(status="Unlocked"),
              ocpp.no_call("TransactionEvent", for_s=0.5)]),
    tc("TC_F_100_CS", "Custom trigger the station does not define", block="F", versions=("2.1",),
       steps=[ocpp.call("TriggerMessage", {"requestedMessage": "CustomTrigger", "customTrigger": "bench-unknown"}),
              ocpp.answer(status="NotImplemented")]),
]

test_block_f = cases_test(CASES)
