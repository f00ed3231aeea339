"""Allure results that read like a lab report: environment, categories, traceability links.

Workers (pytest-xdist) each drop their instruments' identity strings into the results folder;
the controlling process merges them into `environment.properties` at the end of the session.
"""
from __future__ import annotations

import json
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# Verdicts: Allure "failed" = DUT non-conformance (an AssertionError / Nonconformance), "broken" =
# bench error (any other exception), "skipped" with INCONCLUSIVE = inconclusive, "skipped" with
# "does not claim" = the DUT does not claim the feature.
CATEGORIES = [
    {"name": "DUT non-conformance", "matchedStatuses": ["failed"],
     "description": "The charger violated a requirement (an assertion or Nonconformance)."},
    {"name": "Bench error", "matchedStatuses": ["broken"],
     "description": "The bench, an instrument or an emulator failed: no verdict on the DUT."},
    {"name": "Inconclusive", "matchedStatuses": ["skipped"], "messageRegex": ".*(INCONCLUSIVE|Inconclusive).*"},
    {"name": "Not claimed by the DUT", "matchedStatuses": ["skipped"], "messageRegex": ".*does not claim.*"},
]

PACKAGES = ("v2g-bench", "iso15118", "ocpp", "websockets", "pyvisa", "pyvisa-py", "python-can", "pymodbus",
            "scapy", "highspy", "allure-pytest", "pytest")

# Where an Allure link for a test-case/requirement ID points; a lab sets its own (ini: v2g_link_pattern).
DEFAULT_LINK_PATTERN = "https://github.com/search?type=code&q=%22{}%22"


def write_traceability(reports: Path, rows: list[tuple[str, str, str]]) -> Path | None:
    """reports/traceability.{csv,md}: requirement/test-case ID -> test -> verdict."""
    if not rows:
        return None
    import csv
    reports.mkdir(parents=True, exist_ok=True)
    rows = sorted(set(rows))
    with open(reports / "traceability.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "test", "verdict"])
        w.writerows(rows)
    lines = ["# Traceability: requirement / test-case IDs covered by this run", "",
             "| ID | test | verdict |", "|---|---|---|"]
    lines += [f"| {i} | `{t}` | {v} |" for i, t, v in rows]
    (reports / "traceability.md").write_text("\n".join(lines) + "\n")
    return reports / "traceability.md"


def package_versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "not installed"
    return out


def write_identities(results_dir: Path, worker: str, identities: dict[str, str]) -> None:
    if not identities:
        return
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"v2g-identities-{worker}.json").write_text(json.dumps(identities, indent=1))


def write_environment(results_dir: Path, bench, dut) -> Path:
    """environment.properties + categories.json (Allure reads both from the results folder)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    env: dict[str, str] = {}
    if bench is not None:
        env["bench.profile"] = f"{bench.name} ({bench.path})"
        env["bench.lab"] = "built-in virtual lab" if bench.uses_builtin_lab else "real bench"
    if dut is not None:
        env["dut.profile"] = str(dut.path)
        env["dut.identity"] = f"{dut.vendor} {dut.model} s/n {dut.serial}"
        env["dut.firmware"] = dut.firmware
        env["dut.claims"] = ", ".join(sorted(dut.claimed()))
    ids: dict[str, str] = {}
    for f in sorted(results_dir.glob("v2g-identities-*.json")):
        try:
            ids.update(json.loads(f.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    for role, ident in sorted(ids.items()):
        env[f"instrument.{role}"] = ident
    for p, v in package_versions().items():
        env[f"version.{p}"] = v
    env["python"] = platform.python_version()
    env["host"] = platform.node()
    lines = [f"{k}={_escape(v)}" for k, v in env.items()]
    path = results_dir / "environment.properties"
    path.write_text("\n".join(lines) + "\n")
    (results_dir / "categories.json").write_text(json.dumps(CATEGORIES, indent=1))
    return path


def _escape(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace("=", "\\=").replace(":", "\\:")


def worker_id(config=None) -> str:
    """This process's pytest-xdist worker id, or "main" for the controller / a plain run.

    With a config, ask xdist itself (`config.workerinput`): the environment variable is inherited
    by nested pytest runs (pytester subprocesses), which would then wrongly think they are workers."""
    if config is not None:
        wi = getattr(config, "workerinput", None)
        return wi["workerid"] if wi else "main"
    return os.environ.get("PYTEST_XDIST_WORKER", "main")
