"""OCPP block E — Transactions (start/stop points, status queries, offline queue and seqNo): OCTT
charging-station cases as rows."""
from v2g_bench.conformance import V, cases_test, step
from v2g_bench.conformance import ocpp
from v2g_bench.conformance.match import absent, one_of, present
from v2g_bench.conformance.ocpp_steps import let_run, seq_nos_continuous, started, tc
from v2g_bench.errors import Nonconformance

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


def set_vars(*triples):
    """SetVariables for (component, variable, value) triples, and the answer: every one Accepted."""
    return [ocpp.call("SetVariables", {"setVariableData": [
                {"component": {"name": c}, "variable": {"name": v}, "attributeValue": str(val)} for c, v, val in triples]},
                save_as="set"),
            ocpp.answer(setVariableResult=[{"attributeStatus": "Accepted"}] * len(triples), of="set")]


def csms_answers_transaction_events(answer, *, times: int, what: str):
    """Bench: the CSMS answers the next `times` TransactionEvents with `answer` (payload, OcppCallError or
    NO_ANSWER) instead of its default."""
    def arrange(ctx):
        from v2g_bench.csms import emulator
        a = {"callerror": emulator.OcppCallError("InternalError", "bench: refused on purpose"),
             "none": emulator.NO_ANSWER}.get(answer, answer) if isinstance(answer, str) else answer
        ctx.csms.respond("TransactionEvent", a, times=times)
    return step(f"the CSMS answers the next {times} TransactionEvent(s) with {what}", arrange, kind="stimulus")


def attempts_of_one_event(n: int, *, then_none_for_s: float = 0.0, req="E13.FR.02", within_s: float = 20.0):
    """E13: the same TransactionEvent (same transaction, same seqNo) arrives `n` times (a new messageId each);
    with `then_none_for_s`, no further attempt of it follows in that time."""
    def check(ctx):
        import time
        tx = ctx.vars["started"]["transactionInfo"]["transactionId"]
        seq = ctx.vars["retried"]["seqNo"]

        def attempts():
            return [f for f in ctx.csms.frames if f.direction == "in" and f.msg_type == 2
                    and f.action == "TransactionEvent" and f.payload.get("seqNo") == seq
                    and (f.payload.get("transactionInfo") or {}).get("transactionId") == tx]
        deadline = time.monotonic() + within_s      # MessageTimeout / MessageAttemptInterval x attempts, bounded
        while len(attempts()) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        got = attempts()
        if then_none_for_s:
            time.sleep(then_none_for_s)
            got = attempts()
        ctx.attach("attempts", [{"messageId": f.unique_id, "t": round(f.t, 3)} for f in got])
        if len(got) != n:
            raise Nonconformance(f"TransactionEvent seqNo {seq} was sent {len(got)} time(s); MessageAttempts asks "
                                 f"for {n} in all", req=req)
        if len({f.unique_id for f in got}) != len(got):
            raise Nonconformance("a repeated TransactionEvent reused its messageId", req=req)
    return step(f"the TransactionEvent is attempted {n} time(s) in all (same seqNo, new messageId)", check,
                kind="expect", req=req)


def retried_event():
    return triggered_update()[:2] + [ocpp.expect("TransactionEvent", within_s=10, eventType="Updated",
                                                 triggerReason="Trigger", save_as="retried")]


