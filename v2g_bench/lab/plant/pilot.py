"""IEC 61851-1 control pilot (CP) and proximity pilot (PP) of the plant's vehicle connector.

The CP circuit (IEC 61851-1:2017 Annex A, Figure A.1): the charger drives +12 V / -12 V through
R1 = 1 kOhm (a constant +12 V, a 1 kHz PWM, or a constant -12 V for state F); the EV loads it with a
diode and R2 = 2.74 kOhm (state B), R2 || R3 = 1.3 kOhm (C) or R2 || 270 Ohm (D). A short CP-PE is
state E. What the CP line shows is computed from that divider, so both sides read the same voltage:

    high level = 12 V * R_ev / (R1 + R_ev)        (A: open -> 12 V, B ~ 8.8 V, C ~ 5.6 V, D ~ 2.4 V)
    low level  = -12 V (the diode blocks)          (without the diode: -12 V * R_ev / (R1 + R_ev))

The state is decoded from the high level as IEC 61851-1 Table A.3 (nominal 12/9/6/3/0/-12 V); a
missing diode with PWM on is a fault the charger must treat as state F/E. The charger's duty cycle
maps to the maximum AC current as Table A.8 (`duty_to_current`); 5 % (3-7 %) asks for digital
communication (ISO 15118 / DIN 70121 over PLC). PP (Annex B, the cable's Rc) maps to the cable
rating (`pp_to_rating`).

Every change is time-stamped on the plant clock and kept in a short history, so the charger's
reaction (contactor, power) can be judged from the plant's own timestamps.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable

R1_OHM = 1000.0
# EV-side CP load per state (Annex A, Table A.2 / Figure A.1): R2, R2 || R3 (C), R2 || R3' (D); E = short
EV_LOAD_OHM = {"A": math.inf, "B": 2740.0, "C": 2740.0 * 1300.0 / (2740.0 + 1300.0),
               "D": 2740.0 * 270.0 / (2740.0 + 270.0), "E": 0.0}
EV_STATES = tuple(EV_LOAD_OHM)          # what the EV side (our board) can set
# Table A.3: nominal high level per state, +-1 V (A 11-13, B 8-10, C 5-7, D 2-4, E -1..1); F = -12 V
_STATE_BANDS = (("A", 11.0, 13.0), ("B", 8.0, 10.0), ("C", 5.0, 7.0), ("D", 2.0, 4.0), ("E", -1.0, 1.0),
                ("F", -13.0, -11.0))
NOMINAL_FREQ_HZ = 1000.0
# Annex B (Rc of the cable assembly, nominal): resistance -> cable current rating in A
PP_CODING = ((1500.0, 13.0), (680.0, 20.0), (220.0, 32.0), (100.0, 63.0))


def duty_to_current(duty_pct: float) -> float | str | None:
    """IEC 61851-1:2017 Table A.8 (as the EV interprets the PWM): amperes, "digital" (3-7 %: digital
    communication required, no basic charging) or None (charging not allowed)."""
    d = float(duty_pct)
    if 3.0 <= d <= 7.0:
        return "digital"
    if 8.0 <= d < 10.0:
        return 6.0
    if 10.0 <= d <= 85.0:
        return round(d * 0.6, 3)
    if 85.0 < d <= 96.0:
        return round((d - 64.0) * 2.5, 3)
    if 96.0 < d <= 97.0:
        return 80.0
    return None


def current_to_duty(amps: float) -> float:
    """The inverse the charger applies (Table A.7): 6-51 A -> A/0.6 %, 51-80 A -> A/2.5 + 64 %."""
    a = float(amps)
    if not 6.0 <= a <= 80.0:
        raise ValueError(f"{a} A cannot be signalled by PWM (6..80 A)")
    return round(a / 0.6, 2) if a <= 51.0 else round(a / 2.5 + 64.0, 2)


def pp_to_rating(ohms: float | None) -> float | None:
    """Cable rating in A from the PP resistance (Annex B, +-10 % bands); None = no/invalid cable."""
    if ohms is None or not math.isfinite(ohms):
        return None
    for nominal, amps in PP_CODING:
        if 0.9 * nominal <= ohms <= 1.1 * nominal:
            return amps
    return None


def decode_state(high_v: float) -> str | None:
    """The CP state a voltage high level means (Table A.3); None between the bands (invalid)."""
    for st, lo, hi in _STATE_BANDS:
        if lo <= high_v <= hi:
            return st
    return None


@dataclass(frozen=True)
class PilotReading:
    """The CP/PP line as either side measures it, at plant time `t`."""
    t: float
    ev_state: str                # what the EV side applies (A..E)
    state: str | None            # decoded from the voltage (what the charger must see)
    high_v: float
    low_v: float
    duty_pct: float              # 100 = constant +12 V (no PWM), 0 = constant -12 V (F) or short
    freq_hz: float
    pwm_on: bool
    max_current_a: float | str | None   # duty_to_current(duty) while the PWM runs
    pp_ohm: float | None
    cable_rating_a: float | None
    diode_ok: bool

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in self.__dict__.items()}


class Pilot:
    """The CP/PP line. The EV side sets its load (state A..E, diode, PP); the charger side sets its
    oscillator (off = +12 V, PWM duty/frequency, or -12 V = state F). Thread-safe."""

    HISTORY = 200

    def __init__(self, clock):
        self.clock = clock
        self._lock = threading.RLock()
        self.driven = False          # an EV-side board has set a state: the charger follows CP from then on
        self._ev_state = "A"
        self._diode = True
        self._pp: float | None = None
        self._pwm_on = False
        self._duty = 100.0
        self._freq = NOMINAL_FREQ_HZ
        self._f_state = False
        self._listeners: list[Callable[[str, PilotReading], None]] = []
        self.history: list[tuple[float, str, str]] = []      # (plant t, what, value)

    def add_listener(self, fn: Callable[[str, PilotReading], None]) -> None:
        if fn not in self._listeners:
            self._listeners.append(fn)

    # -- the EV side -----------------------------------------------------------------------------
    def set_ev_state(self, state: str) -> PilotReading:
        st = str(state).upper()
        if st not in EV_LOAD_OHM:
            raise ValueError(f"CP state {state!r}: the EV side sets one of {', '.join(EV_STATES)}")
        with self._lock:
            self.driven = True
            changed = st != self._ev_state
            self._ev_state = st
        return self._changed("ev_state", st, notify=changed)

    def set_diode(self, ok: bool) -> PilotReading:
        with self._lock:
            self._diode = bool(ok)
        return self._changed("diode", "ok" if ok else "missing")

    def set_pp(self, ohms: float | None) -> PilotReading:
        if ohms is not None and (not math.isfinite(float(ohms)) or float(ohms) < 0):
            raise ValueError(f"PP resistance {ohms!r} must be >= 0 Ohm (None = open)")
        with self._lock:
            self._pp = None if ohms is None else float(ohms)
        return self._changed("pp", "open" if ohms is None else f"{float(ohms):g}")

    def release(self) -> None:
        """No EV-side board any more (lab reset): CP back to A and not driven."""
        with self._lock:
            self._ev_state, self._diode, self._pp = "A", True, None
            self.driven = False
        self._changed("released", "A")

    # -- the charger side -------------------------------------------------------------------------
    def set_pwm(self, duty_pct: float | None, freq_hz: float = NOMINAL_FREQ_HZ) -> PilotReading:
        """duty None / 100 = oscillator off (+12 V); else PWM at duty_pct (0..100 %)."""
        with self._lock:
            self._f_state = False
            if duty_pct is None or float(duty_pct) >= 100.0:
                self._pwm_on, self._duty = False, 100.0
            else:
                d = float(duty_pct)
                if not 0.0 <= d < 100.0 or not math.isfinite(float(freq_hz)) or float(freq_hz) <= 0:
                    raise ValueError(f"PWM duty {duty_pct!r} % / {freq_hz!r} Hz out of range")
                self._pwm_on, self._duty, self._freq = True, d, float(freq_hz)
            what = f"{self._duty:g}%@{self._freq:g}Hz" if self._pwm_on else "off"
        return self._changed("pwm", what)

    def set_state_f(self) -> PilotReading:
        """The charger drives -12 V: not available (state F)."""
        with self._lock:
            self._f_state, self._pwm_on, self._duty = True, False, 0.0
        return self._changed("pwm", "F")

    # -- readings ---------------------------------------------------------------------------------
    def reading(self) -> PilotReading:
        with self._lock:
            r_ev = EV_LOAD_OHM[self._ev_state]
            if self._f_state:
                high = low = -12.0 if r_ev > 0 else 0.0
            else:
                high = 12.0 if math.isinf(r_ev) else 12.0 * r_ev / (R1_OHM + r_ev)
                if self._pwm_on:
                    low = -12.0 if (self._diode or math.isinf(r_ev)) else -12.0 * r_ev / (R1_OHM + r_ev)
                else:
                    low = high
            state = "F" if self._f_state and r_ev > 0 else decode_state(high)
            pwm = self._pwm_on and not self._f_state
            return PilotReading(
                t=self.clock.now(), ev_state=self._ev_state, state=state, high_v=round(high, 3),
                low_v=round(low, 3), duty_pct=self._duty if r_ev > 0 else 0.0,
                freq_hz=self._freq if pwm else 0.0, pwm_on=pwm and r_ev > 0,
                max_current_a=duty_to_current(self._duty) if pwm else None, pp_ohm=self._pp,
                cable_rating_a=pp_to_rating(self._pp), diode_ok=self._diode)

    def energy_allowed(self) -> bool:
        """May the charger energize the outlet? Only in C/D with the diode present (or when no
        EV-side board drives the pilot, as in the protocol-only tests)."""
        if not self.driven:
            return True
        r = self.reading()
        return r.state in ("C", "D") and r.diode_ok

    def _changed(self, what: str, value: str, notify: bool = True) -> PilotReading:
        r = self.reading()
        with self._lock:
            self.history.append((r.t, what, value))
            del self.history[:-self.HISTORY]
        if notify:
            for fn in list(self._listeners):
                try:
                    fn(what, r)
                except Exception:          # a broken listener must not break the line
                    import logging
                    logging.getLogger("v2g_bench.lab.plant.pilot").exception("pilot listener failed")
        return r
