"""`v2g-bench instruments list|identify`: each role's driver, resource, identity and self-test."""
from __future__ import annotations

import contextlib
from pathlib import Path

import typer

app = typer.Typer(help="List and identify the instruments of a bench profile.", no_args_is_help=True,
                  add_completion=False)

DEFAULT_BENCH = Path("profiles/virtual-lab.bench.toml")
INSTRUMENT_TRANSPORTS = ("visa", "modbus", "can")


def _where(cfg) -> str:
    if cfg.resource:
        return cfg.resource
    keys = ("interface", "channel", "host", "port")
    return ", ".join(f"{k}={cfg.options[k]}" for k in keys if k in cfg.options) or "-"


def _rows(profile):
    from v2g_bench.drivers import get_driver
    for name, cfg in profile.roles.items():
        try:
            cls = get_driver(cfg.driver)
            transport, desc = getattr(cls, "transport", "?"), getattr(cls, "description", "") or cls.__name__
        except Exception as e:  # an unloadable driver is itself a finding
            transport, desc = "?", f"cannot load: {e}"
        yield name, cfg, transport, desc


@app.command("list")
def list_(bench: Path = typer.Option(DEFAULT_BENCH, "--bench", help="bench profile (TOML)")) -> None:
    """Each role: driver, transport, resource (no instrument is contacted)."""
    from v2g_bench.profiles import load_bench
    profile = load_bench(bench)
    typer.echo(f"bench {profile.name} ({bench})")
    for name, cfg, transport, desc in _rows(profile):
        typer.echo(f"  {name:<10} {cfg.driver:<18} {transport:<8} {_where(cfg)}  — {desc}")


@app.command()
def identify(bench: Path = typer.Option(DEFAULT_BENCH, "--bench", help="bench profile (TOML)"),
             role: list[str] = typer.Option(None, "--role", help="only these roles (repeatable)")) -> None:
    """Open each instrument role, print its identity and self-test; exit 1 if any failed.
    For the built-in virtual lab, the lab is started for the duration of the command."""
    from v2g_bench.harness.bench import Bench
    from v2g_bench.profiles import load_bench
    profile = load_bench(bench)
    failed = 0
    with contextlib.ExitStack() as stack:
        lab = None
        if profile.uses_builtin_lab:
            from v2g_bench.harness.labproc import running_lab
            opts = dict(profile.lab or {})
            lab = stack.enter_context(running_lab(config=opts.get("config"), seed=int(opts.get("seed", 1)),
                                                  time_scale=float(opts.get("time_scale", 1.0)),
                                                  timeout_s=float(opts.get("start_timeout_s", 60))))
        b = stack.enter_context(Bench(profile, lab=lab))
        typer.echo(f"bench {profile.name} ({bench})" + (f", virtual lab pid {lab.pid}" if lab else ""))
        for name, cfg, transport, _desc in _rows(profile):
            if (role and name not in role) or transport not in INSTRUMENT_TRANSPORTS:
                continue
            resolved = b._resolved.roles[name]
            try:
                drv = b.open_role(name)
                result = drv.self_test()
            except Exception as e:   # report every role, not just the first failure
                result = f"FAIL: {e}"
            if not result.startswith("ok"):
                failed += 1
            typer.echo(f"  {name:<10} {cfg.driver:<18} {_where(resolved)}\n      {result}")
    if failed:
        raise typer.Exit(1)
