"""`v2g-bench schedule SCENARIO [--json] [--plot FILE]`: plan a scenario and show it.

Mounted by the main CLI with `app.add_typer(scheduler.cli.app, name="schedule")`; the work is done in the
callback so the sub-app needs no sub-command name.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from v2g_bench.errors import BenchError

app = typer.Typer(help="Plan a scenario with the reference scheduler (HiGHS) and print the plan.",
                  add_completion=False, no_args_is_help=False)


@app.callback(invoke_without_command=True, context_settings={"allow_interspersed_args": True})
def schedule(
    scenario: str = typer.Argument(None, help="scenario file, or a name from scenarios/ (omit to list them)"),
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON instead of tables"),
    plot: Path = typer.Option(None, "--plot", help="write a PNG with prices, power and SOC"),
    every: int = typer.Option(0, "--every", help="show every N-th interval (0 = choose to fit ~48 rows)"),
) -> None:
    console = Console()
    try:
        from v2g_bench.scheduler.scenario import list_scenarios, load_scenario
        if scenario is None:
            for p in list_scenarios():
                sc = load_scenario(p)
                console.print(f"[bold]{p.stem}[/]  ({sc.kind}, {len(sc.evs)} EV(s))  {sc.description}")
            return
        sc = load_scenario(scenario)
        plan = sc.plan()
    except BenchError as e:
        Console(stderr=True).print(f"[red]error:[/] {e}")
        raise typer.Exit(2)
    if plot is not None:
        from v2g_bench.verification.plots import plot_plan
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_bytes(plot_plan(plan, sc.site, sc.evs, title=f"{sc.name}: total cost {plan.cost.total:.2f}"))
    from v2g_bench.verification.economics import judge_economics
    econ = judge_economics(sc.site, sc.evs, [e.power_kw for e in plan.evs], curtailed_kw=plan.curtailed_kw,
                           min_saving=None).metrics
    if as_json:
        out = plan.to_dict()
        out["scenario"] = sc.name
        out["vs_uncontrolled"] = {k: econ[k] for k in ("arbitrage_revenue", "demand_charge_saving",
                                                       "extra_degradation_cost", "net_saving")}
        out["clock"] = [sc.clock(t) for t in plan.times_s - plan.start_s]
        sys.stdout.write(json.dumps(out, indent=1) + "\n")
        return
    _print(console, sc, plan, every, econ)
    if plot is not None:
        console.print(f"plot written to {plot}")


def _print(console: Console, sc, plan, every: int, econ: dict) -> None:
    site = sc.site
    n = plan.n
    step = every or max(1, -(-n // 48))
    many = len(plan.evs) > 4
    t = Table(title=f"{sc.name} - {sc.description}", caption=f"every {step} interval(s) of {site.dt_s:g} s; "
              f"+ = into the EV; method {plan.method}, solved in {plan.solve_time_s * 1000:.1f} ms")
    t.add_column("time")
    t.add_column("import", justify="right")
    t.add_column("export", justify="right")
    if many:
        t.add_column(f"EVs ({len(plan.evs)}) kW", justify="right")
        t.add_column("SOC sum kWh", justify="right")
    else:
        for e in plan.evs:
            t.add_column(f"{e.name} kW", justify="right")
            t.add_column(f"{e.name} SOC", justify="right")
    t.add_column("site kW", justify="right")
    for k in range(0, n, step):
        row = [sc.clock(k * site.dt_s), f"{site.import_price[k]:.3f}", f"{site.export_price[k]:.3f}"]
        if many:
            row += [f"{sum(e.power_kw[k] for e in plan.evs):.1f}", f"{sum(e.soc_kwh[k + 1] for e in plan.evs):.1f}"]
        else:
            for e in plan.evs:
                row += [f"{e.power_kw[k]:+.2f}", f"{e.soc_kwh[k + 1]:.2f}"]
        row.append(f"{plan.grid_kw[k]:+.1f}")
        t.add_row(*row)
    console.print(t)
    c = Table(title="cost breakdown")
    c.add_column("item")
    c.add_column("amount", justify="right")
    for k, v in plan.cost.as_dict().items():
        c.add_row(k.replace("_", " "), f"{v:.2f}")
    c.add_section()
    # what a charger without a scheduler would pay (full power from arrival; may ignore the site limit)
    c.add_row("uncontrolled charging total", f"{econ['uncontrolled']['total']:.2f}")
    for k in ("arbitrage_revenue", "demand_charge_saving", "extra_degradation_cost", "net_saving"):
        c.add_row(k.replace("_", " "), f"{econ[k]:.2f}")
    console.print(c)
    s = Table(title="EVs")
    for col in ("EV", "start kWh", "min kWh", "departure kWh", "target kWh", "floor/reserve kWh"):
        s.add_column(col, justify="right")
    for ev, e in list(zip(sc.evs, plan.evs))[:20]:
        b = min(int(ev.departure_s // site.dt_s), n)
        s.add_row(ev.name, f"{e.soc_kwh[0]:.2f}", f"{e.soc_kwh.min():.2f}", f"{e.soc_kwh[b]:.2f}",
                  f"{ev.target_kwh:.2f}", f"{ev.min_kwh:.2f}")
    console.print(s)
    for note in plan.notes:
        console.print(f"note: {note}")
