"""`v2g-bench run --dry-run`: open every role of a bench profile, identify it, check its limits and
wiring, and unwind it — without enabling power.

What is checked, per role (a role without a specific check gets identify + self_test):
- every role: it opens, identifies itself, passes its harmless self-test, and reaches its verified
  safe state in the unwind (the same `Bench.close()` a test uses);
- battery: the profile's limits are programmed (OVP, current, power) and read back — output stays off;
- analyzer x battery: the analyzer's DC element sees the battery emulator's terminal voltage (within
  2 % + 1 V) when the emulator's output is on; with it off the wiring is not provable (said so);
- ev_io: the board sees the charger's control pilot (+12 V, state A), i.e. it is wired to the inlet;
- chademo: the charger's frames on the bus (informative: many chargers stay silent until plugged).

No contactor is closed, no session started, no current flows. Exit code 0 when every role passed.
"""
from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from v2g_bench.errors import BenchError

console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


@dataclass
class RoleCheck:
    role: str
    driver: str
    resource: str = ""
    identity: str = ""
    checks: list[tuple[str, str, str]] = field(default_factory=list)   # (check, "ok"|"fail"|"info", detail)
    seconds: float = 0.0

    def add(self, check: str, status: str, detail: str = "") -> None:
        self.checks.append((check, status, detail))

    @property
    def ok(self) -> bool:
        return all(s != "fail" for _, s, _ in self.checks)


# -- role-specific checks (never enable power) -------------------------------------------------------
def _check_battery(drv, rc: RoleCheck, seen: dict) -> None:
    if hasattr(drv, "apply_limits"):
        drv.apply_limits()
        rc.add("limits programmed and read back", "ok", str(getattr(drv, "limits", "")))
    r = drv.read()
    on = drv.output_is_on() if hasattr(drv, "output_is_on") else None
    seen["battery_v"], seen["battery_on"] = r.voltage_v, on
    rc.add("reading", "ok", f"{r.voltage_v:.1f} V, {r.current_a:.2f} A, output {'on' if on else 'off'}")


def _check_analyzer(drv, rc: RoleCheck, seen: dict) -> None:
    el = int((drv.options.get("dc_element") if hasattr(drv, "options") else None) or 1)
    r = drv.read()[el]
    seen["analyzer_v"] = r.voltage_v
    rc.add("reading", "ok", f"element {el}: {r.voltage_v:.1f} V, {r.current_a:.2f} A, {r.power_w:.0f} W")


def _check_ev_io(drv, rc: RoleCheck, seen: dict) -> None:
    m = drv.measure()
    if m.estop:
        rc.add("E-stop", "fail", "the board's E-stop is latched")
    if m.cp == "A" and 11.0 <= m.high_v <= 13.0:
        rc.add("control pilot wired", "ok", f"+{m.high_v:.1f} V from the charger (state A), plug relay "
               f"{'closed' if m.plug else 'open'}")
    else:
        rc.add("control pilot wired", "fail", f"expected +12 V (state A) from the charger, measured {m.high_v:.1f} V "
               f"(state {m.cp}): is the board connected to the inlet and the charger on?")
    if m.hv_v > 60:
        rc.add("inlet de-energized", "fail", f"{m.hv_v:.0f} V at the inlet with nothing plugged in")


def _check_chademo(drv, rc: RoleCheck, seen: dict) -> None:
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and drv.charger(0x109) is None:
        time.sleep(0.05)
    r = drv.charger(0x109)
    rc.add("charger frames", "info", "0x109 seen: " + str(r.signals) if r else
           "no 0x109 within 2 s (normal for a charger waiting for its start sequence)")


CHECKS = {"battery": _check_battery, "analyzer": _check_analyzer, "ev_io": _check_ev_io, "chademo": _check_chademo}


def _wiring(results: dict[str, RoleCheck], seen: dict) -> RoleCheck | None:
    if "battery_v" not in seen or "analyzer_v" not in seen:
        return None
    rc = RoleCheck("wiring", "analyzer x battery")
    vb, va = seen["battery_v"], seen["analyzer_v"]
    if not seen.get("battery_on") or vb < 50.0:
        rc.add("analyzer sees the battery emulator's voltage", "info",
               f"not provable without enabling the emulator's output (battery {vb:.1f} V, analyzer {va:.1f} V)")
    elif abs(va - vb) <= 0.02 * vb + 1.0:
        rc.add("analyzer sees the battery emulator's voltage", "ok", f"battery {vb:.1f} V, analyzer {va:.1f} V")
    else:
        rc.add("analyzer sees the battery emulator's voltage", "fail",
               f"battery {vb:.1f} V but analyzer {va:.1f} V: check the DC element's wiring and range")
    return rc


