"""The simulated charging station against the CSMS emulator, on the lab's real Plant (in-process)."""
from __future__ import annotations

import time

import pytest

from csms_helpers import PASSWORD
from v2g_bench.csms.emulator import NO_ANSWER, CallErrorReceived, OcppCallError
from v2g_bench.errors import Nonconformance


def connected(make_csms, make_station, version, **station_cfg):
    csms = make_csms(security_profile=1, password=PASSWORD)
    st = make_station(ocpp_version=version, **station_cfg)
    r = st.op("station.connect", url=csms.url, security_profile=1, password=PASSWORD)
    assert r["connected"], r
    csms.expect("BootNotification", timeout=5)
    return csms, st


def start_tx(csms, st):
    st.op("station.start_transaction")
    started = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Started", timeout=5)
    return started["transactionInfo"]["transactionId"]


def wait_power(plant, target_w, tol_w, timeout=10.0):
    deadline = time.monotonic() + timeout
    p = None
    while time.monotonic() < deadline:
        p = plant.state().dc_power_w
        if abs(p - target_w) <= tol_w:
            return p
        time.sleep(0.05)
    raise AssertionError(f"DC power {p} W did not reach {target_w} W +- {tol_w} W within {timeout} s")


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_TC_K_60_CS_discharge_txprofile_drives_the_power_stage(make_csms, make_station, version):
    csms, st = connected(make_csms, make_station, version)
    tx = start_tx(csms, st)
    wait_power(st.plant, 11000, 300)                      # no profile: charges at the EV's max
    prof = csms.charging_profile(1, "TxProfile", [(0, -4000)], transaction_id=tx)
    if version == "2.0.1":
        assert prof["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] == -4000
    else:
        period = prof["chargingSchedule"][0]["chargingSchedulePeriod"][0]
        assert period["operationMode"] == "CentralSetpoint" and period["setpoint"] == -4000
        assert period["dischargeLimit"] == -4000
    assert csms.set_charging_profile(1, prof)["status"] == "Accepted"
    wait_power(st.plant, -4000, 100)
    comp = csms.get_composite_schedule(1, 300)
    assert comp["status"] == "Accepted"
    first = comp["schedule"]["chargingSchedulePeriod"][0]
    assert (first.get("setpoint") if version == "2.1" else first["limit"]) == -4000
    assert csms.clear_charging_profile(1)["status"] == "Accepted"
    wait_power(st.plant, 11000, 300)
    csms.assert_conformant()


def test_TC_K_02_CS_txprofile_without_transaction_rejected(make_csms, make_station):
    csms, st = connected(make_csms, make_station, "2.0.1")
    prof = csms.charging_profile(1, "TxProfile", [(0, 3000)], transaction_id="no-such-tx")
    assert csms.set_charging_profile(1, prof)["status"] == "Rejected"


def test_TC_K_01_CS_txdefault_and_TC_K_03_CS_stationmax_reported_back(make_csms, make_station):
    csms, st = connected(make_csms, make_station, "2.1")
    assert csms.set_charging_profile(1, csms.charging_profile(5, "TxDefaultProfile", [(0, 6000)]))["status"] == "Accepted"
    assert csms.set_charging_profile(0, csms.charging_profile(6, "ChargingStationMaxProfile", [(0, 5000)]))["status"] == "Accepted"
    assert csms.get_charging_profiles(77)["status"] == "Accepted"
    reports = csms.expect_all("ReportChargingProfiles", 2, where=lambda m: m["requestId"] == 77, timeout=5)
    ids = sorted(p["id"] for r in reports for p in r["chargingProfile"])
    assert ids == [5, 6]
    start_tx(csms, st)
    wait_power(st.plant, 5000, 150)                          # TxDefault 6 kW under the 5 kW station max


def test_TC_E_40_CS_offline_events_delivered_in_order_after_reconnect(make_csms, make_station):
    csms, st = connected(make_csms, make_station, "2.0.1", meter_interval_s=0.2)
    tx = start_tx(csms, st)
    csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Updated", timeout=5)
    st.op("station.disconnect")
    csms.wait_for_disconnect("LAB-CS-001", 5)
    deadline = time.monotonic() + 10
    while st.op("station.status")["queued"] < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    queued = st.op("station.status")["queued"]
    assert queued >= 5
    st.op("station.stop_transaction")
    r = st.op("station.connect", url=csms.url, security_profile=1, password=PASSWORD)
    assert r["connected"]
    ended = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Ended", timeout=10)
    assert ended.get("offline") is True
    seqs = [f["seqNo"] for f in csms.frames if f.direction == "in" and f.action == "TransactionEvent"
            and f.msg_type == 2 and f["transactionInfo"]["transactionId"] == tx]
    unique = sorted(set(seqs))
    assert unique == list(range(len(unique))), f"seqNo gaps: {seqs}"
    assert seqs == sorted(seqs), f"out of order: {seqs}"
    assert ended["seqNo"] == unique[-1]
    csms.assert_conformant()


def test_notify_ev_charging_needs_v2x(make_csms, make_station):
    csms, st = connected(make_csms, make_station, "2.1")
    st.op("station.plug_in")
    needs = csms.expect("NotifyEVChargingNeeds", timeout=5)
    cn = needs["chargingNeeds"]
    assert cn["requestedEnergyTransfer"] == "DC_BPT"
    assert cn["v2xChargingParameters"]["maxDischargePower"] == 11000
    csms.assert_conformant()


def test_remote_start_stop_trigger_variables_reset_availability(make_csms, make_station):
    csms, st = connected(make_csms, make_station, "2.0.1")
    st.op("station.plug_in")              # a remote start does not bring the EV along (TC_F_04_CS)
    assert csms.request_start_transaction(42)["status"] == "Accepted"
    started = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Started", timeout=5)
    assert started["transactionInfo"]["remoteStartId"] == 42 and started["triggerReason"] == "RemoteStart"
    tx = started["transactionInfo"]["transactionId"]
    assert csms.trigger_message("StatusNotification", evse_id=1, connector_id=1)["status"] == "Accepted"
    csms.expect("StatusNotification", where=lambda m: m["connectorStatus"] == "Occupied", timeout=5)
    r = csms.get_variables([("OCPPCommCtrlr", "HeartbeatInterval"), ("NoSuchComponent", "X")])
    assert [x["attributeStatus"] for x in r["getVariableResult"]] == ["Accepted", "UnknownComponent"]
    r = csms.set_variables([("SampledDataCtrlr", "TxUpdatedInterval", "abc")])
    assert r["setVariableResult"][0]["attributeStatus"] == "Rejected"
    assert csms.reset("OnIdle")["status"] == "Scheduled"                        # TC_B_21_CS
    assert csms.change_availability("Inoperative", evse_id=1)["status"] == "Scheduled"
    assert csms.request_stop_transaction(tx)["status"] == "Accepted"
    ended = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Ended", timeout=5)
    assert ended["transactionInfo"]["stoppedReason"] == "Remote"
    csms.wait_for_disconnect("LAB-CS-001", 5)                                   # the deferred reset
    csms.assert_conformant()


def test_response_overrides_and_boot_rejection(make_csms, make_station):
    csms = make_csms(security_profile=1, password=PASSWORD)
    csms.respond("BootNotification", {"currentTime": "2030-01-01T00:00:00Z", "interval": 1, "status": "Rejected"},
                 times=1)
    st = make_station(ocpp_version="2.1")
    st.op("station.connect", url=csms.url, security_profile=1, password=PASSWORD)
    first = csms.expect("BootNotification", timeout=5)
    second = csms.expect("BootNotification", timeout=5)                         # retried after the interval
    assert second.t - first.t >= 0.9
    answers = [f for f in csms.frames if f.direction == "out" and f.action == "BootNotification"]
    assert [a["status"] for a in answers[:2]] == ["Rejected", "Accepted"]
    csms.respond("Heartbeat", OcppCallError("InternalError", "test override"))
    csms.respond("StatusNotification", NO_ANSWER, times=1)
    assert csms.trigger_message("Heartbeat")["status"] == "Accepted"
    csms.expect("Heartbeat", timeout=5)
    err = [f for f in csms.frames if f.direction == "out" and f.action == "Heartbeat"][-1]
    assert err.error_code == "InternalError"


def test_station_callerror_and_timeout_are_reported(make_csms, make_station):
    csms, st = connected(make_csms, make_station, "2.1")
    with pytest.raises(CallErrorReceived) as ei:
        csms.call("CancelReservation", {"reservationId": 1})     # no reservations in the simulated station
    assert ei.value.code == "NotSupported"             # compat: the 2.1 station answers an unhandled action
    with pytest.raises(Nonconformance, match="did not answer"):
        csms.call_frame("Reset", {"type": "Immediate"}, timeout=0.0001)
