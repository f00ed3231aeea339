"""The pytest plugin, run for real on small generated test suites (pytester): skip logic,
teardown order and safe state on exception, failing fixture and KeyboardInterrupt, the Allure
results' content (environment, links, categories, attachments), and pytest-xdist."""
import json
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent

BENCH = """
[bench]
name = "rec-bench"
[roles.battery]
driver = "rec_source"
resource = "TCPIP0::10.0.0.5::5025::SOCKET"
[roles.battery.limits]
voltage_max_v = 900
[roles.analyzer]
driver = "rec_source"
resource = "TCPIP0::10.0.0.6::5025::SOCKET"
[roles.analyzer.limits]
voltage_max_v = 1000
[roles.meter]
driver = "rec_source"
resource = "TCPIP0::10.0.0.7::502::SOCKET"
fail_open = true
[roles.meter.limits]
voltage_max_v = 1000
[roles.charger]
driver = "rec_source"
resource = "TCPIP0::10.0.0.8::502::SOCKET"
fail_safe = true
[roles.charger.limits]
voltage_max_v = 1000
[roles.ev]
driver = "rec_ev"
"""

DUT = """
[dut]
vendor = "ACME"
model = "BiDi-50"
serial = "SN42"
firmware = "9.9.9"
[claims]
energy_services = ["DC", "DC_BPT"]
protocols = ["ISO15118-20"]
ocpp_versions = ["2.0.1"]
[ratings.charge]
voltage_min_v = 150
voltage_max_v = 900
current_max_a = 100
power_max_w = 50000
[ratings.discharge]
voltage_min_v = 150
voltage_max_v = 900
current_max_a = 100
power_max_w = 50000
"""

CONFTEST = """
import sys
sys.path.insert(0, {here!r})
from recording_drivers import RecordingEV, RecordingSource
from v2g_bench.drivers import register_driver
register_driver("rec_source", RecordingSource)
register_driver("rec_ev", RecordingEV)
"""


@pytest.fixture
def suite(pytester, tmp_path, monkeypatch):
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("V2G_TEST_RECORD", str(record))
    pytester.makefile(".toml", bench=BENCH, dut=DUT)
    pytester.makeconftest(CONFTEST.format(here=str(HERE)))
    reports = tmp_path / "reports"

    # In a subprocess: an in-process inner run would share allure-pytest's global state with this one.
    def run(src: str, *extra: str):
        pytester.makepyfile(test_suite=textwrap.dedent(src))
        args = ["--bench", "bench.toml", "--dut", "dut.toml", "--v2g-reports", str(reports), "-p", "no:cacheprovider", *extra]
        res = pytester.runpytest_subprocess(*args)
        steps = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
        return res, steps, reports
    return run


def test_requires_and_standard_markers_skip_with_the_reason(suite):
    res, _, _ = suite("""
        import pytest
        @pytest.mark.requires("AC_BPT")
        def test_ac_bpt(): assert False, "must not run"
        @pytest.mark.ocpp21
        def test_ocpp21(): assert False, "must not run"
        @pytest.mark.requires("DC_BPT")
        @pytest.mark.iso15118_20
        def test_dc_bpt(): assert 1 + 1 == 2
    """, "-rs")
    res.assert_outcomes(passed=1, skipped=2)
    res.stdout.fnmatch_lines(["*the DUT does not claim AC_BPT (dut.toml: [[]claims[]])*",
                              "*the DUT does not claim OCPP2.1*"])


def test_roles_unwind_in_reverse_order_on_exception(suite):
    res, steps, _ = suite("""
        def test_boom(battery, analyzer, ev):
            assert battery.output_on
            raise RuntimeError("instrument exploded mid-test")
    """)
    res.assert_outcomes(failed=1)
    order = [(s["role"], s["step"]) for s in steps]
    assert order == [("battery", "open"), ("analyzer", "open"), ("ev", "open"),
                     ("ev", "safe_state"), ("ev", "close"), ("analyzer", "safe_state"), ("analyzer", "close"),
                     ("battery", "safe_state"), ("battery", "close")]
    assert all(s.get("output_on") is False for s in steps if s["step"] == "safe_state")


def test_failing_role_open_still_unwinds_the_others(suite):
    res, steps, _ = suite("""
        def test_needs_meter(battery, meter):
            pass
    """)
    res.assert_outcomes(errors=1)
    res.stdout.fnmatch_lines(["*connection refused*"])
    assert [(s["role"], s["step"]) for s in steps] == [("battery", "open"), ("battery", "safe_state"), ("battery", "close")]


