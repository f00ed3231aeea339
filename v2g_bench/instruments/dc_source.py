"""Role API: BidirectionalDCSource / BatteryEmulator (the regenerative DC source playing the EV battery).

Sign convention (the bench's, everywhere above the driver): positive current/power flows INTO the
EV battery, i.e. the battery emulator is SINKING. Each vendor driver converts its own rule at the edge.

Limits come from the bench profile `[roles.battery.limits]`:
  voltage_max_v             highest voltage setpoint; also the OVP level programmed on the instrument
  current_charge_max_a      largest current INTO the EV battery (emulator sinking), A, > 0
  current_discharge_max_a   largest current OUT of the EV battery (emulator sourcing), A, > 0
  power_max_w               largest power magnitude in either direction, W, > 0
  voltage_min_v             (optional, default 0) lowest voltage setpoint
  ovp_v                     (optional, default voltage_max_v) instrument over-voltage protection, >= voltage_max_v
Setpoints outside these are refused client-side (LimitViolation) before anything is sent.

Safety sequence (the only way to energise the output):
  apply_limits() programs OVP, both current limits and the power limit, then READS THEM BACK;
  output_on() refuses unless that read-back matched, arms the instrument watchdog where the model
  has one, switches on and verifies. safe_state() ramps both current limits to zero, switches off and
  verifies off (SafeStateError if it cannot). hard_stop() (and safety.hard_stop_all()) skip the ramp.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from v2g_bench.errors import BenchError, InstrumentError, LimitViolation, ProfileError, SafeStateError
from v2g_bench.roles import RoleConfig, RoleDriver

from v2g_bench.instruments import safety

log = logging.getLogger(__name__)

LIMIT_KEYS = ("voltage_max_v", "current_charge_max_a", "current_discharge_max_a", "power_max_w")


@dataclass(frozen=True)
class DCReading:
    """One synchronous V/I/P reading; + current/power = into the EV battery."""

    t: float            # time.monotonic() at the middle of the acquisition
    voltage_v: float
    current_a: float
    power_w: float


@dataclass(frozen=True)
class DCLimits:
    voltage_max_v: float
    current_charge_max_a: float
    current_discharge_max_a: float
    power_max_w: float
    voltage_min_v: float = 0.0
    ovp_v: float | None = None

    @property
    def ovp_level_v(self) -> float:
        return self.ovp_v if self.ovp_v is not None else self.voltage_max_v

    @classmethod
    def from_config(cls, cfg: RoleConfig) -> "DCLimits":
        problems = []
        vals: dict[str, float] = {}
        for key in LIMIT_KEYS + ("voltage_min_v", "ovp_v"):
            if key not in cfg.limits:
                if key not in ("voltage_min_v", "ovp_v"):
                    problems.append(f"{cfg.where('limits.' + key)}: missing")
                continue
            v = cfg.limits[key]
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0 \
                    or (v == 0 and key != "voltage_min_v"):
                problems.append(f"{cfg.where('limits.' + key)}: must be a positive number, got {v!r}")
                continue
            vals[key] = float(v)
        if not problems and vals.get("voltage_min_v", 0.0) >= vals["voltage_max_v"]:
            problems.append(f"{cfg.where('limits.voltage_min_v')}: must be below voltage_max_v")
        if not problems and vals.get("ovp_v", vals["voltage_max_v"]) < vals["voltage_max_v"]:
            problems.append(f"{cfg.where('limits.ovp_v')}: must be >= voltage_max_v (else OVP trips in range)")
        if problems:
            raise ProfileError(problems, where=cfg.where("limits"))
        return cls(**vals)


@dataclass
class BatteryModel:
    """Battery-mode parameters for instruments that emulate a battery themselves."""

    capacity_ah: float
    soc: float                                   # 0..1
    internal_resistance_ohm: float
    ocv_table: list[tuple[float, float]] = field(default_factory=list)   # (soc 0..1, open-circuit V)


class BidirectionalDCSource(RoleDriver):
    """The role protocol + the safety logic shared by every vendor driver.

    Vendors implement the `_`-prefixed primitives in THEIR sign/units; this class owns the checks,
    the read-back and the shutdown path so every model behaves the same way under failure.
    """

    roles: ClassVar[tuple[str, ...]] = ("battery",)
    transport: ClassVar[str] = "visa"
    required_limits: ClassVar[tuple[str, ...]] = LIMIT_KEYS
    has_watchdog: ClassVar[bool] = False
    readback_rel_tol: ClassVar[float] = 1e-3     # instruments round setpoints to their resolution

    def __init__(self, *, name: str, limits: DCLimits, options: dict[str, Any] | None = None,
                 instrument_name: str | None = None):
        self.name = name
        self.instrument_name = instrument_name or name
        self.limits = limits
        self.options = dict(options or {})
        self.ramp_steps = int(self.options.get("ramp_steps", 4))
        self.watchdog_s = float(self.options.get("watchdog_s", 2.0))
        self._limits_verified = False
        self._charge_limit_a = 0.0
        self._discharge_limit_a = 0.0
        self._closed = False
        self.last_shutdown_problems: list[str] = []
        safety.register(self)

    # ---------------------------------------------------------------- config
    @classmethod
    def validate_config(cls, cfg: RoleConfig) -> list[str]:
        try:
            DCLimits.from_config(cfg)
        except ProfileError as e:
            return e.errors
        return [] if cfg.resource else [f"{cfg.where('resource')}: missing (a VISA resource string)"]

    # ---------------------------------------------------------------- client-side checks
    def _refuse(self, what: str, value: float, lo: float, hi: float) -> None:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and lo <= value <= hi):
            raise LimitViolation(f"{what} {value!r} outside [{lo:g}, {hi:g}] — nothing was sent",
                                 where=f"{self.name} ({self.instrument_name})",
                                 fix="change the setpoint or the bench profile's [roles.%s.limits]" % self.name)

    # ---------------------------------------------------------------- role API
    def apply_limits(self, *, charge_a: float | None = None, discharge_a: float | None = None,
                     power_w: float | None = None) -> dict[str, float]:
        """Program OVP + current + power limits, read them back, and unlock output_on()."""
        lim = self.limits
        charge_a = lim.current_charge_max_a if charge_a is None else charge_a
        discharge_a = lim.current_discharge_max_a if discharge_a is None else discharge_a
        power_w = lim.power_max_w if power_w is None else power_w
        self._refuse("charge current limit", charge_a, 0.0, lim.current_charge_max_a)
        self._refuse("discharge current limit", discharge_a, 0.0, lim.current_discharge_max_a)
        self._refuse("power limit", power_w, 0.0, lim.power_max_w)
        self._limits_verified = False
        self._program_protection(lim.ovp_level_v)
        self._set_current_limits(charge_a, discharge_a)
        self._charge_limit_a, self._discharge_limit_a = charge_a, discharge_a
        self._set_power_limit(power_w)
        expected = {"voltage_protection_v": lim.ovp_level_v, "current_charge_a": charge_a,
                    "current_discharge_a": discharge_a, "power_w": power_w}
        got = self._readback_limits()
        for key, want in expected.items():
            have = got.get(key)
            if have is None or not math.isclose(have, want, rel_tol=self.readback_rel_tol, abs_tol=1e-3):
                raise InstrumentError(f"limit read-back mismatch for {key}: programmed {want:g}, read {have!r}",
                                      instrument=self.instrument_name, command="read-back",
                                      fix="the instrument rejected or clamped a limit; check its ratings")
        self._limits_verified = True
        return got

    def set_voltage(self, volts: float) -> None:
        self._refuse("voltage setpoint", volts, self.limits.voltage_min_v, self.limits.voltage_max_v)
        self._set_voltage(float(volts))

    def set_current_limits(self, charge_a: float, discharge_a: float) -> None:
        """Both magnitudes >= 0: charge = into the EV battery, discharge = out of it."""
        self._refuse("charge current limit", charge_a, 0.0, self.limits.current_charge_max_a)
        self._refuse("discharge current limit", discharge_a, 0.0, self.limits.current_discharge_max_a)
        self._set_current_limits(float(charge_a), float(discharge_a))
        self._charge_limit_a, self._discharge_limit_a = float(charge_a), float(discharge_a)

    def set_power_limit(self, watts: float) -> None:
        self._refuse("power limit", watts, 0.0, self.limits.power_max_w)
        self._set_power_limit(float(watts))

    def output_on(self) -> None:
        if not self._limits_verified:
            raise BenchError("output_on refused: limits were not programmed and read back",
                             where=f"{self.name} ({self.instrument_name})", fix="call apply_limits() first")
        if self.has_watchdog:
            self.arm_watchdog(self.watchdog_s)
        self._set_output(True)
        if not self._query_output():
            raise InstrumentError("output did not switch on", instrument=self.instrument_name,
                                  command="output on", fix="read errors()/protection_status()")

    def output_off(self) -> None:
        self._set_output(False)

    def output_is_on(self) -> bool:
        return self._query_output()

    def read(self) -> DCReading:
        """One synchronous V/I/P read, + = into the EV battery."""
        t0 = time.monotonic()
        v, i, p = self._measure()
        return DCReading(t=(t0 + time.monotonic()) / 2, voltage_v=v, current_a=i, power_w=p)

    @contextmanager
    def keep_alive(self, period_s: float | None = None):
        """Feed the instrument's communication watchdog while a test holds the DC link (the
        watchdog turns the output off when the bench goes silent: a crashed harness stays safe).

        Polls the output state every `period_s` (default a quarter of the watchdog delay) from a
        thread; yields a dict whose "dropped" is set if the output turned off on its own."""
        period = period_s or max(0.1, self.watchdog_s / 4)
        status = {"dropped": False, "error": None, "polls": 0}
        stop = threading.Event()

        def run():
            while not stop.wait(period):
                try:
                    on = self.output_is_on()
                    status["polls"] += 1
                    if not on:
                        status["dropped"] = True
                except Exception as e:  # noqa: BLE001 - recorded; the test and the unwind decide
                    status["error"] = e
                    return
        t = threading.Thread(target=run, name=f"{self.name}-keepalive", daemon=True)
        t.start()
        try:
            yield status
        finally:
            stop.set()
            t.join(5.0)

    def arm_watchdog(self, timeout_s: float) -> bool:
        """Arm the instrument's own I/O watchdog (output off if the bench goes silent). False = none."""
        return False

    def clear_protection(self) -> None:
        raise InstrumentError("protection clear not supported by this model", instrument=self.instrument_name)

    def protection_status(self) -> dict[str, bool]:
        return {}

    def errors(self) -> list[str]:
        return []

    def energy_wh(self) -> tuple[float, float]:
        """(into the EV battery, out of it) energy counters in Wh, if the model keeps them."""
        raise InstrumentError("energy counters not supported by this model", instrument=self.instrument_name)

    def set_battery_model(self, model: BatteryModel) -> None:
        raise InstrumentError("battery mode not supported by this model", instrument=self.instrument_name,
                              fix="use a model with battery emulation or drive the voltage from an EV model")

    # ---------------------------------------------------------------- shutdown
    def safe_state(self) -> None:
        """Ramp current limits to zero, output off, VERIFY off. Always runs every step."""
        problems: list[str] = []
        if self._closed:
            return
        c, d = self._charge_limit_a, self._discharge_limit_a
        for k in range(self.ramp_steps - 1, -1, -1):
            frac = k / self.ramp_steps
            try:
                self._set_current_limits(c * frac, d * frac)
            except Exception as e:   # keep going: switching off matters more than the ramp
                problems.append(f"ramp step {frac:.2f}: {e}")
                break
        self._finish_off(problems)

    def hard_stop(self) -> None:
        """Output off now (no ramp), verified; for emergencies and `safety.hard_stop_all()`."""
        if self._closed:
            return
        self._finish_off([])

    def _finish_off(self, problems: list[str]) -> None:
        try:
            self._set_output(False)
        except Exception as e:
            problems.append(f"output off: {e}")
        self._limits_verified = False
        self.last_shutdown_problems = problems
        try:
            on = self._query_output()
        except Exception as e:
            raise SafeStateError(f"output state could not be verified ({e})" +
                                 (f"; earlier: {'; '.join(problems)}" if problems else ""),
                                 where=f"{self.name} ({self.instrument_name})",
                                 fix="switch the instrument off at its front panel / E-stop now") from e
        if on:
            raise SafeStateError("output still ON after the off command" +
                                 (f"; {'; '.join(problems)}" if problems else ""),
                                 where=f"{self.name} ({self.instrument_name})",
                                 fix="switch the instrument off at its front panel / E-stop now")
        if problems:
            log.warning("%s: output verified off, but: %s", self.name, "; ".join(problems))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        safety.unregister(self)
        try:
            self._close_transport()
        except Exception as e:
            log.warning("%s: closing the transport failed: %s", self.name, e)

    # ---------------------------------------------------------------- vendor primitives
    def _program_protection(self, ovp_v: float) -> None: raise NotImplementedError
    def _set_voltage(self, volts: float) -> None: raise NotImplementedError
    def _set_current_limits(self, charge_a: float, discharge_a: float) -> None: raise NotImplementedError
    def _set_power_limit(self, watts: float) -> None: raise NotImplementedError
    def _readback_limits(self) -> dict[str, float]: raise NotImplementedError
    def _set_output(self, on: bool) -> None: raise NotImplementedError
    def _query_output(self) -> bool: raise NotImplementedError
    def _measure(self) -> tuple[float, float, float]: raise NotImplementedError
    def _close_transport(self) -> None: pass


# The issue names both; a battery emulator is this role with battery mode available.
BatteryEmulator = BidirectionalDCSource
