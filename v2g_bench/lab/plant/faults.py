"""The plant's fault catalogue (name -> description, parameters) and fault keys."""
from __future__ import annotations

from typing import Any, Mapping

from v2g_bench.errors import LabError

# ------------------------------------------------------------------------------------ faults

# name -> (description, params with defaults). The control port and docs list these.
FAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ovp_trip": ("battery emulator over-voltage protection trips: output off, QUES OV bit latched "
                 "until OUTPut:PROTection:CLEar", {}),
    "ocp_trip": ("battery emulator over-current protection trips: output off, QUES OC bit latched",
                 {}),
    "opp_trip": ("battery emulator over-power protection trips: output off, QUES CP- (while sinking) "
                 "or CP+ (while sourcing) latched", {}),
    "contactor": ("contactor fault: stuck open (default) or stuck closed", {"stuck": "open"}),
    "derate": ("power-stage derating: both direction limits x factor", {"factor": 0.5}),
    "lag": ("power-stage lag: extra first-order lag tau_s and dead time on the setpoint",
            {"tau_s": 2.0, "dead_time_s": 0.0}),
    "frozen": ("frozen measurement: a measurement source repeats its last value "
               "(source = battery | analyzer | meter | can | all)", {"source": "all"}),
    "grid_freq_step": ("grid frequency step by df_hz (for duration_s plant seconds, 0 = until cleared)",
                       {"df_hz": -0.2, "duration_s": 0.0}),
    "grid_voltage_step": ("grid voltage step by dv_v", {"dv_v": -23.0, "duration_s": 0.0}),
    # Transport faults: the plant only books them, the front-ends act on them.
    "drop": ("a transport drops requests (no answer; TCP stays open) "
             "(transport = battery_scpi | analyzer_scpi | modbus | can)", {"transport": "modbus"}),
    "delay": ("a transport answers late by delay_s wall seconds", {"transport": "modbus", "delay_s": 0.5}),
    "modbus_exception": ("Modbus requests to unit `unit` get exception `code` (4 = device failure)",
                         {"unit": 1, "code": 4}),
    "disconnect": ("a transport closes every client connection once and refuses new data until cleared",
                   {"transport": "modbus"}),
}

TRANSPORT_FAULTS = ("drop", "delay", "disconnect")


def fault_key(name: str, params: Mapping[str, Any]) -> str:
    """A fault instance's key: the name, plus the transport for per-transport faults."""
    if name in TRANSPORT_FAULTS:
        return f"{name}:{params.get('transport')}"
    if name == "frozen":
        return f"frozen:{params.get('source')}"
    return name


class FaultError(LabError):
    pass


