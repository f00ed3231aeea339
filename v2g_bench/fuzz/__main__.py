"""`python -m v2g_bench.fuzz --seconds 600 [--targets exi,scpi,...]` (= `make fuzz FUZZ_SECONDS=600`).

Runs each target for its share of the time (weights below), prints inputs tried, ok, typed errors,
crashes, hangs, throughput, memory and fds per target, writes reports/fuzz/summary.json and saves
every crash/hang input under reports/fuzz/crashes/<target>/. Exit code 1 if anything crashed or hung.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from v2g_bench.fuzz.campaign import format_table, run_target, write_report

# share of the time per target (network targets are slower per input, so they get more time)
WEIGHTS = {"exi": 2, "exi-encode": 1, "profiles": 1, "scpi": 2, "modbus": 1, "socketcand": 1, "csms": 2,
           "station": 1, "secc": 1}


TARGETS = {
    "exi": "targets_local:ExiDecodeTarget", "exi-encode": "targets_local:ExiEncodeTarget",
    "profiles": "targets_local:ProfileTarget", "scpi": "targets_lab:ScpiTarget", "modbus": "targets_lab:ModbusTarget",
    "socketcand": "targets_lab:SocketcandTarget", "csms": "targets_ocpp:CsmsTarget",
    "station": "targets_ocpp:StationTarget", "secc": "targets_secc:SeccTarget",
}


def make_target(name: str):
    import importlib
    mod, _, cls = TARGETS[name].partition(":")
    return getattr(importlib.import_module(f"v2g_bench.fuzz.{mod}"), cls)()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m v2g_bench.fuzz", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="total time for the campaign")
    ap.add_argument("--targets", default=",".join(WEIGHTS), help=f"comma-separated subset of {','.join(WEIGHTS)}")
    ap.add_argument("--out", default="reports/fuzz", help="report folder (summary.json, crashes/)")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = [n for n in names if n not in WEIGHTS]
    if unknown:
        print(f"error: unknown target(s) {unknown}; choose from {', '.join(WEIGHTS)}", file=sys.stderr)
        return 2
    if args.seconds <= 0:
        print("error: --seconds must be > 0", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.CRITICAL)     # the services log every refused input: keep the table readable
    logging.getLogger().setLevel(logging.CRITICAL)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    total_w = sum(WEIGHTS[n] for n in names)
    rows = []
    print(f"fuzz campaign: {args.seconds:g} s over {len(names)} target(s), seed {args.seed}, report in {out}/",
          flush=True)
    for i, name in enumerate(names):
        share = args.seconds * WEIGHTS[name] / total_w
        print(f"-- {name}: {share:.0f} s", flush=True)
        stats = run_target(make_target(name), share, out, args.seed + i,
                           progress=lambda s: print(f"   {s.target}: {s.inputs} inputs, {s.typed} typed, "
                                                    f"{s.crashes} crashes, {s.hangs} hangs, {s.rate:.0f}/s",
                                                    flush=True))
        rows.append(stats)
        write_report(rows, out / "summary.json")
        if stats.note.startswith("interrupted"):
            break
    print()
    print(format_table(rows))
    for s in rows:
        for f in s.crash_files[:5]:
            print(f"  {s.target}: {f}")
    return 1 if any(s.crashes or s.hangs for s in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
