"""pytest plugin for the fault matrix's inner run: each phase's verdict, as the harness classifies it."""
import json
import os


def pytest_runtest_logreport(report):
    from v2g_bench.harness.runner import classify
    verdict = classify(report)
    if verdict is None:
        return
    msg = ""
    if report.longrepr is not None:
        msg = str(report.longrepr)[-600:]
    with open(os.environ["V2G_FAULT_LOG"], "a") as f:
        f.write(json.dumps({"nodeid": report.nodeid, "kind": "verdict", "when": report.when,
                            "verdict": verdict, "message": msg}) + "\n")
