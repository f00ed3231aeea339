"""Run-to-run comparison: what changed between two runs (e.g. two firmware builds of one charger).

Verdict changes (new failures first), cases only in one run, and drift of every measured figure and
case duration. A figure's drift is *significant* when it exceeds the combined expanded uncertainty of
the two values (sqrt(Ua² + Ub²)); without a stated uncertainty, when it exceeds `rel_threshold`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from v2g_bench.report.results import RunData

WORSE = {"passed": 0, "skipped": 1, "inconclusive": 2, "error": 3, "failed": 4}


@dataclass
class VerdictChange:
    case: str
    ids: list[str]
    before: str
    after: str
    message: str = ""


@dataclass
class Drift:
    case: str
    name: str
    unit: str
    before: float
    after: float
    delta: float
    relative: float | None
    limit: float | None           # what counts as significant (combined U, or the relative threshold)
    significant: bool
    basis: str = ""               # "U" (combined expanded uncertainty) or "relative"


@dataclass
class Comparison:
    run_a: str
    run_b: str
    firmware_a: str
    firmware_b: str
    warnings: list[str] = field(default_factory=list)
    new_failures: list[VerdictChange] = field(default_factory=list)   # now failed/error, before not
    fixed: list[VerdictChange] = field(default_factory=list)          # before failed/error, now passed
    other_changes: list[VerdictChange] = field(default_factory=list)
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    figure_drift: list[Drift] = field(default_factory=list)
    timing_drift: list[Drift] = field(default_factory=list)
    unchanged: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _firmware(r: RunData) -> str:
    return str((r.manifest.get("dut") or {}).get("firmware") or r.environment.get("dut.firmware") or "?")


def _label(c) -> str:
    ids = c.title_ids
    return f"{ids[0]} {c.name}" if ids and ids[0] not in c.name else c.name


def compare_runs(a: RunData, b: RunData, *, rel_threshold: float = 0.05, min_time_delta_s: float = 1.0) -> Comparison:
    cmp = Comparison(run_a=a.run_id, run_b=b.run_id, firmware_a=_firmware(a), firmware_b=_firmware(b))
    cmp.warnings += [f"{a.run_id}: {w}" for w in a.warnings] + [f"{b.run_id}: {w}" for w in b.warnings]
    if a.dut_key and b.dut_key and a.dut_key != b.dut_key:
        cmp.warnings.insert(0, f"the runs are of different DUTs ({a.dut_key} vs {b.dut_key}): compared case by case anyway")
    ca = {c.key: c for c in a.cases}
    cb = {c.key: c for c in b.cases}
    cmp.only_in_a = sorted(_label(ca[k]) for k in ca.keys() - cb.keys())
    cmp.only_in_b = sorted(_label(cb[k]) for k in cb.keys() - ca.keys())
    for k in sorted(ca.keys() & cb.keys(), key=lambda k: _label(cb[k])):
        x, y = ca[k], cb[k]
        if x.verdict != y.verdict:
            ch = VerdictChange(_label(y), y.title_ids, x.verdict, y.verdict, y.message[:300])
            bad_before, bad_after = x.verdict in ("failed", "error"), y.verdict in ("failed", "error")
            if bad_after and not bad_before or (bad_after and WORSE[y.verdict] > WORSE[x.verdict]):
                cmp.new_failures.append(ch)
            elif bad_before and y.verdict == "passed":
                cmp.fixed.append(ch)
            else:
                cmp.other_changes.append(ch)
        else:
            cmp.unchanged += 1
        fa = {f.name: f for f in x.figures if f.value is not None}
        for f in y.figures:
            g = fa.get(f.name)
            if g is None or f.value is None:
                continue
            delta = f.value - g.value
            rel = delta / abs(g.value) if g.value else None
            if g.uncertainty is not None or f.uncertainty is not None:
                lim, basis = math.hypot(g.uncertainty or 0.0, f.uncertainty or 0.0), "U"
                sig = abs(delta) > lim
            else:
                lim, basis = rel_threshold, "relative"
                sig = (abs(rel) > rel_threshold) if rel is not None else delta != 0
            cmp.figure_drift.append(Drift(_label(y), f.name, f.unit, g.value, f.value, delta, rel, lim, sig, basis))
        if x.duration_s is not None and y.duration_s is not None:
            d = y.duration_s - x.duration_s
            rel = d / x.duration_s if x.duration_s else None
            sig = abs(d) >= min_time_delta_s and (rel is None or abs(rel) > 0.5)
            cmp.timing_drift.append(Drift(_label(y), "case duration", "s", x.duration_s, y.duration_s, d, rel, None, sig,
                                          "duration"))
    cmp.figure_drift.sort(key=lambda d: (not d.significant, -abs(d.relative or 0)))
    cmp.timing_drift.sort(key=lambda d: (not d.significant, -abs(d.delta)))
    return cmp


def render_markdown(cmp: Comparison, *, all_figures: bool = False) -> str:
    L = [f"# Run comparison: {cmp.run_a} (firmware {cmp.firmware_a}) → {cmp.run_b} (firmware {cmp.firmware_b})", ""]
    for w in cmp.warnings:
        L.append(f"> note: {w}")
    if cmp.warnings:
        L.append("")
    L.append(f"{len(cmp.new_failures)} new failure(s), {len(cmp.fixed)} fixed, {len(cmp.other_changes)} other verdict "
             f"change(s), {cmp.unchanged} unchanged; {len(cmp.only_in_b)} case(s) only in B, {len(cmp.only_in_a)} only in A; "
             f"{sum(d.significant for d in cmp.figure_drift)} significant figure drift(s), "
             f"{sum(d.significant for d in cmp.timing_drift)} duration drift(s).")

    def changes(title, rows):
        if rows:
            L.extend(["", f"## {title}", "", "| case | before | after | message |", "|---|---|---|---|"])
            L.extend(f"| {r.case} | {r.before} | {r.after} | {r.message.splitlines()[0] if r.message else ''} |" for r in rows)
    changes("New failures", cmp.new_failures)
    changes("Fixed", cmp.fixed)
    changes("Other verdict changes", cmp.other_changes)
    for title, rows in (("Only in B (new cases)", cmp.only_in_b), ("Only in A (cases no longer run)", cmp.only_in_a)):
        if rows:
            L.extend(["", f"## {title}", ""] + [f"- {r}" for r in rows])
    figs = [d for d in cmp.figure_drift if d.significant or all_figures]
    if figs:
        L.extend(["", "## Drift of measured figures", "", "| case | figure | A | B | Δ | Δ % | significant beyond |",
                  "|---|---|---|---|---|---|---|"])
        for d in figs:
            rel = f"{100 * d.relative:+.2f}" if d.relative is not None else "–"
            lim = f"U {d.limit:.3g}" if d.basis == "U" else f"{100 * (d.limit or 0):g} %"
            L.append(f"| {d.case} | {d.name} | {d.before:.6g} {d.unit} | {d.after:.6g} {d.unit} | {d.delta:+.4g} | {rel} | "
                     f"{lim}{' **yes**' if d.significant else ''} |")
    times = [d for d in cmp.timing_drift if d.significant]
    if times:
        L.extend(["", "## Case durations that changed by more than 50 % (and ≥ 1 s)", "", "| case | A s | B s | Δ s |",
                  "|---|---|---|---|"])
        L.extend(f"| {d.case} | {d.before:.1f} | {d.after:.1f} | {d.delta:+.1f} |" for d in times)
    return "\n".join(L) + "\n"
