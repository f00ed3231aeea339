"""Issue 16 item 2: SIGTERM / Ctrl-C mid-test. The interrupted test is recorded as an error
"interrupted by the operator" with its evidence; the summary, the manifest and JUnit say the run was
interrupted; nothing blames an instrument or a cable."""
import json
import textwrap
import xml.etree.ElementTree as ET

import pytest

from reports_helpers import cli

SUITE = """
import os, signal, time

def test_first():
    pass

def test_operator_stops_here(evidence):
    evidence.attach_text("progress", "half way")
    os.kill(os.getpid(), signal.{sig})
    time.sleep(10)

def test_never_runs():
    pass
"""


@pytest.mark.parametrize(("sig", "by"), [("SIGTERM", "SIGTERM"), ("SIGINT", "SIGINT, Ctrl-C")])
def test_interrupted_run_tells_the_truth(tmp_path, sig, by):
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_int.py").write_text(textwrap.dedent(SUITE.format(sig=sig)))
    res = cli("run", "--suite", str(tmp_path / "suite"), "--reports", str(tmp_path / "r"), "--no-html",
              "--no-test-report", timeout=300)
    assert res.returncode == 2, res.stderr
    out = res.stderr
    assert f"INTERRUPTED by the operator ({by}) after 2 of 3 cases; 1 never ran" in out
    assert "instrument" not in out.lower() and "cable" not in out.lower()
    run = next((tmp_path / "r" / "runs").iterdir())
    m = json.loads((run / "run.json").read_text())
    assert m["status"] == "interrupted" and m["interrupted_by"] == by
    assert m["interrupted_case"].endswith("test_operator_stops_here")
    assert m["counts"]["passed"] == 1 and m["counts"]["error"] == 1
    root = ET.parse(run / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite.get("tests") == "2" and suite.get("errors") == "1"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["run.status"].startswith(f"interrupted by the operator ({by})")
    err = next(root.iter("error"))
    assert err.get("message").startswith(f"INTERRUPTED by the operator ({by})")
    results = [json.loads(f.read_text()) for f in (run / "allure-results").glob("*-result.json")]
    stopped = next(r for r in results if r["name"] == "test_operator_stops_here")
    assert stopped["status"] == "broken" and "INTERRUPTED by the operator" in stopped["statusDetails"]["message"]
    assert [a["name"] for a in stopped["attachments"]] == ["progress.txt"]        # its evidence is kept
    assert {r["name"] for r in results} == {"test_first", "test_operator_stops_here"}
