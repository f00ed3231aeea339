"""Helpers of the report tests (a module of its own: test modules import it by name, never `conftest`).

Generated runs shared by the report tests: the real `v2g-bench run` (subprocess) over a generated
suite, into a temporary reports folder, with a bench profile that names the lab, the operator and an
instrument whose calibration is past due."""
import subprocess
import sys
from pathlib import Path

from v2g_bench.profiles import DEFAULT_BENCH

N_CASES = 8


def bench_with_identity(path: Path) -> Path:
    text = DEFAULT_BENCH.read_text()
    text = text.replace("[bench]\n", '[bench]\nlaboratory = "Example EV Lab, Teststr. 1, Berlin"\noperator = "J. Tester"\n', 1)
    text = text.replace("[roles.battery]\n", '[roles.battery]\nserial = "MY-RP7952-0042"\ncalibration_due = 2020-01-31\n', 1)
    text = text.replace("[roles.analyzer]\n", '[roles.analyzer]\nserial = "WT5000-77"\ncalibration_due = 2099-12-31\n', 1)
    path.write_text(text)
    return path


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from v2g_bench.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=timeout)
