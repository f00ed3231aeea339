"""`v2g-bench report`: build a run's reports, list runs, or compare two runs. Bad input never tracebacks:
a missing, partial or foreign folder is said so, and what there is still gets reported."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from v2g_bench.errors import BenchError
from v2g_bench.report import runs


def _resolve(reports: Path, spec: str | None) -> Path:
    p = runs.resolve_run(reports, spec)
    if p is None:
        known = ", ".join(r.name for r in runs.list_runs(reports)[-3:]) or "none"
        raise BenchError(f"no run {spec or 'latest'!r} in {Path(reports) / runs.RUNS} (latest runs: {known})",
                         fix="run 'v2g-bench run' first, or give a run folder's path ('v2g-bench report --list')")
    return p


def report_command(*, run: str | None, reports: Path, results: Path | None, out: Path | None, allure: bool,
                   pdf: bool, compare: list[str], list_runs: bool, console: Console, dut: Path | None = None) -> int:
    from v2g_bench.report.results import load_run
    reports = Path(reports)
    if list_runs:
        found = runs.list_runs(reports)
        console.print(f"{len(found)} run(s) in {reports / runs.RUNS} (passed/failed/error/inconclusive/skipped):")
        for r in found:      # one plain line per run: readable in a log and on a narrow terminal
            m = runs.read_manifest(r) or {}
            c, d = m.get("counts") or {}, m.get("dut") or {}
            counts = "/".join(str(c.get(v, "?")) for v in ("passed", "failed", "error", "inconclusive", "skipped"))
            console.print(f"{r.name}  {m.get('status', 'no manifest')}  firmware {d.get('firmware', '?')}  {counts}",
                          soft_wrap=True, markup=False)
        return 0
    if compare:
        from v2g_bench.report.compare import compare_runs, render_markdown
        if len(compare) > 2:
            raise BenchError(f"--compare takes two runs, got {len(compare)}", fix="--compare RUN_A --compare RUN_B")
        a_spec, b_spec = (compare[0], compare[1]) if len(compare) == 2 else (compare[0], run)
        a_dir, b_dir = _resolve(reports, a_spec), _resolve(reports, b_spec)
        a, b = load_run(a_dir), load_run(b_dir)
        cmp = compare_runs(a, b)
        md = render_markdown(cmp)
        target = (Path(out) if out else (b_dir if b_dir.is_dir() else Path("."))) / f"compare-{a.run_id}.md"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(md)
        except OSError as e:
            console.print(f"[yellow]could not write {target}: {e}[/yellow]")
        console.print(escape(md), soft_wrap=True)
        console.print(f"written: {target}")
        return 1 if cmp.new_failures else 0
    run_dir = Path(results) if results else _resolve(reports, run)
    if not run_dir.exists():
        raise BenchError(f"no Allure results in {run_dir}: the folder does not exist",
                         fix="give a run folder (reports/runs/<id>, 'v2g-bench report --list') or an Allure results folder")
    expected = None
    if dut is not None:
        from v2g_bench.profiles import load_dut
        d = load_dut(dut)
        expected = runs.dut_key(d.vendor, d.model, d.serial)
    data = load_run(run_dir, with_figures=False, expected_dut=expected)
    for w in data.warnings:
        console.print(f"[yellow]note:[/yellow] {escape(w)}", soft_wrap=True)
    # --out DIR: everything there; else a run's own folder (a bare results folder: beside it)
    report_dir = Path(out) if out else (run_dir if results is None else run_dir.parent)
    html_dir = Path(out) if out else report_dir / "html"
    code = 0
    if allure:
        from v2g_bench.harness.runner import build_html
        try:
            console.print(f"Allure report: {build_html(data.results_dir, html_dir)}", soft_wrap=True)
        except BenchError as e:
            console.print(f"[yellow]no Allure HTML:[/yellow] {escape(str(e))}", soft_wrap=True)
            code = 2
    from v2g_bench.report.testreport import build_test_report
    paths = build_test_report(run_dir, pdf=pdf, out_dir=report_dir, expected_dut=expected)
    console.print("test report: " + ", ".join(str(p) for p in paths), soft_wrap=True)
    return code
