"""Switchable defects of the simulated station, so every conformance case can be shown to fail.

A defect is a named, documented deviation from OCPP that the station's code checks at one place
(`station.defects.on("name")`). Switch them with the lab's control op `station.defects`
(`{"op": "station.defects", "set": ["seq_no_skip"]}`) or the lab config
`services.station.defects = [...]`; `station.clear` restores the configured set.

`caught_by` names the case that fails with the defect and passes without it: the CI subset
(tests/unit/station/test_station_defects.py) runs exactly these pairs; `make mutation-ocpp` runs
every case under every defect and prints the matrix (docs/ocpp-suite.md keeps the table).
"""
from __future__ import annotations

from dataclasses import dataclass

from v2g_bench.errors import BenchError


@dataclass(frozen=True)
class Defect:
    name: str
    what: str           # what the station does wrong
    caught_by: str      # a case row id (case[ocppX]) that fails with it


DEFECTS: dict[str, Defect] = {d.name: d for d in (
    Defect("no_status_after_boot", "sends no StatusNotification after an accepted boot", "TC_B_01_CS[ocpp2.0.1]"),
    Defect("invalid_frame", "answers a triggered StatusNotification with a schema-invalid one (no evseId)",
           "TC_F_23_CS[ocpp2.1]"),
    Defect("duplicate_message_id", "sends a triggered Heartbeat twice with the same messageId", "TC_F_20_CS[ocpp2.0.1]"),
    Defect("get_variable_no_value", "answers GetVariables Accepted without the attributeValue", "TC_B_06_CS[ocpp2.1]"),
    Defect("availability_no_status", "changes availability without the StatusNotification", "TC_G_03_CS[ocpp2.0.1]"),
    Defect("report_profiles_missing", "answers GetChargingProfiles Accepted and never reports them",
           "TC_K_01_CS[ocpp2.1]"),
    Defect("clear_not_applied", "answers ClearChargingProfile Accepted and keeps the profile", "TC_K_05_CS[ocpp2.0.1]"),
    Defect("composite_wrong_duration", "the composite schedule's duration is not the one asked for",
           "TC_K_39_CS[ocpp2.1]"),
    Defect("der_clear_all", "2.1: ClearDERControl for one controlType clears every type", "TC_R_102_CS[ocpp2.1]"),
    Defect("set_variable_not_stored", "answers SetVariables Accepted but keeps the old value", "TC_B_09_CS[ocpp2.0.1]"),
    Defect("accept_bad_value", "accepts a badly formatted value (non-integer interval)", "TC_B_11_CS[ocpp2.1]"),
    Defect("write_read_only", "lets SetVariables overwrite a ReadOnly variable", "TC_B_39_CS[ocpp2.0.1]"),
    Defect("unknown_component_as_variable", "answers UnknownVariable where the component is unknown",
           "TC_B_32_CS[ocpp2.0.1]"),
    Defect("report_missing_request_id", "NotifyReport carries another requestId than asked", "TC_B_12_CS[ocpp2.0.1]"),
    Defect("reset_no_reboot", "answers Reset Accepted and does not reboot", "TC_B_20_CS[ocpp2.0.1]"),
    Defect("missing_security_event", "sends no SecurityEventNotification for a reset / security change",
           "TC_A_09_CS[ocpp2.0.1]"),
    Defect("seq_no_skip", "skips a seqNo after the transaction's Started event", "TC_E_40_CS[ocpp2.0.1]"),
    Defect("drop_offline_queue", "drops the TransactionEvents it queued while offline", "TC_E_43_CS[ocpp2.1]"),
    Defect("no_offline_flag", "sends queued events without offline=true", "TC_E_44_CS[ocpp2.0.1]"),
    Defect("ended_without_stopped_reason", "Ended event without transactionInfo.stoppedReason",
           "TC_F_08_CS[ocpp2.0.1]"),
    Defect("no_remote_start_id", "Started after RequestStartTransaction without remoteStartId",
           "TC_F_01_CS[ocpp2.0.1]"),
    Defect("trigger_not_sent", "answers TriggerMessage Accepted but never sends the message", "TC_F_20_CS[ocpp2.1]"),
    Defect("unlock_during_transaction", "unlocks the connector during an authorized transaction",
           "TC_F_05_CS[ocpp2.0.1]"),
    Defect("transaction_status_wrong", "GetTransactionStatus says ongoing=false for the running transaction",
           "TC_E_30_CS[ocpp2.0.1]"),
    Defect("accept_invalid_profile", "accepts a TxProfile without a running transaction / on evseId 0",
           "TC_K_02_CS[ocpp2.0.1]"),
    Defect("clear_always_accepted", "ClearChargingProfile answers Accepted when nothing matched", "TC_K_08_CS[ocpp2.1]"),
    Defect("composite_ignores_station_max", "composite schedule leaves out the ChargingStationMaxProfile",
           "TC_K_41_CS[ocpp2.0.1]"),
    Defect("ignore_discharge_limit", "discharges beyond the profile's discharge limit / setpoint",
           "TC_K_60_CS[ocpp2.0.1]"),
    Defect("ignore_setpoint", "2.1: ignores a CentralSetpoint period's setpoint (charges at the EV's wish)",
           "TC_Q_109_CS[ocpp2.1]"),
    Defect("accept_invalid_der_control", "2.1: accepts a DER control it must reject (unsupported type)",
           "TC_R_103_CS[ocpp2.1]"),
    Defect("network_profile_any_slot", "accepts SetNetworkProfile for a slot outside NetworkConfigurationPriority",
           "TC_B_43_CS[ocpp2.0.1]"),
    # -- added for the second batch of OCTT cases (E retries/limits/resumption, B offline/reset, K/Q 2.1 checks)
    Defect("ignore_tx_start_point", "starts the transaction at authorization whatever TxStartPoint says",
           "TC_E_01_CS[ocpp2.0.1]"),
    Defect("no_connection_timeout", "never drops an authorization / transaction when the EV does not plug in "
           "within EVConnectionTimeOut", "TC_E_39_CS[ocpp2.0.1]"),
    Defect("ignore_deauthorization", "keeps charging when the CSMS answers the Started event with an invalid "
           "idToken", "TC_E_16_CS[ocpp2.1]"),
    Defect("stop_on_unplug_always", "ends the transaction at an EV-side unplug although StopTxOnEVSideDisconnect "
           "is false", "TC_E_26_CS[ocpp2.0.1]"),
    Defect("queue_status_wrong", "GetTransactionStatus says messagesInQueue=false while an event is unanswered",
           "TC_E_31_CS[ocpp2.0.1]"),
    Defect("no_tx_message_retry", "drops a TransactionEvent after one unanswered / CALLERROR attempt",
           "TC_E_51_CS[ocpp2.0.1]"),
    Defect("authorize_despite_disabled", "sends Authorize although DisableRemoteAuthorization is true",
           "TC_E_52_CS[ocpp2.1]"),
    Defect("ignore_transaction_limit", "2.1: ignores the transactionLimit (maxEnergy/maxTime) the CSMS set",
           "TC_E_105_CS[ocpp2.1]"),
    Defect("power_loss_tx_lost", "loses the running transaction at a power loss / reset (no Ended, no TxResumed)",
           "TC_E_115_CS[ocpp2.1]"),
    Defect("unlock_fails_without_cable", "answers UnlockFailed when no cable is plugged in", "TC_F_07_CS[ocpp2.0.1]"),
    Defect("trigger_accepts_unknown", "answers TriggerMessage Accepted for a message/custom trigger it does not know",
           "TC_F_100_CS[ocpp2.1]"),
    Defect("scheduled_availability_silent", "applies a scheduled availability change at the end of the transaction "
           "without the StatusNotification", "TC_G_17_CS[ocpp2.0.1]"),
    Defect("answers_while_rejected", "answers the CSMS's requests while its boot is Rejected (no SecurityError)",
           "TC_B_30_CS[ocpp2.0.1]"),
    Defect("offline_threshold_ignored", "never re-sends the connector statuses after being offline longer than "
           "OfflineThreshold", "TC_B_51_CS[ocpp2.0.1]"),
    Defect("status_always_after_reconnect", "re-sends every connector status after any reconnect, however short",
           "TC_B_52_CS[ocpp2.1]"),
    Defect("availability_lost_on_reset", "comes back Available after a reset although it was set Inoperative",
           "TC_G_21_CS[ocpp2.0.1]"),
    Defect("priority_any_slot", "accepts a NetworkConfigurationPriority naming an empty slot", "TC_B_107_CS[ocpp2.1]"),
    Defect("accept_unsupported_feature", "2.1: accepts a profile using a feature it declares unsupported "
           "(additional purpose, useLocalTime, randomizedDelay, limitAtSoC, evseSleep, an operation mode)",
           "TC_K_133_CS[ocpp2.1]"),
    Defect("remote_start_profile_when_disabled", "installs the TxProfile of a RequestStartTransaction while smart "
           "charging is disabled", "TC_K_38_CS[ocpp2.0.1]"),
    Defect("charging_only_ignores_limit", "2.1: a ChargingOnly period's limit is not applied (charges at the EV's "
           "wish)", "TC_Q_107_CS[ocpp2.1]"),
    Defect("csr_wrong_identity", "its CSR's CN is not the station identity", "TC_A_11_CS[ocpp2.0.1]"),
    Defect("accept_any_certificate", "installs a CertificateSigned that is not for its own key (no security event)",
           "TC_A_14_CS[ocpp2.0.1]"),
    Defect("cert_retry_after_rejected", "repeats its SignCertificate although the CSMS rejected it",
           "TC_A_15_CS[ocpp2.0.1]"),
    Defect("no_cert_signing_retry", "never repeats a SignCertificate that got no CertificateSigned",
           "TC_A_23_CS[ocpp2.1]"),
    Defect("dynamic_update_ignored", "2.1: answers a Dynamic profile's update Accepted and keeps the old values",
           "TC_K_122_CS[ocpp2.1]"),
    Defect("profile_duration_ignored", "applies a profile beyond its chargingSchedule duration",
           "TC_Q_113_CS[ocpp2.1]"),
    Defect("no_basic_auth", "reconnects after a reboot without its Basic-auth credentials (SP1)",
           "TC_A_01_CS[ocpp2.0.1]"),
    Defect("resumption_timeout_ignored", "resumes a transaction after a power loss longer than TxResumptionTimeout",
           "TC_E_116_CS[ocpp2.1]"),
    Defect("no_network_fallback", "keeps trying a failing network profile instead of falling back to the next slot",
           "TC_B_49_CS[ocpp2.0.1]"),
    Defect("flood", "sends a burst of CALLs without waiting for the answers (OCPP-J: one CALL in flight)",
           "TC_F_20_CS[ocpp2.1]"),
    Defect("disconnect_mid_case", "drops the connection instead of answering GetVariables", "TC_B_06_CS[ocpp2.0.1]"),
)}


