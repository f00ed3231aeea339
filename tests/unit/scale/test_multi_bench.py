"""Several benches at once: `--benches A,B -n 2` binds each xdist worker to its own bench profile, the suite is
split across them, and the Allure results (one folder: one merged report) say which bench ran each test."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PROBE = '''
import json, os
import pytest

@pytest.mark.parametrize("n", range(8))
def test_probe(n, bench_profile, pytestconfig):
    out = os.environ["PROBE_OUT"]
    wid = getattr(pytestconfig, "workerinput", {}).get("workerid", "main")
    with open(os.path.join(out, f"{wid}-{n}.json"), "w") as fh:
        json.dump({"worker": wid, "bench": bench_profile.name}, fh)
'''


def test_each_worker_runs_on_its_own_bench_and_one_report_merges_them(tmp_path):
    (tmp_path / "test_probe.py").write_text(PROBE)
    out, allure = tmp_path / "out", tmp_path / "allure"
    out.mkdir()
    benches = f"{REPO / 'profiles/virtual-lab.bench.toml'},{REPO / 'profiles/virtual-lab-2.bench.toml'}"
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "2", "--benches", benches,
                        "--alluredir", str(allure), str(tmp_path / "test_probe.py")], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env={**__import__("os").environ, "PROBE_OUT": str(out)})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    runs = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert len(runs) == 8
    by_worker = {}
    for x in runs:
        by_worker.setdefault(x["worker"], set()).add(x["bench"])
    # every worker stayed on one bench, and the two workers drove the two benches
    assert sorted(by_worker) == ["gw0", "gw1"]
    assert by_worker["gw0"] == {"virtual-lab"} and by_worker["gw1"] == {"virtual-lab-2"}
    labels = [{lab["name"]: lab["value"] for lab in json.loads(p.read_text())["labels"]}
              for p in allure.glob("*-result.json")]
    assert len(labels) == 8
    assert all("bench" in lab for lab in labels)
    assert {lab["bench"] for lab in labels} == {"virtual-lab", "virtual-lab-2"}
