"""OCPP 2.1 block R — DER control (set, get, clear, validation, priority and superseding, start/stop events,
and LimitMaxDischarge judged on the measured DC power): OCTT charging-station cases as rows."""
import datetime as dt

from v2g_bench.conformance import V, cases_test
from v2g_bench.conformance import judge, ocpp
from v2g_bench.conformance.match import absent
from v2g_bench.conformance.ocpp_steps import commanded, let_run, report, report_has, set_profile, started, tc

TX = V("started.transactionInfo.transactionId")
DER = dict(versions=("2.1",), requires=("DER", "V2X"))


def iso_in(seconds: float) -> str:
    t = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def limit_max_discharge(control_id: str, pct: float, *, default: bool = True, priority: int = 1,
                        start_in_s: float | None = None, duration_s: float | None = None):
    def payload(ctx):
        settings = {"priority": priority, "pctMaxDischargePower": pct}
        if start_in_s is not None:
            settings["startTime"] = iso_in(start_in_s)
        if duration_s is not None:
            settings["duration"] = duration_s
        return {"isDefault": default, "controlId": control_id, "controlType": "LimitMaxDischarge",
                "limitMaxDischarge": settings}
    return ocpp.call("SetDERControl", payload)


FREQ_DROOP = {"isDefault": True, "controlId": "fd-1", "controlType": "FreqDroop",
              "freqDroop": {"priority": 1, "overFreq": 50.2, "underFreq": 49.8, "overDroop": 5.0,
                            "underDroop": 5.0, "responseTime": 1.0}}

CASES = [
    tc("TC_R_100_CS", "Default DER control LimitMaxDischarge caps the measured discharge power", block="R",
       actions=("start_transaction",), markers=("power",), covers=("V2GB-OCPP-PWR-01",),
       versions=("2.1",), requires=("DER", "V2X", "DC_BPT"),
       steps=[limit_max_discharge("lmd-1", 50.0), ocpp.answer(status="Accepted"),
              *started(),
              judge.record_dc_power(), let_run(1.0),
              set_profile(1, "TxProfile", [(0, -8000)], id=70, tx=TX),
              ocpp.answer(status="Accepted"),
              commanded([(0, -5000)], until_s=10),
              let_run(),
              judge.power_follows("commanded")]),
    tc("TC_R_102_CS", "Clearing one DER control type leaves the others", block="R", **DER,
       steps=[limit_max_discharge("lmd-2", 60.0), ocpp.answer(status="Accepted"),
              ocpp.call("SetDERControl", FREQ_DROOP), ocpp.answer(status="Accepted"),
              ocpp.call("ClearDERControl", {"isDefault": True, "controlType": "LimitMaxDischarge"}),
              ocpp.answer(status="Accepted"),
              ocpp.call("GetDERControl", {"requestId": 1021, "isDefault": True, "controlType": "LimitMaxDischarge"}),
              ocpp.answer(status="NotFound"),
              ocpp.call("GetDERControl", {"requestId": 1022, "isDefault": True, "controlType": "FreqDroop"}),
              ocpp.answer(status="Accepted"),
              report("ReportDERControl", 1022, items="freqDroop"),
              report_has({"id": "fd-1", "isDefault": True})]),
    tc("TC_R_103_CS", "DER control validation: unsupported type, settings missing", block="R", **DER,
       steps=[ocpp.call("SetDERControl", {"isDefault": True, "controlId": "vv-1", "controlType": "VoltVar",
                                          "curve": {"priority": 1, "yUnit": "PctMaxVar",
                                                    "curveData": [{"x": 95.0, "y": 40.0}, {"x": 105.0, "y": -40.0}]}}),
              ocpp.answer(status="NotSupported"),
              ocpp.call("SetDERControl", {"isDefault": True, "controlId": "lmd-x", "controlType": "LimitMaxDischarge"}),
              ocpp.answer(status="Rejected")]),
    tc("TC_R_104_CS", "A new DER control supersedes a future one of lower priority", block="R", **DER,
       steps=[limit_max_discharge("future-a", 70.0, default=False, priority=5, start_in_s=3600, duration_s=600),
              ocpp.answer(status="Accepted"),
              limit_max_discharge("future-b", 40.0, default=False, priority=2, start_in_s=3600, duration_s=600),
              ocpp.answer(status="Accepted", supersededIds=["future-a"])]),
    tc("TC_R_105_CS", "A new DER control supersedes the active one", block="R", **DER,
       steps=[limit_max_discharge("active-a", 70.0, default=False, priority=5, start_in_s=-60, duration_s=3600),
              ocpp.answer(status="Accepted"),
              limit_max_discharge("active-b", 40.0, default=False, priority=1, start_in_s=-1, duration_s=3600),
              ocpp.answer(status="Accepted", supersededIds=["active-a"])]),
    tc("TC_R_106_CS", "The active DER control of higher priority wins over a new one", block="R", **DER,
       steps=[limit_max_discharge("win-a", 40.0, default=False, priority=1, start_in_s=-60, duration_s=3600),
              ocpp.answer(status="Accepted"),
              limit_max_discharge("win-b", 80.0, default=False, priority=6, start_in_s=-1, duration_s=3600),
              ocpp.answer(status="Accepted", supersededIds=absent),
              ocpp.call("GetDERControl", {"requestId": 1061, "isDefault": False, "controlId": "win-a"}),
              ocpp.answer(status="Accepted"),
              report("ReportDERControl", 1061, items="limitMaxDischarge"),
              report_has({"id": "win-a", "isSuperseded": False})]),
    tc("TC_R_108_CS", "The station reports when a scheduled DER control starts", block="R", **DER,
       steps=[limit_max_discharge("sched-1", 50.0, default=False, priority=1, start_in_s=2, duration_s=600),
              ocpp.answer(status="Accepted"),
              ocpp.expect("NotifyDERStartStop", within_s=10, controlId="sched-1", started=True)]),
]

test_block_r = cases_test(CASES)