class Defects:
    """The defects switched on in one station."""

    def __init__(self, names=()):
        self.configured = self._checked(names)
        self.active: set[str] = set(self.configured)

    @staticmethod
    def _checked(names) -> frozenset[str]:
        if isinstance(names, str):
            names = [names]
        unknown = sorted(set(names) - set(DEFECTS))
        if unknown:
            raise BenchError(f"unknown station defect(s) {unknown}", where="station defects",
                             fix=f"one of {', '.join(sorted(DEFECTS))}")
        return frozenset(names)

    def on(self, name: str) -> bool:
        if name not in DEFECTS:           # a typo in the station's own code must not read as "off"
            raise KeyError(f"no station defect named {name!r}")
        return name in self.active

    def set(self, names) -> list[str]:
        self.active = set(self._checked(names))
        return sorted(self.active)

    def reset(self) -> None:
        self.active = set(self.configured)

    def listing(self) -> dict:
        return {"active": sorted(self.active), "known": {d.name: d.what for d in DEFECTS.values()}}


def matrix(path: str) -> str:
    """The case x defect table from a `make mutation-ocpp` run (JSON lines): per case row, the defects that
    make it fail (killed), and per defect the rows that catch it."""
    import json
    from collections import defaultdict
    killed: dict[str, list[str]] = defaultdict(list)
    other: dict[str, dict[str, str]] = defaultdict(dict)
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["outcome"] == "killed":
                killed[r["row"]].append(r["defect"])
            else:
                other[r["row"]][r["defect"]] = r["outcome"]
    rows = sorted(set(killed) | set(other))
    out = ["| case row | defects that make it fail |", "|---|---|"]
    for row in rows:
        out.append(f"| {row} | {', '.join(sorted(killed.get(row, []))) or '(none)'} |")
    caught = {d for ds in killed.values() for d in ds}
    out.append("")
    out.append(f"{len(rows)} rows; {sum(1 for r in rows if killed.get(r))} fail under at least one defect; "
               f"defects caught: {len(caught)}/{len(DEFECTS)}"
               + (f"; never caught: {', '.join(sorted(set(DEFECTS) - caught))}" if set(DEFECTS) - caught else ""))
    return "\n".join(out)


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "matrix":
        print(matrix(sys.argv[2]))
    elif len(sys.argv) == 1:
        for d in DEFECTS.values():
            print(f"{d.name:32s} {d.caught_by:26s} {d.what}")
    else:
        sys.exit("usage: python -m v2g_bench.lab.charger.station_defects [matrix FILE]")
