"""The aggregator scenario at scale: N light stations (one process) under one CSMS, the fleet plan's TxProfiles
sent to all, the measured aggregate judged against the plan.

    python -m benchmarks.aggregator                    # 1,000 stations, 8 intervals of 3 s wall time
    python -m benchmarks.aggregator --stations 2000 --interval-wall 4
"""
from __future__ import annotations

import argparse
import os

from v2g_bench.errors import Inconclusive, Nonconformance
from v2g_bench.scheduler.aggregator import run_aggregator


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stations", type=int, default=1000)
    ap.add_argument("--intervals", type=int, default=8)
    ap.add_argument("--interval-wall", type=float, default=3.0, help="wall seconds per 15-min plan interval")
    ap.add_argument("--defective", type=int, default=0, help="stations that ignore their profile")
    a = ap.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    try:
        r = run_aggregator(a.stations, intervals=a.intervals, interval_wall_s=a.interval_wall, defective=a.defective)
    except Inconclusive as e:
        print(f"INCONCLUSIVE: {e}")
        return
    print(r.report())
    print("planned kW :", " ".join(f"{x:8.1f}" for x in r.planned_kw))
    print("measured kW:", " ".join(f"{x:8.1f}" for x in r.measured_kw))
    try:
        r.judge()
        print("verdict: passed")
    except Nonconformance as e:
        print(f"verdict: failed - {e}")
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
