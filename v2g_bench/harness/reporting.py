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


# What the single-file Allure HTML inlines (as base64, all decoded when it opens): plots, and summaries
# up to 16 kB. Traces, samples, logs and captures live beside the report (linked), so a run of
# hundreds of cases still opens in seconds (benchmarks/report_size.py).
INLINE_MAX_BYTES = 16_000
INLINE_IMAGE_MAX_BYTES = 256_000
IMAGE_SUFFIXES = {".png", ".svg", ".jpg", ".jpeg"}
LINK_ALWAYS = {".pcap", ".pcapng"}


def inline_in_report(path: Path, size: int) -> bool:
    suffix = path.suffix.lower()
    if suffix in LINK_ALWAYS:
        return False
    return size <= (INLINE_IMAGE_MAX_BYTES if suffix in IMAGE_SUFFIXES else INLINE_MAX_BYTES)


def attach_evidence(ev, reports: Path) -> tuple[int, int]:
    """Attach a test's evidence files to its Allure result: plots and small summaries inline, the rest
    (traces, samples, logs, pcaps) as links relative to the run's `html/` folder. Returns (inlined, linked)."""
    try:
        import allure
    except ImportError:  # pragma: no cover - allure-pytest is a dependency
        return 0, 0
    inlined = linked = 0
    links = []
    for p in ev.files():
        if p in ev._attached:
            continue
        try:
            size = p.stat().st_size
        except OSError:
            continue
        if size == 0:
            continue
        rel = str(p.relative_to(ev.dir))
        if not inline_in_report(p, size):
            try:
                target = os.path.relpath(p, Path(reports) / "html")
            except ValueError:
                target = str(p)
            links.append(f"# {rel} ({size / 1e6:.2f} MB, beside the report)\n{target}")
            linked += 1
        else:
            mime = evidence_mime(p)
            allure.attach.file(str(p), name=rel, attachment_type=mime, extension=p.suffix.lstrip(".") or None)
            inlined += 1
        ev._attached.add(p)
    if links:
        allure.attach("\n".join(links) + "\n", name="large evidence (links)", attachment_type="text/uri-list",
                      extension="uri")
    return inlined, linked


def evidence_mime(p: Path) -> str:
    from v2g_bench.harness.evidence import _ATTACHMENT_TYPES
    return _ATTACHMENT_TYPES.get(p.suffix.lower(), "application/octet-stream")


STANDARD_TITLES = {"iso15118_20": "ISO 15118-20", "iso15118_2": "ISO 15118-2", "din70121": "DIN SPEC 70121",
                   "ocpp201": "OCPP 2.0.1", "ocpp21": "OCPP 2.1"}


def dut_key(dut) -> str:
    from v2g_bench.report.runs import dut_key as key
    return key(dut.vendor, dut.model, dut.serial)


# Suites: "<standard> <version>" / "<block>". The conformance engine sets them per case; for the other
# tests the standard comes from the standard marker nearest the test, the block from the module.
def suite_labels(existing: dict[str, list[str]], standards: list[str], module: str) -> list[tuple[str, str]]:
    """The suite labels to add so that a case has exactly one parentSuite and one suite. `existing` = labels already on the result (the engine's win); `standards` = its
    standard markers' titles, nearest first; `module` = the test module's dotted or file name."""
    out: list[tuple[str, str]] = []
    if not existing.get("parentSuite"):
        out.append(("parentSuite", standards[0] if standards else "Bench and local control"))
    if not existing.get("suite"):
        out.append(("suite", block_title(module)))
    return out


def block_title(module: str) -> str:
    """`tests/conformance/local_control/test_local_power_control.py` -> "Local power control"."""
    stem = Path(module.replace(".", "/") if "/" not in module and not module.endswith(".py") else module).stem
    stem = stem.removeprefix("test_")
    return stem.replace("_", " ").strip().capitalize() or "Other"


