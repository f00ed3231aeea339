"""OCPP block B — Provisioning (boot, variables, reports, reset, network profiles): OCTT charging-station
cases as rows. The bench plays the CSMS; see docs/ocpp-suite.md for the case x defect table."""
from v2g_bench.conformance import V, cases_test, step
from v2g_bench.conformance import ocpp
from v2g_bench.conformance.match import ANY, one_of, present
from v2g_bench.conformance.ocpp_steps import let_run, report, report_has, started, tc

TX = V("started.transactionInfo.transactionId")


def gv(*pairs, attr=None):
    """GetVariables payload for (component, variable) pairs."""
    return {"getVariableData": [{"component": {"name": c}, "variable": {"name": v},
                                 **({"attributeType": attr} if attr else {})} for c, v in pairs]}


def sv(*triples, attr=None):
    return {"setVariableData": [{"component": {"name": c}, "variable": {"name": v}, "attributeValue": val,
                                 **({"attributeType": attr} if attr else {})} for c, v, val in triples]}


def results(key, *statuses):
    """{key: [{attributeStatus: s}, ...]} in order."""
    return {key: [{"attributeStatus": s} for s in statuses]}


def network_profile(slot, *, security_profile=1):
    def payload(ctx):
        data = {"ocppTransport": "JSON", "ocppCsmsUrl": "wss://csms.example.invalid/ocpp", "messageTimeout": 30,
                "securityProfile": security_profile, "ocppInterface": "Wired0"}
        data["ocppVersion"] = "OCPP20" if ctx.version == "2.0.1" else "OCPP21"
        return {"configurationSlot": slot, "connectionData": data}
    return payload


def reconnects(ctx):
    """The CSMS drops the connection; the station must come back by itself (its retry back-off)."""
    sid = ctx.bench_profile.roles["csms"].options["station_id"]
    ctx.csms.disconnect(sid, code=1001, reason="CSMS going away (test)")
    ctx.csms.wait_for_disconnect(sid, 5)
    s = ctx.csms.wait_for_station(sid, timeout=30)
    ctx.attach("reconnected", {"station": sid, "after_s": round(s.connected_at - ctx.now(), 3)})


def boot_answers(*statuses, interval=2):
    """Bench: the CSMS answers the next BootNotifications with these statuses (then its default)."""
    def arrange(ctx):
        from v2g_bench.csms.recording import utc_now_iso
        for st in statuses:
            ctx.csms.respond("BootNotification", lambda f, st=st: {"currentTime": utc_now_iso(), "interval": interval,
                                                                   "status": st}, times=1)
    return step(f"the CSMS will answer BootNotification {' then '.join(statuses)} (interval {interval} s)",
                arrange, kind="stimulus")


def nothing_but_boot_before_accepted(ctx):
    """B03: while not accepted, the station sends nothing but BootNotification."""
    from v2g_bench.errors import Nonconformance
    frames = [f for f in ctx.csms.frames if f.direction == "in" and f.msg_type == 2]
    first_ok = next((f.t for f in ctx.csms.frames if f.direction == "out" and f.action == "BootNotification"
                     and isinstance(f.payload, dict) and f.payload.get("status") == "Accepted"), None)
    early = [f.action for f in frames if first_ok is not None and f.t < first_ok and f.action != "BootNotification"]
    if early:
        raise Nonconformance(f"before its boot was accepted the station sent {early}", req="TC_B_03_CS")
    boots = [f.t for f in frames if f.action == "BootNotification"]
    if len(boots) >= 2 and boots[1] - boots[0] < 2 - 0.2:
        raise Nonconformance(f"the station retried its BootNotification after {boots[1] - boots[0]:.2f} s; the "
                             f"CSMS asked for an interval of 2 s", req="TC_B_03_CS")


def profile_to(url_of, slot: int = 1):
    """SetNetworkProfile for `slot` whose ocppCsmsUrl is url_of(ctx) (SP1, the row's OCPP version)."""
    def payload(ctx):
        data = {"ocppTransport": "JSON", "ocppCsmsUrl": url_of(ctx), "messageTimeout": 30, "securityProfile": 1,
                "ocppInterface": "Wired0", "ocppVersion": "OCPP20" if ctx.version == "2.0.1" else "OCPP21"}
        return {"configurationSlot": slot, "connectionData": data}
    return ocpp.call("SetNetworkProfile", payload)


