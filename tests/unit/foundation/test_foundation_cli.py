"""The `v2g-bench` CLI as a user runs it (subprocesses): --help everywhere, profile check,
doctor, and `run` on a small generated suite -> verdict table, exit code, JUnit, Allure HTML."""
import os
import subprocess
import sys
import textwrap

import pytest

from test_foundation_plugin import BENCH, CONFTEST, DUT, HERE

CLI = [sys.executable, "-m", "v2g_bench.cli"]


def cli(*args, timeout=120, env=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_help_on_every_command():
    top = cli("--help")
    assert top.returncode == 0
    for cmd in ("run", "report", "doctor", "profile"):
        assert cmd in top.stdout
        r = cli(cmd, "--help")
        assert r.returncode == 0 and "Usage" in r.stdout, (cmd, r.stderr)
    assert cli("profile", "check", "--help").returncode == 0


def test_profile_check_ok_and_broken(tmp_path):
    ok = cli("profile", "check", "profiles/virtual-dut.dut.toml")
    assert ok.returncode == 0 and "DUT profile v2g-bench Virtual bidirectional DC charger" in ok.stderr
    bad = tmp_path / "bad.bench.toml"
    bad.write_text('[bench]\nname = "x"\n[roles.battery]\ndriver = "keysight_rp7900"\nresource = "nonsense"\n')
    r = cli("profile", "check", str(bad))
    assert r.returncode == 1
    assert "roles.battery.resource: 'nonsense' is not a VISA resource string" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_doctor_reports_each_check_with_a_fix(tmp_path):
    r = cli("doctor")
    out = r.stdout
    for row in ("python", "iso15118==0.31.2", "java", "allure CLI", "veth/netns"):
        assert row in out, out
    assert r.returncode in (0, 1)
    dead = tmp_path / "dead.bench.toml"
    dead.write_text(BENCH.split("[roles.analyzer]")[0].replace("10.0.0.5::5025", "127.0.0.1::9"))
    r = cli("doctor", "--bench", str(dead))
    assert r.returncode == 1   # the profile's driver 'rec_source' is unknown outside the test suite


@pytest.fixture
def small_suite(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST.format(here=str(HERE)))
    (suite / "test_mix.py").write_text(textwrap.dedent("""
        import pytest
        from v2g_bench.errors import Inconclusive
        def test_good(battery): assert battery.output_on
        def test_dut_violation(): assert 1 == 2, "power outside tolerance"
        def test_no_verdict(): raise Inconclusive("no session")
        def test_bench_broke(): raise TimeoutError("analyzer did not answer")
        @pytest.mark.requires("AC_BPT")
        def test_not_claimed(): pass
    """))
    (tmp_path / "b.toml").write_text(BENCH)
    (tmp_path / "d.toml").write_text(DUT)
    return tmp_path


def test_run_prints_verdicts_and_exits_nonzero(small_suite):
    t = small_suite
    r = cli("run", "--bench", str(t / "b.toml"), "--dut", str(t / "d.toml"), "--suite", str(t / "suite"),
            "--reports", str(t / "reports"), "--no-html", env={"V2G_TEST_RECORD": str(t / "rec.jsonl")})
    assert r.returncode == 1, r.stderr
    err = r.stderr
    # the table: passed, failed, inconclusive, error, skipped
    row = [l for l in err.splitlines() if l.count("│") >= 5 and any(c.isdigit() for c in l)][-1]
    assert [c.strip() for c in row.strip("│ ").split("│")] == ["1", "1", "1", "1", "1"], err
    assert "FAILED       " in err and "test_dut_violation" in err
    assert "ERROR        " in err and "test_bench_broke" in err
    assert "INCONCLUSIVE" in err and "test_no_verdict" in err
    run = t / "reports" / "latest"                      # each run writes its own folder (docs/reports.md)
    junit = (run / "junit.xml").read_text()
    assert 'tests="5"' in junit
    assert list((run / "allure-results").glob("*-result.json"))


def test_report_builds_single_file_html_offline(small_suite):
    from v2g_bench.harness.runner import allure_cli
    assert allure_cli() is not None, "the Allure CLI is installed by scripts/bootstrap.sh (make test)"
    t = small_suite
    cli("run", "--bench", str(t / "b.toml"), "--dut", str(t / "d.toml"), "--suite", str(t / "suite"),
        "--reports", str(t / "reports"), "--no-html", env={"V2G_TEST_RECORD": str(t / "rec.jsonl")})
    r = cli("report", "--results", str(t / "reports" / "latest" / "allure-results"), "--out", str(t / "html"),
            "--no-pdf", timeout=300)
    assert r.returncode == 0, r.stderr
    html = (t / "html" / "index.html").read_text()
    assert len(html) > 100_000 and "allure" in html.lower()


def test_report_without_results_is_one_clear_line(tmp_path):
    r = cli("report", "--results", str(tmp_path / "none"))
    assert r.returncode == 2
    assert "no Allure results" in r.stderr and "Traceback" not in r.stderr
