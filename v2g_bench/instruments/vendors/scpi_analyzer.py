"""Power analyzers over SCPI: Yokogawa WT5000/WT1800 (numeric item list) and Hioki PW3390/PW6001
(items named in the query). Function names and commands come from instruments/scpi/<model>.toml;
the acquisition structure differs between the two vendors, so each has a small class here."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

from v2g_bench.errors import InstrumentError
from v2g_bench.roles import BenchContext, RoleConfig

from v2g_bench.instruments.analyzer import PowerAnalyzer, parse_analyzer_value
from v2g_bench.instruments.profile import load_profile
from v2g_bench.instruments.scpi import ScpiInstrument
from v2g_bench.instruments.transport import open_visa_for, initialized

FIELDS = ("voltage", "current", "power", "power_factor", "frequency", "energy_in", "energy_out")


@lru_cache(maxsize=16)
def _inst_class(profile_name: str) -> type[ScpiInstrument]:
    prof = load_profile(profile_name, "scpi", required=("items", "commands"))
    sess = prof.get("session", {})
    return type(f"Analyzer_{prof['model']['id']}", (ScpiInstrument,),
                {"error_query": sess.get("error_query") or None})


class ScpiPowerAnalyzer(PowerAnalyzer):
    profile_name: ClassVar[str] = ""

    def __init__(self, inst: ScpiInstrument, *, name: str = "analyzer", options: dict[str, Any] | None = None,
                 profile_name: str | None = None):
        super().__init__(name=name, options=options, instrument_name=inst.name)
        self.inst = inst
        self.profile = load_profile(profile_name or self.profile_name, "scpi", required=("items", "commands"))
        self.cmd = self.profile["commands"]
        self.items = self.profile["items"]

    @classmethod
    def instrument_class(cls, profile_name: str | None = None) -> type[ScpiInstrument]:
        return _inst_class(profile_name or cls.profile_name)

    @classmethod
    def from_instrument(cls, inst, *, options=None, name="analyzer", initialize=True):
        drv = cls(inst, name=name, options=options)
        if initialize:
            drv.initialize()
        return drv

    @classmethod
    def open(cls, cfg: RoleConfig, ctx: BenchContext | None = None):
        pname = cfg.options.get("profile", cls.profile_name)
        prof = load_profile(pname, "scpi")
        sess = prof.get("session", {})
        label, adapter = open_visa_for(cfg, sess)
        drv = cls(cls.instrument_class(pname)(adapter, name=label), name=cfg.role, options=cfg.options,
                  profile_name=pname)
        return initialized(drv)

    def _send(self, command: str) -> None:
        self.inst.write(command)
        self.inst.check_errors()

    def initialize(self) -> None:
        for command in self.profile.get("session", {}).get("init", []):
            self._send(command)

    def identify(self) -> str:
        return self.inst.ask("*IDN?").strip()

    def self_test(self) -> str:
        idn = self.identify()
        want = self.profile["model"].get("idn_contains")
        if want and want.lower() not in idn.lower():
            return f"FAIL: identity {idn!r} does not contain {want!r}"
        r = self.read()
        return f"ok: {idn}; " + ", ".join(f"element {e}: {x.voltage_v:.4g} V {x.power_w:.4g} W"
                                          for e, x in r.elements.items())

    def close(self) -> None:
        try:
            self.inst.adapter.close()
        except Exception:
            pass

    def _set_ranges(self, element, voltage_v, current_a) -> None:
        if voltage_v is not None:
            self._send(self.cmd["voltage_range"].format(element=element, value=voltage_v))
        if current_a is not None:
            self._send(self.cmd["current_range"].format(element=element, value=current_a))

    def integration_start(self) -> None:
        self._send(self.cmd["integration_start"])

    def integration_stop(self) -> None:
        self._send(self.cmd["integration_stop"])

    def integration_reset(self) -> None:
        self._send(self.cmd["integration_reset"])

    def integration_state(self) -> str:
        return self.inst.ask(self.cmd["integration_state"]).strip().upper()

    def set_update_interval(self, seconds: float) -> None:
        allowed = self.profile.get("session", {}).get("update_intervals_s")
        if allowed and not any(abs(seconds - a) < 1e-9 for a in allowed):
            raise InstrumentError(f"update interval {seconds:g} s not offered; choose one of {allowed}",
                                  instrument=self.instrument_name)
        self._send(self.cmd["update_interval"].format(ms=round(seconds * 1000), s=seconds))

    def _parse(self, command: str, answer: str, n: int) -> list[float]:
        parts = [p for p in answer.replace(";", ",").split(",") if p.strip()]
        try:
            vals = [parse_analyzer_value(p) for p in parts]
        except ValueError:
            vals = []
        if len(vals) != n:
            raise InstrumentError(f"expected {n} numeric values", instrument=self.instrument_name,
                                  command=command, answer=answer)
        return vals


class YokogawaWT(ScpiPowerAnalyzer):
    """Numeric items are registered once (:NUM:NORM:ITEM<k> <func>,<elem>) and read with :NUM:NORM:VAL?."""

    def initialize(self) -> None:
        super().initialize()
        funcs = [self.items[f] for f in FIELDS]
        self._send(self.cmd["item_count"].format(n=len(funcs) * len(self.elements)))
        k = 0
        for e in self.elements:
            for func in funcs:
                k += 1
                self._send(self.cmd["item"].format(k=k, func=func, element=e))

    def _acquire(self) -> dict[int, tuple]:
        q = self.cmd["values"]
        vals = self._parse(q, self.inst.ask(q).strip(), len(FIELDS) * len(self.elements))
        n = len(FIELDS)
        return {e: tuple(vals[j * n:(j + 1) * n]) for j, e in enumerate(self.elements)}


class YokogawaWT5000(YokogawaWT):
    profile_name = "yokogawa_wt5000"
    description = "Yokogawa WT5000 precision power analyzer (SCPI-like, :NUM:NORM)"


class YokogawaWT1800(YokogawaWT):
    profile_name = "yokogawa_wt1800"
    description = "Yokogawa WT1800 power analyzer (SCPI-like, :NUM:NORM)"


class HiokiPW(ScpiPowerAnalyzer):
    """Items are named in the query itself: `:MEAS? U1,I1,P1,...` (header off)."""

    def _query_items(self) -> str:
        return ",".join(self.items[f].format(element=e) for e in self.elements for f in FIELDS)

    def _acquire(self) -> dict[int, tuple]:
        q = self.cmd["values"].format(items=self._query_items())
        vals = self._parse(q, self.inst.ask(q).strip(), len(FIELDS) * len(self.elements))
        n = len(FIELDS)
        return {e: tuple(vals[j * n:(j + 1) * n]) for j, e in enumerate(self.elements)}


class HiokiPW3390(HiokiPW):
    profile_name = "hioki_pw3390"
    description = "Hioki PW3390 power analyzer (LAN port 3390)"


class HiokiPW6001(HiokiPW):
    profile_name = "hioki_pw6001"
    description = "Hioki PW6001 power analyzer"
