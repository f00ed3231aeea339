"""The generated runs the report tests share (helpers: reports_helpers.py)."""
import pytest
from reports_helpers import N_CASES, bench_with_identity

from v2g_bench.report.synthetic import generate_run


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory):
    """(reports folder, first run, second run): the same DUT twice; the second run's figures drift and
    one case turns from passed to failed."""
    root = tmp_path_factory.mktemp("runs")
    reports = root / "reports"
    bench = bench_with_identity(root / "lab.bench.toml")
    procs = []
    for variant in (0, 1):
        p = generate_run(root / f"suite{variant}", reports, N_CASES, variant=variant,
                         extra=("--bench", str(bench)))
        procs.append(p)
        assert p.returncode == 1, p.stderr[-3000:]      # the generated suite has failures and errors
    runs = sorted((reports / "runs").iterdir())
    return reports, runs[0], runs[1], procs
