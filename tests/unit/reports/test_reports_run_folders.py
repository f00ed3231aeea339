"""One run, one report: each `v2g-bench run` gets its own folder with its JUnit, traceability and Allure
results; the harness' own tests write none; Allure history is carried from the previous run of the
same DUT; and every case appears once in Allure's suites tree, named by standard and block."""
import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from reports_helpers import N_CASES
from v2g_bench.harness.runner import allure_cli
from v2g_bench.report import runs
from v2g_bench.report.results import load_run


def test_each_run_has_its_own_folder_manifest_junit_and_traceability(two_runs):
    reports, first, second, procs = two_runs
    assert [p.name for p in runs.list_runs(reports)] == [first.name, second.name]
    assert runs.latest_run(reports) == second.resolve()
    assert not (reports / "allure-results").exists(), "results must live in the run folders only"
    for order, run in enumerate((first, second), start=1):
        m = runs.read_manifest(run)
        assert m["status"] == "complete" and m["build_order"] == order
        assert m["collected"] == N_CASES and sum(m["counts"].values()) == N_CASES
        assert load_run(run).counts() == m["counts"]       # the terminal's counts = the reports' counts
        assert m["operator"] == "J. Tester" and m["bench"]["laboratory"].startswith("Example EV Lab")
        assert m["dut"]["serial"] and m["started"] <= m["ended"]
        suite = ET.parse(run / "junit.xml").getroot().find("testsuite")
        assert int(suite.get("tests")) == N_CASES
        assert (run / "traceability.csv").read_text().count("\n") == N_CASES + 1   # one ID per case + header
        assert len(list((run / "allure-results").glob("*-result.json"))) == N_CASES
    assert runs.read_manifest(second)["previous_run"] == first.name


def test_allure_history_is_carried_from_the_previous_run_of_the_same_dut(two_runs):
    reports, first, second, _ = two_runs
    assert not (first / "allure-results" / "history").exists()
    trend = json.loads((second / "allure-results" / "history" / "history-trend.json").read_text())
    assert len(trend) == 1 and trend[0]["reportName"] == first.name
    counts = runs.read_manifest(first)["counts"]
    data = trend[0]["data"]
    assert data["total"] == N_CASES
    assert data["failed"] == counts["failed"] and data["broken"] == counts["error"]
    per_case = json.loads((second / "allure-results" / "history" / "history.json").read_text())
    assert len(per_case) == N_CASES and all(len(v["items"]) == 1 for v in per_case.values())


def test_history_skips_runs_of_another_dut(tmp_path):
    for name, key in (("20260101T000000Z-a", "dut-A"), ("20260102T000000Z-b", "dut-B")):
        (tmp_path / "runs" / name).mkdir(parents=True)
        runs.write_manifest(tmp_path / "runs" / name, {"dut": {"key": key}, "status": "complete"})
    (tmp_path / "runs" / "20260103T000000Z-a").mkdir()
    runs.write_manifest(tmp_path / "runs" / "20260103T000000Z-a", {"dut": {"key": "dut-A"}, "status": "running"})
    assert [p.name for p in runs.previous_runs(tmp_path, "dut-A")] == ["20260101T000000Z-a"]


def test_the_harness_own_tests_write_no_allure_results(pytester):
    pytester.makepyfile(test_x="""
        def test_where(request):
            assert request.config.option.allure_report_dir is None
            assert str(request.config._v2g_reports).endswith("reports/self-test")
    """)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    res.assert_outcomes(passed=1)
    assert not list(pytester.path.rglob("*-result.json"))


def test_progress_prints_one_line_per_case_off_a_tty(two_runs):
    _, _, _, procs = two_runs
    lines = [ln for ln in procs[0].stderr.splitlines() if ln.startswith("[")]
    assert len(lines) == N_CASES
    for i, ln in enumerate(lines, start=1):
        assert ln.startswith(f"[{i}/{N_CASES}] ") and f"case{i - 1:03d}]" in ln and ln.endswith(" s)")


@pytest.mark.skipif(allure_cli() is None or shutil.which("java") is None,
                    reason="needs the Allure CLI and Java (scripts/bootstrap.sh installs both)")
def test_allure_totals_equal_the_cases_run_and_each_case_appears_once(two_runs, tmp_path):
    import subprocess
    _, _, run, _ = two_runs
    out = tmp_path / "allure"
    subprocess.run([allure_cli(), "generate", "--clean", "-o", str(out), str(run / "allure-results")],
                   check=True, capture_output=True, timeout=300)
    summary = json.loads((out / "widgets" / "summary.json").read_text())
    counts = runs.read_manifest(run)["counts"]
    assert summary["statistic"]["total"] == N_CASES == sum(counts.values())
    assert len(json.loads((out / "widgets" / "history-trend.json").read_text())) == 2   # this run + the previous
    assert summary["statistic"]["failed"] == counts["failed"] and summary["statistic"]["broken"] == counts["error"]

    def leaves(node, path=()):
        if "children" not in node:
            yield path, node["name"]
            return
        for ch in node["children"]:
            yield from leaves(ch, path + (ch["name"],) if "children" in ch else path)
    tree = list(leaves(json.loads((out / "data" / "suites.json").read_text())))
    assert len(tree) == N_CASES, tree                     # every case once
    assert all(len(path) == 2 for path, _ in tree), tree   # standard / block, no module sub-suites
    standards = {path[0] for path, _ in tree}
    assert standards <= {"ISO 15118-20", "OCPP 2.0.1", "OCPP 2.1"} and not any("tests." in s for s in standards)
    env = (run / "allure-results" / "environment.properties").read_text()
    assert "bench.laboratory=Example EV Lab" in env and "PAST DUE" in env
    assert json.loads((run / "allure-results" / "executor.json").read_text())["buildName"].endswith("by J. Tester")


def test_plots_are_inlined_and_traces_samples_and_pcaps_linked_beside_the_report(two_runs):
    _, first, _, _ = two_runs
    results = first / "allure-results"
    for f in results.glob("*-result.json"):
        r = json.loads(f.read_text())
        atts = {a["name"]: a for a in r.get("attachments", [])}
        assert "power-tracking.png" in atts and "capture.pcap" not in atts and "dc-samples.csv" not in atts
        links = (results / atts["large evidence (links)"]["source"]).read_text().splitlines()
        targets = [ln for ln in links if not ln.startswith("#")]
        assert {t.rsplit("/", 1)[-1] for t in targets} == {"capture.pcap", "dc-samples.csv", "v2gtp-trace.jsonl"}
        for t in targets:                                  # relative to html/, where the Allure HTML lives
            assert (first / "html" / t).resolve().is_file(), t
