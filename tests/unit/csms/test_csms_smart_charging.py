"""The station's profile stack evaluator (TxDefault / Tx / StationMax, discharge in 2.0.1 and 2.1 form)."""
from __future__ import annotations

import datetime as dt
import math

from v2g_bench.csms.payloads import charging_profile
from v2g_bench.lab.charger.profile_stack import ProfileStack, iso, period_window

T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


def prof(pid, purpose, periods, version="2.0.1", **kw):
    kw.setdefault("start_schedule", iso(T0))
    return charging_profile(pid, purpose, periods, version=version, **kw)


def test_period_windows_sign_conventions():
    assert period_window({"startPeriod": 0, "limit": 7000}, "W", 400) == period_window({"startPeriod": 0, "limit": 7000.0}, "W", 1)
    w = period_window({"startPeriod": 0, "limit": -5000}, "W", 400)          # 2.0.1 V2G: negative limit
    assert (w.lo_w, w.hi_w, w.setpoint_w) == (-5000, -5000, -5000)
    w = period_window({"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -3000, "limit": 0,
                       "dischargeLimit": -4000}, "W", 400)
    assert (w.lo_w, w.hi_w, w.setpoint_w) == (-4000, 0, -3000)
    w = period_window({"startPeriod": 0, "limit": 10}, "A", 400)            # 10 A at 400 V
    assert w.hi_w == 4000
    assert period_window({"startPeriod": 0, "operationMode": "Idle"}, "W", 1).target(5000) == 0


def test_TC_K_60_CS_txprofile_overrides_txdefault_and_stationmax_caps():
    s = ProfileStack()
    assert s.add(1, prof(1, "TxDefaultProfile", [(0, 8000)]), active_tx=None)[0] == "Accepted"
    assert s.add(0, prof(2, "ChargingStationMaxProfile", [(0, 6000)]), active_tx=None)[0] == "Accepted"
    w, _ = s.window(1, T0 + dt.timedelta(seconds=1), tx_id="tx1", tx_start=T0)
    assert w.target(11000) == 6000                                       # default 8 kW capped by 6 kW max
    assert s.add(1, prof(3, "TxProfile", [(0, 3000)], transaction_id="tx1"), active_tx="tx1")[0] == "Accepted"
    w, _ = s.window(1, T0 + dt.timedelta(seconds=1), tx_id="tx1", tx_start=T0)
    assert w.target(11000) == 3000 and 3 in w.sources


def test_TC_K_02_CS_and_TC_K_11_CS_txprofile_refusals():
    s = ProfileStack()
    assert s.add(1, prof(1, "TxProfile", [(0, 3000)]), active_tx=None)[0] == "Rejected"
    assert s.add(0, prof(1, "TxProfile", [(0, 3000)]), active_tx="tx1")[0] == "Rejected"
    assert s.add(1, prof(1, "TxProfile", [(0, 3000)], transaction_id="other"), active_tx="tx1")[0] == "Rejected"
    assert s.add(1, prof(2, "ChargingStationMaxProfile", [(0, 3000)]), active_tx=None)[0] == "Rejected"


def test_discharge_in_both_versions_and_stationmax_does_not_force_charging():
    for version in ("2.0.1", "2.1"):
        s = ProfileStack()
        s.add(0, prof(9, "ChargingStationMaxProfile", [(0, 10000)], version=version), active_tx=None)
        s.add(1, prof(1, "TxProfile", [(0, 2000), (60, -5000)], version=version, transaction_id="tx"), active_tx="tx")
        w, nxt = s.window(1, T0 + dt.timedelta(seconds=10), tx_id="tx", tx_start=T0)
        assert w.target(11000) == 2000 and nxt == T0 + dt.timedelta(seconds=60)
        w, _ = s.window(1, T0 + dt.timedelta(seconds=61), tx_id="tx", tx_start=T0)
        assert w.target(11000) == -5000          # the station max caps magnitude; it does not forbid discharge
    s = ProfileStack()
    s.add(0, prof(9, "ChargingStationMaxProfile", [(0, 3000)]), active_tx=None)
    s.add(1, prof(1, "TxProfile", [(0, -5000)], transaction_id="tx"), active_tx="tx")
    w, _ = s.window(1, T0 + dt.timedelta(seconds=1), tx_id="tx", tx_start=T0)
    assert w.target(11000) == -3000              # 2.0.1 station max 3 kW caps discharge too


def test_stack_level_and_duration_fall_back():
    s = ProfileStack()
    s.add(1, prof(1, "TxDefaultProfile", [(0, 7000)], stack_level=0), active_tx=None)
    s.add(1, prof(2, "TxDefaultProfile", [(0, 2000)], stack_level=5, duration_s=30), active_tx=None)
    w, _ = s.window(1, T0 + dt.timedelta(seconds=10), tx_id="tx", tx_start=T0)
    assert w.target(11000) == 2000
    w, _ = s.window(1, T0 + dt.timedelta(seconds=31), tx_id="tx", tx_start=T0)
    assert w.target(11000) == 7000


def test_relative_profile_starts_with_the_transaction():
    s = ProfileStack()
    s.add(1, charging_profile(1, "TxDefaultProfile", [(0, 1000), (100, 4000)], version="2.0.1", kind="Relative"),
          active_tx=None)
    tx_start = T0 + dt.timedelta(seconds=500)
    w, _ = s.window(1, tx_start + dt.timedelta(seconds=50), tx_id="tx", tx_start=tx_start)
    assert w.target(11000) == 1000
    w, _ = s.window(1, tx_start + dt.timedelta(seconds=150), tx_id="tx", tx_start=tx_start)
    assert w.target(11000) == 4000


def test_TC_K_05_CS_TC_K_06_CS_TC_K_08_CS_clear():
    s = ProfileStack()
    s.add(1, prof(1, "TxDefaultProfile", [(0, 7000)], stack_level=1), active_tx=None)
    s.add(1, prof(2, "TxDefaultProfile", [(0, 7000)], stack_level=2), active_tx=None)
    assert s.clear(profile_id=1) == 1
    assert s.clear(purpose="TxDefaultProfile", stack_level=2) == 1
    assert s.clear(profile_id=42) == 0


def test_TC_K_40_CS_composite_schedule_merges_the_stack():
    s = ProfileStack()
    s.add(0, prof(9, "ChargingStationMaxProfile", [(0, 6000)]), active_tx=None)
    s.add(1, prof(1, "TxDefaultProfile", [(0, 8000), (300, 4000)]), active_tx=None)
    periods = s.composite(1, T0, 600, tx_id=None)
    assert [(off, w.hi_w) for off, w in periods] == [(0, 6000), (300, 4000)]
    assert math.isinf(ProfileStack().composite(1, T0, 60)[0][1].hi_w)
