"""Chroma 17040 regenerative battery simulator, battery-simulation mode (SCPI, LAN port 60000).

Structure differs: the voltage follows the battery model (capacity, OCV curve, ESR, initial SOC),
protection is one symmetric OCP plus high/low voltage trips, output is `BATTery:OUTPut`. Strings as
used by the SunSpec SVP battery-simulator driver for the Chroma 17040 (svpelab chroma battsim), see
instruments/scpi/chroma_17040.toml.
"""
from __future__ import annotations

from pymeasure.instruments import Instrument

from v2g_bench.errors import InstrumentError
from v2g_bench.roles import RoleConfig

from v2g_bench.instruments.dc_source import BatteryModel
from v2g_bench.instruments.scpi import ScpiInstrument
from v2g_bench.instruments.vendors.coded_dc_source import CodedDCSource


class Chroma17040Instrument(ScpiInstrument):
    voltage_high_protection = Instrument.control("BATT:VOH?", "BATT:VOH %g", "high voltage protection, V",
                                                 check_set_errors=True)
    voltage_low_protection = Instrument.control("BATT:VOLP?", "BATT:VOLP %g", "low voltage protection, V",
                                                check_set_errors=True)
    current_protection = Instrument.control("BATT:OCP?", "BATT:OCP %g", "over-current protection, A",
                                            check_set_errors=True)
    output = Instrument.control("BATT:OUTP?", "BATT:OUTP %s", "battery output", cast=bool,
                                set_process=lambda v: "1" if v else "0", check_set_errors=True)
    capacity_ah = Instrument.setting("BATT:CAP %g", "capacity, Ah", check_set_errors=True)
    esr_ohm = Instrument.setting("BATT:ESR %g", "series resistance, ohm", check_set_errors=True)


class Chroma17040(CodedDCSource):
    Instrument = Chroma17040Instrument
    profile_name = "chroma_17040"
    description = "Chroma 17040 regenerative battery simulator (battery mode, SCPI)"

    @classmethod
    def validate_config(cls, cfg: RoleConfig) -> list[str]:
        problems = super().validate_config(cfg)
        lim = cfg.limits
        if lim.get("current_charge_max_a") != lim.get("current_discharge_max_a"):
            problems.append(f"{cfg.where('limits')}: the Chroma 17040 battery mode has ONE symmetric OCP; set "
                            "current_charge_max_a == current_discharge_max_a")
        return problems

    def _program_protection(self, ovp_v: float) -> None:
        self.inst.voltage_high_protection = ovp_v
        self.inst.voltage_low_protection = self.limits.voltage_min_v

    def _set_current_limits(self, charge_a: float, discharge_a: float) -> None:
        self.inst.current_protection = max(charge_a, discharge_a)

    def _set_power_limit(self, watts: float) -> None:
        self._power_w = watts      # no power limit in battery mode: enforced by the OCP and OVP only

    def _readback_limits(self) -> dict[str, float]:
        ocp = self.inst.current_protection
        return {"voltage_protection_v": self.inst.voltage_high_protection, "current_charge_a": ocp,
                "current_discharge_a": ocp, "power_w": self._power_w}

    def _set_voltage(self, volts: float) -> None:
        raise InstrumentError("battery mode: the voltage follows the OCV curve and SOC",
                              instrument=self.instrument_name, command="set_voltage",
                              fix="use set_battery_model(BatteryModel(...)) on this model")

    def set_battery_model(self, model: BatteryModel) -> None:
        self.inst.capacity_ah = model.capacity_ah
        self.inst.esr_ohm = model.internal_resistance_ohm
        if model.ocv_table:
            socs = ",".join(f"{s * 100:.1f}" for s, _ in model.ocv_table)
            vs = ",".join(f"{v:.2f}" for _, v in model.ocv_table)
            self.inst.write(f"BATT:CURV 0,{len(model.ocv_table)},{vs}")
            self.inst.check_errors()
            self.inst.write(f"BATT:CURV 1,{len(model.ocv_table)},{socs}")
            self.inst.check_errors()
        self.inst.write("BATT:INIT 0")
        self.inst.check_errors()
        self.inst.write(f"BATT:INIT:CAP {model.soc * 100:g}")
        self.inst.check_errors()

    def _set_output(self, on: bool) -> None:
        self.inst.output = on

    def _query_output(self) -> bool:
        return bool(self.inst.output)

    def _measure(self) -> tuple[float, float, float]:
        v = self.inst.query_float("MEAS:VOLT?")
        i = self.inst.query_float("MEAS:CURR?")
        p = self.inst.query_float("MEAS:POW?")
        return v, self.current_sign * i, self.current_sign * p

    def clear_protection(self) -> None:
        self.inst.write("PROT:CLE")
        self.inst.check_errors()
