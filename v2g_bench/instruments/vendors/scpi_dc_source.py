"""Table-driven SCPI regenerative DC source: one class, one TOML command table per model.

Models whose command structure is "voltage setpoint + separate source/sink current limits + power
limit + output switch" (Keysight RP7900, EA PSB 10000, ...) need only a profile in
`instruments/scpi/`; the profile's [sign] table converts the vendor's sign rule to ours.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

from v2g_bench.errors import InstrumentError
from v2g_bench.roles import BenchContext, RoleConfig

from v2g_bench.instruments.dc_source import BidirectionalDCSource, DCLimits
from v2g_bench.instruments.profile import load_profile
from v2g_bench.instruments.scpi import ScpiInstrument, build_instrument_class, do
from v2g_bench.instruments.transport import open_visa_for, initialized

REQUIRED = ("commands.voltage", "commands.current_limit_source", "commands.current_limit_sink",
            "commands.power_limit", "commands.voltage_protection", "commands.output",
            "commands.measured_voltage", "commands.measured_current", "commands.measured_power")


@lru_cache(maxsize=32)
def _instrument_class(profile_name: str) -> type[ScpiInstrument]:
    prof = load_profile(profile_name, "scpi", required=REQUIRED)
    return build_instrument_class(f"Scpi_{prof['model'].get('id', 'dc')}", prof)


class ScpiDCSource(BidirectionalDCSource):
    """A regenerative DC source whose commands all come from its profile."""

    profile_name: ClassVar[str] = ""
    description = "table-driven SCPI bidirectional DC source"

    def __init__(self, inst: ScpiInstrument, *, profile: dict[str, Any], name: str, limits: DCLimits,
                 options: dict[str, Any] | None = None):
        super().__init__(name=name, limits=limits, options=options, instrument_name=inst.name)
        self.inst = inst
        self.profile = profile
        sign = profile.get("sign", {})
        self.current_sign = float(sign.get("current", 1))     # ours = current_sign * instrument's
        self.power_sign = float(sign.get("power", self.current_sign))
        self.sink_limit_sign = float(sign.get("sink_limit", 1))  # instrument wants sink limit * this
        cmds = profile["commands"]
        self.has_watchdog = "watchdog" in cmds and "watchdog_delay" in cmds
        self._has = set(cmds)

    # ---------------------------------------------------------------- construction
    @classmethod
    def instrument_class(cls, profile_name: str | None = None) -> type[ScpiInstrument]:
        return _instrument_class(profile_name or cls.profile_name)

    @classmethod
    def from_instrument(cls, inst: ScpiInstrument, *, limits: DCLimits, name: str = "battery",
                        options: dict[str, Any] | None = None, profile_name: str | None = None,
                        initialize: bool = True) -> "ScpiDCSource":
        """Wrap an already-made pymeasure instrument (tests pass one built on expected_protocol)."""
        prof = load_profile(profile_name or cls.profile_name, "scpi", required=REQUIRED)
        drv = cls(inst, profile=prof, name=name, limits=limits, options=options)
        if initialize:
            drv.initialize()
        return drv

    @classmethod
    def validate_config(cls, cfg: RoleConfig) -> list[str]:
        problems = super().validate_config(cfg)
        try:
            load_profile(cfg.options.get("profile", cls.profile_name), "scpi", required=REQUIRED)
        except Exception as e:
            problems.append(f"{cfg.where('profile')}: {e}")
        return problems

    @classmethod
    def open(cls, cfg: RoleConfig, ctx: BenchContext | None = None) -> "ScpiDCSource":
        limits = DCLimits.from_config(cfg)
        pname = cfg.options.get("profile", cls.profile_name)
        prof = load_profile(pname, "scpi", required=REQUIRED)
        sess = prof.get("session", {})
        label, adapter = open_visa_for(cfg, sess)
        inst = cls.instrument_class(pname)(adapter, name=label)
        drv = cls(inst, profile=prof, name=cfg.role, limits=limits, options=cfg.options)
        return initialized(drv)

    def initialize(self) -> None:
        """Clear status, then the model's init commands (e.g. remote lock, emulation mode)."""
        for command in self.profile.get("session", {}).get("init", []):
            self.inst.write(command)
            self.inst.check_errors()

    # ---------------------------------------------------------------- identity
    def identify(self) -> str:
        return self.inst.ask("*IDN?").strip()

    def self_test(self) -> str:
        idn = self.identify()
        want = self.profile["model"].get("idn_contains")
        if want and want.lower() not in idn.lower():
            return f"FAIL: identity {idn!r} does not contain {want!r} (wrong profile for this model?)"
        errs = self.errors()
        state = "ON" if self.output_is_on() else "off"
        return f"ok: {idn}; output {state}; error queue " + ("empty" if not errs else "; ".join(errs))

    # ---------------------------------------------------------------- primitives
    def _program_protection(self, ovp_v: float) -> None:
        self.inst.voltage_protection = ovp_v
        if "current_protection" in self._has:
            self.inst.current_protection = True

    def _set_voltage(self, volts: float) -> None:
        self.inst.voltage = volts

    def _set_current_limits(self, charge_a: float, discharge_a: float) -> None:
        # charge = EV battery absorbing = the instrument SINKING; discharge = instrument SOURCING
        if self.current_sign < 0:
            sink_a, source_a = charge_a, discharge_a
        else:
            sink_a, source_a = discharge_a, charge_a
        self.inst.current_limit_sink = self.sink_limit_sign * sink_a + 0.0   # + 0.0: never send '-0'
        self.inst.current_limit_source = source_a

    def _set_power_limit(self, watts: float) -> None:
        self.inst.power_limit = watts
        if "power_limit_sink" in self._has:
            self.inst.power_limit_sink = watts

    def _readback_limits(self) -> dict[str, float]:
        sink = self.sink_limit_sign * self.inst.current_limit_sink
        source = self.inst.current_limit_source
        charge, discharge = (sink, source) if self.current_sign < 0 else (source, sink)
        out = {"voltage_protection_v": self.inst.voltage_protection, "current_charge_a": charge,
               "current_discharge_a": discharge, "power_w": self.inst.power_limit}
        if "power_limit_sink" in self._has:
            out["power_w"] = min(out["power_w"], self.inst.power_limit_sink)
        return out

    def _set_output(self, on: bool) -> None:
        self.inst.output = on

    def _query_output(self) -> bool:
        return bool(self.inst.output)

    def _measure(self) -> tuple[float, float, float]:
        v = self.inst.measured_voltage
        i = self.inst.measured_current
        p = self.inst.measured_power
        return v, self.current_sign * i, self.power_sign * p

    def _close_transport(self) -> None:
        for command in self.profile.get("session", {}).get("final", []):
            try:
                self.inst.write(command)
            except InstrumentError:
                break
        self.inst.adapter.close()

    # ---------------------------------------------------------------- optional features
    def arm_watchdog(self, timeout_s: float) -> bool:
        if not self.has_watchdog:
            return False
        self.inst.watchdog_delay = timeout_s
        self.inst.watchdog = True
        if not self.inst.watchdog or abs(self.inst.watchdog_delay - timeout_s) > 1e-3:
            raise InstrumentError("watchdog did not arm", instrument=self.instrument_name,
                                  command=self.profile["commands"]["watchdog"]["set"])
        return True

    def clear_protection(self) -> None:
        if "clear_protection" not in self.inst.actions:
            return super().clear_protection()
        do(self.inst, "clear_protection")

    def protection_status(self) -> dict[str, bool]:
        if "questionable" not in self._has:
            return {}
        cond = int(self.inst.questionable)
        bits = self.profile.get("questionable_bits", {})
        return {name: bool(cond >> int(bit) & 1) for name, bit in bits.items()}

    def errors(self) -> list[str]:
        """Drain the error queue without raising (for diagnostics)."""
        q = self.inst.error_query
        if not q:
            return []
        out = []
        for _ in range(self.inst.max_error_reads):
            ans = self.inst.ask(q).strip()
            if ans.split(",", 1)[0].strip() in ("0", "+0"):
                break
            out.append(ans)
        return out

    def set_emulation(self, mode: str) -> None:
        """Model-specific operating mode (RP7900: PS4Q, BATT, ...)."""
        if "emulation" not in self._has:
            raise InstrumentError("no emulation modes on this model", instrument=self.instrument_name)
        self.inst.emulation = mode


class KeysightRP7900(ScpiDCSource):
    """Keysight RP7900 regenerative power system (instruments/scpi/keysight_rp7900.toml)."""
    profile_name = "keysight_rp7900"
    description = "Keysight RP7900 regenerative power system (SCPI)"


class EaPsb10000(ScpiDCSource):
    """EA Elektro-Automatik PSB 10000 bidirectional source/sink (instruments/scpi/ea_psb10000.toml)."""
    profile_name = "ea_psb10000"
    description = "EA-PSB 10000 bidirectional DC supply (SCPI)"
