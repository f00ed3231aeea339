"""Emergency stop to zero current <= 100 ms on the virtual lab (issue 16), measured by `benchmarks/estop.py`:
the bench path (hard_stop_all -> SCPI OUTP OFF, verified), the lab's outputs_off, and a killed harness."""
import json
import subprocess
import sys

import pytest

from v2g_bench.profiles import REPO_ROOT

GOAL_MS = 100.0


def test_estop_reaches_zero_current_within_100_ms():
    cp = subprocess.run([sys.executable, "-m", "benchmarks.estop", "--trials", "3", "--json"], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=240)
    assert cp.returncode == 0, cp.stderr[-3000:]
    res = json.loads(cp.stdout.strip().splitlines()[-1])
    slow = {k: v["median_ms"] for k, v in res.items() if k != "ping_s" and v["median_ms"] > GOAL_MS}
    if slow and res["ping_s"]["median_ms"] > GOAL_MS / 2:
        pytest.skip(f"INCONCLUSIVE: E-stop medians {slow} ms, but a no-op control round trip took "
                    f"{res['ping_s']['median_ms']:.0f} ms: the machine is too loaded to judge")
    assert not slow, f"E-stop slower than {GOAL_MS:g} ms: {slow}"
    assert res["bench_estop_s"]["n"] == 3 and res["lab_estop_s"]["n"] == 3 and res["killed_owner_s"]["n"] == 1
