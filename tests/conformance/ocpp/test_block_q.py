"""OCPP 2.1 block Q — Bidirectional power transfer / V2X (operation modes, central setpoints, idle) and the
2.1 smart-charging rows that switch operation modes (K_101): OCTT charging-station cases as rows, the power
judged on the DC link with the analyzer wherever the case commands it."""
from v2g_bench.conformance import V, cases_test, step
from v2g_bench.conformance import judge, ocpp
from v2g_bench.conformance.match import where
from v2g_bench.conformance.ocpp_steps import commanded, let_run, set_profile, started, tc

TX = V("started.transactionInfo.transactionId")
V21 = ("2.1",)
POWER = dict(markers=("power",), requires=("DC_BPT", "V2X"), versions=V21, actions=("start_transaction",))


def with_periods(*periods):
    """Replace the built profile's periods with these (2.1 operation modes written out)."""
    def edit(p):
        p["chargingSchedule"][0]["chargingSchedulePeriod"] = [dict(x) for x in periods]
    return edit


def setpoint(start, sp, *, limit=8000.0, discharge=-8000.0):
    return {"startPeriod": start, "operationMode": "CentralSetpoint", "setpoint": sp, "limit": limit,
            "dischargeLimit": discharge}


def dynamic_setpoint(sp: float, *, interval: int):
    def edit(p):
        p["chargingProfileKind"] = "Dynamic"
        p["dynUpdateInterval"] = interval
        p["chargingSchedule"][0]["chargingSchedulePeriod"] = [setpoint(0, sp)]
    return edit


def has_measurand(name):
    return where(lambda mvs: any(sv.get("measurand") == name for mv in mvs for sv in mv["sampledValue"]),
                 f"a sampledValue of {name}")


