"""OCPP charging-station suite on the virtual lab: rows per minute and the per-row overhead (a row that only
connects, boots and reads one variable: the cost every row pays for the connection, the boot, the evidence
and the teardown), p50/p95 of protocol rows and of measured-power rows. A fixed sample (one pytest process,
one lab) so the figure compares from run to run; the whole suite's time is in docs/ocpp-suite.md."""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ["TC_B_06_CS", "TC_B_32_CS", "TC_B_12_CS", "TC_E_30_CS", "TC_F_20_CS", "TC_F_08_CS", "TC_K_01_CS",
          "TC_K_41_CS", "TC_G_03_CS", "TC_K_60_CS"]
OVERHEAD_ROW = "TC_B_06_CS"          # connect + boot + one GetVariables + teardown
POWER = ("TC_K_60_CS",)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/conformance/ocpp",
                        "-k", " or ".join(SAMPLE), "--deselect", "tests/conformance/ocpp/test_station_mutations.py",
                        f"--junitxml={junit}"], cwd=ROOT, timeout=850, capture_output=True)
        wall = time.monotonic() - t0
        if not junit.exists():
            print("no junit result: the sample did not run")
            return 1
        proto, power, overhead = [], [], []
        cases = list(ET.parse(junit).iter("testcase"))
        if cases:       # the first row carries the lab's start (a session fixture): reported on its own
            print(f"first row incl. the virtual lab's start: {float(cases[0].get('time', 0)):.2f} s")
        for tc in cases[1:]:
            name, t = tc.get("name", ""), float(tc.get("time", 0))
            (power if any(k in name for k in POWER) else proto).append(t)
            if OVERHEAD_ROW in name:
                overhead.append(t)
    n = len(proto) + len(power)
    print(f"rows: {n} in {wall:.1f} s wall (incl. lab start): {60 * n / wall:.1f} rows/min")
    for label, xs in (("protocol", proto), ("power", power)):
        if xs:
            print(f"{label:8} rows: {len(xs):2}  p50 {statistics.median(xs):6.2f} s  p95 {pct(xs, 0.95):6.2f} s")
    if overhead:
        print(f"per-row overhead ({OVERHEAD_ROW}: connect, boot, one call, teardown): "
              f"{statistics.median(overhead):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
