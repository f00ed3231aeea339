"""`python -m v2g_bench.lab`: run the virtual lab process (see v2g_bench/lab/server.py)."""
from __future__ import annotations

import argparse
import sys

from v2g_bench.lab.server import DEFAULT_CONFIG, run_lab


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m v2g_bench.lab", description=__doc__)
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="lab TOML (default: %(default)s)")
    ap.add_argument("--ready-file", help="write the ready JSON here (atomically) once every port listens")
    ap.add_argument("--seed", type=int, default=None, help="noise seed (default: [lab].seed or 0)")
    ap.add_argument("--time-scale", type=float, default=None, help="plant time per wall second (>= 1)")
    ap.add_argument("--host", default=None, help="loopback address to bind (default 127.0.0.1)")
    ap.add_argument("--log", default=None, help="log file (default: stderr)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="dotted override of the lab TOML, repeatable (e.g. services.secc.iface=vl0)")
    a = ap.parse_args(argv)
    return run_lab(config=a.config, ready_file=a.ready_file, seed=a.seed, time_scale=a.time_scale,
                   host=a.host, log_file=a.log, sets=a.set)


if __name__ == "__main__":
    sys.exit(main())
