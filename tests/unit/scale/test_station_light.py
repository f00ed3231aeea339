"""The light station's model and its answers, without a CSMS (the end-to-end run is test_aggregator.py)."""
import datetime as dt
import time

import pytest

from v2g_bench.errors import BenchError
from v2g_bench.lab.charger.station_light import CALLERROR, CALLRESULT, LightEV, LightStation, PlanClock, iso

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _station(**kw):
    ev = LightEV(capacity_kwh=10.0, soc_kwh=5.0, max_charge_kw=11.0, max_discharge_kw=11.0, floor_kwh=2.0)
    clock = PlanClock(EPOCH, 1.0, time.monotonic() + 1e6)     # plan time far negative: nothing moves on its own
    return LightStation("CS1", "ws://x", "pw", ev, clock, meter_interval_s=900.0, **kw)


def _profile(periods, unit="W"):
    return {"evseId": 1, "chargingProfile": {
        "id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Absolute",
        "chargingSchedule": [{"id": 1, "chargingRateUnit": unit, "startSchedule": iso(EPOCH),
                              "chargingSchedulePeriod": [{"startPeriod": s, "limit": w} for s, w in periods]}]}}


def test_follows_the_profile_and_stops_at_the_soc_limits():
    s = _station()
    assert s._on_call("1", "SetChargingProfile", _profile([(0, 4000.0), (900, -20000.0)]))[2]["status"] == "Accepted"
    s._last = 0.0
    s.integrate(900.0)                    # 4 kW for 15 min = 1 kWh
    assert s.imported_wh == pytest.approx(1000.0) and s.ev.soc_kwh == pytest.approx(6.0)
    s.integrate(3600.0)                   # -11 kW (clamped) until the 2 kWh floor: 4 kWh out, then nothing
    assert s.exported_wh == pytest.approx(4000.0) and s.ev.soc_kwh == pytest.approx(2.0)


def test_refuses_what_it_cannot_do_and_answers_malformed_requests():
    s = _station()
    assert s._on_call("1", "SetChargingProfile", _profile([(0, 16.0)], unit="A"))[2]["status"] == "Rejected"
    assert s._on_call("2", "Reset", {"type": "Immediate"})[0] == CALLERROR
    with pytest.raises(KeyError):        # the reader turns this into a FormatViolation CALLERROR
        s._on_call("3", "SetChargingProfile", {"evseId": 1, "chargingProfile": {
            "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Absolute",
            "chargingSchedule": [{"chargingRateUnit": "W"}]}})
    assert s._on_call("4", "ClearChargingProfile", {})[0] == CALLRESULT


def test_ignore_profile_defect_charges_at_full_power_and_unknown_defects_are_refused():
    s = _station(defect="ignore_profile")
    s._on_call("1", "SetChargingProfile", _profile([(0, -5000.0)]))
    assert s.setpoint_w(10.0) == 11000.0
    with pytest.raises(BenchError, match="unknown light-station defect"):
        _station(defect="explode")
