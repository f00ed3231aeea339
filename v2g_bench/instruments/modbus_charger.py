"""Role API: ModbusCharger (local control of a bidirectional charger), Wallbox Quasar map as data.

Sign: current setpoint + = charge (into the EV battery), - = discharge; AC power + = charging.
Safety: `safe_state()` writes stop + zero current and verifies the charger left charging/discharging;
control is handed back to the user on close. Setpoints beyond the role limits
`current_charge_max_a` / `current_discharge_max_a` are refused before anything is written.
"""
from __future__ import annotations

import math
import time
from typing import ClassVar

from v2g_bench.errors import InstrumentError, LimitViolation, SafeStateError

from v2g_bench.instruments.modbus import ModbusDevice
from v2g_bench.instruments.profile import load_profile


class ModbusCharger(ModbusDevice):
    roles: ClassVar[tuple[str, ...]] = ("charger", "dut")
    required_limits: ClassVar[tuple[str, ...]] = ("current_charge_max_a", "current_discharge_max_a")
    profile_name: ClassVar[str] = "wallbox_quasar"
    ENERGIZED = ("charging", "discharging")

    def __init__(self, client, *, limits: dict[str, float] | None = None, **kw):
        super().__init__(client, **kw)
        self.profile = load_profile(self.options.get("profile", self.profile_name), "modbus",
                                    required=("registers", "values", "states"))
        self.reg = self.profile["registers"]
        self.val = self.profile["values"]
        self.limits = dict(limits or {})
        self.stop_timeout_s = float(self.options.get("stop_timeout_s", 5.0))

    @classmethod
    def open(cls, cfg, ctx=None):
        drv = super().open(cfg, ctx)
        drv.limits = dict(cfg.limits)
        return drv

    def initialize(self) -> None:
        self.take_control()
        if "idle_timeout_s" in self.options:     # the charger stops on its own if we go silent
            self.write_int16(self.reg["idle_timeout"], int(self.options["idle_timeout_s"]))

    def take_control(self) -> None:
        self.write_int16(self.reg["control"], self.val["control_remote"])

    def release_control(self) -> None:
        self.write_int16(self.reg["control"], self.val["control_user"])

    def set_current(self, amps: float) -> None:
        lo = -float(self.limits.get("current_discharge_max_a", math.inf))
        hi = float(self.limits.get("current_charge_max_a", math.inf))
        if not (math.isfinite(amps) and lo <= amps <= hi and float(amps).is_integer()):
            raise LimitViolation(f"current setpoint {amps!r} A outside [{lo:g}, {hi:g}] or not whole amperes — "
                                 "nothing was sent", where=f"{self.name} ({self.instrument_name})")
        self.write_int16(self.reg["current_setpoint"], int(amps))

    def start(self) -> None:
        self.write_int16(self.reg["action"], self.val["action_start"])

    def stop(self) -> None:
        self.write_int16(self.reg["action"], self.val["action_stop"])

    def state(self) -> str:
        code = self.read_int16(self.reg["state"])
        name = self.profile["states"].get(str(code))
        if name is None:
            raise InstrumentError("unknown charger state code", instrument=self.instrument_name,
                                  command=f"state 0x{self.reg['state']:04X}", answer=str(code))
        return name

    def soc_percent(self) -> int:
        return self.read_int16(self.reg["soc"])

    def ac_power_w(self) -> float:
        return float(self.read_int16(self.reg["ac_power"]))

    def identify(self) -> str:
        return f"{self.profile['model']['vendor']} {self.profile['model']['family']} (device {self.device_id}), " \
               f"state {self.state()}"

    def self_test(self) -> str:
        return f"ok: {self.identify()}; SoC {self.soc_percent()} %"

    def safe_state(self) -> None:
        """Stop + zero current, then wait (bounded) until the charger reports neither charging nor discharging."""
        problems = []
        for step in (self.stop, lambda: self.set_current(0)):
            try:
                step()
            except Exception as e:
                problems.append(str(e))
        deadline = time.monotonic() + self.stop_timeout_s
        state = None
        while True:
            try:
                state = self.state()
            except Exception as e:
                raise SafeStateError(f"charger state could not be verified ({e})", where=self.name,
                                     fix="stop the charger at its front panel") from e
            if state not in self.ENERGIZED or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if state in self.ENERGIZED:
            raise SafeStateError(f"charger still {state} {self.stop_timeout_s:g} s after stop"
                                 + (f" ({'; '.join(problems)})" if problems else ""), where=self.name,
                                 fix="stop the charger at its front panel")

    def close(self) -> None:
        try:
            self.release_control()
        except Exception:
            pass
        super().close()


class WallboxQuasar(ModbusCharger):
    profile_name = "wallbox_quasar"
    description = "Wallbox Quasar bidirectional charger, local Modbus TCP control"
