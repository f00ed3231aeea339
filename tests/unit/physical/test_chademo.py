"""CHAdeMO V2H over CAN against the lab PROCESS: our EV emulator (python-can, socketcand) and the lab's
simulated bidirectional CHAdeMO charger; charge -> discharge -> stop, power measured by the lab's
analyzer (SCPI), CAN traces (ASC) as evidence, and the charger's defects seen by the EV."""
from __future__ import annotations

import time
import types

import pytest

from v2g_bench.errors import SafeStateError


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from v2g_bench.harness.labproc import start_lab
    lab = start_lab(workdir=tmp_path_factory.mktemp("chademolab"), timeout_s=60)
    try:
        with lab.dc_link():               # the emulator powers up off: limits, then output on (driver)
            yield lab
    finally:
        code = lab.stop()
        assert code == 0, f"lab exited with {code}{' (killed after the grace)' if lab.killed else ''}:\n{lab.log_tail()}"


@pytest.fixture
def ctl(lab):
    c = lab.control(timeout=3.0)
    c.call("chademo.reset")
    c.call("evio.reset")
    yield c
    c.call("chademo.reset")
    c.close()


@pytest.fixture
def ev(lab, tmp_path):
    from v2g_bench.chademo.ev import ChademoEV
    from v2g_bench.roles import BenchContext, RoleConfig
    cfg = RoleConfig("chademo", "chademo_ev", options={"interface": "socketcand", "channel": "can0",
                                                         "host": "127.0.0.1", "port": lab.ports["can"]})
    e = ChademoEV.open(cfg, BenchContext(evidence=types.SimpleNamespace(dir=tmp_path)))
    yield e
    e.close()


@pytest.fixture
def analyzer(lab):
    from v2g_bench.instruments.vendors.scpi_analyzer import YokogawaWT5000
    from v2g_bench.roles import RoleConfig
    a = YokogawaWT5000.open(RoleConfig(role="analyzer", driver="yokogawa_wt5000", options={"elements": [1, 2]},
                                       resource=f"TCPIP0::127.0.0.1::{lab.ports['analyzer_scpi']}::SOCKET"))
    a.set_update_interval(0.05)
    yield a
    a.close()


def _settle(analyzer, pred, timeout_s=8.0):
    deadline = time.monotonic() + timeout_s
    while True:
        p = analyzer.read()[1].power_w
        if pred(p) or time.monotonic() > deadline:
            return p
        time.sleep(0.1)


def test_charge_discharge_stop_measured_and_traced(ev, ctl, analyzer):
    ev.start(20.0, max_discharge_a=15.0)
    s = ev.wait_charger(lambda s, d: s["ChargerStatus"] == 1, timeout_s=5, what="charging (H'109.5.0)")
    assert s["ConnectorLocked"] == 1 and s["ChargerStopControl"] == 0
    p = _settle(analyzer, lambda p: p > 7100)
    assert p == pytest.approx(20 * analyzer.read()[1].voltage_v, rel=0.05)
    s = ev.wait_charger(lambda s, d: s["PresentChargingCurrent"] >= 19, timeout_s=3, what="20 A reported")
    ctl.call("chademo.target", target_w=-3000.0)        # the home asks for 3 kW (V2H)
    p = _settle(analyzer, lambda p: p < -2900)
    assert p == pytest.approx(-3000, rel=0.05)
    d = ev.wait_charger(lambda s, d: d.get("PresentDischargeCurrent", 0) >= 7, timeout_s=3, what="discharge reported")
    assert d["PresentChargingCurrent"] == 0
    ev.request_stop()
    ev.wait_charger(lambda s, d: s["ChargerStatus"] == 0 and s["ChargerStopControl"] == 1, timeout_s=5,
                    what="stopped (H'109.5.0 = 0, H'109.5.5 = 1)")
    assert abs(_settle(analyzer, lambda p: abs(p) < 50)) < 50
    assert ctl.state()["contactor_closed"] is False
    st = ev.cycle_stats(0x109)
    assert st["n"] > 20 and 80 <= st["mean_ms"] <= 130, st
    assert not ev.log.violations
    ev.close()
    asc = ev.asc_path.read_text()
    assert " 102 " in asc and " 109 " in asc and " 208 " in asc and " 200 " in asc


def test_a_charger_that_ignores_the_stop_fails_the_safe_state(ev, ctl):
    ctl.call("chademo.defect", ignore_stop=True)
    ev.start(10.0)
    ev.wait_charger(lambda s, d: s["ChargerStatus"] == 1, timeout_s=5, what="charging")
    with pytest.raises(SafeStateError, match="H'109.5.5"):
        ev.safe_state()


def test_bad_dlc_and_silence_are_seen(ev, ctl):
    ctl.call("chademo.defect", bad_dlc=True)
    ev.start(0.0)
    deadline = time.monotonic() + 3
    while not ev.log.violations and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ev.log.violations and ev.log.violations[0][1] == 0x109 and "DLC 5" in ev.log.violations[0][2]
    ctl.call("chademo.defect", bad_dlc=False, silent=True)
    deadline = time.monotonic() + 4
    while not ev.log.timeouts and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(fid == 0x108 for _, fid, _ in ev.log.timeouts), ev.log.timeouts


def test_a_lost_ev_stops_the_charger(lab, ctl, tmp_path):
    """Lost link: the EV's frames stop (its process gone) while energized -> the charger stops within its
    1 s CAN timeout and opens the contactor."""
    from v2g_bench.chademo.ev import ChademoEV
    from v2g_bench.roles import RoleConfig
    e = ChademoEV.open(RoleConfig("chademo", "chademo_ev", options={"interface": "socketcand", "channel": "can0",
                                                                      "host": "127.0.0.1", "port": lab.ports["can"]}))
    e.start(10.0)
    e.wait_charger(lambda s, d: s["ChargerStatus"] == 1, timeout_s=5, what="charging")
    assert ctl.state()["contactor_closed"]
    e.close()                                    # no stop request: the frames just end
    deadline = time.monotonic() + 5
    while ctl.state()["contactor_closed"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ctl.state()["contactor_closed"] and ctl.call("chademo.status")["state"] == "idle"


class _Ctx:
    """A stand-in case context: real roles (EV emulator, analyzer, the lab's dut ops), stub bookkeeping."""

    def __init__(self, ev, analyzer, ctl):
        self.roles = {"chademo": ev}
        self.analyzer = analyzer
        self.dc_link = None                  # the lab's battery emulator output is on from its start
        self.dut = types.SimpleNamespace(op=lambda name, **kw: ctl.call(name, **kw))
        self.vars = {}

    def role(self, name):
        return self.roles[name]

    def attach(self, *_):
        pass


def test_the_chademo_step_words_fail_a_defective_charger(ev, ctl, analyzer):
    from v2g_bench.conformance import physical_steps as ps
    from v2g_bench.errors import Nonconformance
    ctx = _Ctx(ev, analyzer, ctl)
    ps.chademo_charges(5.0).run(ctx)
    ctl.call("chademo.defect", bad_dlc=True)       # 0x109 now with 5 data bytes
    with pytest.raises(Nonconformance, match="malformed charger frames"):
        ps.chademo_cycle().run(ctx)
    ctl.call("chademo.defect", bad_dlc=False, ignore_stop=True)
    with pytest.raises(Nonconformance, match="did not stop"):
        ps.chademo_stops("stop").run(ctx)