# -- the run --------------------------------------------------------------------------------------------
def dry_run(bench_path: Path | None = None, dut_path: Path | None = None, *, workdir: Path = Path("reports")) -> int:
    from v2g_bench.harness.bench import Bench
    from v2g_bench.profiles import DEFAULT_BENCH, load_bench, load_dut

    try:
        bench_p = load_bench(bench_path or DEFAULT_BENCH)
        dut_p = load_dut(dut_path) if dut_path else None
    except BenchError as e:
        console.print(f"[red]profile error:[/red] {escape(str(e))}")
        return 2
    console.print(f"dry run of bench {bench_p.name!r} ({bench_p.path}): {len(bench_p.roles)} roles, no power enabled")
    lab_cm = _lab(bench_p, workdir) if bench_p.uses_builtin_lab else None
    lab = lab_cm.__enter__() if lab_cm else None
    results: list[RoleCheck] = []
    seen: dict = {}
    try:
        bench = Bench(bench_p, dut=dut_p, lab=lab)
        try:
            for name, cfg in bench.resolved_profile.roles.items():
                rc = RoleCheck(name, cfg.driver, str(cfg.resource or cfg.options.get("host") or cfg.options.get("interface") or ""))
                results.append(rc)
                t0 = time.monotonic()
                try:
                    drv = bench.role(name)
                    rc.add("open", "ok")
                    rc.identity = drv.identify()
                    rc.add("identify", "ok", rc.identity)
                    rc.add("self-test", "ok", drv.self_test())
                    check = CHECKS.get(name)
                    if check:
                        check(drv, rc, seen)
                except Exception as e:  # noqa: BLE001 - one role failing must not stop the others
                    rc.add("open/identify/check", "fail", f"{type(e).__name__}: {e}")
                    if not isinstance(e, BenchError):
                        rc.add("trace", "info", traceback.format_exc(limit=2).strip().splitlines()[-1])
                rc.seconds = time.monotonic() - t0
            w = _wiring({r.role: r for r in results}, seen)
            if w:
                results.append(w)
        finally:
            try:
                records = bench.close()
            except BenchError as e:
                records = bench.unwind_log
                console.print(f"[red]UNSAFE:[/red] {escape(str(e))}")
            by_role = {r.role: r for r in results}
            for rec in records:
                if rec.role in by_role and rec.step == "safe_state":
                    by_role[rec.role].add("safe state (unwind)", "ok" if rec.ok else "fail", rec.error)
    finally:
        if lab_cm:
            lab_cm.__exit__(None, None, None)
    _print(results)
    return 0 if all(r.ok for r in results) else 1


def _lab(bench_p, workdir: Path):
    """The built-in lab as the plugin starts it (with its ISO 15118 wire when possible)."""
    from contextlib import contextmanager

    @contextmanager
    def cm():
        from v2g_bench.harness.labproc import start_lab
        from v2g_bench.harness.labsetup import lab_overrides
        opts = dict(bench_p.lab or {})
        with lab_overrides(opts) as overrides:
            overrides.pop("_iso15118_unavailable", None)
            handle = start_lab(workdir=Path(workdir) / "lab" / "dry-run", config=opts.get("config"),
                               seed=int(opts.get("seed", 1)), time_scale=float(opts.get("time_scale", 1.0)),
                               overrides=overrides, timeout_s=float(opts.get("start_timeout_s", 60)))
            try:
                yield handle
            finally:
                handle.stop()
    return cm()


def _print(results: list[RoleCheck]) -> None:
    t = Table(title="dry run", show_lines=False)
    for col in ("role", "driver", "result", "checks"):
        t.add_column(col)
    for r in results:
        lines = [f"{'✔' if s == 'ok' else ('✘' if s == 'fail' else '·')} {c}{': ' + d if d else ''}"
                 for c, s, d in r.checks]
        t.add_row(r.role, r.driver, "[green]ok[/green]" if r.ok else "[red]FAIL[/red]", escape("\n".join(lines)))
    console.print(t)
