"""One folder per run: reports/runs/<UTC time>-<DUT>/ with everything that run produced.

    run.json            the manifest: run id, DUT and bench identity, operator, start/end, status, counts
    allure-results/     Allure results (+ history carried from the previous run of the same DUT)
    html/index.html     the Allure report          test-report.html / .pdf   the signable test report
    junit.xml  traceability.csv/.md  evidence/  lab/

`reports/latest` points at the newest run. The harness' own tests (plain pytest) never write here.
"""
from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RUNS = "runs"
MANIFEST = "run.json"
LATEST = "latest"
HISTORY_DEPTH = 20   # runs kept in the Allure trend widgets


def dut_key(vendor: str, model: str, serial: str) -> str:
    """A file-name-safe key of a DUT (the same charger gets the same key across firmware builds)."""
    return slug(f"{vendor}-{model}-{serial}")


def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_")[:80] or "dut"


def new_run_dir(reports: Path, key: str, now: float | None = None) -> Path:
    stamp = datetime.fromtimestamp(now if now is not None else time.time(), tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = Path(reports) / RUNS / f"{stamp}-{slug(key)}"
    path, n = base, 1
    while path.exists():          # two runs in the same second
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> Path:
    """Atomically (tmp + rename): a run killed mid-write still leaves the previous manifest."""
    path = Path(run_dir) / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, default=str))
    os.replace(tmp, path)
    return path


