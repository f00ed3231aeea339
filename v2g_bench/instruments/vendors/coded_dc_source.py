"""Shared plumbing for DC sources whose command STRUCTURE differs from the table-driven one
(one compound `OPER` command, one symmetric OCP, battery-curve mode ...): the vendor module defines
a pymeasure instrument class in Python and the role primitives; this base opens the transport."""
from __future__ import annotations

from typing import Any, ClassVar

from v2g_bench.roles import BenchContext, RoleConfig

from v2g_bench.instruments.dc_source import BidirectionalDCSource, DCLimits
from v2g_bench.instruments.profile import load_profile
from v2g_bench.instruments.scpi import ScpiInstrument
from v2g_bench.instruments.transport import open_visa_for, initialized


class CodedDCSource(BidirectionalDCSource):
    Instrument: ClassVar[type[ScpiInstrument]]
    profile_name: ClassVar[str]

    def __init__(self, inst: ScpiInstrument, *, name: str, limits: DCLimits,
                 options: dict[str, Any] | None = None):
        super().__init__(name=name, limits=limits, options=options, instrument_name=inst.name)
        self.inst = inst
        self.profile = load_profile(self.profile_name, "scpi")
        self.current_sign = float(self.profile.get("sign", {}).get("current", 1))

    @classmethod
    def from_instrument(cls, inst, *, limits: DCLimits, name: str = "battery", options=None,
                        initialize: bool = True):
        drv = cls(inst, name=name, limits=limits, options=options)
        if initialize:
            drv.initialize()
        return drv

    @classmethod
    def open(cls, cfg: RoleConfig, ctx: BenchContext | None = None):
        limits = DCLimits.from_config(cfg)
        prof = load_profile(cls.profile_name, "scpi")
        sess = prof.get("session", {})
        label, adapter = open_visa_for(cfg, sess)
        drv = cls(cls.Instrument(adapter, name=label), name=cfg.role, limits=limits, options=cfg.options)
        return initialized(drv)

    def initialize(self) -> None:
        for command in self.profile.get("session", {}).get("init", []):
            self.inst.write(command)
            self.inst.check_errors()

    def identify(self) -> str:
        return self.inst.ask("*IDN?").strip()

    def _close_transport(self) -> None:
        self.inst.adapter.close()
