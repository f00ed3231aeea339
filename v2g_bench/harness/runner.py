"""`v2g-bench run`: the suite into its own run folder, with live progress, a verdict table, and the reports.

Each run writes reports/runs/<UTC time>-<DUT>/ (see v2g_bench.report.runs); `reports/latest` points at it.
Progress: on a terminal a bar with ETA and one line per finished case; elsewhere (CI logs, pipes)
one plain line per case that never wraps.
"""
from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from v2g_bench.errors import BenchError
from v2g_bench.profiles import DEFAULT_BENCH, DEFAULT_DUT, REPO_ROOT

console = Console(stderr=True)
DEFAULT_SUITE = REPO_ROOT / "tests" / "conformance"
RANK = {"passed": 0, "skipped": 1, "inconclusive": 2, "failed": 3, "error": 4}
COLOURS = {"passed": "green", "failed": "red", "error": "magenta", "inconclusive": "yellow"}


def classify(report) -> str | None:
    """The verdict a pytest report stands for: passed / failed / error / inconclusive / skipped.

    failed = the DUT violated a requirement (AssertionError, Nonconformance, pytest.fail);
    error = the bench failed (any other exception, or any failure in setup/teardown).
    """
    msg = ""
    lr = getattr(report, "longrepr", None)
    if isinstance(lr, tuple) and len(lr) == 3:
        msg = str(lr[2])
    elif lr is not None and hasattr(lr, "reprcrash") and lr.reprcrash is not None:
        msg = lr.reprcrash.message or ""
    props = dict(getattr(report, "user_properties", None) or ())
    if report.when == "call" and props.get("v2g_verdict") and (report.failed or report.skipped):
        return props["v2g_verdict"]        # decided from the exception's type by the plugin (verdict integrity)
    if report.skipped:
        return "inconclusive" if "INCONCLUSIVE" in msg else "skipped"
    if report.failed:
        if report.when == "call" and (msg.startswith(("AssertionError", "Failed")) or "Nonconformance" in msg):
            return "failed"
        return "error"
    if report.passed and report.when == "call":
        return "passed"
    return None


@dataclass
class Tally:
    verdicts: dict[str, str] = field(default_factory=dict)     # nodeid -> verdict
    messages: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    total: int = 0
    interrupted: str | None = None                             # the test the operator interrupted
    deselected: int = 0                                        # by -k/-m, or slow cases without --run-slow

    def record(self, report) -> None:
        d = float(getattr(report, "duration", 0) or 0)
        if getattr(report, "v2g_interrupted", False):
            self.interrupted = report.nodeid       # its duration counts from the test's start: not a sum
            self.durations[report.nodeid] = max(self.durations.get(report.nodeid, 0.0), d)
        else:
            self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + d
        v = classify(report)
        if v is None:
            return
        prev = self.verdicts.get(report.nodeid)
        # The worst verdict of setup/call wins; a teardown error turns only a pass into an error (a DUT
        # failure or an inconclusive stands, as in Allure, JUnit's failure and the test report).
        if report.when == "teardown" and prev not in (None, "passed"):
            if v == "error":
                self.messages[report.nodeid] = (self.messages.get(report.nodeid, "") + " (and a bench error at teardown)")[:240]
            return
        if prev is None or RANK[v] > RANK[prev]:
            self.verdicts[report.nodeid] = v
            if v in ("failed", "error", "inconclusive"):
                lr = report.longrepr
                msg = lr[2] if isinstance(lr, tuple) else getattr(getattr(lr, "reprcrash", None), "message", str(lr))
                self.messages[report.nodeid] = str(msg).splitlines()[0][:200] if msg else ""

    def count(self, v: str) -> int:
        return sum(1 for x in self.verdicts.values() if x == v)

    def counts(self) -> dict[str, int]:
        return {v: self.count(v) for v in RANK}


def case_line(i: int, total: int, verdict: str, nodeid: str, duration_s: float) -> str:
    """One line per finished case: never wrapped, whatever the terminal width."""
    width = len(str(total or i))
    return f"[{i:>{width}}/{total or '?'}] {verdict.upper():<12} {nodeid} ({duration_s:.1f} s)"