def csms_url_with_path(path: str):
    def url(ctx):
        from urllib.parse import urlsplit
        u = urlsplit(ctx.csms.url)
        return f"{u.scheme}://{u.netloc}{path}"
    return url


class _Listener:
    """A real TCP listener on loopback that accepts and drops every connection, counting them: the endpoint
    of a network profile the station cannot use (B10 fallback)."""

    def __init__(self):
        import socket
        import threading
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True, name="b10-listener").start()

    def _run(self):
        import time
        end = time.monotonic() + 90          # bounded even if the case never closes it
        while not self.stop.is_set() and time.monotonic() < end:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.count += 1
            c.close()
        self.sock.close()


def open_listener(ctx):
    ctx.vars["_listener"] = _Listener()
    ctx.attach("listener port", ctx.vars["_listener"].port)


def listener_url(ctx):
    return f"ws://127.0.0.1:{ctx.vars['_listener'].port}/ocpp"


def closed_port_url(ctx):
    import socket
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                 # nothing listens there now
    return f"ws://127.0.0.1:{port}/ocpp"


def attempts_then_fallback(n: int):
    def check(ctx):
        from v2g_bench.errors import Nonconformance
        lst = ctx.vars["_listener"]
        lst.stop.set()
        ctx.attach("attempts on the unusable profile", lst.count)
        if lst.count != n:
            raise Nonconformance(f"the station tried the unusable network profile {lst.count} time(s) before "
                                 f"falling back; NetworkProfileConnectionAttempts is {n}", req="TC_B_49_CS")
    return step(f"{n} attempts on the unusable profile, then the fallback", check, kind="expect")


def connected_via(path_prefix: str):
    def check(ctx):
        import time
        from v2g_bench.errors import Nonconformance
        sid = ctx.bench_profile.roles["csms"].options["station_id"]
        acc = [e for e in ctx.csms.connection_events if e.kind == "accepted" and e.station == sid]
        ctx.attach("last connection", acc[-1].detail if acc else None)
        if not acc or f"path {path_prefix}" not in acc[-1].detail:
            raise Nonconformance(f"the station's connection after the reboot is {acc[-1].detail if acc else None!r}; "
                                 f"expected the network profile with path {path_prefix}", req="B09.FR.01")
        _ = time
    return step(f"the station connected through the profile with path {path_prefix}", check, kind="expect")


def sv_accepted(*triples):
    return [ocpp.call("SetVariables", sv(*triples), save_as="set"),
            ocpp.answer(results("setVariableResult", *(["Accepted"] * len(triples))), of="set")]


def note_connections(ctx):
    sid = ctx.bench_profile.roles["csms"].options["station_id"]
    ctx.vars["_accepted_before"] = sum(1 for e in ctx.csms.connection_events if e.kind == "accepted" and e.station == sid)


def reconnected_then_silent(for_s: float):
    """After the lab restored the network the station reconnects (back-off); from the restore until `for_s`
    after the reconnection it sends no StatusNotification (B04: offline shorter than OfflineThreshold and no
    connector changed state)."""
    def check(ctx):
        import time
        from v2g_bench.errors import Nonconformance
        sid = ctx.bench_profile.roles["csms"].options["station_id"]
        restored = ctx.last_wire_t
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            n = sum(1 for e in ctx.csms.connection_events if e.kind == "accepted" and e.station == sid)
            if n > ctx.vars["_accepted_before"]:
                break
            time.sleep(0.1)
        else:
            raise Nonconformance("the station did not reconnect within 30 s after its network came back",
                                 req="TC_B_52_CS")
        time.sleep(for_s)
        sent = [f for f in ctx.csms.frames if f.direction == "in" and f.msg_type == 2
                and f.action == "StatusNotification" and f.t >= restored]
        if sent:
            raise Nonconformance(f"the station re-sent StatusNotification {sent[0].payload} after a short offline "
                                 f"period in which no connector changed", req="TC_B_52_CS")
    return step(f"the station reconnects and sends no StatusNotification ({for_s:g} s after)", check, kind="expect")


