"""The virtual lab's one physical model (the "plant") and its one clock.

Every front-end (SCPI battery emulator and power analyzer, Modbus charger and meter, CAN BMS) and
every in-lab service (SECC, OCPP station) reads and drives the SAME `Plant`, so a setpoint written on
one transport is seen, with its dynamics and losses, on all the others.

Sign convention (the project's): positive power/current flows INTO the EV battery (charging).
`ac_power_w` is positive when the charger IMPORTS from the grid. Vendor sign rules are converted in
the front-ends, never here.

Physics (deliberately simple, but conservative and deterministic):

    grid (AC) --[ DUT power stage: ramp, limits, loss a+b|P|+cP^2 ]-- DC link --[ battery emulator ]
                                                                     P_dc = V_dc * I_dc
    P_ac = P_dc + P_loss(P_dc)           (contactor closed; standby loss when open)
    battery: E = SOC * capacity;  dE/dt = OCV * I  (BATTery emulation: V_dc = OCV(SOC) + I*R,
             loss I^2*R)  or  dE/dt = V_set * I  (power-supply emulation modes: V_dc = V_set)

Energy is conserved by construction AND checked: delta(E) + battery loss + stage loss = AC energy.

The plant is advanced lazily: every public call first integrates up to `clock.now()` with adaptive
sub-steps (small while the stage ramps or lags, up to `max_step_s` when steady), so an idle lab costs
no CPU and a 100x time scale costs no more than real time.
"""
from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from v2g_bench.errors import LabError
from v2g_bench.lab.plant.clock import LabClock
from v2g_bench.lab.plant.config import (
    BatteryConfig,
    BatteryEmulatorConfig,
    DirectionLimits,
    GridConfig,
    MeasurementConfig,
    PlantConfig,
    StageConfig,
)
from v2g_bench.lab.plant.faults import FAULTS, TRANSPORT_FAULTS, FaultError, fault_key
from v2g_bench.lab.plant.measurement import (
    _STREAMS,
    Measurement,
    _quantise,
    seeded_gauss,
)
from v2g_bench.lab.plant.pilot import Pilot
from v2g_bench.lab.plant.state import PlantState

# ------------------------------------------------------------------------------------ plant


