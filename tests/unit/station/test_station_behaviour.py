"""The simulated station's reconnect back-off, network cut, switchable defects and DER controls."""
from __future__ import annotations

import time

import pytest

from v2g_bench.errors import BenchError
from v2g_bench.lab.charger.station import StationConfig
from v2g_bench.lab.charger.station_defects import DEFECTS, Defects


def test_backoff_follows_the_ocpp_retry_variables(make_station):
    st = make_station(retry_backoff_wait_minimum_s=2, retry_backoff_random_range_s=0, retry_backoff_repeat_times=2)
    waits = [st.svc.backoff_s(n) for n in range(5)]
    assert waits == [2, 4, 8, 8, 8]


def test_reconnects_after_a_network_cut_with_backoff_not_a_busy_loop(online):
    csms, st = online("2.0.1", retry_backoff_wait_minimum_s=1, retry_backoff_random_range_s=0)
    n0 = len(st.svc.connect_attempts)
    st.op("station.cut_network")
    csms.wait_for_disconnect("LAB-CS-001", 5)
    deadline = time.monotonic() + 20            # a loaded machine only makes the gaps longer, never shorter
    while len(st.svc.connect_attempts) < n0 + 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    attempts = st.svc.connect_attempts[n0:]
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert len(gaps) >= 2 and gaps[0] >= 0.9 and gaps[1] >= 1.9, gaps     # 1 s, then 2 s: not every 0.2 s
    st.op("station.restore_network")
    csms.wait_for_station("LAB-CS-001", timeout=15)
    deadline = time.monotonic() + 10            # connected at the CSMS first, online at the station a moment later
    while not st.op("station.status")["booted"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert st.op("station.status")["booted"]


def test_defects_are_checked_by_name():
    d = Defects(["seq_no_skip"])
    assert d.on("seq_no_skip") and not d.on("drop_offline_queue")
    with pytest.raises(KeyError):
        d.on("no_such_defect")                 # a typo in the station's code is not "off"
    with pytest.raises(BenchError, match="unknown station defect"):
        Defects(["nope"])
    d.set([])
    d.reset()
    assert d.on("seq_no_skip")                 # clear restores the configured set


def test_station_config_refuses_bad_backoff_and_defects():
    with pytest.raises(BenchError):
        StationConfig.from_dict({"retry_backoff_wait_minimum_s": -1})
    cfg = StationConfig.from_dict({"defects": ["seq_no_skip"]})
    assert cfg.defects == ["seq_no_skip"]


def test_seq_no_skip_defect_is_visible_on_the_wire(online):
    csms, st = online("2.0.1", defects=["seq_no_skip"])
    st.op("station.start_transaction")
    csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Started", timeout=5)
    up = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Updated", timeout=5)
    assert up["seqNo"] == 2


def test_every_defect_is_documented_with_its_catching_row():
    for d in DEFECTS.values():
        assert d.what and d.caught_by.startswith("TC_") and "[ocpp" in d.caught_by


def test_der_limit_max_discharge_caps_the_window(online):
    csms, st = online("2.1")
    r = csms.call("SetDERControl", {"isDefault": True, "controlId": "x", "controlType": "LimitMaxDischarge",
                                    "limitMaxDischarge": {"priority": 1, "pctMaxDischargePower": 30}})
    assert r["status"] == "Accepted"
    lo = st.op("station.status")["window"][0]
    assert lo == pytest.approx(-0.3 * min(11000, st.plant.cfg.stage.discharge.p_max_w))
