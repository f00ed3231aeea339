"""Role API: EnergyMeter (Modbus). Register maps are data: instruments/modbus/<map>.toml.

Sign: + power = import from the grid towards the charger/EV (a meter on the AC side of the DUT);
set the role option `power_sign = -1` if the meter is wired the other way round.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from v2g_bench.errors import InstrumentError

from v2g_bench.instruments.modbus import ModbusDevice
from v2g_bench.instruments.profile import load_profile


@dataclass(frozen=True)
class MeterReading:
    t: float
    voltage_l1_v: float
    current_l1_a: float
    power_l1_w: float
    power_total_w: float
    frequency_hz: float
    energy_import_wh: float
    energy_export_wh: float


class ModbusEnergyMeter(ModbusDevice):
    roles: ClassVar[tuple[str, ...]] = ("meter",)
    profile_name: ClassVar[str] = "eastron_sdm630"
    description = "Modbus energy meter (register map from instruments/modbus/)"

    def __init__(self, client, **kw):
        super().__init__(client, **kw)
        self.profile = load_profile(self.options.get("profile", self.profile_name), "modbus",
                                    required=("registers",))
        self.function = int(self.profile["model"].get("function", 4))
        self.sign = float(self.options.get("power_sign", self.profile.get("sign", {}).get("power", 1)))

    def _value(self, name: str) -> float:
        addr, unit = self.profile["registers"][name]
        v = self.read_float32(self.function, int(addr))
        return v * 1000.0 if unit == "kWh" else v

    def read(self) -> MeterReading:
        t0 = time.monotonic()
        vals = {n: self._value(n) for n in self.profile["registers"]}
        t = (t0 + time.monotonic()) / 2
        imp, exp = vals["energy_import"], vals["energy_export"]
        if self.sign < 0:
            imp, exp = exp, imp
        return MeterReading(t, vals["voltage_l1"], self.sign * vals["current_l1"], self.sign * vals["power_l1"],
                            self.sign * vals["power_total"], vals["frequency"], imp, exp)

    def power_w(self) -> float:
        return self.sign * self._value("power_total")

    def identify(self) -> str:
        f = self._value("frequency")
        if not 40.0 <= f <= 70.0:
            raise InstrumentError("frequency register out of 40..70 Hz: wrong map or device?",
                                  instrument=self.instrument_name, command="frequency", answer=f"{f!r}")
        return f"{self.profile['model']['vendor']} {self.profile['model']['family']} (device {self.device_id})"

    def safe_state(self) -> None:
        """A meter only measures: it has no output to switch off, so its safe state is itself."""

    def self_test(self) -> str:
        r = self.read()
        return f"ok: {self.identify()}; {r.voltage_l1_v:.1f} V, {r.power_total_w:.0f} W, {r.frequency_hz:.2f} Hz"


class EastronSDM630(ModbusEnergyMeter):
    profile_name = "eastron_sdm630"
