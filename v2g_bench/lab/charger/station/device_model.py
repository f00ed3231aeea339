"""The simulated station's device model (OCPP 2.0.1/2.1 Part 2, B05-B08 and the referenced components
of Part 2 Appendices): components and variables with mutability and data type, GetVariables /
SetVariables results, base and custom reports (NotifyReport data).

Only the Actual attribute is kept (B06.FR/B05.FR: any other attributeType -> NotSupportedAttributeType).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

RW, RO, WO = "ReadWrite", "ReadOnly", "WriteOnly"


@dataclass
class Variable:
    component: str
    name: str
    value: str
    mutability: str = RW
    data_type: str = "string"            # integer, decimal, boolean, string, OptionList, MemberList, SequenceList
    values_list: str | None = None       # allowed values (OptionList/MemberList/SequenceList)
    check: Callable[[str], bool] | None = None   # extra validation of a written value
    written: bool = False                # set by a SetVariables (the station's own defaults until then)

    def valid(self, v: str) -> bool:
        if self.data_type == "integer":
            ok = v.lstrip("-").isdigit()
        elif self.data_type == "decimal":
            try:
                float(v)
                ok = True
            except ValueError:
                ok = False
        elif self.data_type == "boolean":
            ok = v in ("true", "false")
        elif self.data_type == "OptionList":
            ok = v in (self.values_list or "").split(",")
        elif self.data_type in ("MemberList", "SequenceList"):
            allowed = set((self.values_list or "").split(","))
            ok = v == "" or all(x in allowed for x in v.split(","))
        else:
            ok = True
        return ok and (self.check is None or self.check(v))

    def report_item(self) -> dict:
        attr = {"type": "Actual", "mutability": self.mutability}
        if self.mutability != WO:
            attr["value"] = self.value
        ch = {"dataType": self.data_type, "supportsMonitoring": False}
        if self.values_list:
            ch["valuesList"] = self.values_list
        return {"component": {"name": self.component}, "variable": {"name": self.name},
                "variableAttribute": [attr], "variableCharacteristics": ch}


MEASURANDS = "Energy.Active.Import.Register,Energy.Active.Export.Register,Power.Active.Import,Power.Active.Export,SoC"
TX_POINTS = "ParkingBayOccupancy,EVConnected,Authorized,DataSigned,PowerPathClosed,EnergyTransfer"


def _password_ok(v: str) -> bool:
    # OCPP 2.0.1 Part 2 A00.FR.205: 16..40 characters (passwordString)
    return 16 <= len(v) <= 40


def default_variables(cfg) -> list[Variable]:
    station_id, meter_interval_s = cfg.station_id, cfg.meter_interval_s
    return [
        Variable("ChargingStation", "Available", "true", RO, "boolean"),
        Variable("ChargingStation", "AvailabilityState", "Available", RO, "OptionList",
                 "Available,Occupied,Reserved,Unavailable,Faulted"),
        Variable("ChargingStation", "SupplyPhases", "0", RO, "integer"),
        Variable("ClockCtrlr", "DateTime", "", RO, "string"),
        Variable("ClockCtrlr", "TimeSource", "Heartbeat", RW, "SequenceList", "Heartbeat,NTP,GPS,RealTimeClock"),
        Variable("DeviceDataCtrlr", "ItemsPerMessageGetReport", "10", RO, "integer"),
        Variable("DeviceDataCtrlr", "ItemsPerMessageGetVariables", "16", RO, "integer"),
        Variable("DeviceDataCtrlr", "ItemsPerMessageSetVariables", "16", RO, "integer"),
        Variable("DeviceDataCtrlr", "BytesPerMessageGetReport", "65000", RO, "integer"),
        Variable("OCPPCommCtrlr", "HeartbeatInterval", "300", RW, "integer"),
        Variable("OCPPCommCtrlr", "MessageTimeout", "10", RO, "integer"),
        # E13: a TransactionEvent without answer / with a CALLERROR is sent again after interval x attempts so
        # far, MessageAttempts times in all (instance TransactionEvent in the standard's model)
        Variable("OCPPCommCtrlr", "MessageAttempts", "3", RW, "integer", check=lambda v: int(v) >= 1),
        Variable("OCPPCommCtrlr", "MessageAttemptInterval", "10", RW, "integer", check=lambda v: int(v) >= 0),
        Variable("OCPPCommCtrlr", "NetworkConfigurationPriority", "0", RW, "SequenceList", "0,1,2"),
        Variable("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "3", RW, "integer"),
        Variable("OCPPCommCtrlr", "OfflineThreshold", "60", RW, "integer"),
        Variable("OCPPCommCtrlr", "ResetRetries", "2", RW, "integer"),
        Variable("OCPPCommCtrlr", "RetryBackOffWaitMinimum", str(cfg.retry_backoff_wait_minimum_s), RW, "integer"),
        Variable("OCPPCommCtrlr", "RetryBackOffRandomRange", str(cfg.retry_backoff_random_range_s), RW, "integer"),
        Variable("OCPPCommCtrlr", "RetryBackOffRepeatTimes", str(cfg.retry_backoff_repeat_times), RW, "integer"),
        Variable("OCPPCommCtrlr", "FileTransferProtocols", "HTTPS", RO, "MemberList", "HTTP,HTTPS,FTP,FTPS"),
        Variable("TxCtrlr", "EVConnectionTimeOut", "60", RW, "integer"),
        Variable("TxCtrlr", "StopTxOnEVSideDisconnect", "true", RW, "boolean"),
        Variable("TxCtrlr", "StopTxOnInvalidId", "true", RW, "boolean"),
        # E17 / B13 (2.1 semantics, kept on both): 0 = a transaction never survives a power loss or reset
        Variable("TxCtrlr", "TxResumptionTimeout", "0", RW, "integer", check=lambda v: int(v) >= 0),
        Variable("TxCtrlr", "TxStartPoint", "Authorized", RW, "MemberList", TX_POINTS),
        Variable("TxCtrlr", "TxStopPoint", "EVConnected,Authorized", RW, "MemberList", TX_POINTS),
        Variable("SampledDataCtrlr", "TxUpdatedInterval", str(int(meter_interval_s)), RW, "integer"),
        Variable("SampledDataCtrlr", "TxEndedInterval", "0", RW, "integer"),
        Variable("SampledDataCtrlr", "TxStartedMeasurands", MEASURANDS, RW, "MemberList", MEASURANDS),
        Variable("SampledDataCtrlr", "TxUpdatedMeasurands", MEASURANDS, RW, "MemberList", MEASURANDS),
        Variable("SampledDataCtrlr", "TxEndedMeasurands", MEASURANDS, RW, "MemberList", MEASURANDS),
        Variable("AuthCtrlr", "AuthorizeRemoteStart", "true", RW, "boolean"),
        Variable("AuthCtrlr", "LocalAuthorizeOffline", "true", RW, "boolean"),
        Variable("AuthCtrlr", "LocalPreAuthorize", "false", RW, "boolean"),
        Variable("AuthCtrlr", "Enabled", "true", RW, "boolean"),
        Variable("AuthCtrlr", "DisableRemoteAuthorization", "false", RW, "boolean"),
        Variable("SecurityCtrlr", "Identity", station_id, RW, "string"),
        Variable("SecurityCtrlr", "SecurityProfile", "1", RO, "integer"),
        Variable("SecurityCtrlr", "BasicAuthPassword", "", WO, "string", check=_password_ok),
        Variable("SecurityCtrlr", "OrganizationName", "v2g-bench", RW, "string"),
        Variable("SecurityCtrlr", "CertSigningWaitMinimum", "30", RW, "integer", check=lambda v: int(v) >= 0),
        Variable("SecurityCtrlr", "CertSigningRepeatTimes", "2", RW, "integer", check=lambda v: int(v) >= 0),
        Variable("SmartChargingCtrlr", "Enabled", "true", RW, "boolean"),
        Variable("SmartChargingCtrlr", "Available", "true", RO, "boolean"),
        Variable("SmartChargingCtrlr", "ChargingProfileMaxStackLevel", "10", RO, "integer"),
        Variable("SmartChargingCtrlr", "ChargingScheduleChargingRateUnit", "A,W", RO, "MemberList", "A,W"),
        Variable("SmartChargingCtrlr", "PeriodsPerSchedule", "24", RO, "integer"),
        Variable("SmartChargingCtrlr", "ProfileStackLevel", "10", RO, "integer"),
        Variable("SmartChargingCtrlr", "EntriesChargingProfiles", "0", RO, "integer"),
    ] + _v21_variables()


def _v21_variables() -> list[Variable]:
    """The 2.1 smart-charging / V2X features this station declares (the unsupported ones are refused on 2.1,
    K_130..K_135, Q_123); kept in the 2.0.1 model too (a station's model is one, whatever it speaks)."""
    return [
        Variable("SmartChargingCtrlr", "SupportedAdditionalPurposes", "", RO, "MemberList",
                 "PriorityCharging,LocalGeneration"),
        Variable("SmartChargingCtrlr", "SupportsUseLocalTime", "false", RO, "boolean"),
        Variable("SmartChargingCtrlr", "SupportsRandomizedDelay", "false", RO, "boolean"),
        Variable("SmartChargingCtrlr", "SupportsLimitAtSoC", "false", RO, "boolean"),
        Variable("SmartChargingCtrlr", "SupportsEvseSleep", "false", RO, "boolean"),
        Variable("V2XChargingCtrlr", "SupportedOperationModes", OPERATION_MODES, RO, "MemberList", ALL_MODES),
    ]


ALL_MODES = ("Idle,ChargingOnly,CentralSetpoint,ExternalSetpoint,ExternalLimits,CentralFrequency,LocalFrequency,"
             "LocalLoadBalancing")
OPERATION_MODES = "Idle,ChargingOnly,CentralSetpoint,ExternalSetpoint,ExternalLimits,CentralFrequency,LocalFrequency"


class DeviceModel:
    def __init__(self, cfg):
        self.vars: dict[tuple[str, str], Variable] = {(v.component, v.name): v for v in default_variables(cfg)}

    # the station's own reads and writes (not through OCPP)
    def get(self, component: str, name: str) -> str:
        return self.vars[(component, name)].value

    def put(self, component: str, name: str, value: str) -> None:
        self.vars[(component, name)].value = str(value)

    def components(self) -> set[str]:
        return {c for c, _ in self.vars}

    # -- B06 GetVariables ---------------------------------------------------------------------------
    def get_result(self, d: dict, *, unknown_component_as_variable: bool = False) -> dict:
        """One GetVariableResult (snake_case in and out, as the library hands it)."""
        comp, var = d["component"], d["variable"]
        base = {"component": comp, "variable": var}
        if d.get("attribute_type") not in (None, "Actual"):
            return {**base, "attribute_type": d["attribute_type"], "attribute_status": "NotSupportedAttributeType"}
        v = self.vars.get((comp["name"], var["name"]))
        if v is None:
            known = comp["name"] in self.components() or unknown_component_as_variable
            return {**base, "attribute_status": "UnknownVariable" if known else "UnknownComponent"}
        if v.mutability == WO:
            return {**base, "attribute_status": "Rejected"}
        return {**base, "attribute_status": "Accepted", "attribute_value": v.value}

    # -- B05 SetVariables ---------------------------------------------------------------------------
    def set_result(self, d: dict, *, store: bool = True, allow_read_only: bool = False,
                   skip_validation: bool = False) -> tuple[dict, Variable | None]:
        comp, var = d["component"], d["variable"]
        base = {"component": comp, "variable": var}
        value = str(d["attribute_value"])
        if d.get("attribute_type") not in (None, "Actual"):
            return {**base, "attribute_type": d["attribute_type"], "attribute_status": "NotSupportedAttributeType"}, None
        v = self.vars.get((comp["name"], var["name"]))
        if v is None:
            known = comp["name"] in self.components()
            return {**base, "attribute_status": "UnknownVariable" if known else "UnknownComponent"}, None
        if v.mutability == RO and not allow_read_only:
            return {**base, "attribute_status": "Rejected",
                    "attribute_status_info": {"reason_code": "ReadOnly"}}, None
        if not skip_validation and not v.valid(value):
            return {**base, "attribute_status": "Rejected",
                    "attribute_status_info": {"reason_code": "InvalidValue",
                                              "additional_info": f"not a valid {v.data_type}"[:512]}}, None
        if store:
            v.value = value
            v.written = True
        return {**base, "attribute_status": "Accepted"}, v

    # -- B07/B08 reports ----------------------------------------------------------------------------
    def base_report(self, kind: str) -> list[dict] | None:
        if kind == "FullInventory":
            chosen = list(self.vars.values())
        elif kind == "ConfigurationInventory":
            chosen = [v for v in self.vars.values() if v.mutability != RO]
        elif kind == "SummaryInventory":
            chosen = [v for v in self.vars.values() if v.name in ("AvailabilityState", "Available")]
        else:
            return None
        return [v.report_item() for v in chosen]

    def custom_report(self, component_variable: list[dict] | None, criteria: list[str] | None) -> list[dict]:
        chosen = list(self.vars.values())
        if component_variable:
            def wanted(v: Variable) -> bool:
                for cv in component_variable:
                    if cv["component"]["name"] == v.component and (
                            not cv.get("variable") or cv["variable"]["name"] == v.name):
                        return True
                return False
            chosen = [v for v in chosen if wanted(v)]
        if criteria:
            # a component matches a criterion when its variable of that name is "true" (Problem: none here)
            ok = {c for c in self.components()
                  if any(self.vars.get((c, crit)) is not None and self.vars[(c, crit)].value == "true"
                         for crit in criteria if crit != "Problem")}
            chosen = [v for v in chosen if v.component in ok]
        return [v.report_item() for v in chosen]
