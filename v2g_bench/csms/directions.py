"""Which OCPP 2.0.1 / 2.1 actions each side may send (OCPP 2.0.1 Part 2 and 2.1 Part 2, the
"Messages" chapter: every message names its sender). The schemas do not say it, and a CSMS that
answers a station's `Reset` with Accepted, or a station that answers `BootNotification`, tells a
peer it did something it cannot do: a CALL in the wrong direction gets CALLERROR NotSupported
("recognized but not supported by the receiver")."""
from __future__ import annotations

_CS_TO_CSMS_201 = frozenset({
    "Authorize", "BootNotification", "ClearedChargingLimit", "DataTransfer", "FirmwareStatusNotification",
    "Get15118EVCertificate", "GetCertificateStatus", "Heartbeat", "LogStatusNotification", "MeterValues",
    "NotifyChargingLimit", "NotifyCustomerInformation", "NotifyDisplayMessages", "NotifyEVChargingNeeds",
    "NotifyEVChargingSchedule", "NotifyEvent", "NotifyMonitoringReport", "NotifyReport",
    "PublishFirmwareStatusNotification", "ReportChargingProfiles", "ReservationStatusUpdate",
    "SecurityEventNotification", "SignCertificate", "StatusNotification", "TransactionEvent"})

_CS_TO_CSMS_21_NEW = frozenset({
    "BatterySwap", "ClosePeriodicEventStream", "GetCertificateChainStatus", "NotifyDERAlarm", "NotifyDERStartStop",
    "NotifyPriorityCharging", "NotifySettlement", "OpenPeriodicEventStream", "PullDynamicScheduleUpdate",
    "ReportDERControl", "VatNumberValidation"})

BOTH_WAYS = frozenset({"DataTransfer"})


def station_sends(version: str) -> frozenset[str]:
    """Actions a charging station may send as a CALL to the CSMS in `version`."""
    return _CS_TO_CSMS_201 | (_CS_TO_CSMS_21_NEW if version == "2.1" else frozenset())


def csms_sends(version: str, all_actions: frozenset[str]) -> frozenset[str]:
    """Actions a CSMS may send to a station: every action of the version's schemas the station
    does not send, plus the ones both may send."""
    return (all_actions - station_sends(version)) | BOTH_WAYS
