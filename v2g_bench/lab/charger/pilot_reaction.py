"""The simulated charger's reaction to the control pilot (IEC 61851-1 Annex A), as a conformant
charger behaves:

- A (no EV): oscillator off (+12 V), output de-energized; an EV session still running is stopped.
- B (EV connected): the oscillator starts: 5 % duty in `hlc` mode (digital communication required,
  ISO 15118-3 [V2G3-A07-..]: a DC / ISO 15118 charger) or the duty of `max_current_a` in `basic`
  mode (Table A.7); from C/D, B means "EV not ready": the output is de-energized.
- C/D: energy is allowed. In `basic` mode the charger closes the contactor and delivers
  min(PWM current, cable rating) itself; in `hlc` mode the SECC closes it on PowerDelivery.
- E (CP short), a missing diode, an invalid voltage: de-energize at once.

"No energy before C/D" is enforced as a contactor interlock on the plant (`Plant.contactor_interlocks`),
so the SECC's PowerDelivery cannot close the contactor while the EV shows B. Defects for negative
cases (control op `pilot.defect`): `no_pwm` (the oscillator never starts), `slow_stop_s` (de-energize
late), `ignore_cp` (keep energy on B/A/E: a non-conformant charger).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import weakref

from v2g_bench.lab.plant.pilot import PilotReading, current_to_duty

log = logging.getLogger("v2g_bench.lab.charger.pilot_reaction")

HLC_DUTY_PCT = 5.0
DEFECTS = {"no_pwm": False, "slow_stop_s": 0.0, "ignore_cp": False}


class PilotReaction:
    def __init__(self, plant, charger=None, *, mode: str = "hlc", max_current_a: float = 32.0):
        self.plant = plant
        self.charger = charger
        self.mode = mode
        self.max_current_a = float(max_current_a)
        self.defects = dict(DEFECTS)
        self.last_state: str | None = "A"
        self.reactions: list[tuple[float, str, str]] = []      # (plant t, CP state, what was done)
        self._timer = None
        plant.pilot.add_listener(self._on_pilot)
        plant.contactor_interlocks.append(self.interlock)

    # -- configuration ---------------------------------------------------------------------------
    def configure(self, mode: str | None = None, max_current_a: float | None = None) -> dict:
        if mode is not None:
            if mode not in ("hlc", "basic"):
                raise ValueError(f"CP mode {mode!r}: 'hlc' (5 %, ISO 15118) or 'basic' (PWM current)")
            self.mode = mode
        if max_current_a is not None:
            current_to_duty(float(max_current_a))          # validates 6..80 A
            self.max_current_a = float(max_current_a)
        self._on_pilot("configure", self.plant.pilot.reading())
        return self.status()

    def set_defect(self, **kw) -> dict:
        unknown = set(kw) - set(DEFECTS)
        if unknown:
            raise ValueError(f"unknown CP defect(s) {sorted(unknown)}; known: {sorted(DEFECTS)}")
        self.defects.update({k: type(DEFECTS[k])(v) for k, v in kw.items()})
        return dict(self.defects)

    def clear(self) -> None:
        self.defects = dict(DEFECTS)
        self.mode, self.max_current_a = "hlc", 32.0

    # -- the rule ---------------------------------------------------------------------------------
    def interlock(self) -> str | None:
        # the stage serves one outlet at a time: the CHAdeMO outlet has no IEC 61851 pilot
        if getattr(self.plant, "active_outlet", None) == "chademo":
            return None
        if self.defects["ignore_cp"] or self.plant.pilot.energy_allowed():
            return None
        r = self.plant.pilot.reading()
        return f"CP state {r.state or 'invalid'}{'' if r.diode_ok else ' (diode missing)'}: no energy before C/D"

    def duty_pct(self) -> float:
        return HLC_DUTY_PCT if self.mode == "hlc" else current_to_duty(self.max_current_a)

    def _on_pilot(self, what: str, r: PilotReading) -> None:
        if what == "pwm" or not self.plant.pilot.driven and what != "released":
            return
        st = r.state if r.diode_ok or not r.pwm_on else None
        if st == self.last_state and what not in ("configure", "released"):
            return                       # the charger reacts to state changes (a PP/diode write in A is none)
        pilot = self.plant.pilot
        if st == "A" or what == "released":
            pilot.set_pwm(None)
            self._stop(st or "A", "unplugged")
        elif st == "B":
            if not self.defects["no_pwm"] and not r.pwm_on:
                pilot.set_pwm(self.duty_pct())
                self._note(st, f"PWM {self.duty_pct():g} %")
            elif r.pwm_on and abs(r.duty_pct - self.duty_pct()) > 1e-6:
                pilot.set_pwm(self.duty_pct())
            if self.last_state in ("C", "D"):
                self._stop(st, "EV not ready (B)")
        elif st in ("C", "D"):
            self._cancel_timer()
            if self.mode == "basic" and r.pwm_on:
                amps = min(x for x in (self.max_current_a, r.cable_rating_a) if x is not None)
                g = self.plant.cfg.grid
                self.plant.set_contactor(True)
                self.plant.set_power_setpoint(amps * g.voltage_v * g.phases)
                self._note(st, f"energized {amps:g} A")
        else:                                     # E, missing diode, invalid voltage
            pilot.set_pwm(None)
            self._stop(st or "invalid", "CP fault")
        self.last_state = st

    def _stop(self, st: str, why: str) -> None:
        if self.defects["ignore_cp"]:
            self._note(st, f"ignored ({why})")
            return
        delay = float(self.defects["slow_stop_s"])
        if delay > 0:
            self._cancel_timer()
            self._timer = _call_later(delay, self._deenergize, st, why)
            self._note(st, f"de-energize scheduled in {delay:g} s ({why})")
        else:
            self._deenergize(st, why)

    def _deenergize(self, st: str, why: str) -> None:
        if getattr(self.plant, "active_outlet", None) == "chademo":
            self._note(st, f"not this outlet's energy (CHAdeMO active): {why}")
            return
        self.plant.set_power_setpoint(0.0)
        self.plant.set_contactor(False)
        if self.charger is not None and self.charger.session is not None:
            self.charger.request_stop(f"CP state {st}: {why}")
        self._note(st, f"de-energized ({why})")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _note(self, st: str, what: str) -> None:
        self.reactions.append((self.plant.clock.now(), st, what))
        del self.reactions[:-100]
        log.info("CP %s: %s", st, what)

    def status(self) -> dict:
        return {"mode": self.mode, "max_current_a": self.max_current_a, "duty_pct": self.duty_pct(),
                "defects": dict(self.defects), "pilot": self.plant.pilot.reading().as_dict(),
                "driven": self.plant.pilot.driven,
                "reactions": [[round(t, 4), s, w] for t, s, w in self.reactions[-10:]]}


def _call_later(delay: float, fn, *args):
    """On the lab's loop when there is one (the lab process), else a timer thread (unit tests)."""
    try:
        return asyncio.get_running_loop().call_later(delay, fn, *args)
    except RuntimeError:
        t = threading.Timer(delay, fn, args)
        t.daemon = True
        t.start()
        return t


_reactions: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def attach(plant, charger=None) -> PilotReaction:
    """THE pilot reaction of `plant` (made on first use, as `coupling.charger_for`)."""
    r = _reactions.get(plant)
    if r is None:
        r = PilotReaction(plant, charger)
        _reactions[plant] = r
    elif charger is not None:
        r.charger = charger
    return r
