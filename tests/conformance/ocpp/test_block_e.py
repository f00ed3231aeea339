"""OCPP block E — Transactions (start/stop points, status queries, offline queue and seqNo): OCTT
charging-station cases as rows."""
from v2g_bench.conformance import V, cases_test, step
from v2g_bench.conformance import ocpp
from v2g_bench.conformance.match import absent, one_of, present
from v2g_bench.conformance.ocpp_steps import let_run, seq_nos_continuous, started, tc

TX = V("started.transactionInfo.transactionId")


def tx_updated_every(seconds: int):
    return ocpp.call("SetVariables", {"setVariableData": [{"component": {"name": "SampledDataCtrlr"},
                                                           "variable": {"name": "TxUpdatedInterval"},
                                                           "attributeValue": str(seconds)}]}, save_as="interval")


def hold_back_transaction_events():
    """Bench: the CSMS does not answer the next TransactionEvent, so the station still holds it."""
    def hold(ctx):
        from v2g_bench.csms.emulator import NO_ANSWER
        ctx.csms.respond("TransactionEvent", NO_ANSWER, times=1)
    return step("the CSMS holds back its answer to the next TransactionEvent", hold, kind="stimulus")


def triggered_update():
    return [ocpp.call("TriggerMessage", {"requestedMessage": "TransactionEvent", "evse": {"id": 1}}),
            ocpp.answer(status="Accepted"),
            ocpp.expect("TransactionEvent", within_s=10, eventType="Updated", triggerReason="Trigger")]


def status_of(tx):
    return ocpp.call("GetTransactionStatus", {"transactionId": tx} if tx is not None else {})


