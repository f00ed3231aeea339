"""The four defects an independent strict-mode OCPP peer found in the simulated station and the
CSMS emulator (issue 13 item 4); each test fails on the code before the fix."""
from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from websockets.sync.client import connect

from v2g_bench.csms.compat import NOT_IMPLEMENTED_TEXT, NOT_SUPPORTED_TEXT
from v2g_bench.csms.recording import CALLERROR
from v2g_bench.lab.charger.profile_stack import ProfileStack, iso

PASSWORD = "bench-password-0123"      # the station conftest's CSMS password


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_notify_ev_charging_needs_is_sent_and_schema_valid(online, version):
    """2.0.1 DCChargingParametersType is integers only: the station's own validation refused
    30.0 A, so it never sent NotifyEVChargingNeeds."""
    csms, st = online(version)
    r = st.op("station.notify_ev_needs")
    assert r["status"] == "Accepted"
    f = csms.expect("NotifyEVChargingNeeds", timeout=5)
    csms.assert_conformant()
    dc = f.payload["chargingNeeds"]["dcChargingParameters"]
    if version == "2.0.1":
        assert all(isinstance(v, int) for v in dc.values()), dc


@pytest.mark.parametrize("late_ms", [0, 100, 300, 499, 500, 700, 999])
def test_composite_start_periods_strictly_increase_when_a_profile_starts_within_a_second(late_ms):
    """A profile starting < 0.5 s after the floored scheduleStart gave two periods at startPeriod 0."""
    stack = ProfileStack()
    start = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    begins = start + dt.timedelta(milliseconds=late_ms)
    stack.add(1, {"id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
                  "chargingProfileKind": "Absolute",
                  "chargingSchedule": [{"id": 1, "startSchedule": begins.isoformat(), "chargingRateUnit": "W",
                                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 4000},
                                                                   {"startPeriod": 60, "limit": 2000}]}]},
              active_tx=None)
    out = stack.composite(1, start, 300, station_max_w=11000, station_max_discharge_w=11000)
    offsets = [o for o, _ in out]
    assert offsets == sorted(set(offsets)), offsets
    assert offsets[0] == 0
    # the profile's 4 kW governs from the nearest whole second
    first_4k = next(o for o, w in out if w.hi_w == 4000)
    assert first_4k == round(late_ms / 1000)
    assert iso(start).endswith("Z")


def test_station_composite_schedule_has_increasing_start_periods(online):
    csms, st = online("2.1")
    now = dt.datetime.now(dt.timezone.utc)
    begins = now.replace(microsecond=0) + dt.timedelta(seconds=1, milliseconds=200)
    prof = csms.charging_profile(3, "TxDefaultProfile", [(0, 4000)])
    prof["chargingProfileKind"] = "Absolute"
    prof["chargingSchedule"][0]["startSchedule"] = begins.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert csms.set_charging_profile(1, prof)["status"] == "Accepted"
    comp = csms.get_composite_schedule(1, 120)
    starts = [p["startPeriod"] for p in comp["schedule"]["chargingSchedulePeriod"]]
    assert starts == sorted(set(starts)), starts


def _raw_station(csms, version: str, frames: list[list]) -> list[list]:
    tok = base64.b64encode(f"RAW-CS:{PASSWORD}".encode()).decode()
    sub = {"2.0.1": "ocpp2.0.1", "2.1": "ocpp2.1"}[version]
    out = []
    with connect(csms.url_for("RAW-CS"), subprotocols=[sub], additional_headers={"Authorization": f"Basic {tok}"},
                 open_timeout=5) as ws:
        for fr in frames:
            ws.send(json.dumps(fr))
            out.append(json.loads(ws.recv(timeout=5)))
    return out


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_csms_refuses_wrong_direction_reset_and_unknown_vendor_data_transfer(make_csms, version):
    csms = make_csms()
    reset, dt_ans = _raw_station(csms, version, [[2, "r1", "Reset", {"type": "Immediate"}],
                                                 [2, "d1", "DataTransfer", {"vendorId": "com.example.nobody"}]])
    assert reset[0] == CALLERROR and reset[2] == "NotSupported", reset
    assert dt_ans == [3, "d1", {"status": "UnknownVendorId"}]
    csms.take_violations()         # the Reset was the test's own wrong-direction frame


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_station_answers_unknown_vendor_data_transfer_with_unknown_vendor_id(online, version):
    csms, st = online(version)
    assert csms.call("DataTransfer", {"vendorId": "com.example.nobody", "messageId": "x"}) == {"status": "UnknownVendorId"}


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_station_callerror_texts_follow_the_ocpp_j_table(online, version):
    csms, st = online(version)
    # known to the version, not handled by this station (and a CSMS-to-station action in the wrong direction)
    f = csms.call_frame("Heartbeat", {})
    assert f.msg_type == CALLERROR and f.payload["errorCode"] == "NotSupported"
    assert f.payload["errorDescription"] == NOT_SUPPORTED_TEXT
    out = csms.send_invalid("unknown_action")
    assert out.error_codes == ["NotImplemented"]
    assert json.loads(out.answers[0].raw)[3] == NOT_IMPLEMENTED_TEXT
