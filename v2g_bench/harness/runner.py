"""`v2g-bench run`: the suite with a live progress display, a verdict table, and the report."""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from v2g_bench.errors import BenchError
from v2g_bench.profiles import REPO_ROOT

console = Console(stderr=True)
DEFAULT_SUITE = REPO_ROOT / "tests" / "conformance"


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
        return props["v2g_verdict"]        # decided from the exception's type by the plugin
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
    total: int = 0

    def record(self, report) -> None:
        v = classify(report)
        if v is None:
            return
        prev = self.verdicts.get(report.nodeid)
        # the worst verdict of setup/call/teardown wins (a teardown error after a pass is an error)
        rank = {"passed": 0, "skipped": 1, "inconclusive": 2, "failed": 3, "error": 4}
        if prev is None or rank[v] > rank[prev]:
            self.verdicts[report.nodeid] = v
            if v in ("failed", "error", "inconclusive"):
                lr = report.longrepr
                msg = lr[2] if isinstance(lr, tuple) else getattr(getattr(lr, "reprcrash", None), "message", str(lr))
                self.messages[report.nodeid] = str(msg).splitlines()[0][:160] if msg else ""

    def count(self, v: str) -> int:
        return sum(1 for x in self.verdicts.values() if x == v)


class ProgressPlugin:
    def __init__(self, progress: Progress):
        self.progress = progress
        self.task = progress.add_task("collecting", total=None)
        self.tally = Tally()
        self.done: set[str] = set()

    def pytest_collection_finish(self, session):
        self.tally.total = len(session.items)
        self.progress.update(self.task, total=self.tally.total, description="running")

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        self.tally.total = max(self.tally.total, len(ids))
        self.progress.update(self.task, total=self.tally.total, description="running")

    def pytest_runtest_logreport(self, report):
        self.tally.record(report)
        if report.when == "teardown" and report.nodeid not in self.done:
            self.done.add(report.nodeid)
            v = self.tally.verdicts.get(report.nodeid, "?")
            colour = {"passed": "green", "failed": "red", "error": "magenta", "inconclusive": "yellow"}.get(v, "dim")
            self.progress.console.print(f"[{colour}]{v.upper():<12}[/{colour}] {escape(report.nodeid)}")
            self.progress.update(self.task, advance=1, description=report.nodeid.split("::")[-1][:40])

    def pytest_collectreport(self, report):
        if report.failed:
            self.tally.verdicts[report.nodeid or "<collection>"] = "error"
            self.tally.messages[report.nodeid or "<collection>"] = str(report.longrepr).splitlines()[-1][:160]


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
        raise BenchError(f"no Allure results in {results}", fix="run 'v2g-bench run' first (it writes reports/allure-results)")
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


def run_suite(*, bench=None, dut=None, keyword=None, markexpr=None, suite=(), workers=0,
              reports: Path = Path("reports"), html=True, extra=()) -> int:
    reports = Path(reports).resolve()
    results = reports / "allure-results"
    args = [str(p) for p in (suite or [DEFAULT_SUITE])]
    args += ["-p", "no:terminal", "-p", "no:cacheprovider", "--alluredir", str(results), "--clean-alluredir",
             "--junitxml", str(reports / "junit.xml"), "--v2g-reports", str(reports), "-o", "console_output_style=classic"]
    if bench:
        args += ["--bench", str(bench)]
    if dut:
        args += ["--dut", str(dut)]
    if keyword:
        args += ["-k", keyword]
    if markexpr:
        args += ["-m", markexpr]
    if workers:
        args += ["-n", str(workers)]
    args += list(extra)
    t0 = time.monotonic()
    with Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        plugin = ProgressPlugin(progress)
        code = pytest.main(args, plugins=[plugin])
    tally = plugin.tally
    console.print(summary_table(tally))
    bad = [(n, v) for n, v in tally.verdicts.items() if v in ("failed", "error", "inconclusive")]
    for nodeid, v in bad:
        console.print(f"  {v.upper():<12} {escape(nodeid)}  {escape(tally.messages.get(nodeid, ''))}")
    console.print(f"{len(tally.verdicts)} tests in {time.monotonic() - t0:.1f} s; results: {results}; "
                  f"JUnit: {reports / 'junit.xml'}")
    if html:
        try:
            console.print(f"report: {build_html(results, reports / 'html')}")
        except BenchError as e:
            console.print(f"[yellow]no HTML report:[/yellow] {e}")
    if int(code) in (2, 3, 4):          # interrupted, internal error, usage error
        return int(code)
    if tally.count("failed") or tally.count("error"):
        return 1
    if not tally.verdicts:
        console.print("[yellow]no test ran[/yellow] (check -k/-m and the DUT profile's claims)")
        return 5
    return 0
