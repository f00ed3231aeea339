"""`v2g-bench report --compare A B`: verdict changes, new failures, figure drift beyond the combined
uncertainty, between two runs of one DUT."""
from reports_helpers import cli
from v2g_bench.report.compare import compare_runs, render_markdown
from v2g_bench.report.results import load_run


def test_compare_lists_new_failures_and_significant_figure_drift(two_runs):
    _, first, second, _ = two_runs
    cmp = compare_runs(load_run(first), load_run(second))
    # the generated variant fails case 1 (passed before) and shifts case 0's DC power by +3 % (~210 W)
    assert [c.ids[0] for c in cmp.new_failures] == ["TC_K_101_CS"]
    assert cmp.new_failures[0].before == "passed" and cmp.new_failures[0].after == "failed"
    drift = {(d.case.split(":")[0], d.name): d for d in cmp.figure_drift}
    power = drift[("V2G20-0100", "DC power at 7 kW")]
    assert power.significant and power.basis == "U" and 150 < power.delta < 260
    assert not drift[("V2G20-0103", "DC power at 7 kW")].significant     # same value in both runs
    assert not cmp.only_in_a and not cmp.only_in_b and cmp.unchanged == len(load_run(first).cases) - 1
    md = render_markdown(cmp)
    assert "## New failures" in md and "TC_K_101_CS" in md and "## Drift of measured figures" in md


def test_compare_cli_writes_the_comparison_and_exits_1_on_new_failures(two_runs):
    reports, first, second, _ = two_runs
    res = cli("report", "--reports", str(reports), "--compare", first.name[:16], "--compare", "latest")
    assert res.returncode == 1, res.stderr
    assert "1 new failure(s)" in res.stderr and "Traceback" not in res.stderr
    assert (second / f"compare-{first.name}.md").exists()


def test_compare_of_a_missing_run_says_so(two_runs):
    reports, first, _, _ = two_runs
    res = cli("report", "--reports", str(reports), "--compare", first.name, "--compare", "20990101")
    assert res.returncode == 2 and "no run '20990101'" in res.stderr and "Traceback" not in res.stderr


def test_compare_of_two_duts_warns(two_runs):
    _, first, second, _ = two_runs
    a, b = load_run(first), load_run(second)
    b.manifest = {**b.manifest, "dut": {**b.manifest["dut"], "key": "ACME-BiDi-50-SN42", "firmware": "2.0"}}
    cmp = compare_runs(a, b)
    assert cmp.warnings[0].startswith("the runs are of different DUTs") and cmp.firmware_b == "2.0"
