"""End to end against the lab PROCESS: the EV-side board on the lab's pty plugs in (CP B), the
charger starts its PWM (5 %) and SLAC (pyslac), our EV matches over the veth, sets CP C, and runs an
ISO 15118-20 DC_BPT session (SDP + V2GTP) over the same link; CP B then de-energizes within 100 ms
on the board's clock; the unwind leaves CP A, unplugged, no power."""
from __future__ import annotations

import threading

import pytest

from v2g_bench.ev.labnet import unavailable_reason

_why = unavailable_reason()
pytestmark = pytest.mark.skipif(_why is not None, reason=f"needs a veth pair and a netns: {_why}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from v2g_bench.ev.labnet import lab_network
    from v2g_bench.harness.labproc import start_lab

    with lab_network({"secc": {"codec": "own"}}) as net:
        lab = start_lab(workdir=tmp_path_factory.mktemp("physlab"), overrides=net.overrides, timeout_s=90)
        try:
            with lab.dc_link():           # the emulator powers up off: limits, then output on (driver)
                yield lab
        finally:
            code = lab.stop()
            assert code == 0, f"lab exited with {code}{' (killed after the grace)' if lab.killed else ''}:\n{lab.log_tail()}"


def test_plug_slac_session_and_cp_stop_through_the_lab_process(lab, tmp_path):
    from v2g_bench.ev.emulator import EVEmulator
    from v2g_bench.ev.model import Phase
    from v2g_bench.ev.slac import SlacTimers, run_slac
    from v2g_bench.instruments.ev_io import EvIoSerialBoard
    from v2g_bench.roles import BenchContext, RoleConfig

    assert lab.info["slac"]["iface"] == lab.info["iso15118"]["secc_iface"]
    io = EvIoSerialBoard.open(RoleConfig("ev_io", "evio_serial", resource=lab.info["serial_board"]["path"],
                                         timeout_s=2.0, options={"watchdog_s": 5.0}), None)
    ev = EVEmulator.open(RoleConfig("ev", "iso15118_evcc", options={"codec": "own"}), BenchContext(lab=lab))
    ctl = lab.control(timeout=3.0)
    try:
        io.plug_in(pp_ohm=None, state="B")
        m = io.wait_for(lambda x: x.duty_pct == 5.0, timeout_s=3, what="5 % PWM")
        assert m.cp == "B" and m.freq_hz == 1000
        r = run_slac(ev.iface, netns=ev.netns, timers=SlacTimers(scale=3.0), pcap_path=tmp_path / "slac.pcap")
        assert r.matched and ctl.call("slac.status")["state"] == "matched"
        io.set_cp("C")
        res = ev.run_session(protocol="ISO15118-20", service="DC_BPT", control_mode="dynamic",
                             plan=[Phase(4000, 2.0), Phase(-4000, 2.0)], timeout=60)
        assert res.passed, res.summary()
        assert "SessionStopRes" in res.rx_names
        # a second session, stopped by the EV leaving C: the charger must de-energize within 100 ms
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("r", ev.run_session(
            protocol="ISO15118-20", service="DC_BPT", control_mode="dynamic", plan=[Phase(4000, 60.0)], timeout=90)))
        t.start()
        io.wait_for(lambda x: x.hv_v > 60, timeout_s=30, what="inlet energized by the second session")
        io.events()
        io.set_cp("B")
        io.wait_for(lambda x: x.hv_v < 60, timeout_s=2, what="inlet off after CP B")
        ev_ = io.events()
        t_b = next(e.t_ms for e in ev_ if e.what == "CP" and e.value == "B")
        t_off = next(e.t_ms for e in ev_ if e.what == "HV" and e.value == "0" and e.t_ms >= t_b)
        assert 0 <= t_off - t_b <= 100, ev_
        t.join(30)                                 # the charger ended the EV's session (EVSENotification)
        assert not t.is_alive()
    finally:
        ev.safe_state()
        ev.close()
        io.safe_state()
        io.close()
    st = ctl.call("evio.status")
    assert st["applied"] == "A" and not st["plug"]
    assert not ctl.state()["contactor_closed"]
    ctl.close()