def test_unsafe_teardown_is_a_bench_error_and_others_still_unwind(suite):
    res, steps, _ = suite("""
        def test_charger(battery, charger):
            pass
    """)
    res.assert_outcomes(passed=1, errors=1)
    res.stdout.fnmatch_lines(["*SafeStateError*role charger*output did not turn off*"])
    assert ("battery", "safe_state") in [(s["role"], s["step"]) for s in steps]


def test_keyboard_interrupt_unwinds_every_role(suite):
    res, steps, _ = suite("""
        def test_ctrl_c(battery, ev):
            raise KeyboardInterrupt
        def test_never_runs(battery):
            pass
    """)
    assert res.ret == 2   # pytest: interrupted
    order = [(s["role"], s["step"]) for s in steps]
    assert order == [("battery", "open"), ("ev", "open"), ("ev", "safe_state"), ("ev", "close"),
                     ("battery", "safe_state"), ("battery", "close")]


def test_missing_role_is_a_clear_error(suite, pytester):
    pytester.path.joinpath("bench.toml").write_text(BENCH.split("[roles.analyzer]")[0])
    res, _, _ = suite("""
        def test_x(ev): pass
    """)
    res.assert_outcomes(errors=1)
    res.stdout.fnmatch_lines(["*needs role 'ev'*does not define*fix: add a [[]roles.ev[]] table*"])


def test_broken_profile_is_a_usage_error_in_one_line(suite, pytester):
    pytester.path.joinpath("bench.toml").write_text('[bench]\nname = "x"\n[roles.battery]\ndriver = "nope"\n')
    res, _, _ = suite("def test_x(): pass\n")
    assert res.ret == 4
    res.stderr.fnmatch_lines(["*roles.battery.driver: unknown driver 'nope'*"])


def test_allure_results_have_environment_links_categories_and_evidence(suite):
    res, _, reports = suite("""
        import pytest
        from v2g_bench.errors import Inconclusive
        @pytest.mark.covers("TC_K_01_CS", "V2G20-1034")
        def test_traced(battery, evidence):
            evidence.attach_json("samples", {"p_w": [1, 2, 3]})
            evidence.path("trace.jsonl").write_text('{"msg": "SessionSetupReq"}\\n')
        def test_inconclusive():
            raise Inconclusive("the DUT never started a session")
        def test_bench_error():
            raise ConnectionError("analyzer vanished")
        def test_dut_fault():
            assert 2 == 3, "measured power outside tolerance"
    """)
    res.assert_outcomes(passed=1, failed=2, skipped=1)
    results = reports / "allure-results"
    tests = {}
    for f in results.glob("*-result.json"):
        r = json.loads(f.read_text())
        tests[r["name"]] = r
    traced = tests["test_traced"]
    assert {l["name"] for l in traced["links"]} == {"TC_K_01_CS", "V2G20-1034"}
    names = {a["name"] for a in traced.get("attachments", [])}
    assert {"samples.json", "trace.jsonl"} <= names, names
    for a in traced["attachments"]:
        assert (results / a["source"]).exists()
    assert tests["test_inconclusive"]["status"] == "skipped"
    assert "Inconclusive" in tests["test_inconclusive"]["statusDetails"]["message"]
    assert tests["test_bench_error"]["status"] == "broken"
    assert tests["test_dut_fault"]["status"] == "failed"
    env = (results / "environment.properties").read_text()
    assert "dut.identity=ACME BiDi-50 s/n SN42" in env and "dut.firmware=9.9.9" in env
    assert "bench.profile=rec-bench" in env and "version.iso15118=0.31.2" in env
    assert "instrument.battery=REC,Source,battery,1.0 [rec_source]" in env
    trace = (reports / "traceability.csv").read_text().splitlines()
    assert "TC_K_01_CS,test_suite.py::test_traced,passed" in trace and "V2G20-1034,test_suite.py::test_traced,passed" in trace
    cats = {c["name"] for c in json.loads((results / "categories.json").read_text())}
    assert {"DUT non-conformance", "Bench error", "Inconclusive", "Not claimed by the DUT"} <= cats


def test_works_with_xdist(suite):
    res, steps, reports = suite("""
        import pytest
        @pytest.mark.parametrize("n", range(4))
        def test_par(battery, n):
            assert battery.output_on
    """, "-n", "2")
    res.assert_outcomes(passed=4)
    assert sum(1 for s in steps if s["step"] == "safe_state") == 4
    env = (reports / "allure-results" / "environment.properties").read_text()
    assert "instrument.battery=REC,Source,battery,1.0" in env
