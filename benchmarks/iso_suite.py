"""ISO 15118-20 SECC suite on the virtual lab: rows per minute, time per good and per negative row (p50/p95), and
the oracle's speed on the captures those rows left. A fixed sample of rows (one pytest process, one lab), so the
figure is comparable from run to run; the whole suite's time is in docs/iso15118-suite.md."""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ["ISO20_ServiceDiscovery_DC_BPT_dynamic_good", "ISO20_DC_ChargeLoop_DC_BPT_dynamic_good",
          "ISO20_SessionStop_DC_BPT_dynamic_good", "ISO20_DC_CableCheck_DC_BPT_dynamic_performance",
          "ISO20_Authorization_DC_BPT_unknown_session", "ISO20_PowerDelivery_DC_BPT_unknown_session",
          "ISO20_AuthorizationSetup_DC_BPT_out_of_sequence", "ISO20_DC_PreCharge_DC_BPT_out_of_sequence",
          "ISO20_V2GTP_wrong_version", "ISO20_SAP_no_common_protocol", "ISO20_TLS_13",
          "ISO20_Authorization_PnC_wrong_signature"]
NEGATIVE = ("unknown_session", "out_of_sequence", "V2GTP", "SAP_no_common", "wrong_signature")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-p", "no:randomly",
                        "tests/conformance/iso15118_20/test_secc_messages.py",
                        "tests/conformance/iso15118_20/test_secc_special.py", "-k", " or ".join(SAMPLE),
                        f"--junitxml={junit}"], cwd=ROOT, timeout=850, capture_output=True)
        wall = time.monotonic() - t0
        if not junit.exists():
            print("no junit result: the sample did not run")
            return 1
        good, neg = [], []
        for tc in ET.parse(junit).iter("testcase"):
            name, t = tc.get("name", ""), float(tc.get("time", 0))
            (neg if any(k in name for k in NEGATIVE) else good).append(t)
    n = len(good) + len(neg)
    print(f"rows: {n} in {wall:.1f} s wall (incl. lab start): {60 * n / wall:.1f} rows/min")
    for label, xs in (("good", good), ("negative", neg)):
        if xs:
            print(f"{label:8} rows: {len(xs):2}  p50 {statistics.median(xs):6.2f} s  p95 {pct(xs, 0.95):6.2f} s")
    caps = sorted((ROOT / "reports").rglob("session-*.pcap"), key=lambda p: p.stat().st_mtime)[-10:]
    if caps:
        from v2g_bench.oracle import analyze
        t0 = time.perf_counter()
        frames = sum(len(analyze(c, tls_required_for_20=False).messages) for c in caps)
        dt = time.perf_counter() - t0
        print(f"oracle: {len(caps)} captures, {frames} messages in {dt:.2f} s ({frames / dt:.0f} messages/s, "
              f"strict own-EXI decode + rules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
