"""`v2g-bench csms`: run the CSMS emulator by hand, point a charger at it, watch the frames live.

The frames are printed as they cross the wire and recorded as JSONL (the same recording tests get).
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import List, Optional

import typer

from v2g_bench.errors import BenchError

app = typer.Typer(help="Run the CSMS emulator (OCPP 2.0.1 / 2.1) by hand.", add_completion=False,
                  pretty_exceptions_enable=False)


PASSWORD_ENV = "V2G_BENCH_CSMS_PASSWORD"


def read_credentials(password_file: Path | None, stations_file: Path | None,
                     station_ids: List[str]) -> tuple[str | None, dict[str, str]]:
    """Passwords come from a file or the environment, never from argv (visible in `ps`)."""
    password = os.environ.get(PASSWORD_ENV) or None
    if password_file is not None:
        try:
            lines = password_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise BenchError(f"cannot read the password file ({e})", where=str(password_file)) from None
        password = lines[0].strip() if lines else ""
        if not password:
            raise BenchError("the password file is empty", where=str(password_file),
                             fix="write the password on its first line")
    stations: dict[str, str] = {}
    for item in station_ids:
        if "=" in item:
            raise BenchError(f"--station {item.split('=', 1)[0]}=...: a password on the command line is visible "
                             "to every user of this machine", where="--station",
                             fix=f"give only the id, and the password in --stations-file, --password-file or ${PASSWORD_ENV}")
        stations[item] = password or ""
    if stations_file is not None:
        try:
            text = stations_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise BenchError(f"cannot read the stations file ({e})", where=str(stations_file)) from None
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            sid, sep, pw = line.partition("=")
            if not sid.strip() or not sep:
                raise BenchError(f"line {n}: expected ID=PASSWORD", where=str(stations_file))
            stations[sid.strip()] = pw.strip()
    return password, stations


def _print_frame(f) -> None:
    arrow = "->" if f.direction == "in" else "<-"
    stamp = f.wall[11:23]
    payload = json.dumps(f.payload, separators=(",", ":")) if f.payload is not None else f.raw
    if len(payload) > 400:
        payload = payload[:400] + f"... ({len(f.raw)} chars)"
    line = f"{stamp} {f.station:>16} {arrow} {f.kind:<10} {f.action or '':<24} {payload}"
    if f.problems:
        line += "\n" + " " * 14 + "!! " + "; ".join(f.problems)
    typer.echo(line)


@app.callback(invoke_without_command=True)
def run(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 to reach a charger on the LAN)."),
    port: int = typer.Option(8180, help="TCP port (0 = any free port)."),
    security_profile: int = typer.Option(1, "--security-profile", "-s", help="0 (no auth, bench only), 1, 2 or 3."),
    ocpp_version: List[str] = typer.Option(["2.1", "2.0.1"], "--ocpp-version", help="Accepted versions, preferred first."),
    password_file: Optional[Path] = typer.Option(
        None, help="File whose first line is the Basic-auth password for any station id (profiles 1 and 2). "
                   f"Or set ${PASSWORD_ENV}. Never on the command line: argv is visible to every user (ps)."),
    station: List[str] = typer.Option([], "--station", help="Station id to accept; repeat; only these ids are accepted."),
    stations_file: Optional[Path] = typer.Option(
        None, help="File of ID=PASSWORD lines (# comments): only these ids are accepted, each with its password."),
    tls_cert: Optional[Path] = typer.Option(None, help="Server certificate (PEM); generated if absent (profiles 2/3)."),
    tls_key: Optional[Path] = typer.Option(None, help="Server key (PEM)."),
    tls_client_ca: Optional[Path] = typer.Option(None, help="CA of the station certificates (profile 3)."),
    pki_dir: Optional[Path] = typer.Option(None, help="Where to write the generated test PKI."),
    record: Optional[Path] = typer.Option(None, help="JSONL file of every frame (default reports/csms/ocpp-frames-<time>.jsonl)."),
    boot_status: str = typer.Option("Accepted", help="Answer to BootNotification: Accepted, Pending or Rejected."),
    heartbeat_interval: int = typer.Option(300, help="Heartbeat interval given in the BootNotification answer (s)."),
    duration: float = typer.Option(0.0, help="Stop after this many seconds (0 = until Ctrl-C)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print frames (recording only)."),
    console: bool = typer.Option(False, "--console", "-c", help="Drive the CSMS by hand: a prompt to send any "
                                 "CSMS-initiated call (help lists the commands), frames shown live above it."),
    script: Optional[Path] = typer.Option(None, help="Run these console commands (one a line) and stop; "
                                          "exit status 1 if one failed."),
    session_record: Optional[Path] = typer.Option(None, help="Record the console session (commands and answers, "
                                                  "JSON lines)."),
) -> None:
    from v2g_bench.csms.pki import TestPKI, server_ssl_context
    from v2g_bench.csms.server import CsmsOptions, CsmsServer

    record = record or Path("reports/csms") / time.strftime("ocpp-frames-%Y%m%d-%H%M%S.jsonl")
    try:
        password, stations = read_credentials(password_file, stations_file, station)
        opts = CsmsOptions.from_dict({
            "host": host, "port": port, "security_profile": security_profile, "ocpp_versions": list(ocpp_version),
            "password": password, "stations": stations, "tls_cert": str(tls_cert) if tls_cert else None,
            "tls_key": str(tls_key) if tls_key else None, "tls_client_ca": str(tls_client_ca) if tls_client_ca else None,
            "record_path": str(record), "boot_status": boot_status, "heartbeat_interval_s": heartbeat_interval,
            "retain_frames": False})
        ssl_ctx, pki = None, None
        if security_profile in (2, 3):
            if tls_cert:
                ssl_ctx = server_ssl_context(tls_cert, tls_key, tls_client_ca if security_profile == 3 else None)
            else:
                pki = TestPKI.create(pki_dir)
                ssl_ctx = pki.server_context(require_client_cert=security_profile == 3)
    except BenchError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    for w in opts.security_warnings():
        typer.echo(f"warning: {w}", err=True)

    failures = 0

    async def main() -> None:
        nonlocal failures
        srv = CsmsServer(opts, ssl_context=ssl_ctx, pki=pki)
        con = None
        if console or script:
            from v2g_bench.csms.console import Console
            con = Console(srv, echo=typer.echo)
            srv.recorder.listeners.append(con.note_frame)
            if session_record:
                await con.execute(f"record {session_record}")
        if not quiet:
            srv.recorder.listeners.append(lambda f: _print_frame(f) if con is None or con.live else None)
        await srv.start()
        typer.echo(f"CSMS emulator listening: {srv.url('<stationId>')}  (security profile {security_profile}, "
                   f"OCPP {'/'.join(opts.ocpp_versions)})")
        if pki:
            typer.echo(f"test PKI in {pki.dir}: give the charger {pki.ca_cert} as CSMS root certificate; "
                       f"station certificates: python -c \"...TestPKI.station_cert(id)\" or --tls-client-ca")
        typer.echo(f"recording every frame to {record}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        n_events = 0

        async def print_connections():
            nonlocal n_events
            while True:
                for e in srv.events[n_events:]:
                    typer.echo(f"-- {e.kind} {e.station or '?'}: {e.detail}")
                n_events = len(srv.events)
                await asyncio.sleep(0.2)
        printer = asyncio.ensure_future(print_connections())
        try:
            if script is not None:
                from v2g_bench.csms.console import run_script
                failures = await run_script(con, script)
            elif console:
                from v2g_bench.csms.console import interactive
                await interactive(con)
            else:
                await asyncio.wait_for(stop.wait(), duration if duration > 0 else None)
        except asyncio.TimeoutError:
            pass
        finally:
            printer.cancel()
            await srv.stop()
            typer.echo(f"stopped: {srv.recorder.count} frames recorded, {len(srv.violations)} violation(s)")
            for v in srv.violations[:20]:
                typer.echo(f"  violation: {v}")

    asyncio.run(main())
    if failures:
        raise typer.Exit(1)
