"""The ev_io driver (pyserial) against the lab's EV-side board emulation over a real pseudo-terminal."""
from __future__ import annotations

import time

import pytest

from v2g_bench.errors import InstrumentError, InstrumentTimeout, SafeStateError
from v2g_bench.instruments.ev_io import parse_meas


def _energize(board_lab):
    """What the charger's SECC does on PowerDelivery: contactor closed, some power."""
    board_lab.call(board_lab.plant.set_contactor, True)
    board_lab.call(board_lab.plant.set_power_setpoint, 3000.0)


def test_identify_plug_in_and_measure(evio, board_lab):
    assert evio.identify().startswith("V2G-BENCH,EVIO-1,")
    m = evio.measure()
    assert m.cp == "A" and m.high_v == 12.0 and not m.plug and m.pp_ohm is None
    evio.plug_in(pp_ohm=220.0, state="B")
    m = evio.wait_for(lambda x: x.duty_pct < 100, timeout_s=2, what="PWM")
    assert m.cp == "B" and 8 <= m.high_v <= 10 and m.low_v == -12.0
    assert m.duty_pct == 5.0 and m.freq_hz == 1000 and m.pp_ohm == 220.0 and m.plug
    evio.set_cp("C")
    assert evio.measure().cp == "C"


def test_energy_only_in_c_and_the_stop_is_timestamped_by_the_board(evio, board_lab):
    evio.plug_in(state="B")
    _energize(board_lab)
    assert evio.measure().hv_v == 0.0, "inlet energized in state B"
    evio.set_cp("C")
    _energize(board_lab)
    assert evio.measure().hv_v > 300
    evio.set_cp("B")
    evio.wait_for(lambda x: x.hv_v == 0.0, timeout_s=2, what="inlet off")
    ev = evio.events()
    t_b = [e.t_ms for e in ev if e.what == "CP" and e.value == "B"][-1]
    t_off = [e.t_ms for e in ev if e.what == "HV" and e.value == "0"][-1]
    assert 0 <= t_off - t_b <= 100, ev            # IEC 61851-1: de-energize within 100 ms of C -> B


def test_bad_commands_are_refused_with_the_reason(evio):
    with pytest.raises(InstrumentError, match="refused"):
        evio.query("CP Z")
    with pytest.raises(InstrumentError, match="refused"):
        evio.query("FOO")
    with pytest.raises(ValueError):
        evio.set_cp("F")


def test_garbage_and_silence_are_clear_errors(evio, board_lab):
    board_lab.call(board_lab.ops["evio.fault"], True, None)
    with pytest.raises(InstrumentError, match="garbage|unexpected|unreadable"):
        evio.measure()
    board_lab.call(board_lab.ops["evio.fault"], False, True)
    t0 = time.monotonic()
    with pytest.raises(InstrumentTimeout, match="no answer"):
        evio.identify()
    assert time.monotonic() - t0 < 3.0


def test_parse_meas_rejects_broken_lines():
    ok = "MEAS t=1 cp=B hi=8.79 lo=-12.00 duty=5.0 freq=1000 pp=OPEN hv=0.0 plug=1 estop=0"
    assert parse_meas(ok).cp == "B"
    for bad in ("MEAS t=1", "HELLO", ok.replace("hi=8.79", "hi=x"), ok.replace("cp=B", "cpB")):
        with pytest.raises(ValueError):
            parse_meas(bad)


def test_safe_state_stops_unplugs_and_verifies(evio, board_lab):
    evio.plug_in(state="B")
    evio.set_cp("C")
    _energize(board_lab)
    assert evio.measure().hv_v > 300
    evio.safe_state()
    m = evio.measure()
    assert m.cp == "A" and not m.plug and m.hv_v == 0.0
    assert not board_lab.plant.state().contactor_closed


def test_safe_state_estops_a_charger_that_keeps_energy(evio, board_lab):
    board_lab.call(board_lab.ops["pilot.defect"], ignore_cp=True)     # ignore_cp: a non-conformant charger
    evio.plug_in(state="B")
    evio.set_cp("C")
    _energize(board_lab)
    evio.stop_timeout_s = 0.3
    with pytest.raises(SafeStateError, match="energized"):
        evio.safe_state()
    assert board_lab.board.estop and board_lab.board.applied_state() == "E"


def test_estop_latches_cp_e(evio, board_lab):
    evio.plug_in(state="C")
    evio.estop()
    m = evio.measure()
    assert m.estop and m.cp == "E"
    with pytest.raises(InstrumentError, match="E-stop"):
        evio.set_cp("C")
    evio.safe_state()                      # clears the latch and ends in A, unplugged
    m = evio.measure()
    assert not m.estop and m.cp == "A" and not m.plug


def test_board_watchdog_unplugs_when_the_host_goes_silent(evio, board_lab):
    evio.plug_in(state="C")
    evio.command("WDOG 0.2")
    deadline = time.monotonic() + 3
    while board_lab.board.plug and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not board_lab.board.plug and board_lab.plant.pilot.reading().state == "A"


def test_unplugging_the_board_returns_the_lab_to_protocol_only(evio, board_lab):
    """With the relay open the board is off the inlet: the pilot is no longer driven, so a protocol-only EV
    session (no CP) may energize again, as before the board was used; while plugged in B it may not."""
    plant = board_lab.plant
    evio.plug_in(state="B")
    board_lab.call(plant.set_contactor, True)
    assert plant.pilot.driven and not plant.state().contactor_closed
    evio.unplug()
    assert not plant.pilot.driven
    board_lab.call(plant.set_contactor, True)
    assert plant.state().contactor_closed
