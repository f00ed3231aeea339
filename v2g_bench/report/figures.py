"""Measured figures a test states for the test report: value, unit, expanded uncertainty (k = 2), limit.

    from v2g_bench.report.figures import record_figure
    record_figure("RTE at 7 kW", 0.912, "", uncertainty=0.011, limit=0.90, op=">=")

Appended to the running test's evidence (figures.jsonl, attached to its Allure result); the report's
"Measured figures" table and `v2g-bench report --compare` read them back. Verification results
(v2g_bench.verification) attached as JSON are read too, so most tests need not call this.
"""
from __future__ import annotations

import json
import math

from v2g_bench.report.results import FIGURES_FILE


def record_figure(name: str, value: float, unit: str = "", *, uncertainty: float | None = None,
                  limit: float | None = None, op: str = "", passed: bool | None = None, evidence=None) -> dict:
    """Record one figure into `evidence` (default: the running test's). Returns the record."""
    from v2g_bench.harness.evidence import Evidence
    ev = evidence or Evidence.current()
    if ev is None:
        raise RuntimeError("record_figure() needs a running test (or evidence=...)")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"figure {name!r}: {value!r} is not a finite number")
    if uncertainty is not None and (not math.isfinite(float(uncertainty)) or float(uncertainty) < 0):
        raise ValueError(f"figure {name!r}: uncertainty {uncertainty!r} must be a finite number >= 0")
    if passed is None and limit is not None and op in ("<=", ">="):
        passed = value <= limit if op == "<=" else value >= limit
    rec = {"name": name, "value": value, "unit": unit, "uncertainty": None if uncertainty is None else float(uncertainty),
           "limit": None if limit is None else float(limit), "op": op, "passed": passed}
    with open(ev.path(FIGURES_FILE), "a") as f:
        f.write(json.dumps(rec) + "\n")
    return rec
