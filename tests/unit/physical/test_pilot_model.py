"""IEC 61851-1 control pilot / proximity model of the plant and the simulated charger's reaction."""
from __future__ import annotations

import math

import pytest

from v2g_bench.lab.charger.coupling import charger_for
from v2g_bench.lab.charger.pilot_reaction import attach
from v2g_bench.lab.plant import LabClock, Plant
from v2g_bench.lab.plant.pilot import current_to_duty, decode_state, duty_to_current, pp_to_rating


@pytest.mark.parametrize("duty,amps", [(2.9, None), (3.0, "digital"), (5.0, "digital"), (7.0, "digital"),
                                       (7.5, None), (8.0, 6.0), (9.9, 6.0), (10.0, 6.0), (16.0, 9.6),
                                       (50.0, 30.0), (85.0, 51.0), (90.0, 65.0), (96.0, 80.0), (97.0, 80.0),
                                       (97.1, None)])
def test_duty_to_current_follows_table_a8(duty, amps):
    assert duty_to_current(duty) == amps


def test_current_to_duty_round_trips_and_refuses_out_of_range():
    for a in (6.0, 16.0, 32.0, 51.0, 63.0, 80.0):
        assert duty_to_current(current_to_duty(a)) == pytest.approx(a, abs=0.02)
    with pytest.raises(ValueError):
        current_to_duty(5.0)
    with pytest.raises(ValueError):
        current_to_duty(81.0)


def test_pp_coding_and_state_decoding():
    assert [pp_to_rating(r) for r in (1500, 680, 220, 100, 1000, None, math.inf)] == [13, 20, 32, 63, None, None, None]
    assert pp_to_rating(1500 * 1.09) == 13 and pp_to_rating(1500 * 1.12) is None
    assert [decode_state(v) for v in (12, 9, 6, 3, 0, -12, 10.5)] == ["A", "B", "C", "D", "E", "F", None]


def test_cp_voltages_follow_the_divider():
    p = Plant(clock=LabClock())
    pilot = p.pilot
    assert pilot.reading().high_v == 12.0 and pilot.reading().state == "A"
    expect = {"B": (8.0, 10.0), "C": (5.0, 7.0), "D": (2.0, 4.0), "E": (-1.0, 1.0)}
    for st, (lo, hi) in expect.items():
        r = pilot.set_ev_state(st)
        assert lo <= r.high_v <= hi and r.state == st, r
    pilot.set_ev_state("B")
    pilot.set_pwm(25.0)
    r = pilot.reading()
    assert r.pwm_on and r.low_v == -12.0 and r.duty_pct == 25.0 and r.freq_hz == 1000.0 and r.max_current_a == 15.0
    pilot.set_diode(False)
    assert pilot.reading().low_v > -12.0
    pilot.set_state_f()
    assert pilot.reading().state == "F" and pilot.reading().high_v == -12.0
    with pytest.raises(ValueError):
        pilot.set_ev_state("F")          # F is driven by the charger, not the EV
    with pytest.raises(ValueError):
        pilot.set_pp(-3)


def _plant():
    p = Plant(clock=LabClock(manual=True))
    p.set_battery_output(True)            # the DC link: a bench switches its battery emulator on
    charger_for(p)                        # the coupling attaches the pilot reaction
    return p


def test_charger_starts_pwm_on_b_and_refuses_energy_before_c():
    p = _plant()
    assert p.pilot.reading().pwm_on is False
    p.pilot.set_ev_state("B")
    r = p.pilot.reading()
    assert r.pwm_on and r.duty_pct == 5.0 and r.max_current_a == "digital"
    p.set_contactor(True)                 # what the SECC does on PowerDelivery
    assert p.state().contactor_closed is False, "contactor closed with CP in state B"
    p.pilot.set_ev_state("C")
    p.set_contactor(True)
    assert p.state().contactor_closed is True


@pytest.mark.parametrize("to", ["B", "A", "E"])
def test_charger_deenergizes_when_the_ev_leaves_c(to):
    p = _plant()
    p.pilot.set_ev_state("B")
    p.pilot.set_ev_state("C")
    p.set_contactor(True)
    p.set_power_setpoint(5000.0)
    p.step(2.0)
    assert p.state().dc_power_w > 1000
    p.pilot.set_ev_state(to)
    s = p.state()
    assert not s.contactor_closed and s.setpoint_w == 0.0 and abs(s.dc_power_w) < 1.0
    assert p.pilot.reading().pwm_on is (to == "B")


def test_missing_diode_is_a_fault():
    p = _plant()
    p.pilot.set_ev_state("B")
    p.pilot.set_diode(False)
    p.pilot.set_ev_state("C")
    p.set_contactor(True)
    assert not p.state().contactor_closed


def test_basic_mode_energizes_with_pwm_current_and_cable_rating():
    p = _plant()
    reaction = attach(p)
    reaction.configure(mode="basic", max_current_a=32.0)
    p.pilot.set_pp(680.0)                 # a 20 A cable
    p.pilot.set_ev_state("B")
    r = p.pilot.reading()
    assert r.duty_pct == pytest.approx(53.33, abs=0.01) and r.cable_rating_a == 20.0
    p.pilot.set_ev_state("C")
    assert p.state().contactor_closed and p.state().setpoint_w == pytest.approx(20 * 230 * 3)


def test_defects_make_a_nonconformant_charger():
    p = _plant()
    reaction = attach(p)
    reaction.set_defect(no_pwm=True)
    p.pilot.set_ev_state("B")
    assert not p.pilot.reading().pwm_on
    reaction.set_defect(no_pwm=False, ignore_cp=True)
    p.pilot.set_ev_state("A")
    p.set_contactor(True)
    assert p.state().contactor_closed, "ignore_cp must let the contactor close in A"
    with pytest.raises(ValueError):
        reaction.set_defect(nonsense=True)


def test_without_a_board_the_pilot_does_not_gate():
    p = _plant()
    p.set_contactor(True)                 # protocol-only tests: nobody drives CP
    assert p.state().contactor_closed
