"""The CP step words judge a charger: run against the lab's board and charger reaction with the charger's
defects, each must give the Nonconformance it exists for (and pass without the defect). The case context is a
stand-in (the engine is tested on its own); the board, the pilot and the reaction are the real ones."""
from __future__ import annotations

import types

import pytest

from v2g_bench.conformance import physical_steps as ps
from v2g_bench.errors import Nonconformance


class Ctx:
    def __init__(self, roles, protocols=("ISO15118-20",)):
        self.roles, self.vars, self.attached = roles, {}, []
        self.dut_profile = types.SimpleNamespace(protocols=set(protocols), pixit={})

    def role(self, name):
        return self.roles[name]

    def has_role(self, name):
        return name in self.roles

    def pixit(self, name, default):
        return default

    def timer(self, name, normative_s):
        return normative_s

    def attach(self, name, obj):
        self.attached.append((name, obj))

    def save(self, name, value):
        self.vars[name] = value


def _energize(board_lab, evio):
    evio.set_cp("C")
    board_lab.call(board_lab.plant.set_contactor, True)
    assert evio.measure().hv_v > 60


def test_pwm_started_passes_and_fails_without_pwm(evio, board_lab):
    ctx = Ctx({"ev_io": evio})
    ps.cp_plug_in("B").run(ctx)
    ps.cp_pwm_started().run(ctx)
    assert ctx.vars["cp_duty"]["meaning"] == "digital"
    board_lab.call(board_lab.ops["pilot.defect"], no_pwm=True)
    ps.cp_plug_in("B").run(ctx)                 # unplug (A: oscillator off), plug in again: no PWM now
    with pytest.raises(Nonconformance, match="no PWM"):
        ps.cp_pwm_started().run(ctx)


@pytest.mark.parametrize("to", ["B", "A", "E"])
def test_stop_within_100_ms(evio, board_lab, to):
    ctx = Ctx({"ev_io": evio})
    ps.cp_plug_in("B").run(ctx)
    _energize(board_lab, evio)
    ps.cp_stop_on(to).run(ctx)
    assert ctx.vars[f"cp_stop_{to}"]["reaction_s"] <= 0.1


def test_a_slow_charger_fails_the_stop(evio, board_lab):
    ctx = Ctx({"ev_io": evio})
    board_lab.call(board_lab.ops["pilot.defect"], slow_stop_s=0.3)
    ps.cp_plug_in("B").run(ctx)
    _energize(board_lab, evio)
    with pytest.raises(Nonconformance, match=r"de-energized \d+ ms after state B \(limit 100 ms"):
        ps.cp_stop_on("B").run(ctx)


def test_a_charger_ignoring_the_pilot_fails(evio, board_lab):
    ctx = Ctx({"ev_io": evio})
    board_lab.call(board_lab.ops["pilot.defect"], ignore_cp=True)
    ps.cp_plug_in("B").run(ctx)
    board_lab.call(board_lab.plant.set_contactor, True)       # energy in state B: no interlock
    with pytest.raises(Nonconformance, match="in state B"):
        ps.cp_no_energy_in("B", 0.3).run(ctx)
    evio.set_cp("C")
    with pytest.raises(Nonconformance, match="still energized 2 s after"):
        ps.cp_stop_on("A").run(ctx)