def middle_ellipsis(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    if width < 5:
        return text[:max(width, 0)]
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


class ProgressPlugin:
    """Live progress: a rich bar with ETA on a terminal, plain lines elsewhere."""

    def __init__(self, progress: Progress | None, stream=None):
        self.progress = progress
        self.stream = stream or sys.stderr
        self.task = progress.add_task("collecting", total=None) if progress else None
        self.tally = Tally()
        self.done: set[str] = set()

    def _set_total(self, n: int) -> None:
        self.tally.total = max(self.tally.total, n)
        if self.progress:
            self.progress.update(self.task, total=self.tally.total, description="running")

    def pytest_collection_finish(self, session):
        self._set_total(len(session.items))

    def pytest_deselected(self, items):
        self.tally.deselected += len(items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        self._set_total(len(ids))

    def pytest_runtest_logreport(self, report):
        self.tally.record(report)
        if report.when == "teardown" and report.nodeid not in self.done:
            self.done.add(report.nodeid)
            v = self.tally.verdicts.get(report.nodeid, "?")
            line = case_line(len(self.done), self.tally.total, v, report.nodeid, self.tally.durations.get(report.nodeid, 0.0))
            if self.progress:
                c = COLOURS.get(v, "dim")
                width = self.progress.console.width
                if len(line) > width:      # shorten the ID in its middle: the parameter id at its end matters
                    line = case_line(len(self.done), self.tally.total, v,
                                     middle_ellipsis(report.nodeid, len(report.nodeid) - (len(line) - width)),
                                     self.tally.durations.get(report.nodeid, 0.0))
                self.progress.console.print(f"[{c}]{escape(line)}[/{c}]", overflow="ellipsis", no_wrap=True, crop=True)
                self.progress.update(self.task, advance=1, description=report.nodeid.split("::")[-1][:40])
            else:
                print(line, file=self.stream, flush=True)

    def pytest_collectreport(self, report):
        if report.failed:
            self.tally.verdicts[report.nodeid or "<collection>"] = "error"
            self.tally.messages[report.nodeid or "<collection>"] = str(report.longrepr).splitlines()[-1][:200]


def summary_table(tally: Tally) -> Table:
    t = Table(title="v2g-bench verdicts")
    for col in ("passed", "failed", "inconclusive", "error", "skipped (not claimed)"):
        t.add_column(col, justify="right")
    t.add_row(*(str(tally.count(v)) for v in ("passed", "failed", "inconclusive", "error", "skipped")))
    return t


def allure_cli() -> str | None:
    local = REPO_ROOT / ".tools" / "allure" / "node_modules" / ".bin" / "allure"
    if local.exists():
        return str(local)
    return shutil.which("allure")


def build_html(results: Path, out: Path, timeout_s: float = 300) -> Path:
    results, out = Path(results), Path(out)
    if not results.is_dir() or not any(results.glob("*-result.json")):
        raise BenchError(f"no Allure results in {results}", fix="run 'v2g-bench run' first (it writes reports/runs/<run>)")
    cli = allure_cli()
    if cli is None:
        raise BenchError("the Allure CLI is not installed",
                         fix="run 'make run' (it installs it into .tools/allure) or "
                             "'npm install --prefix .tools/allure allure-commandline'")
    if shutil.which("java") is None:
        raise BenchError("Java is missing (the Allure CLI needs it)", fix="apt-get install default-jre-headless")
    out.mkdir(parents=True, exist_ok=True)
    cmd = [cli, "generate", "--single-file", "--clean", "-o", str(out), str(results)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BenchError(f"the Allure CLI did not finish within {timeout_s:g} s") from None
    if proc.returncode != 0:
        raise BenchError(f"the Allure CLI failed: {proc.stderr.strip()[-400:] or proc.stdout.strip()[-400:]}")
    return out / "index.html"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _bench_for_manifest(path: Path, load_bench):
    """The bench profile, or (when its drivers register only inside pytest, e.g. from a conftest) its
    [bench] table as read: pytest then validates it for real and reports any error as a usage error."""
    from v2g_bench.errors import ProfileError
    try:
        return load_bench(path)
    except ProfileError:
        import tomllib
        from types import SimpleNamespace
        try:
            raw = tomllib.loads(path.read_text()).get("bench") or {}
        except (OSError, tomllib.TOMLDecodeError, AttributeError):
            raw = {}
        raw = raw if isinstance(raw, dict) else {}
        return SimpleNamespace(name=str(raw.get("name", path.stem)), path=path, roles={},
                               laboratory=str(raw.get("laboratory", "")), operator=str(raw.get("operator", "")),
                               uses_builtin_lab=raw.get("lab") == "builtin")


def start_manifest(bench_p, dut_p, *, operator: str | None, argv: list[str], build_order: int) -> dict:
    from v2g_bench.report.runs import dut_key
    return {
        "run_id": None, "status": "running", "started": _now_iso(), "ended": None, "build_order": build_order,
        "operator": operator or bench_p.operator or os.environ.get("V2G_OPERATOR") or _user(),
        "dut": {"key": dut_key(dut_p.vendor, dut_p.model, dut_p.serial), "vendor": dut_p.vendor, "model": dut_p.model,
                "serial": dut_p.serial, "firmware": dut_p.firmware, "profile": str(dut_p.path)},
        "bench": {"name": bench_p.name, "profile": str(bench_p.path), "laboratory": bench_p.laboratory,
                  "kind": "built-in virtual lab" if bench_p.uses_builtin_lab else "real bench"},
        "argv": argv, "pid": os.getpid(),
    }


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def mark_junit_interrupted(junit: Path, by: str, nodeid: str | None) -> None:
    """JUnit says the run was interrupted: a testsuite property and the error's own message."""
    try:
        tree = ET.parse(junit)
    except (OSError, ET.ParseError):
        return
    root = tree.getroot()
    for suite in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        props = suite.find("properties")
        if props is None:
            props = ET.Element("properties")
            suite.insert(0, props)
        if not any(p.get("name") == "run.status" for p in props):
            ET.SubElement(props, "property", name="run.status", value=f"interrupted by the operator ({by})")
    for err in root.iter("error"):       # pytest words it 'failed on setup with "INTERRUPTED …"'
        m = err.get("message") or ""
        if "INTERRUPTED" in m:
            err.set("message", m[m.index("INTERRUPTED"):].rstrip('"'))
    tree.write(junit, encoding="utf-8", xml_declaration=True)


def write_traceability_from_results(run_dir: Path) -> None:
    """traceability.csv/.md of the run from its Allure results: every case's own ID and requirement IDs
    (the conformance engine's labels and links, the `covers` markers) -> case -> verdict."""
    from v2g_bench.harness.reporting import write_traceability
    from v2g_bench.report.results import load_run
    data = load_run(run_dir, with_figures=False)
    rows = [(i, c.full_name if "::" in c.full_name else c.name, c.verdict) for c in data.cases for i in c.title_ids]
    write_traceability(run_dir, rows)


def _drop_closed_log_handlers() -> None:
    """Libraries that call logging.basicConfig() while pytest captures output (pyslac does, on import) leave a
    handler on pytest's capture stream; once pytest.main returns that stream is closed, and every later log
    record (WeasyPrint's progress, while the test report is built) printed a "--- Logging error ---" traceback."""
    import logging

    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for lg in loggers:
        for h in list(lg.handlers):
            if getattr(getattr(h, "stream", None), "closed", False):
                lg.removeHandler(h)


def run_suite(*, bench=None, dut=None, keyword=None, markexpr=None, suite=(), workers=0,
              reports: Path = Path("reports"), html=True, extra=(), operator: str | None = None,
              test_report: bool = True) -> int:
    from v2g_bench.harness import reporting
    from v2g_bench.profiles import load_bench, load_dut
    from v2g_bench.report import runs
    reports = Path(reports).resolve()
    dut_p = load_dut(dut or DEFAULT_DUT)        # names the run folder: a broken DUT profile stops here
    bench_p = _bench_for_manifest(Path(bench or DEFAULT_BENCH), load_bench)
    manifest = start_manifest(bench_p, dut_p, operator=operator, argv=sys.argv[1:], build_order=1)
    key = manifest["dut"]["key"]
    previous = runs.previous_runs(reports, key)
    run_dir = runs.new_run_dir(reports, key)
    manifest["run_id"] = run_dir.name
    manifest["build_order"] = int((runs.read_manifest(previous[0]) or {}).get("build_order") or 0) + 1 if previous else 1
    manifest["previous_run"] = previous[0].name if previous else None
    manifest["selection"] = {"k": keyword, "m": markexpr, "suite": [str(s) for s in suite] or [str(DEFAULT_SUITE)],
                             "extra": [str(x) for x in extra]}
    runs.write_manifest(run_dir, manifest)
    runs.set_latest(reports, run_dir)
    results = run_dir / "allure-results"
    runs.carry_history(previous[0] if previous else None, results)
    junit = run_dir / "junit.xml"
    args = [str(p) for p in (suite or [DEFAULT_SUITE])]
    args += ["-p", "no:terminal", "-p", "no:cacheprovider", "--alluredir", str(results),
             "--junitxml", str(junit), "--v2g-reports", str(run_dir), "-o", "console_output_style=classic",
             "--bench", str(bench_p.path), "--dut", str(dut_p.path)]
    if keyword:
        args += ["-k", keyword]
    if not suite:
        # the default suite is the charger's verdicts: the suite's own can-fail proofs (a defect switched on in the
        # simulated charger) are not cases of the DUT; `make test` and the mutation targets run them
        markexpr = f"({markexpr}) and not suite_selftest" if markexpr else "not suite_selftest"
    if markexpr:
        args += ["-m", markexpr]
    if workers:
        args += ["-n", str(workers)]
    args += list(extra)
    console.print(f"run {run_dir.name}: DUT {dut_p.vendor} {dut_p.model} s/n {dut_p.serial} fw {dut_p.firmware} "
                  f"on bench {bench_p.name!r}, operator {manifest['operator']}", soft_wrap=True)
    t0 = time.monotonic()
    code = None
    try:
        if console.is_terminal:
            with Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True) as progress:
                plugin = ProgressPlugin(progress)
                code = pytest.main(args, plugins=[plugin])
        else:
            plugin = ProgressPlugin(None)
            code = pytest.main(args, plugins=[plugin])
    finally:
        _drop_closed_log_handlers()
        tally = plugin.tally
        interrupted = code is None or int(code) == 2
        by = None
        if interrupted:
            from v2g_bench.harness import plugin as v2g_plugin
            by = v2g_plugin._INTERRUPT.get("by") or "SIGINT, Ctrl-C"
        manifest.update(status="interrupted" if interrupted else "complete", ended=_now_iso(),
                        exit_code=None if code is None else int(code), collected=tally.total,
                        deselected=tally.deselected,
                        counts=tally.counts(), interrupted_by=by, interrupted_case=tally.interrupted,
                        duration_s=round(time.monotonic() - t0, 1))
        runs.write_manifest(run_dir, manifest)
        if interrupted and junit.exists():
            mark_junit_interrupted(junit, by, tally.interrupted)
        try:
            # again: drivers a conftest registers exist now (pytest ran in this process)
            bench_p = _bench_for_manifest(Path(bench or DEFAULT_BENCH), load_bench)
            reporting.write_environment(results, bench_p, dut_p, manifest=manifest)
            write_traceability_from_results(run_dir)
        except OSError as e:
            console.print(f"[yellow]could not write the Allure environment or traceability:[/yellow] {e}")
    console.print(summary_table(tally))
    bad = [(n, v) for n, v in tally.verdicts.items() if v in ("failed", "error", "inconclusive")]
    for nodeid, v in bad:
        console.print(f"  {v.upper():<12} {escape(nodeid)}  {escape(tally.messages.get(nodeid, ''))}", soft_wrap=True)
    if interrupted:
        console.print(f"[yellow]INTERRUPTED by the operator ({by})[/yellow] after {len(tally.verdicts)} of "
                      f"{tally.total} cases; {max(0, tally.total - len(tally.verdicts))} never ran. "
                      "Every opened role was unwound to its safe state.", soft_wrap=True)
    console.print(f"{len(tally.verdicts)} tests in {time.monotonic() - t0:.1f} s; run folder: {run_dir}", soft_wrap=True)
    if html:
        try:
            console.print(f"Allure report: {build_html(results, run_dir / 'html')}", soft_wrap=True)
        except BenchError as e:
            console.print(f"[yellow]no Allure HTML report:[/yellow] {e}", soft_wrap=True)
    if test_report:
        try:
            from v2g_bench.report.testreport import build_test_report
            paths = build_test_report(run_dir)
            console.print("test report: " + ", ".join(str(p) for p in paths), soft_wrap=True)
        except BenchError as e:
            console.print(f"[yellow]no test report:[/yellow] {e}", soft_wrap=True)
    if int(code) in (2, 3, 4):          # interrupted, internal error, usage error
        return int(code)
    if tally.count("failed") or tally.count("error"):
        return 1
    if not tally.verdicts:
        console.print("[yellow]no test ran[/yellow] (check -k/-m and the DUT profile's claims)")
        return 5
    return 0