def update_manifest(run_dir: Path, **fields: Any) -> dict[str, Any]:
    m = read_manifest(run_dir) or {}
    m.update(fields)
    write_manifest(run_dir, m)
    return m


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    try:
        m = json.loads((Path(run_dir) / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return m if isinstance(m, dict) else None


def set_latest(reports: Path, run_dir: Path) -> None:
    link = Path(reports) / LATEST
    try:
        if link.is_symlink() or link.is_file():
            link.unlink()
        link.symlink_to(Path(RUNS) / run_dir.name, target_is_directory=True)
    except OSError:      # a file system without symlinks: a pointer file instead
        (Path(reports) / "LATEST.txt").write_text(run_dir.name + "\n")


def list_runs(reports: Path) -> list[Path]:
    root = Path(reports) / RUNS
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)


def latest_run(reports: Path) -> Path | None:
    link = Path(reports) / LATEST
    if link.is_dir():
        return link.resolve()
    ptr = Path(reports) / "LATEST.txt"
    if ptr.is_file():
        p = Path(reports) / RUNS / ptr.read_text().strip()
        if p.is_dir():
            return p
    runs = list_runs(reports)
    return runs[-1] if runs else None


def resolve_run(reports: Path, spec: str | Path | None) -> Path | None:
    """A run given as a path, a run id (or its unique prefix), "latest"/None, or "previous"."""
    if spec is None or str(spec) == LATEST:
        return latest_run(reports)
    if str(spec) == "previous":
        runs = list_runs(reports)
        return runs[-2] if len(runs) >= 2 else None
    p = Path(spec)
    if p.exists():
        return p
    matches = [r for r in list_runs(reports) if r.name.startswith(str(spec))]
    if len(matches) > 1:
        from v2g_bench.errors import BenchError
        raise BenchError(f"{spec!r} names {len(matches)} runs ({matches[0].name}, {matches[1].name}, …)",
                         fix="give more of the run id, or the run folder's path")
    return matches[0] if matches else None


def previous_runs(reports: Path, key: str, before: Path | None = None) -> list[Path]:
    """Earlier finished runs of the same DUT, newest first."""
    out = []
    for r in reversed(list_runs(reports)):
        if before is not None and r.name >= Path(before).name:
            continue
        m = read_manifest(r)
        if m and (m.get("dut") or {}).get("key") == key and m.get("status") in ("complete", "interrupted"):
            out.append(r)
    return out


# ------------------------------------------------------------------------- Allure history ---
def _status_counts(results_dir: Path) -> tuple[dict[str, int], dict[str, dict], int]:
    """Counts by Allure status, per-historyId items and the total duration of a results folder."""
    counts = {"failed": 0, "broken": 0, "skipped": 0, "passed": 0, "unknown": 0, "total": 0}
    items: dict[str, dict] = {}
    t0, t1 = None, None
    for f in results_dir.glob("*-result.json"):
        try:
            r = json.loads(f.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        st = r.get("status") if r.get("status") in counts else "unknown"
        counts[st] += 1
        counts["total"] += 1
        start, stop = r.get("start"), r.get("stop")
        if isinstance(start, int) and isinstance(stop, int):
            t0 = start if t0 is None else min(t0, start)
            t1 = stop if t1 is None else max(t1, stop)
        hid = r.get("historyId")
        if hid:
            items[hid] = {"uid": r.get("uuid", ""), "status": st,
                          "statusDetails": (r.get("statusDetails") or {}).get("message", ""),
                          "time": {"start": start, "stop": stop,
                                   "duration": (stop - start) if isinstance(start, int) and isinstance(stop, int) else 0}}
    return counts, items, (t1 - t0) if t0 is not None and t1 is not None else 0


def carry_history(previous: Path | None, results_dir: Path) -> int:
    """Write `results_dir/history/*.json` from the previous run of the same DUT (its own history plus
    its results), so Allure's trend widgets span runs. Returns how many earlier runs the trend holds."""
    if previous is None:
        return 0
    prev_results = Path(previous) / "allure-results"
    if not prev_results.is_dir():
        return 0
    old = prev_results / "history"

    def old_json(name: str, default):
        try:
            v = json.loads((old / name).read_text())
            return v if isinstance(v, type(default)) else default
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return default
    counts, items, duration = _status_counts(prev_results)
    m = read_manifest(previous) or {}
    order = int(m.get("build_order") or 1)
    name = str(m.get("run_id") or Path(previous).name)
    url = f"../../{Path(previous).name}/html/index.html"
    hist = Path(results_dir) / "history"
    hist.mkdir(parents=True, exist_ok=True)
    trend = [{"buildOrder": order, "reportName": name, "reportUrl": url, "data": counts}]
    trend += old_json("history-trend.json", [])
    (hist / "history-trend.json").write_text(json.dumps(trend[:HISTORY_DEPTH]))
    dtrend = [{"buildOrder": order, "reportName": name, "reportUrl": url, "data": {"duration": duration}}]
    (hist / "duration-trend.json").write_text(json.dumps((dtrend + old_json("duration-trend.json", []))[:HISTORY_DEPTH]))
    rtrend = [{"buildOrder": order, "reportName": name, "reportUrl": url, "data": {"run": counts["total"], "retry": 0}}]
    (hist / "retry-trend.json").write_text(json.dumps((rtrend + old_json("retry-trend.json", []))[:HISTORY_DEPTH]))
    cats = {"DUT non-conformance": counts["failed"], "Bench error": counts["broken"]}
    ctrend = [{"buildOrder": order, "reportName": name, "reportUrl": url, "data": cats}]
    (hist / "categories-trend.json").write_text(json.dumps((ctrend + old_json("categories-trend.json", []))[:HISTORY_DEPTH]))
    per_case = old_json("history.json", {})
    for hid, item in items.items():
        entry = per_case.setdefault(hid, {"statistic": {k: 0 for k in counts}, "items": []})
        entry["items"] = ([item] + list(entry.get("items") or []))[:HISTORY_DEPTH]
        stat = {k: 0 for k in counts}
        for it in entry["items"]:
            stat[it["status"] if it.get("status") in stat else "unknown"] += 1
            stat["total"] += 1
        entry["statistic"] = stat
    (hist / "history.json").write_text(json.dumps(per_case))
    return len(trend[:HISTORY_DEPTH])
