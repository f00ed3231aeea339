"""Verdict integrity, run for real (pytester subprocess): failed only when the charger violated a requirement;
a typo in a case, a bare assert or a raising predicate is an error naming the step; a precondition the DUT could
not reach is inconclusive; the step log and the requirement IDs travel with the report."""
import json
import textwrap

CASES = '''
from v2g_bench.conformance import Case, cases_test, step
from v2g_bench.conformance.match import check_fields, where
from v2g_bench.errors import Nonconformance

def dut_wrong(ctx):
    raise Nonconformance("the station answered Rejected")          # no req: the step's is added

def typo(ctx):
    return {"status": "Accepted"}["staus"]

def bare_assert(ctx):
    assert 1 == 2, "oops"

def predicate_raises(ctx):
    check_fields({"limit": 5}, {"limit": where(lambda v: v.lower() == "x", "lower-case x")})

def not_reached(ctx):
    raise Nonconformance("did not boot", req="B01.FR.01")

def row(i, fn, given=None):
    return Case(i, title=i, standard="Bench", block="Verdicts", covers=("V2GB-BENCH-01",),
                given=given or [], steps=[step(i, fn, req="K01.FR.07")])

CASES = [row("PASS", lambda ctx: ctx.vars.update(x=1)), row("FAIL", dut_wrong), row("TYPO", typo),
         row("ASSERT", bare_assert), row("PRED", predicate_raises),
         row("GIVEN", lambda ctx: None, given=[step("boot", not_reached)])]
test_rows = cases_test(CASES)
'''

CONFTEST = '''
import json, os
from v2g_bench.harness.runner import classify
def pytest_runtest_logreport(report):
    v = classify(report)
    if v and (report.when == "call" or v == "error"):
        with open(os.environ["VERDICTS"], "a") as f:
            f.write(json.dumps({"id": report.nodeid.split("[")[-1].rstrip("]"), "verdict": v,
                                "props": dict(report.user_properties),
                                "msg": str(report.longrepr)[-400:] if report.longrepr else ""}) + "\\n")
'''


def test_verdicts_blame_the_charger_only(pytester, tmp_path, monkeypatch):
    out = tmp_path / "verdicts.jsonl"
    monkeypatch.setenv("VERDICTS", str(out))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_cases=textwrap.dedent(CASES))
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "--v2g-reports", str(tmp_path / "r"))
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert {k: v["verdict"] for k, v in rows.items()} == {
        "PASS": "passed", "FAIL": "failed", "TYPO": "error", "ASSERT": "error", "PRED": "error",
        "GIVEN": "inconclusive"}
    assert "[K01.FR.07] the station answered Rejected" in rows["FAIL"]["msg"]
    assert "StepCrashed" in rows["TYPO"]["msg"] and "KeyError" in rows["TYPO"]["msg"]
    assert "a bare assert failed" in rows["ASSERT"]["msg"]
    assert "predicate for 'lower-case x'" in rows["PRED"]["msg"]
    assert "precondition not reached" in rows["GIVEN"]["msg"] and "[B01.FR.01]" in rows["GIVEN"]["msg"]
    steps = json.loads(rows["FAIL"]["props"]["v2g_steps"])
    assert steps == [{"step": "[K01.FR.07] FAIL", "kind": "step", "req": ["K01.FR.07"], "outcome": "failed",
                      "duration_s": steps[0]["duration_s"]}]
    assert rows["PASS"]["props"]["covers"] == "V2GB-BENCH-01"


def test_a_bad_row_stops_collection_with_the_row_named(pytester, tmp_path):
    pytester.makepyfile(test_bad='''
        from v2g_bench.conformance import Case, cases_test, step
        test_rows = cases_test([Case("TC_K_01_CS", title="t", standard="OCPP", block="K", covers=("TC_K_01_CS",),
                                     requires=("DC_BTP",), steps=[step("s", lambda ctx: None)])])
    ''')
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--v2g-reports", str(tmp_path / "r"))
    assert res.ret != 0
    res.stdout.fnmatch_lines(["*CaseDefinitionError*case 'TC_K_01_CS'*requires 'DC_BTP'*"])
    res.assert_outcomes(errors=1)   # a collection error: nothing ran, neither passed nor skipped


def test_slow_cases_are_left_out_unless_asked_for(pytester, tmp_path):
    pytester.makepyfile(test_slow='''
        from v2g_bench.conformance import Case, cases_test, step
        test_rows = cases_test([Case("SLOW", title="t", standard="Bench", block="B", covers=("V2GB-BENCH-01",),
                                     slow=True, steps=[step("s", lambda ctx: None)]),
                                Case("FAST", title="t", standard="Bench", block="B", covers=("V2GB-BENCH-01",),
                                     steps=[step("s", lambda ctx: None)])])
    ''')
    args = ("-p", "no:cacheprovider", "--v2g-reports", str(tmp_path / "r"))
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=1, deselected=1)
    pytester.runpytest_subprocess(*args, "--run-slow").assert_outcomes(passed=2)
