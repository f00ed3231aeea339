"""`v2g-bench lab`: run the virtual lab in the foreground (the lead mounts `app` on the main CLI).

    v2g-bench lab [--config FILE] [--seed N] [--time-scale X] [--set key=value ...]
    v2g-bench lab faults            # list the injectable faults and their parameters

Prints the port table and the resource strings to put in a bench profile once every front-end
listens; Ctrl-C (SIGINT) or SIGTERM turns the outputs off and stops it cleanly.
"""
from __future__ import annotations

from typing import List, Optional

import typer

from v2g_bench.lab.plant import FAULTS
from v2g_bench.lab.server import DEFAULT_CONFIG, run_lab

app = typer.Typer(help="The virtual lab: simulated bench hardware behind real transports.",
                  no_args_is_help=False, add_completion=False)


def _print_ready(info: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"v2g-bench virtual lab (pid {info['pid']}, seed {info['seed']}, "
                    f"time x{info['time_scale']:g})")
    t.add_column("front-end")
    t.add_column("port", justify="right")
    t.add_column("resource / how to connect")
    for name, port in info["ports"].items():
        res = info.get("resources", {}).get(name, "")
        if name == "control":
            res = f"LabControl('{info['host']}', {port})  (newline-delimited JSON)"
        t.add_row(name, str(port), res)
    c = Console()
    c.print(t)
    c.print("Ctrl-C stops the lab (outputs off first).")


@app.callback(invoke_without_command=True)
def lab(ctx: typer.Context,
        config: str = typer.Option(str(DEFAULT_CONFIG), "--config", help="lab TOML"),
        ready_file: Optional[str] = typer.Option(None, "--ready-file", help="write the ready JSON here"),
        seed: Optional[int] = typer.Option(None, "--seed", help="noise seed"),
        time_scale: Optional[float] = typer.Option(None, "--time-scale", help="plant seconds per wall second (>= 1)"),
        host: Optional[str] = typer.Option(None, "--host", help="loopback address (127.0.0.1 or ::1)"),
        log: Optional[str] = typer.Option(None, "--log", help="log file (default: stderr)"),
        set_: List[str] = typer.Option([], "--set", help="dotted TOML override key=value (repeatable)")) -> None:
    """Run the virtual lab in the foreground."""
    if ctx.invoked_subcommand is not None:
        return
    rc = run_lab(config=config, ready_file=ready_file, seed=seed, time_scale=time_scale, host=host,
                 log_file=log, sets=set_, on_ready=_print_ready)
    raise typer.Exit(rc)


@app.command("faults")
def faults() -> None:
    """List the faults the control port can inject."""
    for name, (desc, params) in FAULTS.items():
        p = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "-"
        typer.echo(f"{name:18s} {p}\n{'':18s} {desc}")


if __name__ == "__main__":
    app()