def write_executor(results_dir: Path, manifest: dict) -> Path:
    """Allure's executor.json: who ran it, on which bench, which run (the report's header)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    bench = manifest.get("bench") or {}
    ex = {"name": f"v2g-bench on {bench.get('name', '?')}" + (f" ({bench['laboratory']})" if bench.get("laboratory") else ""),
          "type": "v2g-bench", "buildName": f"{manifest.get('run_id', '?')} by {manifest.get('operator') or 'unknown operator'}",
          "buildOrder": int(manifest.get("build_order") or 1), "reportName": manifest.get("title") or "v2g-bench run",
          "reportUrl": "", "buildUrl": ""}
    path = results_dir / "executor.json"
    path.write_text(json.dumps(ex, indent=1))
    return path


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


def instrument_line(role: str, ident: str | None, bench) -> str:
    """Identity, serial and calibration due date of a role's instrument (a past-due date is flagged)."""
    parts = [ident or "not opened in this run"]
    rc = bench.roles.get(role) if bench is not None else None
    if rc is not None:
        if rc.options.get("serial"):
            parts.append(f"s/n {rc.options['serial']}")
        due = calibration_due(rc)
        if due is not None:
            parts.append(f"calibration due {due.isoformat()}" + (" — PAST DUE" if due < _today() else ""))
    return ", ".join(parts)


def calibration_due(rc):
    import datetime as dt
    v = rc.options.get("calibration_due")
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v)) if v else None
    except ValueError:
        return None


def _today():
    import datetime as dt
    return dt.datetime.now(dt.timezone.utc).date()


def _flatten(prefix: str, obj, out: dict[str, str], limit: int = 200) -> None:
    if len(out) >= limit:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}", v, out, limit)
    elif isinstance(obj, (list, tuple, set)):
        out[prefix] = ", ".join(str(x) for x in (sorted(obj) if isinstance(obj, set) else obj))
    else:
        out[prefix] = str(obj)


def _pics_file(run_dir: Path) -> dict | None:
    """The PICS/PIXIT data file the conformance engine writes into the run folder, if any."""
    from v2g_bench.report.results import PICS_PIXIT_NAMES
    for name in PICS_PIXIT_NAMES:
        try:
            d = json.loads((run_dir / name).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(d, dict):
            return d
    return None


def write_environment(results_dir: Path, bench, dut, manifest: dict | None = None) -> Path:
    """environment.properties + categories.json (Allure reads both from the results folder), and
    executor.json when the run has a manifest."""
    results_dir.mkdir(parents=True, exist_ok=True)
    manifest = manifest or {}
    env: dict[str, str] = {}
    if manifest:
        env["run.id"] = str(manifest.get("run_id", ""))
        env["run.status"] = str(manifest.get("status", ""))
        env["run.started"] = str(manifest.get("started", ""))
        env["run.ended"] = str(manifest.get("ended", ""))
        env["run.operator"] = str(manifest.get("operator", ""))
    if bench is not None:
        env["bench.profile"] = f"{bench.name} ({bench.path})"
        env["bench.lab"] = "built-in virtual lab" if bench.uses_builtin_lab else "real bench"
        if getattr(bench, "laboratory", ""):
            env["bench.laboratory"] = bench.laboratory
    if dut is not None:
        env["dut.profile"] = str(dut.path)
        env["dut.identity"] = f"{dut.vendor} {dut.model} s/n {dut.serial}"
        env["dut.firmware"] = dut.firmware
        env["dut.claims"] = ", ".join(sorted(dut.claimed()))
        for k, v in sorted((getattr(dut, "pixit", None) or {}).items()):
            env[f"pixit.{k}"] = str(v)
    ids: dict[str, str] = {}
    for f in sorted(results_dir.glob("v2g-identities-*.json")):
        try:
            ids.update(json.loads(f.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    roles = sorted(set(ids) | set(bench.roles if bench is not None else ()))
    for role in roles:
        env[f"instrument.{role}"] = instrument_line(role, ids.get(role), bench)
    doc = manifest.get("pics_pixit") or _pics_file(results_dir.parent)
    if isinstance(doc, dict):           # the conformance engine's pics-pixit.json (v2g_bench.conformance.pics)
        flat: dict[str, str] = {}
        _flatten("pics", doc.get("pics", {}), flat)
        pixit = doc.get("pixit") if isinstance(doc.get("pixit"), dict) else {}
        _flatten("pixit", pixit.get("declared", {}), flat)
        _flatten("tolerance", pixit.get("tolerances", {}), flat)
        env.update(flat)
    for p, v in package_versions().items():
        env[f"version.{p}"] = v
    env["python"] = platform.python_version()
    env["host"] = platform.node()
    lines = [f"{k}={_escape(v)}" for k, v in env.items()]
    path = results_dir / "environment.properties"
    path.write_text("\n".join(lines) + "\n")
    (results_dir / "categories.json").write_text(json.dumps(CATEGORIES, indent=1))
    if manifest:
        write_executor(results_dir, manifest)
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