class Plant:
    """The lab's physical model. Thread-safe (one lock); advanced lazily to `clock.now()`."""

    def __init__(self, cfg: PlantConfig | None = None, clock: LabClock | None = None, seed: int = 0):
        self.cfg = cfg or PlantConfig()
        problems = self.cfg.problems()
        if problems:
            from v2g_bench.errors import ProfileError
            raise ProfileError(problems, where="PlantConfig")
        self.clock = clock or LabClock()
        self.seed = int(seed)
        self._lock = threading.RLock()
        self._listeners: list[Callable[[str, dict], None]] = []
        self.pilot = Pilot(self.clock)          # IEC 61851-1 CP/PP of the vehicle connector
        # the charger's controller holds the contactor open while any interlock names a reason
        self.contactor_interlocks: list[Callable[[], str | None]] = []
        # the charger's local functions (frequency droop, islanding: v2g_bench.lab.site), evaluated on plant
        # time at every integration sub-step: fn(plant, t, setpoint_w) -> setpoint_w
        self.local_functions: list[Callable[["Plant", float, float], float]] = []
        self._init_state()

    # -- construction / reset ----------------------------------------------------------------

    def _init_state(self) -> None:
        c = self.cfg
        self._t = self.clock.now()
        self._t0 = self._t
        self._e_batt_wh = c.battery.soc0 * c.battery.capacity_wh
        self._e_batt0_wh = self._e_batt_wh
        self._p = 0.0                     # actual DC power of the stage, + into battery
        self._setpoint = 0.0
        self._lagged = 0.0                # setpoint after the injected lag (== setpoint without it)
        self._sp_history: list[tuple[float, float]] = [(self._t, 0.0)]
        self._contactor_cmd = c.stage.contactor_closed0
        self._ext_charge_w = math.inf
        self._ext_discharge_w = math.inf
        self._grid_v = c.grid.voltage_v
        self._grid_f = c.grid.freq_hz
        self._grid_profile: list[tuple[float, float | None, float | None]] = []
        self._grid_profile_mode = "step"
        self._faults: dict[str, tuple[str, dict[str, Any], float]] = {}   # key -> (name, params, t)
        self._frozen: dict[str, Measurement] = {}
        self._held: dict[tuple[str, float], Measurement] = {}
        e = c.emulator
        self.emulator = _EmulatorSettings(
            emulation=e.emulation, output_on=e.output_on0, voltage_set_v=e.voltage_set_v,
            current_limit_pos_a=e.current_limit_pos_a, current_limit_neg_a=e.current_limit_neg_a,
            power_limit_w=e.power_limit_w, ovp_v=e.ovp_v)
        self._prot: set[str] = set()      # latched emulator protections: "OV", "OC", "WDOG"
        # integrators (Wh): cumulative since lab start
        self._dc_imp = self._dc_exp = self._ac_imp = self._ac_exp = 0.0
        self._stage_loss = self._batt_loss = 0.0
        self._i = 0.0
        self._v = self._terminal_voltage(0.0)[0]
        self._limits = (0.0, 0.0)

    # -- listeners (front-ends that push, e.g. the CAN BMS node on a protection trip) ----------

    def add_listener(self, fn: Callable[[str, dict], None]) -> None:
        self._listeners.append(fn)

    def _emit(self, event: str, **info: Any) -> None:
        for fn in list(self._listeners):
            try:
                fn(event, info)
            except Exception:               # a broken listener must not break the plant
                pass

    # -- battery ---------------------------------------------------------------------------

    @property
    def soc(self) -> float:
        return self._e_batt_wh / self.cfg.battery.capacity_wh

    def ocv(self, soc: float | None = None) -> float:
        s = min(max(self.soc if soc is None else soc, 0.0), 1.0)
        tab = self.cfg.battery.ocv_table
        xs = [p[0] for p in tab]
        i = bisect.bisect_right(xs, s)
        if i <= 0:
            return tab[0][1]
        if i >= len(tab):
            return tab[-1][1]
        (s0, v0), (s1, v1) = tab[i - 1], tab[i]
        return v0 + (v1 - v0) * (s - s0) / (s1 - s0)

    def _battery_mode(self) -> bool:
        return self.emulator.emulation.upper().startswith("BATT")

    def _terminal_voltage(self, p_w: float) -> tuple[float, float]:
        """(V_dc, I_dc) for DC power p_w into the battery; (0, 0) with the emulator output off."""
        if not self.emulator.output_on:
            return 0.0, 0.0
        if self._battery_mode():
            ocv, r = self.ocv(), self.cfg.battery.r_ohm
            if r <= 0 or p_w == 0.0:
                return ocv, p_w / ocv if ocv > 0 else 0.0
            disc = ocv * ocv + 4.0 * r * p_w
            if disc < 0:                   # beyond maximum power transfer: clamp at the limit
                disc = 0.0
            i = (-ocv + math.sqrt(disc)) / (2.0 * r)
            return ocv + i * r, i
        v = self.emulator.voltage_set_v
        return v, (p_w / v if v > 0 else 0.0)

    # -- limits ----------------------------------------------------------------------------

    def _conducting(self) -> bool:
        return self._contactor_effective() and self.emulator.output_on

    def _contactor_effective(self) -> bool:
        f = self._faults.get("contactor")
        if f is not None:
            return f[1].get("stuck", "open") == "closed"
        return self._contactor_cmd

    def _effective_limits(self) -> tuple[float, float]:
        """(charge_w, discharge_w) >= 0: every cap combined (stage, external, BMS, emulator, derate)."""
        if not self._conducting():
            return 0.0, 0.0
        st, b, em = self.cfg.stage, self.cfg.battery, self.emulator
        v = max(self._v if self._v > 0 else self._terminal_voltage(0.0)[0], 1e-6)
        lim = []
        for sign, d, ext, i_bms, i_emu, soc_ok in (
                (1.0, st.charge, self._ext_charge_w, b.max_charge_current_a, -em.current_limit_neg_a,
                 self.soc < b.soc_max),
                (-1.0, st.discharge, self._ext_discharge_w, b.max_discharge_current_a,
                 em.current_limit_pos_a, self.soc > b.soc_min)):
            if not soc_ok or not (d.v_min_v <= v <= d.v_max_v):
                lim.append(0.0)
                continue
            i_cap = max(0.0, min(d.i_max_a, i_bms, i_emu))
            # power at the current cap, with the terminal voltage AT that current (I*R shift)
            if self._battery_mode():
                v_cap = self.ocv() + sign * i_cap * b.r_ohm
            else:
                v_cap = self.emulator.voltage_set_v
            lim.append(max(0.0, min(d.p_max_w, ext, i_cap * max(v_cap, 0.0), em.power_limit_w)))
        f = self._faults.get("derate")
        if f is not None:
            k = min(max(float(f[1].get("factor", 0.5)), 0.0), 1.0)
            lim = [x * k for x in lim]
        return lim[0], lim[1]

    def _loss(self, p: float) -> float:
        if not self._contactor_effective():
            return self.cfg.stage.standby_w
        a, b, c = (self.cfg.stage.charge if p >= 0 else self.cfg.stage.discharge).loss
        return a + b * abs(p) + c * p * p

    # -- integration -------------------------------------------------------------------------

    def _delayed_setpoint(self, t: float) -> float:
        f = self._faults.get("lag")
        dead = float(f[1].get("dead_time_s", 0.0)) if f else 0.0
        if dead <= 0:
            return self._setpoint
        tt = t - dead
        hist = self._sp_history
        val = hist[0][1]
        for ts, v in hist:
            if ts <= tt:
                val = v
            else:
                break
        return val

    def _advance(self, t_end: float) -> None:
        cfg = self.cfg
        guard = 0
        while self._t < t_end - 1e-12:
            guard += 1
            if guard > 2_000_000:        # never hang: a bug here must be loud
                raise LabError("plant integration did not converge", where="Plant._advance")
            self._expire_faults()
            self._apply_grid_profile(self._t)
            self._check_protection()
            lo_c, lo_d = self._effective_limits()
            self._limits = (lo_c, lo_d)
            lag = self._faults.get("lag")
            remaining = t_end - self._t
            # target after the (optional) injected lag
            if lag is not None:
                tau = max(float(lag[1].get("tau_s", 2.0)), 1e-6)
                h = min(remaining, cfg.fine_step_s, tau / 5.0)
                # step only as far as the next dead-time edge
                goal = self._delayed_setpoint(self._t)
                self._lagged += (goal - self._lagged) * (1.0 - math.exp(-h / tau))
                raw = self._lagged
            else:
                raw = self._setpoint
                self._lagged = raw
                h = None
            for fn in self.local_functions:
                raw = fn(self, self._t, raw)
            target = min(max(raw, -lo_d), lo_c)
            p0 = min(max(self._p, -lo_d), lo_c)          # hard limits act at once
            if h is None:
                gap = abs(target - p0)
                # A gap the ramp closes within 1 ms counts as reached (limits that drift with the
                # battery voltage would otherwise force ever-smaller sub-steps).
                if gap > cfg.stage.ramp_w_per_s * 1e-3:
                    h = min(remaining, gap / cfg.stage.ramp_w_per_s, cfg.max_step_s)
                else:
                    h = min(remaining, cfg.max_step_s)
                    p0 = target
            step = cfg.stage.ramp_w_per_s * h
            p1 = target if abs(target - p0) <= step * (1 + 1e-9) else p0 + math.copysign(step, target - p0)
            p_avg = 0.5 * (p0 + p1)
            v, i = self._terminal_voltage(p_avg)
            loss_st = 0.5 * (self._loss(p0) + self._loss(p1)) if (p0 or p1) else self._loss(0.0)
            dc_j = p_avg * h
            if self._battery_mode() and self.emulator.output_on:
                batt_loss = i * i * cfg.battery.r_ohm * h
                e_chem = dc_j - batt_loss
            else:
                batt_loss = 0.0
                e_chem = dc_j
            ac_j = dc_j + loss_st * h
            # integrate (J -> Wh)
            self._e_batt_wh += e_chem / 3600.0
            self._batt_loss += batt_loss / 3600.0
            self._stage_loss += loss_st * h / 3600.0
            if dc_j >= 0:
                self._dc_imp += dc_j / 3600.0
            else:
                self._dc_exp -= dc_j / 3600.0
            if ac_j >= 0:
                self._ac_imp += ac_j / 3600.0
            else:
                self._ac_exp -= ac_j / 3600.0
            self._p = p1
            self._t += h
            self._v, self._i = self._terminal_voltage(self._p)
        self._t = max(self._t, t_end)
        self._expire_faults()
        self._apply_grid_profile(self._t)
        self._limits = self._effective_limits()

    def _sync(self) -> None:
        self._advance(self.clock.now())

    def step(self, dt: float) -> None:
        """Advance a MANUAL clock by dt and integrate; with a real clock just integrate to now."""
        with self._lock:
            if self.clock.manual:
                self.clock.advance(dt)
            self._sync()

    # -- protections -----------------------------------------------------------------------------

    def _check_protection(self) -> None:
        em = self.emulator
        if not em.output_on:
            return
        if self._v > em.ovp_v:
            self._trip("OV")
        if em.ocp_enabled:
            lim = em.current_limit_pos_a if self._i < 0 else -em.current_limit_neg_a
            # The RP7900 OCP trips when the output goes into current limit.
            if lim > 0 and abs(self._i) > 0.01 and abs(self._i) >= 0.999 * lim:
                self._trip("OC")

    def _trip(self, which: str) -> None:
        self._prot.add(which)
        self.emulator.output_on = False
        self._p = 0.0
        self._v, self._i = 0.0, 0.0
        self._emit("protection", which=which, t=self._t)

    # -- public API: commands --------------------------------------------------------------------

    def set_power_setpoint(self, p_w: float) -> None:
        """DUT stage DC-side setpoint (+ = into the battery); clipped to limits, followed with ramp."""
        p_w = float(p_w)
        if not math.isfinite(p_w):
            raise LabError(f"power setpoint {p_w!r} is not finite", where="Plant.set_power_setpoint",
                           fix="pass a finite number of watts")
        with self._lock:
            self._sync()
            self._setpoint = p_w
            self._sp_history.append((self._t, p_w))
            if len(self._sp_history) > 256:
                self._sp_history = self._sp_history[-128:]

    def set_contactor(self, closed: bool) -> None:
        with self._lock:
            self._sync()
            blocked = [r for r in (f() for f in self.contactor_interlocks) if r] if closed else []
            if blocked:
                self._emit("interlock", reason="; ".join(blocked), t=self._t)
                closed = False
            if bool(closed) != self._contactor_cmd:
                self._emit("contactor", closed=bool(closed), t=self._t)
            self._contactor_cmd = bool(closed)
            if not self._contactor_effective():
                self._p = 0.0          # current stops when the contactor opens
                self._v, self._i = self._terminal_voltage(0.0)

    def set_power_limits(self, charge_w: float, discharge_w: float) -> None:
        """External caps (OCPP profile, EV limits), both >= 0 W; math.inf = no cap."""
        charge_w, discharge_w = float(charge_w), float(discharge_w)
        if charge_w < 0 or discharge_w < 0 or math.isnan(charge_w) or math.isnan(discharge_w):
            raise LabError(f"power limits must be >= 0 (got {charge_w}, {discharge_w})",
                           where="Plant.set_power_limits", fix="pass magnitudes; direction is implied")
        with self._lock:
            self._sync()
            self._ext_charge_w, self._ext_discharge_w = charge_w, discharge_w

    def set_grid(self, freq_hz: float | None = None, voltage_v: float | None = None) -> None:
        with self._lock:
            self._sync()
            self._grid_profile = []
            if freq_hz is not None:
                if not (0 < float(freq_hz) < 1000):
                    raise LabError(f"grid frequency {freq_hz!r} Hz out of range", where="Plant.set_grid")
                self._grid_f = float(freq_hz)
            if voltage_v is not None:
                if not (0 <= float(voltage_v) < 2000):
                    raise LabError(f"grid voltage {voltage_v!r} V out of range", where="Plant.set_grid")
                self._grid_v = float(voltage_v)

    def set_grid_profile(self, points: Iterable[Iterable[float | None]], mode: str = "step") -> None:
        """Grid profile from now: points (dt_s, freq_hz | None, voltage_v | None), mode step|linear."""
        if mode not in ("step", "linear"):
            raise LabError(f"grid profile mode {mode!r}", where="Plant.set_grid_profile",
                           fix="use 'step' or 'linear'")
        with self._lock:
            self._sync()
            pts = []
            for p in points:
                dt, f, v = (list(p) + [None, None])[:3]
                pts.append((self._t + float(dt), None if f is None else float(f),
                            None if v is None else float(v)))
            pts.sort(key=lambda x: x[0])
            self._grid_profile = [(self._t, self._grid_f, self._grid_v)] + pts
            self._grid_profile_mode = mode

    def _apply_grid_profile(self, t: float) -> None:
        prof = self._grid_profile
        if not prof:
            return
        prev = prof[0]
        for pt in prof[1:]:
            if pt[0] > t:
                if self._grid_profile_mode == "linear":
                    w = (t - prev[0]) / (pt[0] - prev[0]) if pt[0] > prev[0] else 1.0
                    if prev[1] is not None and pt[1] is not None:
                        self._grid_f = prev[1] + w * (pt[1] - prev[1])
                    if prev[2] is not None and pt[2] is not None:
                        self._grid_v = prev[2] + w * (pt[2] - prev[2])
                else:
                    if prev[1] is not None:
                        self._grid_f = prev[1]
                    if prev[2] is not None:
                        self._grid_v = prev[2]
                return
            prev = (pt[0], pt[1] if pt[1] is not None else prev[1], pt[2] if pt[2] is not None else prev[2])
        if prev[1] is not None:
            self._grid_f = prev[1]
        if prev[2] is not None:
            self._grid_v = prev[2]

    def set_battery_soc(self, soc: float) -> None:
        if not 0 <= float(soc) <= 1:
            raise LabError(f"soc {soc!r} outside 0..1", where="Plant.set_battery_soc")
        with self._lock:
            self._sync()
            self._e_batt_wh = float(soc) * self.cfg.battery.capacity_wh

    def configure_battery(self, **kw: Any) -> None:
        """Change battery model parameters at run time (capacity_wh, r_ohm, soc_min, ...)."""
        with self._lock:
            self._sync()
            soc = self.soc
            new = replace(self.cfg.battery, **{k: (float(v) if k != "ocv_table" else
                                                   [(float(a), float(b)) for a, b in v])
                                               for k, v in kw.items()})
            trial = replace(self.cfg, battery=new)
            probs = trial.problems()
            if probs:
                from v2g_bench.errors import ProfileError
                raise ProfileError(probs, where="Plant.configure_battery")
            self.cfg = trial
            if "capacity_wh" in kw:
                self._e_batt_wh = soc * new.capacity_wh

    def configure_measurement(self, **kw: Any) -> None:
        """Change noise_rel, noise_abs, resolution, sample_rate_hz of the measurement paths."""
        with self._lock:
            self._sync()
            new = replace(self.cfg.measurement, **{k: float(v) for k, v in kw.items()})
            trial = replace(self.cfg, measurement=new)
            probs = trial.problems()
            if new.noise_rel < 0 or new.noise_abs < 0 or new.resolution < 0:
                probs.append("plant.measurement: noise and resolution must be >= 0")
            if probs:
                from v2g_bench.errors import ProfileError
                raise ProfileError(probs, where="Plant.configure_measurement")
            self.cfg = trial
            self._held.clear()

    # battery emulator (used by the RP7900 front-end; vendor sign handled there)

    def set_battery_output(self, on: bool) -> None:
        with self._lock:
            self._sync()
            if on and self._prot:
                return                   # a latched protection keeps the output off (as the RP7900)
            self.emulator.output_on = bool(on)
            if not on:
                self._p = 0.0
            self._v, self._i = self._terminal_voltage(self._p)

    def set_emulator(self, **kw: Any) -> None:
        """Set battery-emulator programming values (voltage_set_v, current_limit_pos_a, ...)."""
        with self._lock:
            self._sync()
            for k, v in kw.items():
                if not hasattr(self.emulator, k):
                    raise LabError(f"unknown emulator setting {k!r}", where="Plant.set_emulator")
                setattr(self.emulator, k, v)
            self._v, self._i = self._terminal_voltage(self._p)
            self._check_protection()

    def clear_protection(self) -> None:
        with self._lock:
            self._sync()
            self._prot.clear()
            for k in ("ovp_trip", "ocp_trip", "opp_trip"):
                self._faults.pop(k, None)

    @property
    def protection(self) -> frozenset[str]:
        with self._lock:
            self._sync()
            return frozenset(self._prot)

    def watchdog_trip(self) -> None:
        with self._lock:
            self._sync()
            self._trip("WDOG")

    def outputs_off(self) -> None:
        """Safe state: stage setpoint 0, contactor open, emulator output off."""
        with self._lock:
            self._sync()
            self._setpoint = 0.0
            self._lagged = 0.0
            self._contactor_cmd = False
            self.emulator.output_on = False
            self._p = 0.0
            self._v, self._i = 0.0, 0.0

    # -- faults ------------------------------------------------------------------------------

    def inject_fault(self, name: str, **params: Any) -> str:
        """Inject a fault (see FAULTS); returns its key (used by clear_faults)."""
        if name not in FAULTS:
            raise FaultError(f"unknown fault {name!r}", where="Plant.inject_fault",
                             fix=f"one of: {', '.join(sorted(FAULTS))}")
        defaults = FAULTS[name][1]
        unknown = set(params) - set(defaults)
        if unknown:
            raise FaultError(f"fault {name!r} has no parameter(s) {sorted(unknown)}",
                             where="Plant.inject_fault", fix=f"parameters: {sorted(defaults) or 'none'}")
        p = {**defaults, **params}
        self._validate_fault(name, p)
        with self._lock:
            self._sync()
            key = fault_key(name, p)
            self._faults[key] = (name, p, self._t)
            if name == "ovp_trip":
                self._trip("OV")
            elif name == "ocp_trip":
                self._trip("OC")
            elif name == "opp_trip":
                # vendor view: the emulator sinks while the battery charges (plant current > 0)
                self._trip("CP-" if self._i >= 0 else "CP+")
            elif name == "contactor" and p["stuck"] == "open":
                self._p = 0.0
            elif name == "frozen":
                srcs = list(_STREAMS) if p["source"] == "all" else [p["source"]]
                for s in srcs:
                    self._frozen[s] = self._measure_now(s)
            elif name == "grid_freq_step":
                self._faults[key] = (name, {**p, "_base": self._grid_f}, self._t)
                self._grid_profile = []
                self._grid_f += float(p["df_hz"])
            elif name == "grid_voltage_step":
                self._faults[key] = (name, {**p, "_base": self._grid_v}, self._t)
                self._grid_profile = []
                self._grid_v += float(p["dv_v"])
            elif name == "lag":
                self._lagged = self._p
            self._emit("fault", key=key, params=p)
            return key

    @staticmethod
    def _validate_fault(name: str, p: dict) -> None:
        def bad(msg: str):
            raise FaultError(f"fault {name!r}: {msg}", where="Plant.inject_fault")
        if name == "contactor" and p["stuck"] not in ("open", "closed"):
            bad("stuck must be 'open' or 'closed'")
        if name == "derate" and not (0 <= float(p["factor"]) <= 1):
            bad("factor must be within 0..1")
        if name == "lag" and (float(p["tau_s"]) <= 0 or float(p["dead_time_s"]) < 0):
            bad("tau_s must be > 0 and dead_time_s >= 0")
        if name == "frozen" and p["source"] not in (*_STREAMS, "all"):
            bad(f"source must be one of {sorted(_STREAMS) + ['all']}")
        if name in TRANSPORT_FAULTS and p["transport"] not in (
                "battery_scpi", "analyzer_scpi", "modbus", "can"):
            bad("transport must be battery_scpi, analyzer_scpi, modbus or can")
        if name == "delay" and not (0 <= float(p["delay_s"]) <= 60):
            bad("delay_s must be within 0..60")
        if name == "modbus_exception" and (int(p["unit"]) not in (1, 2) or not 1 <= int(p["code"]) <= 11):
            bad("unit must be 1 or 2 and code 1..11")

    def clear_faults(self, key: str | None = None) -> list[str]:
        """Clear one fault by key (or name), or all; returns the keys cleared. Latched emulator
        protections stay latched until OUTPut:PROTection:CLEar, as on the real instrument."""
        with self._lock:
            self._sync()
            keys = [k for k, f in self._faults.items() if key is None or k == key or f[0] == key]
            for k in keys:
                self._end_fault(k)
            return keys

    def _end_fault(self, k: str) -> None:
        name, p, _ = self._faults.pop(k)
        if name == "grid_freq_step":
            self._grid_f = p["_base"]
        elif name == "grid_voltage_step":
            self._grid_v = p["_base"]
        elif name == "frozen":
            srcs = list(_STREAMS) if p["source"] == "all" else [p["source"]]
            for s in srcs:
                if not any(f[0] == "frozen" and f[1]["source"] in (s, "all") for f in self._faults.values()):
                    self._frozen.pop(s, None)
        elif name == "lag":
            self._lagged = self._setpoint
        self._emit("fault_cleared", key=k)

    def _expire_faults(self) -> None:
        for k, (name, p, t0) in list(self._faults.items()):
            d = float(p.get("duration_s", 0) or 0)
            if d > 0 and self._t >= t0 + d:
                self._end_fault(k)

    def fault(self, name: str, transport: str | None = None) -> dict[str, Any] | None:
        """Params of an active fault (for front-ends), or None."""
        with self._lock:
            key = f"{name}:{transport}" if transport else name
            f = self._faults.get(key)
            return dict(f[1]) if f else None

    def faults(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            self._sync()
            return {k: {"name": n, **{a: b for a, b in p.items() if not a.startswith("_")}, "since": t}
                    for k, (n, p, t) in self._faults.items()}

    # -- public API: readings --------------------------------------------------------------------

    def state(self) -> PlantState:
        with self._lock:
            self._sync()
            return self._snapshot()

    def _snapshot(self) -> PlantState:
        p_ac = self._p + self._loss(self._p)
        return PlantState(
            t=self._t, soc=self.soc, battery_ocv_v=self.ocv(), dc_voltage_v=self._v,
            dc_current_a=self._i, dc_power_w=self._v * self._i, ac_power_w=p_ac,
            ac_voltage_v=self._grid_v, grid_freq_hz=self._grid_f,
            contactor_closed=self._contactor_effective(), setpoint_w=self._setpoint,
            target_w=min(max(self._lagged, -self._limits[1]), self._limits[0]),
            battery_output_on=self.emulator.output_on,
            dc_import_wh=self._dc_imp, dc_export_wh=self._dc_exp,
            ac_import_wh=self._ac_imp, ac_export_wh=self._ac_exp,
            stage_loss_wh=self._stage_loss, battery_loss_wh=self._batt_loss,
            battery_energy_wh=self._e_batt_wh,
            charge_limit_w=self._limits[0], discharge_limit_w=self._limits[1],
            faults=frozenset(self._faults))

    def measure(self, source: str, rate_hz: float | None = None) -> Measurement:
        """A sample as instrument `source` (battery | analyzer | meter | can) would show it now:
        taken at the last tick of its sample rate, with seeded noise and resolution; frozen if a
        'frozen' fault is active for that source."""
        if source not in _STREAMS:
            raise LabError(f"unknown measurement source {source!r}", where="Plant.measure")
        with self._lock:
            self._sync()
            frozen = self._frozen.get(source)
            if frozen is not None:
                return frozen
            return self._measure_now(source, rate_hz)

    def _measure_now(self, source: str, rate_hz: float | None = None) -> Measurement:
        m = self.cfg.measurement
        rate = rate_hz or m.sample_rate_hz
        k = int(math.floor(self._t * rate + 1e-9))
        # An instrument shows the same reading until its next update tick.
        held = self._held.get((source, rate))
        if held is not None and held.k == k:
            return held
        stream = _STREAMS[source] * 16

        def noisy(x: float, n: int) -> float:
            if m.noise_rel == 0 and m.noise_abs == 0:
                return _quantise(x, m.resolution)
            g = seeded_gauss(self.seed, stream + n, k)
            return _quantise(x + g * (abs(x) * m.noise_rel + m.noise_abs), m.resolution)

        s = self._snapshot()
        n_ph = self.cfg.grid.phases
        v_ac = noisy(s.ac_voltage_v, 3)
        p_ac = noisy(s.ac_power_w, 5) if s.ac_power_w else 0.0
        i_ac = abs(p_ac) / (n_ph * v_ac) if v_ac > 0 else 0.0
        v_dc = noisy(s.dc_voltage_v, 0) if s.dc_voltage_v else 0.0
        i_dc = noisy(s.dc_current_a, 1) if s.dc_current_a else 0.0
        meas = Measurement(
            t=k / rate, k=k, dc_voltage_v=v_dc, dc_current_a=i_dc,
            dc_power_w=v_dc * i_dc, ac_voltage_v=v_ac, ac_current_a=i_ac, ac_power_w=p_ac,
            ac_apparent_va=n_ph * v_ac * i_ac, ac_reactive_var=0.0,
            freq_hz=round(s.grid_freq_hz, 4), soc=s.soc)
        self._held[(source, rate)] = meas
        return meas

    def limits(self) -> tuple[float, float]:
        with self._lock:
            self._sync()
            return self._limits


@dataclass
class _EmulatorSettings:
    """Programming state of the battery emulator (project sign NOT applied: vendor values)."""
    emulation: str
    output_on: bool
    voltage_set_v: float
    current_limit_pos_a: float
    current_limit_neg_a: float
    power_limit_w: float
    ovp_v: float
    ocp_enabled: bool = False


def energy_balance_error_wh(s0: PlantState, s1: PlantState) -> float:
    """(battery energy change + battery loss + stage loss) - net AC energy between two states."""
    d_batt = s1.battery_energy_wh - s0.battery_energy_wh
    d_loss = (s1.stage_loss_wh - s0.stage_loss_wh) + (s1.battery_loss_wh - s0.battery_loss_wh)
    d_ac = (s1.ac_import_wh - s0.ac_import_wh) - (s1.ac_export_wh - s0.ac_export_wh)
    return d_batt + d_loss - d_ac


__all__ = ["LabClock", "Plant", "PlantConfig", "PlantState", "Measurement", "FAULTS", "FaultError",
           "BatteryConfig", "StageConfig", "GridConfig", "MeasurementConfig", "DirectionLimits",
           "BatteryEmulatorConfig", "seeded_gauss", "energy_balance_error_wh"]
