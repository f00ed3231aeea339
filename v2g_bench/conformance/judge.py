"""Judgement words: what flowed, measured by the bench's own instruments, against what was commanded.

    judge.record_dc_power(save_as="dc")                   start sampling the analyzer (10 Hz, CSV evidence as it goes)
    judge.power_follows("commanded", samples="dc", req=…)  measured DC power vs a CommandedProfile saved earlier
    judge.energy_registers_match("started", "ended", req=…)  TransactionEvent registers vs the analyzer's integrators

Built on v2g_bench.verification (dead time, t90, band, exceedance; partial coverage → inconclusive).
"""
from __future__ import annotations

from v2g_bench.conformance.steps import Step
from v2g_bench.errors import CaseDefinitionError, Inconclusive, Nonconformance


class record_dc_power(Step):  # noqa: N801
    kind = "stimulus"

    def __init__(self, *, save_as: str = "dc", rate_hz: float = 10.0, with_battery: bool = True):
        self.save_as, self.rate_hz, self.with_battery = save_as, rate_hz, with_battery
        self.name = f"the analyzer samples the DC link at {rate_hz:g} Hz"
        self.req = None

    def run(self, ctx):
        from v2g_bench.harness.sampling import Recorder, dc_power_reader
        reader = dc_power_reader(ctx.analyzer, battery=ctx.dc_link if self.with_battery else None)
        rec = Recorder(reader, rate_hz=self.rate_hz, name=f"{self.save_as}-samples.csv")
        rec.__enter__()
        ctx.on_close(lambda: rec.__exit__(None, None, None))
        ctx.vars[self.save_as] = rec


class power_follows(Step):  # noqa: N801
    """The measured DC power follows the commanded profile (a `CommandedProfile` an earlier step saved) within the
    DUT's tolerances: dead time, t90, band after settling, no exceedance of the rating."""

    kind = "judge"

    def __init__(self, commanded: str = "commanded", *, samples: str = "dc", req: str | tuple[str, ...] | None = None,
                 title: str = "DC power vs the commanded profile", min_samples: int = 50, **tolerance_overrides):
        self.commanded, self.samples, self.req, self.title_text = commanded, samples, req, title
        self.min_samples, self.overrides = min_samples, tolerance_overrides
        self.name = f"measured DC power follows {commanded!r} (analyzer)"

    def run(self, ctx):
        from v2g_bench.verification.compliance import Tolerance, judge_schedule
        from v2g_bench.verification.plots import plot_power_tracking
        if self.commanded not in ctx.vars or self.samples not in ctx.vars:
            raise CaseDefinitionError(f"power_follows: needs {self.commanded!r} and {self.samples!r} saved earlier")
        commanded, rec = ctx.vars[self.commanded], ctx.vars[self.samples]
        s = rec.stop()          # idempotent; a sampling failure is the bench's (InstrumentError)
        if len(s) < self.min_samples:
            raise Inconclusive(f"only {len(s)} analyzer samples")
        dut = ctx.dut_profile
        kw = dict(max_charge_w=dut.charge.power_max_w,
                  max_discharge_w=dut.discharge.power_max_w if dut.discharge else 0.0,
                  energy_dev_max_pct=None, cite="DUT profile [tolerances]")
        kw.update(ctx.resolve(self.overrides))
        tol = Tolerance.from_dut_tolerances(dut.tolerances, **kw)
        res = judge_schedule(commanded, (s.t_s, s["dc_w"]), tol)
        ctx.attach("power-compliance", res.to_dict())
        try:
            ctx.attach("power-tracking.png", plot_power_tracking(commanded, s.t_s, s["dc_w"], tol,
                                                                 title=str(ctx.resolve(self.title_text))))
        except Exception as e:  # noqa: BLE001 - a plot is evidence, not the verdict
            ctx.attach("plot-error", repr(e))
        try:
            res.assert_pass()
        except Nonconformance as e:
            raise Nonconformance(str(e), req=e.req or self.reqs()) from None


class energy_registers_match(Step):  # noqa: N801
    """The station's energy registers (Started → Ended TransactionEvents) equal the analyzer's AC integrators
    over the same interval, within the DUT's energy tolerance."""

    kind = "judge"

    def __init__(self, started: str = "started", ended: str = "ended", *, analyzer_before: str = "energy0",
                 req: str | tuple[str, ...] | None = None, abs_wh: float = 0.5):
        self.started, self.ended, self.before, self.req, self.abs_wh = started, ended, analyzer_before, req, abs_wh
        self.name = "TransactionEvent energy registers equal the analyzer's (AC side)"

    def run(self, ctx):
        from v2g_bench.csms.payloads import energy_registers
        for k in (self.started, self.ended, self.before):
            if k not in ctx.vars:
                raise CaseDefinitionError(f"energy_registers_match: nothing saved as {k!r}")
        a0 = ctx.vars[self.before]
        a1 = {e: ctx.analyzer.energy_wh(e) for e in (1, 2)}
        imp0, exp0 = energy_registers(ctx.vars[self.started])
        imp1, exp1 = energy_registers(ctx.vars[self.ended])
        energy = {"station_import_wh": imp1 - imp0, "station_export_wh": exp1 - exp0,
                  "analyzer_ac_in_wh": a1[2][0] - a0[2][0], "analyzer_ac_out_wh": a1[2][1] - a0[2][1],
                  "analyzer_dc_in_wh": a1[1][0] - a0[1][0], "analyzer_dc_out_wh": a1[1][1] - a0[1][1]}
        ctx.attach("energy", energy)
        rel = ctx.dut_profile.tolerance("energy_rel", 0.02)
        for sk, ak in (("station_import_wh", "analyzer_ac_in_wh"), ("station_export_wh", "analyzer_ac_out_wh")):
            a, b = energy[sk], energy[ak]
            # plus abs_wh: the registers and the analyzer's reads are up to ~0.3 s apart
            if not abs(a - b) <= max(self.abs_wh, rel * abs(b)):
                raise Nonconformance(f"{sk} = {a:.2f} Wh but the analyzer measured {b:.2f} Wh "
                                     f"(tolerance {100 * rel:g} % or {self.abs_wh:g} Wh)", req=self.reqs())


class save_analyzer_energy(Step):  # noqa: N801
    kind = "stimulus"

    def __init__(self, save_as: str = "energy0", *, reset: bool = True):
        self.save_as, self.reset = save_as, reset
        self.name = "the analyzer's integrators are reset and read" if reset else "the analyzer's integrators are read"
        self.req = None

    def run(self, ctx):
        if self.reset:
            ctx.analyzer.integration_reset()
            ctx.analyzer.integration_start()
        ctx.vars[self.save_as] = {e: ctx.analyzer.energy_wh(e) for e in (1, 2)}
