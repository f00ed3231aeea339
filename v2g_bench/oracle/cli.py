"""`v2g-bench analyze CAPTURE.pcap`: the oracle on a capture taken anywhere (a real car on a real
charger, with or without SLAC frames): messages decoded, the sequence checked, each response time
against its limit, rule violations listed with their IDs. Exit code 1 when there are violations,
2 when the file cannot be read."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from v2g_bench.errors import BenchError

app = typer.Typer(help="Judge an ISO 15118 / DIN 70121 capture with the independent oracle.",
                  context_settings={"allow_interspersed_args": True},
                  add_completion=False)


@app.callback(invoke_without_command=True)
def analyze_cmd(
    capture: Path = typer.Argument(..., help="pcap/pcapng of the EV-charger link (SDP + V2GTP; SLAC is skipped)"),
    trace: Optional[Path] = typer.Option(None, help="the EV emulator's v2gtp-trace.jsonl to compare with"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    allow_20_without_tls: bool = typer.Option(False, help="do not flag -20 over plain TCP (V2G20-2356)"),
    keylog: Optional[Path] = typer.Option(None, help="TLS key log (NSS SSLKEYLOGFILE format) to decrypt TLS "
                                          "streams; default: <capture>.keylog beside the capture"),
) -> None:
    """Decode every frame strictly, pair requests and responses, judge the SECC's side."""
    from v2g_bench.oracle.analysis import analyze

    try:
        rep = analyze(capture, trace=trace, tls_required_for_20=not allow_20_without_tls, keylog=keylog)
    except BenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps({**rep.summary(), "messages": [m.row() for m in rep.messages]}, indent=1,
                              default=str))
    else:
        t0 = rep.capture.t0 or 0.0
        c = rep.capture
        typer.echo(f"{c.path}: {c.packets} packets, {c.slac_frames} SLAC, {len(c.sdp)} SDP, "
                   f"{len(c.streams)} TCP stream(s), {len(rep.messages)} V2GTP messages")
        for m in rep.messages:
            rt = "" if m.response_time_s is None else f"{m.response_time_s * 1000:8.1f} ms / {m.limit.seconds * 1000:.0f}"
            code = m.response_code or ""
            arrow = "->" if m.direction == "ev->secc" else "<-"
            typer.echo(f"{m.t - t0:10.4f} s  #{m.stream} {arrow} {m.family:4} {m.name:34} {code:28} {rt}"
                       + (f"  !{m.error}" if m.error else ""))
        for n in rep.notes:
            typer.echo(f"note: {n}")
        typer.echo(f"{len(rep.violations)} violation(s)")
        for v in rep.violations:
            typer.echo(f"  {v}" + (f" [bit {v.bit}]" if v.bit is not None else ""))
    if rep.violations:
        raise typer.Exit(1)
