"""Second ev_io driver family: pyPLC's celeron55 EV-side device protocol, over a real pty against the lab's
emulation of it (same plant, pilot and charger reaction as the EV-IO v1 board)."""
from __future__ import annotations

import pytest

from v2g_bench.errors import InstrumentError, InstrumentTimeout


@pytest.fixture
def c55():
    from v2g_bench.harness.asyncrt import LoopThread
    from v2g_bench.instruments.vendors.pyplc_celeron55 import Celeron55EvIo
    from v2g_bench.lab.frontends.serial_board import start_celeron55_service
    from v2g_bench.lab.plant import LabClock, Plant
    from v2g_bench.roles import RoleConfig

    class Ctx:
        ready: dict = {}
    loop = LoopThread("c55")
    plant = Plant(clock=LabClock())
    plant.set_battery_output(True)          # the DC link: a bench switches its battery emulator on
    ctx = Ctx()
    svc = loop.run(start_celeron55_service(plant, {"period_s": 0.05}, ctx), timeout=5)
    drv = Celeron55EvIo.open(RoleConfig("ev_io", "pyplc_celeron55", resource=ctx.ready["serial_board_c55"]["path"],
                                        timeout_s=1.0))

    async def on_loop(fn, *a):
        return fn(*a)
    try:
        yield drv, plant, (lambda fn, *a: loop.run(on_loop(fn, *a), timeout=5)), svc
    finally:
        drv.close()
        loop.run(svc.stop(), timeout=5)
        loop.stop()


def test_cp_pwm_inlet_and_safe_state(c55):
    drv, plant, call, _ = c55
    assert "celeron55" in drv.identify()
    m = drv.wait_for(lambda m: m.duty_pct == 5.0, timeout_s=2, what="5 % PWM")
    assert m.cp == "B" and m.plug
    call(plant.set_contactor, True)
    assert not plant.state().contactor_closed and drv.measure().hv_v == 0.0   # interlock: B, no energy
    drv.set_cp("C")
    drv.wait_for(lambda m: m.cp == "C", timeout_s=2, what="C confirmed")
    call(plant.set_contactor, True)
    drv.wait_for(lambda m: m.hv_v > 300, timeout_s=2, what="inlet energized")
    drv.safe_state()                                      # cp=0 -> the charger de-energizes, verified
    assert drv.measure().hv_v == 0.0 and not plant.state().contactor_closed


def test_what_the_device_cannot_do_is_said(c55):
    drv = c55[0]
    for fn in (lambda: drv.set_cp("A"), drv.unplug, drv.estop):
        with pytest.raises(InstrumentError, match="this device"):
            fn()
    assert drv.events() == []


def test_a_silent_device_is_a_clear_timeout(c55):
    drv, _, call, svc = c55
    call(svc.board._task.cancel)
    import time
    time.sleep(1.2)
    with pytest.raises(InstrumentTimeout, match="no status lines"):
        drv.measure()
