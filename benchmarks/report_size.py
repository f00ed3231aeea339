"""Report build time and size vs number of cases, and the Allure HTML's open time in headless Chromium.

    python -m benchmarks.report_size [--cases 17 100 300] [--keep DIR] [--json]

For each N: a generated N-case suite (v2g_bench.report.synthetic: engine-style labels, 5 steps, a
trace, a plot, figures, a 480 kB samples file and a 300 kB pcap per case) runs through the real
`v2g-bench run` (plugin, evidence attach-or-link policy); then the Allure single-file HTML and the
test report (HTML + PDF) are built and timed. Open time: headless Chromium driven over the DevTools
protocol, from navigation to the Allure overview showing the run's case count (browser start excluded). Goal (issue 18): at 300 cases the HTML opens in <= 5 s and stays <= 25 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def open_time(html: Path, profile: Path, expect_cases: int | None, timeout_s: float = 120) -> dict:
    """Open the Allure HTML in headless Chromium over the DevTools protocol: seconds from navigation to the
    load event, and to the overview showing its case count (the report is usable). Browser start excluded."""
    import urllib.request

    from websockets.sync.client import connect
    proc = subprocess.Popen([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            m = re.search(r"DevTools listening on ws://127.0.0.1:(\d+)/", line or "")
            if m:
                port = int(m.group(1))
            elif not line and proc.poll() is not None:
                raise RuntimeError("chromium exited before its DevTools endpoint came up")
        if port is None:
            raise RuntimeError("chromium's DevTools endpoint did not come up within 60 s")
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
        with connect(ws_url, max_size=None, open_timeout=30) as ws:
            ids = iter(range(1, 1_000_000))

            def call(method, **params):
                i = next(ids)
                ws.send(json.dumps({"id": i, "method": method, "params": params}))
                while True:
                    msg = json.loads(ws.recv(timeout=timeout_s))
                    if msg.get("id") == i:
                        return msg.get("result", {})
                    if msg.get("method") == "Page.loadEventFired":
                        loaded.append(time.monotonic())
            loaded: list[float] = []
            call("Page.enable")
            t0 = time.monotonic()
            call("Page.navigate", url=html.resolve().as_uri())
            probe = ("(() => { const e = document.querySelector('.splash__title');"
                     " return e ? e.textContent.trim() : null })()")
            shown, t_end = None, t0 + timeout_s
            while shown is None and time.monotonic() < t_end:
                shown = call("Runtime.evaluate", expression=probe, returnByValue=True).get("result", {}).get("value")
                if shown is None:
                    time.sleep(0.05)
            t1 = time.monotonic()
        return {"load_s": round(loaded[0] - t0, 2) if loaded else None,
                "usable_s": round(t1 - t0, 2) if shown is not None else None,
                "cases_shown": int(shown) if shown and shown.isdigit() else shown,
                "rendered_all_cases": expect_cases is None or (shown is not None and str(shown) == str(expect_cases))}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def measure(n: int, root: Path) -> dict:
    from v2g_bench.harness.runner import build_html
    from v2g_bench.report import runs
    from v2g_bench.report.synthetic import generate_run
    from v2g_bench.report.testreport import build_test_report
    reports = root / f"n{n}" / "reports"
    t0 = time.monotonic()
    proc = generate_run(root / f"n{n}" / "suite", reports, n)
    t_run = time.monotonic() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"generated run of {n} cases failed ({proc.returncode}): {proc.stderr[-2000:]}")
    run = runs.latest_run(reports)
    size = lambda p: sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file())  # noqa: E731
    row = {"cases": n, "run_s": round(t_run, 1), "results_mb": round(size(run / "allure-results") / 1e6, 2),
           "evidence_mb": round(size(run / "evidence") / 1e6, 1)}
    t0 = time.monotonic()
    html = build_html(run / "allure-results", run / "html")
    row["allure_build_s"] = round(time.monotonic() - t0, 1)
    row["allure_html_mb"] = round(html.stat().st_size / 1e6, 2)
    t0 = time.monotonic()
    paths = build_test_report(run)
    row["test_report_build_s"] = round(time.monotonic() - t0, 1)
    row["test_report_html_kb"] = round(paths[0].stat().st_size / 1e3, 1)
    row["test_report_pdf_kb"] = round(paths[1].stat().st_size / 1e3, 1)
    if chromium():       # a fresh browser profile each time (no code cache), median of 3, the load average beside it
        opens = []
        for k in range(3):
            opens.append(open_time(html, root / f"chromium-profile-{n}-{k}", n))
        usable = sorted(o["usable_s"] for o in opens if o["usable_s"] is not None)
        row.update(allure_open_s=usable[len(usable) // 2] if usable else None, allure_open_all_s=usable,
                   allure_rendered_all_cases=all(o["rendered_all_cases"] for o in opens),
                   load_avg=round(os.getloadavg()[0], 1))
    else:
        row["allure_open_s"] = "no chromium (apt-get install chromium)"
    return row


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, nargs="+", default=[17, 100, 300])
    ap.add_argument("--keep", type=Path, default=None, help="keep the generated runs in this folder")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    root = a.keep or Path(tempfile.mkdtemp(prefix="v2g-report-size-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in a.cases:
            rows.append(measure(n, root))
            if not a.json:
                print(json.dumps(rows[-1]), flush=True)
    finally:
        if a.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    if a.json:
        print(json.dumps(rows, indent=1))
    else:
        big = rows[-1]
        print(f"\nat {big['cases']} cases: Allure HTML {big['allure_html_mb']} MB (goal <= 25), usable in "
              f"{big.get('allure_open_s')} s in headless Chromium (goal <= 5); test report "
              f"{big['test_report_html_kb']} kB HTML + {big['test_report_pdf_kb']} kB PDF in {big['test_report_build_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
