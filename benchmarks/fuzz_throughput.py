"""Fuzz throughput per target (inputs/s), and the lab's memory/fds under each, on a short run.

    python -m benchmarks.fuzz_throughput [--seconds-per-target 10] [--targets exi,scpi,...]

The same machinery as `make fuzz` (v2g_bench.fuzz): prints its table (inputs, ok, typed, crashes,
hangs, inputs/s, RSS start/end/peak, fds). The long campaign's counts are in docs/fuzzing.md.
"""
from __future__ import annotations

import argparse
import sys
import tempfile

from v2g_bench.fuzz.__main__ import WEIGHTS, make_target
from v2g_bench.fuzz.campaign import format_table, run_target
from v2g_bench.fuzz.targets_lab import stop_shared_lab


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds-per-target", type=float, default=10.0)
    ap.add_argument("--targets", default=",".join(WEIGHTS))
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fuzz-bench-") as tmp:
        from pathlib import Path
        try:
            for i, name in enumerate(n for n in args.targets.split(",") if n):
                rows.append(run_target(make_target(name), args.seconds_per_target, Path(tmp), seed=100 + i))
        finally:
            stop_shared_lab()
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
