"""The scenario runner's real-bench plant (v2g_bench.scenarios.bench_site) on fake roles: the op contract answers as
the lab's site service does (rows, virtual site meter, lateness), refuses what a bench cannot do, and the battery
emulator's own V x I is integrated as the analyzer cross-check's second path. The end-to-end proof on real roles is
SCN-REALTIME (tests/conformance/scenarios)."""
import time
from types import SimpleNamespace

import pytest

from v2g_bench.errors import BenchError
from v2g_bench.instruments.analyzer import AnalyzerReading, ElementReading
from v2g_bench.scenarios.bench_site import BenchOps


class FakeAnalyzer:
    def __init__(self, p_w):
        self.p_w, self.t0, self.calls = p_w, time.monotonic(), []

    def integration_reset(self):
        self.calls.append("reset")

    def integration_start(self):
        self.calls.append("start")

    def read(self):
        t = time.monotonic()
        e = self.p_w * (t - self.t0) / 3600.0
        return AnalyzerReading(t, {1: ElementReading(370.0, self.p_w / 370.0, self.p_w, float("nan"), float("nan"), e, 0.0),
                                   2: ElementReading(230.0, 0.0, self.p_w + 100.0, 1.0, 50.0, e, 0.0)})


class FakeBattery:
    def __init__(self, p_w):
        self.p_w = p_w

    def read(self):
        return SimpleNamespace(t=time.monotonic(), voltage_v=370.0, current_a=self.p_w / 370.0, power_w=self.p_w)


def ops(p_w=3600.0):
    roles = {"analyzer": FakeAnalyzer(p_w)}
    ctx = SimpleNamespace(role=roles.__getitem__, dc_link=FakeBattery(p_w))
    return BenchOps(ctx), roles["analyzer"]


def test_records_rows_with_the_virtual_site_meter_and_integrates_the_battery_path():
    o, an = ops()
    assert an.calls == ["reset", "start"]                  # the counters start from zero before the EV plugs in
    o.call("site.building", points=[[0.0, 1000.0, 400.0]], start_t=0.0)
    o.call("site.record", period_s=0.02, start_t=time.monotonic())
    time.sleep(0.3)
    r = o.call("site.samples", since=0, limit=1000)
    o.close()
    assert r["next"] == len(r["t"]) >= 8
    row = r["evse"][0][-1]
    assert row[1] == pytest.approx(3600.0) and row[2] == pytest.approx(3700.0) and row[7] == 50.0
    assert r["grid_w"][-1] == pytest.approx(1000.0 - 400.0 + 3700.0)
    e_in, e_out = o.battery_energy_wh()
    assert e_in > 0 and e_out == 0.0
    assert o.call("site.lag")["max_lag_s"] >= 0.0


def test_refuses_what_a_bench_cannot_do():
    o, _ = ops()
    with pytest.raises(BenchError, match="time scale 1"):
        o.call("set_time_scale", time_scale=900)
    assert o.call("set_time_scale", time_scale=1)["time_scale"] == 1.0
    for op in ("site.grid", "site.frequency_support", "fault", "station.defects"):
        with pytest.raises(BenchError, match="virtual lab"):
            o.call(op)


def test_ev_offers_both_directions_in_dynamic_mode_only_when_asked():
    from v2g_bench.ev.controller import BenchEVController
    from v2g_bench.ev.model import EVModel, Phase, PlanCursor
    m = EVModel(soc=0.5, target_soc=1.0, min_soc=0.2, max_charge_power_w=7000.0, max_discharge_power_w=6000.0,
                max_charge_current_a=40.0, max_discharge_current_a=40.0)
    c = BenchEVController.__new__(BenchEVController)
    c.model, c.plan, c._asked_power = m, PlanCursor([Phase(7000.0, 10.0)]), 7000.0
    assert c._offer() == (7000.0, 0.0)
    m.offer_both = True
    assert c._offer() == (7000.0, 6000.0)
    m.soc = 0.2                                            # at its floor the EV offers no discharge
    assert c._offer() == (7000.0, 0.0)