RETRY = (("OCPPCommCtrlr", "MessageAttempts", 3), ("OCPPCommCtrlr", "MessageAttemptInterval", 1))
ENDED = {"eventType": "Ended"}


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
    # -- start and stop points (E01, E06) ---------------------------------------------------------------
    tc("TC_E_01_CS", "Transaction begins at PowerPathClosed", block="E", actions=("plug_in", "present_token"),
       steps=[*set_vars(("TxCtrlr", "TxStartPoint", "PowerPathClosed")),
              ocpp.dut_action("present_token", id_token="E01-TOKEN"),
              ocpp.expect("Authorize", within_s=10, **{"idToken.idToken": "E01-TOKEN"}),
              ocpp.no_call("TransactionEvent", for_s=1.5),
              ocpp.dut_action("plug_in"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Started", triggerReason="ChargingStateChanged",
                          **{"idToken.idToken": "E01-TOKEN"})]),
    tc("TC_E_02_CS", "Transaction begins at EnergyTransfer", block="E", actions=("plug_in", "present_token"),
       steps=[*set_vars(("TxCtrlr", "TxStartPoint", "EnergyTransfer")),
              ocpp.dut_action("present_token", id_token="E02-TOKEN"),
              ocpp.expect("Authorize", within_s=10, **{"idToken.idToken": "E02-TOKEN"}),
              ocpp.no_call("TransactionEvent", for_s=1.5),
              ocpp.dut_action("plug_in"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Started", triggerReason="ChargingStateChanged")]),
    tc("TC_E_05_CS", "Authorize first, EV never plugs in: the authorization times out", block="E",
       actions=("plug_in", "present_token"),
       steps=[*set_vars(("TxCtrlr", "TxStartPoint", "PowerPathClosed"), ("TxCtrlr", "EVConnectionTimeOut", 2)),
              ocpp.dut_action("present_token", id_token="E05-TOKEN"),
              ocpp.expect("Authorize", within_s=10),
              let_run(3.5),                                       # EVConnectionTimeOut (2 s) passes
              ocpp.dut_action("plug_in"),
              ocpp.no_call("TransactionEvent", for_s=2.0, eventType="Started")]),
    tc("TC_E_39_CS", "Deauthorized after the EV connection timeout", block="E", actions=("present_token",),
       steps=[*set_vars(("TxCtrlr", "EVConnectionTimeOut", 2)),
              ocpp.dut_action("present_token", id_token="E39-TOKEN"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Started", triggerReason="Authorized",
                          save_as="started"),
              ocpp.expect("TransactionEvent", within_s=8, eventType="Ended", triggerReason="EVConnectTimeout",
                          **{"transactionInfo.transactionId": TX, "transactionInfo.stoppedReason": "Timeout"})]),
    tc("TC_E_07_CS", "Stop point PowerPathClosed, local stop", block="E", actions=("start_transaction", "present_token"),
       steps=[*set_vars(("TxCtrlr", "TxStopPoint", "PowerPathClosed")),
              *started(id_token="E07-TOKEN"),
              ocpp.dut_action("present_token", id_token="E07-TOKEN"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended", triggerReason="StopAuthorized",
                          **{"transactionInfo.transactionId": TX, "transactionInfo.stoppedReason": "Local"})]),
    tc("TC_E_08_CS", "Stop point EnergyTransfer, stop authorized", block="E",
       actions=("start_transaction", "present_token"),
       steps=[*set_vars(("TxCtrlr", "TxStopPoint", "EnergyTransfer")),
              *started(id_token="E08-TOKEN"),
              ocpp.dut_action("present_token", id_token="E08-TOKEN"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended", triggerReason="StopAuthorized",
                          **{"transactionInfo.transactionId": TX, "transactionInfo.stoppedReason": "Local"})]),
    tc("TC_E_37_CS", "Stop point PowerPathClosed, EV-side disconnect", block="E",
       actions=("start_transaction", "unplug"),
       steps=[*set_vars(("TxCtrlr", "TxStopPoint", "PowerPathClosed")),
              *started(),
              ocpp.dut_action("unplug"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended",
                          **{"transactionInfo.transactionId": TX, "transactionInfo.stoppedReason": "EVDisconnected"})]),
    tc("TC_E_14_CS", "Stop when the cable is removed at the station side", block="E",
       actions=("start_transaction", "unplug"),
       steps=[*started(),
              ocpp.dut_action("unplug"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended",
                          **{"transactionInfo.transactionId": TX, "transactionInfo.stoppedReason": "EVDisconnected"}),
              ocpp.expect("StatusNotification", connectorStatus="Available", within_s=10)]),
    tc("TC_E_21_CS", "Stop on StopAuthorized (remote)", block="E", actions=("start_transaction",),
       steps=[*started(),
              ocpp.call("RequestStopTransaction", {"transactionId": TX}), ocpp.answer(status="Accepted"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended", triggerReason="RemoteStop",
                          **{"transactionInfo.transactionId": TX, "transactionInfo.stoppedReason": "Remote"})]),
    tc("TC_E_26_CS", "EV-side unplug suspends the transaction (StopTxOnEVSideDisconnect = false)", block="E",
       actions=("start_transaction", "unplug"),
       steps=[*set_vars(("TxCtrlr", "StopTxOnEVSideDisconnect", "false")),
              *started(),
              ocpp.dut_action("unplug"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Updated", triggerReason="EVCommunicationLost",
                          **{"transactionInfo.transactionId": TX, "transactionInfo.chargingState": "Idle"}),
              ocpp.no_call("TransactionEvent", ENDED, for_s=1.5)]),
    # -- deauthorization (E05 / C) ---------------------------------------------------------------------
    tc("TC_E_16_CS", "The CSMS deauthorizes the token (Invalid in the answer to Started): the transaction ends",
       block="E", actions=("start_transaction",),
       steps=[*set_vars(("TxCtrlr", "StopTxOnInvalidId", "true")),
              csms_answers_transaction_events({"idTokenInfo": {"status": "Invalid"}}, times=1,
                                              what="idTokenInfo.status Invalid"),
              *started(),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended", triggerReason="Deauthorized",
                          **{"transactionInfo.transactionId": TX, "transactionInfo.stoppedReason": "DeAuthorized"})]),
    tc("TC_E_52_CS", "DisableRemoteAuthorization honoured: no Authorize for an unknown token", block="E",
       actions=("plug_in", "present_token"),
       steps=[*set_vars(("AuthCtrlr", "DisableRemoteAuthorization", "true")),
              ocpp.dut_action("plug_in"),
              ocpp.dut_action("present_token", id_token="E52-UNKNOWN"),
              ocpp.no_call("Authorize", for_s=1.5),
              ocpp.no_call("TransactionEvent", {"eventType": "Started"}, for_s=0.5)]),
    # -- status query with an unanswered Ended (E14) ------------------------------------------------------
    tc("TC_E_31_CS", "Transaction status: ended transaction, messages queued", block="E",
       actions=("start_transaction", "stop_transaction"),
       steps=[tx_updated_every(0), *started(), hold_back_transaction_events(),
              ocpp.dut_action("stop_transaction"),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Ended"),
              status_of(TX), ocpp.answer(ongoingIndicator=False, messagesInQueue=True)]),
    # -- retries of TransactionEvent (E13) -------------------------------------------------------------
    tc("TC_E_42_CS", "TransactionEvent unanswered once, accepted on the next attempt", block="E",
       actions=("start_transaction",), slow=True,          # waits out MessageTimeout (10 s)
       steps=[tx_updated_every(0), *set_vars(*RETRY), *started(),
              csms_answers_transaction_events("none", times=1, what="no answer"),
              *retried_event(),
              attempts_of_one_event(2)]),
    tc("TC_E_41_CS", "TransactionEvent retries exhausted (never answered): discarded after MessageAttempts",
       block="E", actions=("start_transaction",), slow=True,
       steps=[tx_updated_every(0), *set_vars(("OCPPCommCtrlr", "MessageAttempts", 2),
                                             ("OCPPCommCtrlr", "MessageAttemptInterval", 1)), *started(),
              csms_answers_transaction_events("none", times=5, what="no answer"),
              *retried_event(),
              attempts_of_one_event(2, then_none_for_s=12.0, req="E13.FR.03")]),
    tc("TC_E_50_CS", "TransactionEvent retries exhausted when the CSMS answers CALLERROR", block="E",
       actions=("start_transaction",), slow=True,          # 1 + 2 s of retry intervals, then 4 s of silence
       steps=[tx_updated_every(0), *set_vars(*RETRY), *started(),
              csms_answers_transaction_events("callerror", times=5, what="CALLERROR InternalError"),
              *retried_event(),
              attempts_of_one_event(3, then_none_for_s=4.0, req="E13.FR.03", within_s=8.0)]),
    tc("TC_E_51_CS", "TransactionEvent accepted before the retry limit after a CALLERROR", block="E",
       actions=("start_transaction",),
       steps=[tx_updated_every(0), *set_vars(*RETRY), *started(),
              csms_answers_transaction_events("callerror", times=1, what="CALLERROR InternalError"),
              *retried_event(),
              attempts_of_one_event(2, then_none_for_s=2.5, within_s=5.0)]),
    # -- 2.1: transaction limits (E16), resumption after a power loss (E17) ------------------------------
    tc("TC_E_100_CS", "CSMS-set energy limit ends the transaction", block="E", versions=("2.1",),
       actions=("start_transaction",),
       steps=[csms_answers_transaction_events({"transactionLimit": {"maxEnergy": 4.0}}, times=1,
                                              what="transactionLimit.maxEnergy 4 Wh"),
              # energy must flow for the limit to be reached: the battery emulator (off at power-up, as a real
              # one) holds the DC link, limits first
              step("the battery emulator holds the DC link", lambda ctx: ctx.dc_link, kind="given"),
              *started(),
              ocpp.expect("TransactionEvent", within_s=20, eventType="Ended", triggerReason="EnergyLimitReached",
                          **{"transactionInfo.transactionId": TX,
                             "transactionInfo.stoppedReason": "EnergyLimitReached"})]),
    tc("TC_E_105_CS", "CSMS-set time limit ends the transaction", block="E", versions=("2.1",),
       actions=("start_transaction",),
       steps=[csms_answers_transaction_events({"transactionLimit": {"maxTime": 3}}, times=1,
                                              what="transactionLimit.maxTime 3 s"),
              *started(),
              ocpp.no_call("TransactionEvent", ENDED, for_s=2.0),
              ocpp.expect("TransactionEvent", within_s=6, eventType="Ended", triggerReason="TimeLimitReached",
                          **{"transactionInfo.transactionId": TX,
                             "transactionInfo.stoppedReason": "TimeLimitReached"})]),
    tc("TC_E_113_CS", "Power loss within TxResumptionTimeout: the transaction resumes", block="E", versions=("2.1",),
       actions=("start_transaction", "power_cycle"),
       steps=[*set_vars(("TxCtrlr", "TxResumptionTimeout", 120)),
              *started(),
              ocpp.dut_action("power_cycle"),
              ocpp.expect("BootNotification", within_s=30, reason="PowerUp"),
              ocpp.expect("TransactionEvent", within_s=30, eventType="Updated", triggerReason="TxResumed",
                          **{"transactionInfo.transactionId": TX}),
              ocpp.no_call("TransactionEvent", ENDED, for_s=0.5),
              seq_nos_continuous()]),
    tc("TC_E_115_CS", "Power loss with TxResumptionTimeout 0: the transaction ends (PowerLoss)", block="E",
       versions=("2.1",), actions=("start_transaction", "power_cycle"),
       steps=[*set_vars(("TxCtrlr", "TxResumptionTimeout", 0)),
              *started(),
              ocpp.dut_action("power_cycle"),
              ocpp.expect("BootNotification", within_s=15, reason="PowerUp"),
              ocpp.expect("TransactionEvent", within_s=15, eventType="Ended",
                          **{"transactionInfo.transactionId": TX, "transactionInfo.stoppedReason": "PowerLoss"}),
              seq_nos_continuous()]),
    tc("TC_E_116_CS", "Power loss longer than TxResumptionTimeout: the transaction ends", block="E",
       versions=("2.1",), actions=("start_transaction", "power_cycle"),
       steps=[*set_vars(("TxCtrlr", "TxResumptionTimeout", 2)),
              *started(),
              ocpp.dut_action("power_cycle", off_s=4),
              ocpp.expect("BootNotification", within_s=15, reason="PowerUp"),
              ocpp.expect("TransactionEvent", within_s=15, eventType="Ended",
                          **{"transactionInfo.transactionId": TX,
                             "transactionInfo.stoppedReason": one_of("PowerLoss", "Timeout")}),
              ocpp.no_call("TransactionEvent", {"triggerReason": "TxResumed"}, for_s=0.5)]),

]

test_block_e = cases_test(CASES)