CASES = [
    tc("TC_Q_109_CS", "Central dynamic setpoint pushed by the CSMS: power follows charge and discharge setpoints",
       block="Q", covers=("V2GB-OCPP-PWR-01",), **POWER,
       steps=[*started(),
              judge.record_dc_power(), let_run(1.0),
              set_profile(1, "TxProfile", [(0, 0)], id=60, tx=TX,
                          edit=with_periods(setpoint(0, 3000.0), setpoint(8, -3000.0), setpoint(16, 0.0))),
              ocpp.answer(status="Accepted"),
              commanded([(0, 3000), (8, -3000), (16, 0)], until_s=24),
              let_run(),
              judge.power_follows("commanded")]),
    tc("TC_K_101_CS", "A profile switches operation mode: charging only, setpoint discharge, idle", block="K",
       covers=("V2GB-OCPP-PWR-01",), **POWER,
       steps=[*started(),
              judge.record_dc_power(), let_run(1.0),
              set_profile(1, "TxProfile", [(0, 0)], id=61, tx=TX, edit=with_periods(
                  {"startPeriod": 0, "operationMode": "ChargingOnly", "limit": 5000.0},
                  setpoint(8, -4000.0),
                  {"startPeriod": 16, "operationMode": "Idle"})),
              ocpp.answer(status="Accepted"),
              commanded([(0, 5000), (8, -4000), (16, 0)], until_s=24),
              let_run(),
              judge.power_follows("commanded")]),
    tc("TC_Q_125_CS", "Idle operation: no power flows", block="Q", covers=("V2GB-OCPP-PWR-01",), **POWER,
       steps=[*started(),
              judge.record_dc_power(), let_run(1.0),
              set_profile(1, "TxProfile", [(0, 0)], id=62, tx=TX,
                          edit=with_periods({"startPeriod": 0, "operationMode": "Idle"})),
              ocpp.answer(status="Accepted"),
              commanded([(0, 0)], until_s=10),
              let_run(),
              judge.power_follows("commanded")]),
    tc("TC_Q_100_CS", "V2X transaction measurands configured and reported", block="Q", versions=V21,
       requires=("V2X",), actions=("start_transaction",),
       steps=[ocpp.call("SetVariables", {"setVariableData": [
                  {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedMeasurands"},
                   "attributeValue": "Energy.Active.Import.Register,Energy.Active.Export.Register"},
                  {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"},
                   "attributeValue": "1"}]}),
              ocpp.answer(setVariableResult=[{"attributeStatus": "Accepted"}, {"attributeStatus": "Accepted"}]),
              *started(),
              ocpp.expect("TransactionEvent", within_s=10, eventType="Updated", triggerReason="MeterValuePeriodic",
                          meterValue=has_measurand("Energy.Active.Export.Register"))]),
    tc("TC_Q_107_CS", "Charge-only before V2X: a ChargingOnly period's limit holds, then a discharge setpoint",
       block="Q", covers=("V2GB-OCPP-PWR-01",), slow=True, **POWER,       # a 14 s measured profile
       steps=[*started(),
              judge.record_dc_power(), let_run(1.0),
              set_profile(1, "TxProfile", [(0, 0)], id=63, tx=TX, edit=with_periods(
                  {"startPeriod": 0, "operationMode": "ChargingOnly", "limit": 4000.0},
                  setpoint(7, -3000.0))),
              ocpp.answer(status="Accepted"),
              commanded([(0, 4000), (7, -3000)], until_s=14),
              let_run(),
              judge.power_follows("commanded")]),
    tc("TC_Q_119_CS", "Local frequency support: a profile without its frequency-watt curve is refused", block="Q",
       versions=V21, requires=("V2X",),
       steps=[set_profile(1, "TxDefaultProfile", [(0, 0)], id=64, edit=with_periods(
                  {"startPeriod": 0, "operationMode": "LocalFrequency", "limit": 5000.0, "dischargeLimit": -5000.0})),
              ocpp.answer(status="Rejected"),
              set_profile(1, "TxDefaultProfile", [(0, 0)], id=64, edit=with_periods(
                  {"startPeriod": 0, "operationMode": "LocalFrequency", "limit": 5000.0, "dischargeLimit": -5000.0,
                   "v2xFreqWattCurve": [{"frequency": 49.8, "power": 5000.0}, {"frequency": 50.2, "power": -5000.0}]})),
              ocpp.answer(status="Accepted")]),
    tc("TC_Q_123_CS", "Local V2X load balancing not supported: the profile is refused", block="Q",
       versions=V21, requires=("V2X",),
       given=[ocpp.call("GetVariables", {"getVariableData": [{"component": {"name": "V2XChargingCtrlr"},
                                                              "variable": {"name": "SupportedOperationModes"}}]},
                        save_as="modes"),
              ocpp.answer(getVariableResult=[{"attributeValue": where(lambda v: "LocalLoadBalancing" not in v,
                                                                      "without LocalLoadBalancing")}],
                          of="modes")],
       steps=[set_profile(1, "TxDefaultProfile", [(0, 0)], id=65, edit=with_periods(
                  {"startPeriod": 0, "operationMode": "LocalLoadBalancing", "limit": 5000.0,
                   "dischargeLimit": -5000.0})),
              ocpp.answer(status="Rejected")]),
    tc("TC_Q_110_CS", "Central dynamic setpoint pulled by the station", block="Q", versions=V21, requires=("V2X",),
       steps=[step("the CSMS answers PullDynamicScheduleUpdate with setpoint -3000 W",
                   lambda ctx: ctx.csms.respond("PullDynamicScheduleUpdate", {
                       "status": "Accepted", "scheduleUpdate": {"setpoint": -3000.0, "limit": 8000.0,
                                                                "dischargeLimit": -8000.0}}, times=20),
                   kind="stimulus"),
              set_profile(1, "TxDefaultProfile", [(0, 0)], id=66, edit=dynamic_setpoint(2000.0, interval=1)),
              ocpp.answer(status="Accepted"),
              ocpp.expect("PullDynamicScheduleUpdate", within_s=5, chargingProfileId=66),
              ocpp.expect("PullDynamicScheduleUpdate", within_s=5, chargingProfileId=66, fresh=True),
              ocpp.call("GetCompositeSchedule", {"evseId": 1, "duration": 60, "chargingRateUnit": "W"},
                        save_as="composite"),
              ocpp.answer({"schedule.chargingSchedulePeriod": where(
                  lambda ps: ps[0].get("operationMode") == "CentralSetpoint"
                  and abs(ps[0].get("setpoint", 0) + 3000) <= 1, "the first period's setpoint is -3000 W")},
                  of="composite")]),
    tc("TC_Q_113_CS", "External V2X profile: after its duration the station falls back", block="Q", versions=V21,
       requires=("V2X",),
       steps=[set_profile(1, "TxDefaultProfile", [(0, 0)], id=67, duration_s=20, edit=with_periods(
                  {"startPeriod": 0, "operationMode": "ExternalLimits", "limit": 3000.0, "dischargeLimit": -2000.0})),
              ocpp.answer(status="Accepted"),
              ocpp.call("GetCompositeSchedule", {"evseId": 1, "duration": 60, "chargingRateUnit": "W"},
                        save_as="composite"),
              ocpp.answer({"schedule.chargingSchedulePeriod": where(
                  lambda ps: len(ps) >= 2 and abs(ps[0]["limit"] - 3000) <= 1 and 17 <= ps[1]["startPeriod"] <= 21
                  and ps[1]["limit"] > 3000, "3000 W until the profile's 20 s end, then more")}, of="composite")]),

]

test_block_q = cases_test(CASES)
