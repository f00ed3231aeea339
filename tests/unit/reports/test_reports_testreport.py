"""The signable test report (HTML + PDF): ISO/IEC 17025 elements, a past-due calibration flagged, a
rendered PDF page that is not blank; and bad input (missing, partial, foreign folders) reported, never
a traceback."""
import json
import shutil

from reports_helpers import N_CASES, cli
from v2g_bench.report.results import load_run
from v2g_bench.report.testreport import build_test_report


def test_test_report_carries_the_17025_elements(two_runs, tmp_path):
    _, first, _, _ = two_runs
    run = tmp_path / first.name
    shutil.copytree(first, run)
    html_path, pdf_path = build_test_report(run)
    html = html_path.read_text()
    for must in ("Test report", "Example EV Lab, Teststr. 1, Berlin", "J. Tester", first.name,  # who, where, which run
                 "VLAB-0001", "DUT firmware", "0.1.0",                                     # item tested
                 "Methods", "ISO 15118-20", "OCPP 2.0.1", "DC_ChargeLoop",                  # standards + blocks
                 "PICS / PIXIT", "dut.claims", "Equipment", "MY-RP7952-0042",               # PICS, instruments
                 "CALIBRATION PAST DUE", "Software", "iso15118",                            # calibration, versions
                 "Deviations from the methods", "no verdict (inconclusive)", "no verdict (bench error)",
                 "V2G20-0100", "Measured figures", "± 35", "Plots", "Reviewed and approved by"):
        assert must in html, must
    assert "past due" in html and "calibration due 2099-12-31" in html   # the valid one is not flagged
    assert "judged at 1 s on the lab&#39;s request" in html                # the engine's PIXIT deviation
    assert "V2G_SECC_Sequence_Performance_Time" in html                    # and the PIXIT the case used
    data = load_run(run)
    assert sum(data.counts().values()) == N_CASES
    assert f'<td class="num">{N_CASES}</td>' in html                     # the report's total = cases run
    # plots are linked (relative, beside the report), never inlined
    assert "data:image" not in html and 'src="allure-results/' in html


def test_pdf_page_renders_and_is_not_blank(two_runs, tmp_path):
    import pypdfium2 as pdfium
    _, first, _, _ = two_runs
    run = tmp_path / first.name
    shutil.copytree(first, run)
    _, pdf_path = build_test_report(run)
    pdf = pdfium.PdfDocument(str(pdf_path))
    assert len(pdf) >= 2
    text = pdf[0].get_textpage().get_text_range()
    assert "Test report" in text and "Page 1 of" in text
    img = pdf[0].render(scale=1).to_pil().convert("L")
    dark = sum(img.histogram()[:200]) / (img.width * img.height)
    assert 0.01 < dark < 0.6, dark                                        # text on the page, not a blank/black page
    last = pdf[len(pdf) - 1].render(scale=1).to_pil().convert("L")
    assert sum(last.histogram()[:200]) > 100


def test_missing_run_is_a_clear_error_not_a_traceback(tmp_path):
    res = cli("report", str(tmp_path / "nope"), "--reports", str(tmp_path))
    assert res.returncode == 2
    assert "no run" in res.stderr and "v2g-bench run" in res.stderr and "Traceback" not in res.stderr


def test_partial_crashed_run_is_reported_with_what_it_has(two_runs, tmp_path):
    _, first, _, _ = two_runs
    run = tmp_path / "crashed"
    shutil.copytree(first, run)
    m = json.loads((run / "run.json").read_text())
    m.update(status="running", ended=None, collected=N_CASES + 5)
    (run / "run.json").write_text(json.dumps(m))
    results = sorted((run / "allure-results").glob("*-result.json"))
    kept = json.loads(results[-1].read_text())
    results[0].write_text('{"name": "half-written')                      # a result cut off by the crash
    png = next(a["source"] for a in kept["attachments"] if a["name"].endswith(".png"))
    (run / "allure-results" / png).unlink()                                # and a lost attachment
    res = cli("report", str(run), "--no-allure", "--no-pdf")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    html = (run / "test-report.html").read_text()
    assert "never finished" in html and "unreadable" in html and "never ran" in html and "missing" in html
    assert "Results per case" in html and html.count("generated case") == N_CASES - 1