def boot_rejected_then_call(ctx):
    """While the boot is Rejected, a CSMS request is answered with CALLERROR SecurityError (B03)."""
    from v2g_bench.errors import Nonconformance
    f = ctx.csms.call_frame("GetVariables", gv(("OCPPCommCtrlr", "HeartbeatInterval")), validate=True)
    ctx.attach("answer while Rejected", f.payload)
    code = f.payload.get("errorCode") if f.msg_type == 4 else None
    if code != "SecurityError":
        raise Nonconformance(f"while its boot was Rejected the station answered GetVariables with "
                             f"{'CALLERROR ' + str(code) if code else 'a CALLRESULT ' + str(f.payload)[:120]}; "
                             f"expected CALLERROR SecurityError", req="TC_B_30_CS")


CASES = [
    tc("TC_B_01_CS", "Cold boot: BootNotification accepted, connector status reported", block="B",
       covers=("B01.FR.01", "B01.FR.05", "B01.FR.09"),
       steps=[ocpp.answer(of="boot", reason=one_of("PowerUp", "ApplicationReset", "FirmwareUpdate", "LocalReset",
                                                       "RemoteReset", "ScheduledReset", "Triggered", "Unknown",
                                                       "Watchdog"),
                          **{"chargingStation.vendorName": present, "chargingStation.model": present}),
              ocpp.expect("StatusNotification", within_s=10, connectorStatus="Available", evseId=1,
                          connectorId=ANY)]),
    tc("TC_B_02_CS", "Boot answered Pending: the station retries and is accepted", block="B", connect=False,
       steps=[boot_answers("Pending"), ocpp.connected(save_as="boot1"),
              ocpp.expect("BootNotification", within_s=10, save_as="boot2"),
              ocpp.expect("StatusNotification", within_s=10, connectorStatus="Available")]),
    tc("TC_B_03_CS", "Boot rejected: retried after the interval, nothing else meanwhile", block="B", connect=False,
       covers=("B03.FR.02", "B03.FR.04", "B03.FR.06"),
       steps=[boot_answers("Rejected", interval=2), ocpp.connected(save_as="boot1"),
              ocpp.expect("BootNotification", within_s=10, save_as="boot2"),
              step("before the accepted boot the station sent nothing but BootNotification",
                   nothing_but_boot_before_accepted, kind="expect")]),
    tc("TC_B_06_CS", "Get one variable", block="B",
       steps=[ocpp.call("GetVariables", gv(("OCPPCommCtrlr", "HeartbeatInterval"))),
              ocpp.answer(getVariableResult=[{"attributeStatus": "Accepted", "attributeValue": present,
                                              "component": {"name": "OCPPCommCtrlr"},
                                              "variable": {"name": "HeartbeatInterval"}}])]),
    tc("TC_B_07_CS", "Get several variables in one request", block="B",
       steps=[ocpp.call("GetVariables", gv(("OCPPCommCtrlr", "HeartbeatInterval"), ("TxCtrlr", "TxStartPoint"),
                                           ("AuthCtrlr", "AuthorizeRemoteStart"))),
              ocpp.answer(results("getVariableResult", "Accepted", "Accepted", "Accepted"))]),
    tc("TC_B_09_CS", "Set one variable; the new value is read back", block="B",
       steps=[ocpp.call("SetVariables", sv(("OCPPCommCtrlr", "OfflineThreshold", "123"))),
              ocpp.answer(results("setVariableResult", "Accepted")),
              ocpp.call("GetVariables", gv(("OCPPCommCtrlr", "OfflineThreshold"))),
              ocpp.answer(getVariableResult=[{"attributeStatus": "Accepted", "attributeValue": "123"}])]),
    tc("TC_B_10_CS", "Set several variables in one request", block="B",
       steps=[ocpp.call("SetVariables", sv(("OCPPCommCtrlr", "OfflineThreshold", "150"),
                                           ("TxCtrlr", "EVConnectionTimeOut", "45"))),
              ocpp.answer(results("setVariableResult", "Accepted", "Accepted")),
              ocpp.call("GetVariables", gv(("OCPPCommCtrlr", "OfflineThreshold"), ("TxCtrlr", "EVConnectionTimeOut"))),
              ocpp.answer(getVariableResult=[{"attributeValue": "150"}, {"attributeValue": "45"}])]),
    tc("TC_B_11_CS", "A badly formatted value is refused", block="B",
       steps=[ocpp.call("SetVariables", sv(("OCPPCommCtrlr", "OfflineThreshold", "soon"))),
              ocpp.answer(results("setVariableResult", "Rejected")),
              ocpp.call("GetVariables", gv(("OCPPCommCtrlr", "OfflineThreshold"))),
              ocpp.answer(getVariableResult=[{"attributeValue": "60"}])]),
    tc("TC_B_12_CS", "Base report: configuration inventory", block="B",
       steps=[ocpp.call("GetBaseReport", {"requestId": 12, "reportBase": "ConfigurationInventory"}),
              ocpp.answer(status="Accepted"),
              report("NotifyReport", 12, items="reportData"),
              report_has({"component.name": "OCPPCommCtrlr", "variable.name": "HeartbeatInterval"}),
              report_has({"variableAttribute": [{"mutability": "ReadOnly"}]}, none=True)]),
    tc("TC_B_13_CS", "Base report: full inventory", block="B",
       steps=[ocpp.call("GetBaseReport", {"requestId": 13, "reportBase": "FullInventory"}),
              ocpp.answer(status="Accepted"),
              report("NotifyReport", 13, items="reportData"),
              report_has({"component.name": "SecurityCtrlr", "variable.name": "SecurityProfile",
                          "variableAttribute": [{"mutability": "ReadOnly", "value": present}]}),
              report_has({"component.name": "OCPPCommCtrlr", "variable.name": "HeartbeatInterval"})]),
    tc("TC_B_14_CS", "Base report: summary inventory", block="B",
       steps=[ocpp.call("GetBaseReport", {"requestId": 14, "reportBase": "SummaryInventory"}),
              ocpp.answer(status="Accepted"),
              report("NotifyReport", 14, items="reportData"),
              report_has({"variable.name": "AvailabilityState"})]),
    tc("TC_B_16_CS", "Custom report filtered by component criteria", block="B",
       steps=[ocpp.call("GetReport", {"requestId": 16, "componentCriteria": ["Available"]}),
              ocpp.answer(status="Accepted"),
              report("NotifyReport", 16, items="reportData"),
              report_has({"component.name": "ChargingStation"}),
              report_has({"component.name": "OCPPCommCtrlr"}, none=True)]),
    tc("TC_B_17_CS", "Custom report for a listed component/variable", block="B",
       steps=[ocpp.call("GetReport", {"requestId": 17, "componentVariable": [
                  {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}),
              ocpp.answer(status="Accepted"),
              report("NotifyReport", 17, items="reportData"),
              report_has({"component.name": "OCPPCommCtrlr", "variable.name": "HeartbeatInterval"}, count=1)]),
    tc("TC_B_18_CS", "Custom report combining criteria and component", block="B",
       steps=[ocpp.call("GetReport", {"requestId": 18, "componentCriteria": ["Enabled"],
                                      "componentVariable": [{"component": {"name": "SmartChargingCtrlr"}}]}),
              ocpp.answer(status="Accepted"),
              report("NotifyReport", 18, items="reportData"),
              report_has({"component.name": "SmartChargingCtrlr", "variable.name": "Enabled"}),
              report_has({"component.name": "AuthCtrlr"}, none=True)]),
    tc("TC_B_19_CS", "Custom report whose criteria match nothing", block="B",
       steps=[ocpp.call("GetReport", {"requestId": 19, "componentCriteria": ["Problem"]}),
              ocpp.answer(status="EmptyResultSet"),
              ocpp.no_call("NotifyReport", for_s=2, requestId=19)]),
    tc("TC_B_54_CS", "Custom report: component without variable", block="B",
       steps=[ocpp.call("GetReport", {"requestId": 54, "componentVariable": [{"component": {"name": "TxCtrlr"}}]}),
              ocpp.answer(status="Accepted"),
              report("NotifyReport", 54, items="reportData"),
              report_has({"component.name": "TxCtrlr", "variable.name": "TxStartPoint"}),
              report_has({"component.name": "TxCtrlr", "variable.name": "TxStopPoint"}),
              report_has({"component.name": "OCPPCommCtrlr"}, none=True)]),
    tc("TC_B_56_CS", "Custom report without evseId", block="B",
       steps=[ocpp.call("GetReport", {"requestId": 56, "componentVariable": [
                  {"component": {"name": "ChargingStation"}, "variable": {"name": "AvailabilityState"}}]}),
              ocpp.answer(status="Accepted"),
              report("NotifyReport", 56, items="reportData"),
              report_has({"component.name": "ChargingStation", "variable.name": "AvailabilityState"}, count=1)]),
    tc("TC_B_53_CS", "Full inventory holds the mandatory device-model variables", block="B",
       steps=[ocpp.call("GetBaseReport", {"requestId": 53, "reportBase": "FullInventory"}),
              ocpp.answer(status="Accepted"),
              report("NotifyReport", 53, items="reportData"),
              *[report_has({"component.name": c, "variable.name": v}) for c, v in (
                  ("AuthCtrlr", "AuthorizeRemoteStart"), ("AuthCtrlr", "LocalAuthorizeOffline"),
                  ("AuthCtrlr", "LocalPreAuthorize"), ("OCPPCommCtrlr", "NetworkConfigurationPriority"),
                  ("OCPPCommCtrlr", "NetworkProfileConnectionAttempts"), ("OCPPCommCtrlr", "OfflineThreshold"),
                  ("OCPPCommCtrlr", "ResetRetries"), ("OCPPCommCtrlr", "FileTransferProtocols"),
                  ("SampledDataCtrlr", "TxEndedMeasurands"), ("SampledDataCtrlr", "TxEndedInterval"),
                  ("SampledDataCtrlr", "TxStartedMeasurands"), ("SampledDataCtrlr", "TxUpdatedMeasurands"),
                  ("SampledDataCtrlr", "TxUpdatedInterval"), ("SecurityCtrlr", "SecurityProfile"),
                  ("SecurityCtrlr", "OrganizationName"), ("TxCtrlr", "EVConnectionTimeOut"),
                  ("TxCtrlr", "StopTxOnEVSideDisconnect"), ("TxCtrlr", "StopTxOnInvalidId"),
                  ("TxCtrlr", "TxStartPoint"), ("TxCtrlr", "TxStopPoint"), ("ClockCtrlr", "DateTime"),
                  ("ClockCtrlr", "TimeSource"), ("DeviceDataCtrlr", "ItemsPerMessageGetReport"),
                  ("DeviceDataCtrlr", "BytesPerMessageGetReport"))]]),
    tc("TC_B_20_CS", "Whole-station OnIdle reset without a transaction", block="B", requires=("RESET",),
       steps=[ocpp.call("Reset", {"type": "OnIdle"}), ocpp.answer(status="Accepted"),
              ocpp.expect("BootNotification", within_s=30, reason="RemoteReset")]),
    tc("TC_B_21_CS", "OnIdle reset deferred until the transaction ends", block="B", requires=("RESET",),
       actions=("start_transaction",),
       steps=[*started(),
              ocpp.call("Reset", {"type": "OnIdle"}), ocpp.answer(status="Scheduled"),
              ocpp.no_call("BootNotification", for_s=2),
              ocpp.call("RequestStopTransaction", {"transactionId": V("started.transactionInfo.transactionId")}),
              ocpp.answer(status="Accepted"),
              ocpp.expect("TransactionEvent", eventType="Ended", within_s=15),
              ocpp.expect("BootNotification", within_s=30, reason="RemoteReset")]),
    tc("TC_B_22_CS", "Immediate reset ends the running transaction", block="B", requires=("RESET",),
       actions=("start_transaction",),
       steps=[*started(),
              ocpp.call("Reset", {"type": "Immediate"}), ocpp.answer(status="Accepted"),
              ocpp.expect("TransactionEvent", eventType="Ended", triggerReason="ResetCommand",
                          **{"transactionInfo.stoppedReason": "ImmediateReset"}, within_s=15),
              ocpp.expect("BootNotification", within_s=30, reason="RemoteReset")]),
    tc("TC_B_28_CS", "Per-EVSE reset refused when not supported", block="B", requires=("RESET",),
       covers=("B11.FR.10",),
       steps=[ocpp.call("Reset", {"type": "OnIdle", "evseId": 1}), ocpp.answer(status="Rejected"),
              ocpp.no_call("BootNotification", for_s=2)]),
    tc("TC_B_29_CS", "Per-EVSE reset during a transaction refused when not supported", block="B",
       requires=("RESET",), actions=("start_transaction",), covers=("B12.FR.01", "B12.FR.09"),
       steps=[*started(),
              ocpp.call("Reset", {"type": "OnIdle", "evseId": 1}), ocpp.answer(status="Rejected"),
              ocpp.no_call("TransactionEvent", for_s=1.5, eventType="Ended")]),
    tc("TC_B_32_CS", "Get on an unknown component", block="B",
       steps=[ocpp.call("GetVariables", gv(("NoSuchCtrlr", "HeartbeatInterval"))),
              ocpp.answer(results("getVariableResult", "UnknownComponent"))]),
    tc("TC_B_33_CS", "Get on an unknown variable", block="B",
       steps=[ocpp.call("GetVariables", gv(("OCPPCommCtrlr", "NoSuchVariable"))),
              ocpp.answer(results("getVariableResult", "UnknownVariable"))]),
    tc("TC_B_34_CS", "Get with an unsupported attribute type", block="B",
       steps=[ocpp.call("GetVariables", gv(("OCPPCommCtrlr", "HeartbeatInterval"), attr="MaxSet")),
              ocpp.answer(results("getVariableResult", "NotSupportedAttributeType"))]),
    tc("TC_B_35_CS", "Set on an unknown component", block="B",
       steps=[ocpp.call("SetVariables", sv(("NoSuchCtrlr", "HeartbeatInterval", "10"))),
              ocpp.answer(results("setVariableResult", "UnknownComponent"))]),
    tc("TC_B_36_CS", "Set on an unknown variable", block="B",
       steps=[ocpp.call("SetVariables", sv(("OCPPCommCtrlr", "NoSuchVariable", "10"))),
              ocpp.answer(results("setVariableResult", "UnknownVariable"))]),
    tc("TC_B_37_CS", "Set with an unsupported attribute type", block="B",
       steps=[ocpp.call("SetVariables", sv(("OCPPCommCtrlr", "OfflineThreshold", "10"), attr="MinSet")),
              ocpp.answer(results("setVariableResult", "NotSupportedAttributeType"))]),
    tc("TC_B_39_CS", "Set on a read-only variable refused", block="B",
       steps=[ocpp.call("SetVariables", sv(("OCPPCommCtrlr", "MessageTimeout", "99"))),
              ocpp.answer(results("setVariableResult", "Rejected")),
              ocpp.call("GetVariables", gv(("OCPPCommCtrlr", "MessageTimeout"))),
              ocpp.answer(getVariableResult=[{"attributeValue": "10"}])]),
    tc("TC_B_43_CS", "Network profile for an invalid slot refused", block="B", requires=("NETWORKPROFILES",),
       covers=("B09.FR.02",),
       steps=[ocpp.call("SetNetworkProfile", network_profile(9)), ocpp.answer(status="Rejected")]),
    tc("TC_B_57_CS", "The station reconnects after the connection is lost", block="B",
       steps=[step("the CSMS drops the connection; the station reconnects (retry back-off)", reconnects,
                   kind="expect"),
              ocpp.call("GetVariables", gv(("OCPPCommCtrlr", "HeartbeatInterval"))),
              ocpp.answer(results("getVariableResult", "Accepted"))]),
    tc("TC_B_108_CS", "The active network profile slot cannot be overwritten", block="B", versions=("2.1",),
       requires=("NETWORKPROFILES",),
       steps=[ocpp.call("SetNetworkProfile", network_profile(0)), ocpp.answer(status="Rejected")]),
    # -- second batch ------------------------------------------------------------------------------------
    tc("TC_B_30_CS", "While the boot is Rejected, CSMS requests are answered with SecurityError", block="B",
       actions=("power_cycle",),
       steps=[boot_answers("Rejected", interval=5),
              ocpp.dut_action("power_cycle"),
              ocpp.expect("BootNotification", within_s=20, save_as="rejected_boot"),
              step("the CSMS sends GetVariables while the boot is Rejected: CALLERROR SecurityError",
                   boot_rejected_then_call, kind="expect"),
              ocpp.expect("BootNotification", within_s=30, fresh=True)]),
    tc("TC_B_51_CS", "Offline longer than OfflineThreshold: the connector statuses are sent again", block="B",
       actions=("cut_network", "restore_network"),
       steps=[*sv_accepted(("OCPPCommCtrlr", "OfflineThreshold", "1")),
              ocpp.dut_action("cut_network"),
              let_run(2.5),
              ocpp.dut_action("restore_network"),
              ocpp.expect("StatusNotification", within_s=12, connectorStatus="Available", evseId=1, fresh=True)]),
    tc("TC_B_52_CS", "Offline shorter than OfflineThreshold: no unchanged status sent again", block="B",
       actions=("cut_network", "restore_network"),
       steps=[*sv_accepted(("OCPPCommCtrlr", "OfflineThreshold", "300")),
              step("count the station's connections so far", note_connections, kind="stimulus"),
              ocpp.dut_action("cut_network"),
              let_run(1.0),
              ocpp.dut_action("restore_network"),
              reconnected_then_silent(2.0)]),
    tc("TC_B_104_CS", "ImmediateAndResume reset without a transaction", block="B", versions=("2.1",),
       requires=("RESET",),
       steps=[ocpp.call("Reset", {"type": "ImmediateAndResume"}), ocpp.answer(status="Accepted"),
              ocpp.expect("BootNotification", within_s=30, reason="RemoteReset")]),
    tc("TC_B_101_CS", "ImmediateAndResume reset with TxResumptionTimeout 0: the transaction ends", block="B",
       versions=("2.1",), requires=("RESET",), actions=("start_transaction",),
       steps=[*sv_accepted(("TxCtrlr", "TxResumptionTimeout", "0")),
              *started(),
              ocpp.call("Reset", {"type": "ImmediateAndResume"}), ocpp.answer(status="Accepted"),
              ocpp.expect("TransactionEvent", eventType="Ended", triggerReason="ResetCommand", within_s=15,
                          **{"transactionInfo.transactionId": TX, "transactionInfo.stoppedReason": "ImmediateReset"}),
              ocpp.expect("BootNotification", within_s=30, reason="RemoteReset")]),
    tc("TC_B_103_CS", "ImmediateAndResume reset resumes the transaction after the reboot", block="B",
       versions=("2.1",), requires=("RESET",), actions=("start_transaction",),
       steps=[*sv_accepted(("TxCtrlr", "TxResumptionTimeout", "120")),
              *started(),
              ocpp.call("Reset", {"type": "ImmediateAndResume"}), ocpp.answer(status="Accepted"),
              ocpp.expect("BootNotification", within_s=30, reason="RemoteReset"),
              ocpp.expect("TransactionEvent", eventType="Updated", triggerReason="TxResumed", within_s=30,
                          **{"transactionInfo.transactionId": TX}),
              ocpp.no_call("TransactionEvent", {"eventType": "Ended"}, for_s=0.5)]),
    tc("TC_B_107_CS", "NetworkConfigurationPriority: add and remove slots; an empty slot is refused", block="B",
       versions=("2.1",), requires=("NETWORKPROFILES",),
       steps=[ocpp.call("SetNetworkProfile", network_profile(1)), ocpp.answer(status="Accepted"),
              *sv_accepted(("OCPPCommCtrlr", "NetworkConfigurationPriority", "0,1")),
              ocpp.call("GetVariables", gv(("OCPPCommCtrlr", "NetworkConfigurationPriority"))),
              ocpp.answer(getVariableResult=[{"attributeStatus": "Accepted", "attributeValue": "0,1"}]),
              ocpp.call("SetVariables", sv(("OCPPCommCtrlr", "NetworkConfigurationPriority", "0,2"))),
              ocpp.answer(results("setVariableResult", "Rejected")),
              *sv_accepted(("OCPPCommCtrlr", "NetworkConfigurationPriority", "0")),
              ocpp.call("GetVariables", gv(("OCPPCommCtrlr", "NetworkConfigurationPriority"))),
              ocpp.answer(getVariableResult=[{"attributeStatus": "Accepted", "attributeValue": "0"}])]),
    tc("TC_B_102_CS", "ImmediateAndResume reset while energy transfer is suspended: resumed, still suspended",
       block="B", versions=("2.1",), requires=("RESET",), actions=("start_transaction",),
       steps=[*sv_accepted(("TxCtrlr", "TxResumptionTimeout", "120")),
              ocpp.call("SetChargingProfile", lambda ctx: {"evseId": 1, "chargingProfile": ctx.csms.charging_profile(
                  83, "TxDefaultProfile", [(0, 0)])}), ocpp.answer(status="Accepted"),
              *started(),
              ocpp.call("Reset", {"type": "ImmediateAndResume"}), ocpp.answer(status="Accepted"),
              ocpp.expect("BootNotification", within_s=30, reason="RemoteReset"),
              ocpp.expect("TransactionEvent", eventType="Updated", triggerReason="TxResumed", within_s=30,
                          **{"transactionInfo.transactionId": TX,
                             "transactionInfo.chargingState": one_of("SuspendedEVSE", "SuspendedEV")})]),

    # -- B09/B10: switching network profiles, falling back ----------------------------------------------
    tc("TC_B_45_CS", "Switch to a new network connection profile (same CSMS)", block="B",
       requires=("NETWORKPROFILES", "RESET"),
       steps=[profile_to(csms_url_with_path("/alt")), ocpp.answer(status="Accepted"),
              *sv_accepted(("OCPPCommCtrlr", "NetworkConfigurationPriority", "1,0")),
              ocpp.call("Reset", {"type": "Immediate"}), ocpp.answer(status="Accepted"),
              ocpp.expect("BootNotification", within_s=30, reason="RemoteReset"),
              connected_via("/alt/")]),
    tc("TC_B_46_CS", "Fallback to the previous network profile when the new one cannot connect", block="B",
       requires=("NETWORKPROFILES", "RESET"),
       steps=[profile_to(closed_port_url), ocpp.answer(status="Accepted"),
              *sv_accepted(("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "1"),
                           ("OCPPCommCtrlr", "NetworkConfigurationPriority", "1,0")),
              ocpp.call("Reset", {"type": "Immediate"}), ocpp.answer(status="Accepted"),
              ocpp.expect("BootNotification", within_s=30, reason="RemoteReset")]),
    tc("TC_B_49_CS", "Fallback after NetworkProfileConnectionAttempts failed attempts", block="B",
       requires=("NETWORKPROFILES", "RESET"),
       steps=[step("a loopback endpoint that accepts and drops connections (counting them)", open_listener,
                   kind="stimulus"),
              profile_to(listener_url), ocpp.answer(status="Accepted"),
              *sv_accepted(("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "2"),
                           ("OCPPCommCtrlr", "NetworkConfigurationPriority", "1,0")),
              ocpp.call("Reset", {"type": "Immediate"}), ocpp.answer(status="Accepted"),
              ocpp.expect("BootNotification", within_s=15, reason="RemoteReset"),
              attempts_then_fallback(2)]),
]

test_block_b = cases_test(CASES)