CASES = [
    tc("TC_E_03_CS", "Plug in first, then local authorization: the transaction starts", block="E",
       actions=("plug_in", "present_token"), covers=("E02.FR.01", "E01.FR.16", "C01.FR.02"),
       steps=[ocpp.dut_action("plug_in"),
              ocpp.expect("StatusNotification", connectorStatus="Occupied", within_s=10),
              ocpp.dut_action("present_token", id_token="E03-TOKEN"),
              ocpp.expect("Authorize", within_s=10, **{"idToken.idToken": "E03-TOKEN"}),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Started", triggerReason="Authorized",
                          save_as="started", **{"idToken.idToken": "E03-TOKEN", "evse.id": 1})]),
    tc("TC_E_04_CS", "Authorize first, then plug in: the transaction starts", block="E",
       actions=("plug_in", "present_token"),
       steps=[ocpp.dut_action("present_token", id_token="E04-TOKEN"),
              ocpp.expect("Authorize", within_s=10, **{"idToken.idToken": "E04-TOKEN"}),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Started", save_as="started",
                          **{"idToken.idToken": "E04-TOKEN"}),
              ocpp.dut_action("plug_in"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Updated", triggerReason="CablePluggedIn",
                          **{"transactionInfo.transactionId": TX})]),
    tc("TC_E_09_CS", "Transaction begins at EVConnected", block="E", actions=("plug_in",),
       steps=[ocpp.call("SetVariables", {"setVariableData": [{"component": {"name": "TxCtrlr"},
                                                              "variable": {"name": "TxStartPoint"},
                                                              "attributeValue": "EVConnected"}]}),
              ocpp.answer(setVariableResult=[{"attributeStatus": "Accepted"}]),
              ocpp.dut_action("plug_in"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Started", triggerReason="CablePluggedIn",
                          idToken=absent, **{"transactionInfo.chargingState": present})]),
    tc("TC_E_10_CS", "Transaction begins at Authorized (local token, EV not yet plugged)", block="E",
       actions=("present_token",),
       steps=[ocpp.dut_action("present_token", id_token="E10-TOKEN"),
              ocpp.expect("Authorize", within_s=10, **{"idToken.idToken": "E10-TOKEN"}),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Started", triggerReason="Authorized",
                          **{"idToken.idToken": "E10-TOKEN"})]),
    tc("TC_E_13_CS", "Transaction begins at Authorized (remote start)", block="E",
       steps=[ocpp.call("RequestStartTransaction", {"remoteStartId": 113, "evseId": 1,
                                                    "idToken": {"idToken": "E13-TOKEN", "type": "Central"}}),
              ocpp.answer(status="Accepted"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Started", triggerReason="RemoteStart",
                          **{"transactionInfo.remoteStartId": 113, "idToken.idToken": "E13-TOKEN"})]),
    tc("TC_E_06_CS", "Local stop with the same token", block="E", actions=("plug_in", "present_token"),
       steps=[ocpp.dut_action("plug_in"),
              ocpp.dut_action("present_token", id_token="E06-TOKEN"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Started", save_as="started"),
              ocpp.dut_action("present_token", id_token="E06-TOKEN"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended", triggerReason="StopAuthorized",
                          **{"transactionInfo.transactionId": TX, "transactionInfo.stoppedReason": "Local"}),
              seq_nos_continuous()]),
    tc("TC_E_15_CS", "Stop on StopAuthorized (local)", block="E", actions=("start_transaction", "present_token"),
       steps=[*started(id_token="E15-TOKEN"),
              ocpp.dut_action("present_token", id_token="E15-TOKEN"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended", triggerReason="StopAuthorized",
                          **{"transactionInfo.stoppedReason": "Local"})]),
    tc("TC_E_17_CS", "EV-side disconnect ends the transaction", block="E", actions=("start_transaction", "unplug"),
       steps=[*started(),
              ocpp.dut_action("unplug"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended",
                          triggerReason=one_of("EVCommunicationLost", "EVDeparted", "StopAuthorized"),
                          **{"transactionInfo.transactionId": TX, "transactionInfo.stoppedReason": "EVDisconnected"}),
              ocpp.expect("StatusNotification", connectorStatus="Available", within_s=10)]),
    tc("TC_E_28_CS", "Transaction status for an unknown transaction id", block="E",
       steps=[status_of("no-such-transaction"),
              ocpp.answer(messagesInQueue=False, ongoingIndicator=one_of(False, absent))]),
    tc("TC_E_29_CS", "Transaction status: ongoing transaction, messages queued", block="E",
       actions=("start_transaction",),
       steps=[*started(), hold_back_transaction_events(), *triggered_update(),
              status_of(TX), ocpp.answer(ongoingIndicator=True, messagesInQueue=True)]),
    tc("TC_E_33_CS", "Transaction status without id, messages queued", block="E", actions=("start_transaction",),
       steps=[*started(), hold_back_transaction_events(), *triggered_update(),
              status_of(None), ocpp.answer(messagesInQueue=True, ongoingIndicator=absent)]),
    tc("TC_E_30_CS", "Transaction status: ongoing transaction, nothing queued", block="E",
       actions=("start_transaction",),
       steps=[tx_updated_every(0), *started(),          # no periodic event in flight while asking
              status_of(TX), ocpp.answer(ongoingIndicator=True, messagesInQueue=False)]),
    tc("TC_E_32_CS", "Transaction status: ended transaction, nothing queued", block="E",
       actions=("start_transaction", "stop_transaction"),
       steps=[tx_updated_every(0), *started(),
              ocpp.dut_action("stop_transaction"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended"),
              let_run(1.0),         # the station drops the Ended from its queue when our answer reaches it
              status_of(TX), ocpp.answer(ongoingIndicator=False, messagesInQueue=False)]),
    tc("TC_E_34_CS", "Transaction status without id, nothing queued", block="E",
       steps=[status_of(None), ocpp.answer(messagesInQueue=False, ongoingIndicator=absent)]),
    tc("TC_E_35_CS", "Stop point PowerPathClosed, remote stop", block="E", actions=("start_transaction",),
       steps=[*started(),
              ocpp.call("RequestStopTransaction", {"transactionId": TX}), ocpp.answer(status="Accepted"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended", triggerReason="RemoteStop",
                          **{"transactionInfo.stoppedReason": "Remote", "transactionInfo.transactionId": TX})]),
    tc("TC_E_40_CS", "Connection lost during a transaction: queued events delivered in order", block="E",
       actions=("start_transaction", "cut_network", "restore_network"), requires=("OFFLINETXQUEUE",),
       steps=[tx_updated_every(1),
              *started(),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Updated", triggerReason="MeterValuePeriodic"),
              ocpp.dut_action("cut_network"),
              let_run(3.0),
              ocpp.dut_action("restore_network"),
              ocpp.expect("TransactionEvent", within_s=20, offline=True, **{"transactionInfo.transactionId": TX}),
              let_run(1.0),
              seq_nos_continuous(offline_flag=True)]),
    tc("TC_E_43_CS", "A whole transaction while offline, reported afterwards", block="E",
       actions=("start_transaction", "stop_transaction", "cut_network", "restore_network"),
       requires=("OFFLINETXQUEUE",),
       steps=[ocpp.dut_action("cut_network"),
              ocpp.dut_action("start_transaction"),
              let_run(1.0),
              ocpp.dut_action("stop_transaction"),
              ocpp.dut_action("restore_network"),
              ocpp.expect("TransactionEvent", within_s=20, eventType="Started", offline=True, save_as="started"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended", offline=True,
                          **{"transactionInfo.transactionId": TX}),
              seq_nos_continuous()]),
    tc("TC_E_44_CS", "Transaction stopped while offline", block="E",
       actions=("start_transaction", "stop_transaction", "cut_network", "restore_network"),
       requires=("OFFLINETXQUEUE",),
       steps=[*started(),
              ocpp.dut_action("cut_network"),
              ocpp.dut_action("stop_transaction"),
              ocpp.dut_action("restore_network"),
              ocpp.expect("TransactionEvent", within_s=20, eventType="Ended", offline=True,
                          **{"transactionInfo.transactionId": TX, "transactionInfo.stoppedReason": present}),
              seq_nos_continuous()]),
]

test_block_e = cases_test(CASES)
