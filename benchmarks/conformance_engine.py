"""Per-case overhead of the conformance engine: N cases of zero-duration steps (five steps each: a stimulus, two
expectations on fields, a judgement, a plain step) run through pytest, the plugin and Allure — the time the engine
adds to every case, whatever the charger does. Target: <= 50 ms per case.

    python -m benchmarks conformance_engine [N]
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CASES = '''
from v2g_bench.conformance import Case, cases_test, step
from v2g_bench.conformance.match import check_fields, one_of

def stim(ctx):
    ctx.vars["answer"] = {{"status": "Accepted", "statusInfo": {{"reasonCode": "OK"}}, "n": 3}}

def judge(ctx):
    ctx.attach("figures", {{"n": ctx.vars["answer"]["n"]}})

CASES = [Case(f"PERF-{{i:04d}}", title="zero-duration steps", standard="Bench", block="Engine overhead",
              covers=("V2GB-BENCH-01",),
              steps=[step("stimulus", stim, kind="stimulus"),
                     step("status", lambda ctx: check_fields(ctx.vars["answer"], {{"status": "Accepted"}}),
                          req="K01.FR.07"),
                     step("reason", lambda ctx: check_fields(ctx.vars["answer"],
                          {{"statusInfo.reasonCode": one_of("OK", "Fine")}}), req="K01.FR.07"),
                     step("judge", judge, kind="judge"),
                     step("plain", lambda ctx: None)])
         for i in range({n})]
test_rows = cases_test(CASES)
'''


def run(n: int, workdir: Path, *extra: str) -> float:
    (workdir / "test_perf.py").write_text(textwrap.dedent(CASES.format(n=n)))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--v2g-reports",
                        str(workdir / "reports"), *extra, str(workdir / "test_perf.py")],
                       cwd=workdir, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        print(p.stdout[-2000:], p.stderr[-2000:])
        raise SystemExit(f"the benchmark's own run failed (rc {p.returncode})")
    return time.perf_counter() - t0


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 200
    with tempfile.TemporaryDirectory() as d:
        wd = Path(d)
        t1 = run(1, wd)                       # start-up: interpreter, pytest, plugins, one case
        tn = run(n, wd)
        per_case = (tn - t1) / (n - 1)
        t_noallure = run(n, wd, "-p", "no:allure_pytest")
        per_case_na = (t_noallure - t1) / (n - 1)
    print(f"cases: {n}, 5 zero-duration steps each")
    print(f"start-up (1 case): {t1:.2f} s; {n} cases: {tn:.2f} s")
    print(f"engine overhead per case (pytest + plugin + Allure steps + evidence): {per_case * 1000:.1f} ms "
          f"(target <= 50 ms: {'met' if per_case <= 0.05 else 'NOT met'})")
    print(f"  without Allure: ~{per_case_na * 1000:.1f} ms per case")
    return 0 if per_case <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