def test_results_of_another_dut_are_flagged(two_runs):
    _, first, _, _ = two_runs
    data = load_run(first, expected_dut="ACME-BiDi-50-SN42")
    assert any("not 'ACME-BiDi-50-SN42'" in w for w in data.warnings)


def test_a_bare_results_folder_without_manifest_still_reports(two_runs, tmp_path):
    _, first, _, _ = two_runs
    bare = tmp_path / "bare"
    shutil.copytree(first / "allure-results", bare)
    res = cli("report", "--results", str(bare), "--no-allure", "--no-pdf", "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    html = (tmp_path / "out" / "test-report.html").read_text()
    assert "no run manifest" in html and "VLAB-0001" in html             # identity from the environment


def test_the_engines_pics_pixit_document_is_rendered(two_runs, tmp_path):
    from v2g_bench.conformance import pics
    from v2g_bench.profiles import DEFAULT_DUT, load_dut
    _, first, _, _ = two_runs
    run = tmp_path / first.name
    shutil.copytree(first, run)
    used = {"tests/x.py::test_case[TC_K_101_CS]": {"V2G_EVCC_Msg_Timeout_s": {"limit_s": 2.0, "normative_s": 2.0}}}
    deviations = {"tests/x.py::test_case[TC_K_101_CS]": ["[pixit] T_step_s = 9 would loosen the normative 5 s: 5 s used"]}
    pics.write(run, load_dut(DEFAULT_DUT), used, deviations)
    html_path = build_test_report(run, pdf=False)[0]
    html = html_path.read_text()
    assert "claims.energy_services" in html and "DC_BPT" in html                 # PICS
    assert "ratings.discharge.power_max_w" in html                                # ratings
    assert "V2G_EVCC_Msg_Timeout_s" in html and "test_case[TC_K_101_CS]" in html  # PIXIT used, by which case
    assert "would loosen the normative 5 s" in html                               # the engine's deviation


def test_the_report_binds_the_evidence_by_sha256(two_runs, tmp_path):
    import hashlib
    import subprocess
    _, first, _, _ = two_runs
    run = tmp_path / first.name
    shutil.copytree(first, run)
    html = build_test_report(run, pdf=False)[0].read_text()
    sums = (run / "SHA256SUMS").read_text()
    assert hashlib.sha256(sums.encode()).hexdigest() in html
    assert "run.json" in sums and "junit.xml" in sums and "/capture.pcap" in sums and "test-report" not in sums
    assert subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=run).returncode == 0
    next(run.glob("evidence/*/capture.pcap")).write_bytes(b"tampered")
    assert subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=run, capture_output=True).returncode != 0


def test_report_for_another_dut_says_so(two_runs, tmp_path):
    _, first, _, _ = two_runs
    run = tmp_path / first.name
    shutil.copytree(first, run)
    other = tmp_path / "other.dut.toml"
    other.write_text(DEFAULT_DUT_TEXT().replace('serial = "VLAB-0001"', 'serial = "OTHER-42"'))
    res = cli("report", str(run), "--no-allure", "--no-pdf", "--dut", str(other))
    assert res.returncode == 0, res.stderr
    import html
    page = html.unescape((run / "test-report.html").read_text())
    assert "these results are from DUT 'v2g-bench-Virtual_bidirectional_DC_charger-VLAB-0001', not " \
           "'v2g-bench-Virtual_bidirectional_DC_charger-OTHER-42'" in page


def DEFAULT_DUT_TEXT() -> str:
    from v2g_bench.profiles import DEFAULT_DUT
    text = DEFAULT_DUT.read_text()
    assert 'serial = "VLAB-0001"' in text
    return text


def test_deselected_cases_are_a_deviation(two_runs, tmp_path):
    _, first, _, _ = two_runs
    run = tmp_path / first.name
    shutil.copytree(first, run)
    assert json.loads((run / "run.json").read_text())["deselected"] == 0
    m = json.loads((run / "run.json").read_text())
    m["deselected"] = 3                      # e.g. slow cases left out without --run-slow
    (run / "run.json").write_text(json.dumps(m))
    html = build_test_report(run, pdf=False)[0].read_text()
    assert "3 case(s) of the suite were deselected" in html
