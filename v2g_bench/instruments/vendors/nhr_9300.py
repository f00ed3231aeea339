"""NH Research 9200/9300 battery simulator (SCPI). Structure differs from the table-driven
sources: the operating point is ONE compound command `OPERation <mode>,<enable>,<V>,<I>,<P>,<R>`
and the per-direction limits are the trip table `OUTPut:SAFety` (13 values), so this is code.
Strings: instruments/scpi/nhr_9300.toml (source: SunSpec SVP `svpelab/device_battsim_nhr.py`,
which follows the NHR 9200/9300 SCPI programming manual).
"""
from __future__ import annotations

from pymeasure.instruments import Instrument

from v2g_bench.errors import InstrumentError

from v2g_bench.instruments.scpi import ScpiInstrument
from v2g_bench.instruments.vendors.coded_dc_source import CodedDCSource

OFF, STANDBY, BATTERY = 0, 1, 4
ENABLE_V_I_P = 1 | 2 | 4          # voltage, current and power setpoints active


class Nhr9300Instrument(ScpiInstrument):
    operation = Instrument.control(
        "OPER?", "OPER %s", "mode,enable,V,I,P,R (mode 0 off, 1 standby, 4 battery)", cast=str,
        get_process_list=lambda v: v, check_set_errors=True)
    safety = Instrument.control(
        "OUTP:SAF?", "OUTP:SAF %s", "MinV,t,MaxV,t,MaxSinkA,t,MaxSourceA,t,MaxSinkW,t,MaxSourceW,t,MaxTemp",
        get_process_list=lambda v: v, check_set_errors=True)
    watchdog_interval = Instrument.control("SYST:WATC:INT?", "SYST:WATC:INT %g",
                                           "I/O watchdog interval, s", check_set_errors=True)
    background = Instrument.measurement("FETC:BACK:ALL?", "20 background values (V, I, P, Ah..., kWh ...)",
                                        get_process_list=lambda v: v)


class NhResearch9300(CodedDCSource):
    Instrument = Nhr9300Instrument
    profile_name = "nhr_9300"
    description = "NH Research 9200/9300 battery simulator (SCPI)"
    has_watchdog = True

    def __init__(self, inst, **kw):
        super().__init__(inst, **kw)
        self._v = 0.0
        self._p = 0.0
        self._mode = OFF

    def _oper(self, mode: int) -> None:
        i = max(self._charge_limit_a, self._discharge_limit_a)
        self.inst.operation = f"{mode},{ENABLE_V_I_P},{self._v:g},{i:g},{self._p:g},0"
        self._mode = mode

    # The safety table enforces each direction; the battery-mode current setpoint is the larger one.
    def _program_protection(self, ovp_v: float) -> None:
        self._ovp = ovp_v

    def _set_current_limits(self, charge_a: float, discharge_a: float) -> None:
        self._charge_limit_a, self._discharge_limit_a = charge_a, discharge_a
        self._write_safety(charge_a, discharge_a, getattr(self, "_p", 0.0))
        if self._mode:
            self._oper(self._mode)

    def _set_power_limit(self, watts: float) -> None:
        self._p = watts
        self._write_safety(self._charge_limit_a, self._discharge_limit_a, watts)

    def _write_safety(self, charge_a: float, discharge_a: float, watts: float) -> None:
        # Sink = into the NHR = the EV battery charging. Time -1 disables a trip (min V not used),
        # time 0 trips at once. Max temperature -1: not monitored.
        ovp = getattr(self, "_ovp", self.limits.ovp_level_v)
        self.inst.safety = (f"{self.limits.voltage_min_v:g},-1,{ovp:g},0,{charge_a:g},0,{discharge_a:g},0,"
                            f"{watts:g},0,{watts:g},0,-1")

    def _readback_limits(self) -> dict[str, float]:
        vals = [float(x) for x in self.inst.safety]
        if len(vals) != 13:
            raise InstrumentError("OUTP:SAF? must return 13 values", instrument=self.instrument_name,
                                  command="OUTP:SAF?", answer=",".join(map(str, vals)))
        return {"voltage_protection_v": vals[2], "current_charge_a": vals[4], "current_discharge_a": vals[6],
                "power_w": min(vals[8], vals[10])}

    def _set_voltage(self, volts: float) -> None:
        self._v = volts
        self._oper(self._mode or STANDBY)

    def _set_output(self, on: bool) -> None:
        self._oper(BATTERY if on else OFF)

    def _query_output(self) -> bool:
        fields = self.inst.operation
        try:
            return int(float(fields[0])) == BATTERY
        except (ValueError, IndexError):
            raise InstrumentError("OPER? answer not understood", instrument=self.instrument_name,
                                  command="OPER?", answer=str(fields)) from None

    def _measure(self) -> tuple[float, float, float]:
        # MEAS starts one acquisition; FETC returns current and power from the SAME acquisition.
        v = self.inst.query_float("MEAS:VOLT?")
        i = self.inst.query_float("FETC:CURR?")
        p = self.inst.query_float("FETC:POW?")
        return v, self.current_sign * i, self.current_sign * p

    def arm_watchdog(self, timeout_s: float) -> bool:
        self.inst.watchdog_interval = timeout_s
        return True

    def energy_wh(self) -> tuple[float, float]:
        vals = [float(x) for x in self.inst.background]
        return vals[8] * 1000.0, vals[9] * 1000.0     # kWh charge, kWh discharge

    def errors(self) -> list[str]:
        out = []
        for _ in range(self.inst.max_error_reads):
            ans = self.inst.ask("SYST:ERR?").strip()
            if ans.split(",", 1)[0].strip() in ("0", "+0"):
                break
            out.append(ans)
        return out
