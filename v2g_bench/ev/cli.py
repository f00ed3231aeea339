"""`v2g-bench ev`: run the EV emulator by hand against a real charger (or the lab)."""
from __future__ import annotations

import typer

app = typer.Typer(help="EV emulator (ISO 15118-20/-2, DIN 70121) against a charger on IFACE.")


def _plan(text: str):
    from v2g_bench.ev.model import Phase

    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        p, _, d = part.partition(":")
        out.append(Phase(power_w=float(p), duration_s=float(d or 10)))
    return out


@app.callback(invoke_without_command=True)
def run(iface: str = typer.Option(..., "--iface", help="EV-side interface (PLC modem NIC / veth end)"),
        netns: str = typer.Option(None, help="network namespace of IFACE"),
        protocol: str = typer.Option("ISO15118-20", help="ISO15118-20 | ISO15118-2 | DIN70121"),
        service: str = typer.Option("DC_BPT", help="DC_BPT | DC | AC_BPT | AC"),
        control_mode: str = typer.Option("scheduled", help="scheduled | dynamic"),
        plan: str = typer.Option("5000:10,-5000:10", help="phases W:s, + charge, - discharge"),
        soc: float = typer.Option(0.5, help="initial SOC (0..1)"),
        capacity_wh: float = typer.Option(60000.0),
        tls: bool = typer.Option(False, help="request TLS in SDP"),
        auth: str = typer.Option("EIM", help="EIM | PnC (PnC needs --tls)"),
        codec: str = typer.Option("jar", help="jar (iso15118's EXIficient) | own (v2g_bench.exi)"),
        trace: str = typer.Option(None, help="write the V2GTP trace (JSONL) to this file"),
        pki_path: str = typer.Option(None, help="test PKI shared with the charger (default: made now)"),
        timeout: float = typer.Option(120.0, help="upper bound for the session [s]")) -> None:
    from v2g_bench.errors import BenchError
    from v2g_bench.ev.emulator import EVEmulator
    from v2g_bench.ev.model import EVModel

    def show(e):
        typer.echo(f"{e.t:12.3f} {e.direction:2} {e.name:28} {len(e.v2gtp_hex) // 2:5d} B {e.note}")

    try:
        ev = EVEmulator(iface, netns=netns, model=EVModel(capacity_wh=capacity_wh, soc=soc), on_message=show,
                        codec=codec, trace_path=trace, pki_path=pki_path)
    except BenchError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    try:
        res = ev.run_session(protocol=protocol, service=service, control_mode=control_mode, plan=_plan(plan),
                             timeout=timeout, tls=tls, auth=auth)
    except BenchError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    finally:
        ev.close()
    typer.echo(res.summary())
    raise typer.Exit(0 if res.passed else 1)


if __name__ == "__main__":      # python -m v2g_bench.ev.cli (same as `v2g-bench ev`)
    app()
