"""The `v2g-bench` command line. Each package contributes its own sub-app (`<pkg>/cli.py`)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from v2g_bench.errors import BenchError

app = typer.Typer(help="v2g-bench: hardware-in-the-loop test bench and conformance suite for bidirectional EV chargers.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
console = Console(stderr=True)

# Sub-apps: name -> (module, help). Each module exposes a Typer `app`.
SUB_APPS = {
    "lab": ("v2g_bench.lab.cli", "Start the virtual lab on its own (for exploring a bench by hand)."),
    "instruments": ("v2g_bench.instruments.cli", "List and identify the instruments of a bench profile."),
    "ev": ("v2g_bench.ev.cli", "Run the EV emulator (ISO 15118 / DIN 70121) by hand against a charger."),
    "csms": ("v2g_bench.csms.cli", "Run the CSMS emulator (OCPP 2.0.1 / 2.1) by hand."),
    "schedule": ("v2g_bench.scheduler.cli", "Compute the reference charge/discharge plan of a scenario."),
    "exi": ("v2g_bench.exi.cli", "Encode/decode ISO 15118 EXI messages."),
    "analyze": ("v2g_bench.oracle.cli", "Judge an ISO 15118 / DIN capture (pcap) with the independent oracle."),
}
_missing_sub_apps: dict[str, str] = {}


def _mount_sub_apps() -> None:
    for name, (mod_name, help_text) in SUB_APPS.items():
        try:
            mod = importlib.import_module(mod_name)
            sub = mod.app
        except (ImportError, AttributeError) as e:
            _missing_sub_apps[name] = f"{type(e).__name__}: {e}"
            continue
        app.add_typer(sub, name=name, help=help_text)


@app.command()
def run(
    bench: Optional[Path] = typer.Option(None, "--bench", help="Bench profile (default: the built-in virtual lab)."),
    dut: Optional[Path] = typer.Option(None, "--dut", help="DUT profile (default: the virtual lab's charger)."),
    k: Optional[str] = typer.Option(None, "-k", help="Select tests by keyword expression, as pytest -k."),
    m: Optional[str] = typer.Option(None, "-m", help="Select tests by marker expression, as pytest -m."),
    suite: List[str] = typer.Option([], "--suite", help="Test paths to run (default: tests/conformance)."),
    workers: int = typer.Option(0, "-n", help="Parallel workers (pytest-xdist); 0 = in this process."),
    reports: Path = typer.Option(Path("reports"), "--reports", help="Output folder for results, evidence and HTML."),
    html: bool = typer.Option(True, "--html/--no-html", help="Build the Allure HTML report at the end."),
    test_report: bool = typer.Option(True, "--test-report/--no-test-report", help="Write the signable test report (HTML + PDF)."),
    operator: Optional[str] = typer.Option(None, "--operator", help="Who runs it (default: [bench] operator, $V2G_OPERATOR, the user)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Open, identify and check every role (limits, wiring), "
                                 "unwind them; no power, no tests."),
    run_slow: bool = typer.Option(False, "--run-slow", help="Also run the cases marked slow (they wait out long "
                                  "normative timers, e.g. 60 s sequence timeouts); left out by default."),
    pytest_args: List[str] = typer.Argument(None, help="Extra arguments passed to pytest after '--'."),
):
    """The main job: run the suite (default: against the built-in virtual lab), print a summary, write the report."""
    if dry_run:
        from v2g_bench.harness.dryrun import dry_run as _dry_run
        raise typer.Exit(_dry_run(bench, dut, workdir=reports))
    from v2g_bench.harness.runner import run_suite
    code = run_suite(bench=bench, dut=dut, keyword=k, markexpr=m, suite=suite, workers=workers,
                     reports=reports, html=html,
                     extra=list(pytest_args or []) + (["--run-slow"] if run_slow else []), operator=operator,
                     test_report=test_report)
    raise typer.Exit(code)


@app.command()
def report(
    run: Optional[str] = typer.Argument(None, help="Run folder, run id (prefix) or 'latest' (default)."),
    reports: Path = typer.Option(Path("reports"), "--reports", help="Reports folder holding runs/."),
    results: Optional[Path] = typer.Option(None, "--results", help="A bare Allure results folder instead of a run."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write (default: the run folder)."),
    allure: bool = typer.Option(True, "--allure/--no-allure", help="Build the Allure HTML (html/index.html)."),
    pdf: bool = typer.Option(True, "--pdf/--no-pdf", help="Also render the test report as PDF."),
    compare: Optional[List[str]] = typer.Option(None, "--compare", help="Compare two runs: --compare RUN_A --compare RUN_B "
                                                "(or --compare RUN_A alone: against the given/latest run)."),
    list_runs: bool = typer.Option(False, "--list", help="List the runs in the reports folder."),
    dut: Optional[Path] = typer.Option(None, "--dut", help="Say so on the report if the run is of another DUT than this profile's."),
):
    """Reports of a run: the Allure HTML, the signable test report (HTML + PDF); or compare two runs."""
    from v2g_bench.report.command import report_command
    raise typer.Exit(report_command(run=run, reports=reports, results=results, out=out, allure=allure, pdf=pdf,
                                    compare=list(compare or []), list_runs=list_runs, console=console, dut=dut))


profile_app = typer.Typer(help="Bench and DUT profiles.", no_args_is_help=True)
app.add_typer(profile_app, name="profile")


@profile_app.command("check")
def profile_check(files: List[Path] = typer.Argument(..., help="Bench or DUT profile files (TOML).")):
    """Validate bench or DUT profiles; every problem is listed with its key and the fix."""
    from v2g_bench.profiles import BenchProfile, check_profile
    bad = 0
    for f in files:
        try:
            p = check_profile(f)
        except BenchError as e:
            console.print(f"[red]✗[/red] {escape(str(e))}")   # keys like [ratings.charge] are not markup
            bad += 1
            continue
        if isinstance(p, BenchProfile):
            roles = ", ".join(f"{r} ({c.driver})" for r, c in p.roles.items())
            console.print(f"[green]✓[/green] {f}: bench profile {p.name!r}; roles: {roles}")
        else:
            console.print(f"[green]✓[/green] {f}: DUT profile {p.identity}; claims: {', '.join(sorted(p.claimed()))}")
    raise typer.Exit(1 if bad else 0)


@app.command()
def doctor(bench: Optional[Path] = typer.Option(None, "--bench", help="Also check each instrument of this bench profile is reachable.")):
    """What is missing (Java, the Allure CLI, veth/netns capability, instruments), each with the fix."""
    from v2g_bench.harness.doctor import run_doctor
    raise typer.Exit(run_doctor(bench))


def main() -> None:
    _mount_sub_apps()
    try:
        app()
    except BenchError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted: every opened role was unwound to its safe state")
        sys.exit(130)


if __name__ == "__main__":
    main()
